"""Per-frame quality metrics (docs/contracts.md, "Per-frame metrics").

Identity: the swapped face is re-detected in the (encoded) output and embedded with the same
recognizer as the source. Background: PSNR/SSIM of output vs original *outside* the dilated
swap mask, where nothing should have changed apart from encoder loss.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, ParamSpec

import cv2
import numpy as np

from faceworker.faces import ChipEmbedder, DeferredEmbedding, FaceAnalyzer, embedding_vector
from faceworker.frame_pipeline import FrameInfo
from faceworker.frames import _Y_TO_GRAY as Y_TO_GRAY
from faceworker.types import Face

P = ParamSpec("P")
PSNR_CAP_DB = 100.0  # identical regions: JSON has no "inf", so PSNR is capped here


def psnr_outside(original: np.ndarray, output: np.ndarray, mask: np.ndarray | None) -> float:
    """PSNR (dB, 8-bit) over the pixels where mask == 0; capped at PSNR_CAP_DB."""
    keep = None if mask is None else cv2.compare(mask, 0, cv2.CMP_EQ)  # type: ignore[call-overload]  # stubs lack compare(array, scalar)
    n = original.shape[0] * original.shape[1] if keep is None else int(cv2.countNonZero(keep))
    if n == 0:
        return PSNR_CAP_DB
    sq = cv2.norm(original, output, cv2.NORM_L2SQR, mask=keep)
    mse = float(sq) / (n * (original.shape[2] if original.ndim == 3 else 1))
    if mse <= 1e-10:
        return PSNR_CAP_DB
    return float(min(PSNR_CAP_DB, 10.0 * math.log10(255.0 * 255.0 / mse)))


def ssim_outside(original: np.ndarray, output: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean SSIM (grey, 7×7 uniform window as scikit-image's default) over the pixels where mask == 0
    (BGR frames are compared on their grey images; single-channel ones as they are).

    A box filter rather than the 11×11 Gaussian: same ranking, about a third of the cost per frame.
    The arithmetic runs in place and the masked mean in cv2 (no boolean-indexed copy of the map):
    the same value to ~1e-7, at fewer full-frame temporaries. The denominator is at least c1·c2, so
    the division needs no zero check.
    """
    ga = original if original.ndim == 2 else cv2.cvtColor(original, cv2.COLOR_BGR2GRAY)
    gb = output if output.ndim == 2 else cv2.cvtColor(output, cv2.COLOR_BGR2GRAY)
    keep = None if mask is None else cv2.compare(mask, 0, cv2.CMP_EQ)  # type: ignore[call-overload]  # stubs lack compare(array, scalar)
    if keep is not None and cv2.countNonZero(keep) == 0:
        return 1.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:  # 8-bit input is filtered as it is (half the cost of float)
        return cv2.boxFilter(x, cv2.CV_32F, (7, 7), borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(ga), blur(gb)
    a, b = ga.astype(np.float32), gb.astype(np.float32)
    sq = a * a
    sq += b * b
    var, cov = blur(sq), blur(a * b)  # E[a²] + E[b²] (one filter: it is linear) and E[ab], made variances in place
    mu_ab = mu_a * mu_b
    cov -= mu_ab
    cov *= 2.0
    cov += c2  # 2·cov + c2
    mu_ab *= 2.0
    mu_ab += c1  # 2·mu_a·mu_b + c1
    mu_a *= mu_a
    mu_b *= mu_b
    var -= mu_a
    var -= mu_b
    var += c2  # var_a + var_b + c2
    mu_a += mu_b
    mu_a += c1  # mu_a² + mu_b² + c1
    mu_ab *= cov
    mu_a *= var
    smap = np.divide(mu_ab, mu_a, out=mu_ab)  # numpy: cv2.divide checks every element for zero (~5x slower)
    return float(cv2.mean(smap, mask=keep)[0])


SSIM_BAND, SSIM_PERIOD = 8, 64  # rows of each full-resolution SSIM band, and the band spacing
_CTX = 3  # half the 7x7 window: context rows each band needs


def ssim_outside_bands(original_y: np.ndarray, output_y: np.ndarray, mask: np.ndarray | None,
                       phase: int, limited: bool = True) -> float:
    """`ssim_outside` at full resolution on an eighth of the rows: bands of SSIM_BAND rows every
    SSIM_PERIOD rows, shifted by one band each frame (`phase`, the frame index), so 8 consecutive
    frames cover every row.

    Why not half resolution: 2x2 averaging hides pixel-level noise (sigma 6 noise read 0.98 at
    half and 0.89 at full resolution), so frames failing today would pass. Bands keep the
    per-window statistic and are an unbiased sample of a frame-wide change (noise, blur, shift,
    encoder loss) at ~a fifth of the cost (each band reads 3 context rows either side); only a
    defect confined to < 56 rows of one frame can fall between bands (PSNR sees every pixel). `limited`: the planes are I420 luma
    (16-235), expanded to the full-range grey SSIM has always used."""
    h = original_y.shape[0]
    off = (int(phase) % (SSIM_PERIOD // SSIM_BAND)) * SSIM_BAND
    rows_a, rows_b, rows_m, keep_rows = [], [], [], []
    for top in range(off, h, SSIM_PERIOD):
        bottom = min(h, top + SSIM_BAND)
        lo, hi = max(0, top - _CTX), min(h, bottom + _CTX)
        rows_a.append(original_y[lo:hi])
        rows_b.append(output_y[lo:hi])
        if mask is not None:
            rows_m.append(mask[lo:hi])
        keep_rows.append(np.r_[np.zeros(top - lo, bool), np.ones(bottom - top, bool), np.zeros(hi - bottom, bool)])
    if not rows_a:
        return 1.0
    a, b = np.vstack(rows_a), np.vstack(rows_b)
    if limited:
        a, b = cv2.LUT(a, Y_TO_GRAY), cv2.LUT(b, Y_TO_GRAY)
    # only the band rows count (context rows are read by the window, not scored): mask the rest
    excluded = np.vstack(rows_m) if mask is not None else np.zeros(a.shape, np.uint8)
    excluded[~np.concatenate(keep_rows)] = 255
    return ssim_outside(a, b, excluded)


FACE_PATCH = 32  # side of the grey face patch the cheap checks compare


def face_patches(original_y: np.ndarray, output_y: np.ndarray,
                 landmarks: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    """(mean |output - original| over the inner-face patch, the output's patch), luma 0-255.

    The patch is the box of the swap-time landmarks, shrunk by a sixth on each side (the face,
    not the blend edge), averaged down to 32x32: a swapped face differs from the original by a
    chunk-typical amount, a skipped swap or the target's own face back only by encoder noise."""
    lm = np.asarray(landmarks, np.float32)
    if lm.size == 0:
        return None, None
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    dx, dy = (x1 - x0) / 6.0, (y1 - y0) / 6.0
    h, w = original_y.shape[:2]
    bx0, by0 = max(0, int(x0 + dx)), max(0, int(y0 + dy))
    bx1, by1 = min(w, int(x1 - dx)), min(h, int(y1 - dy))
    if bx1 - bx0 < 8 or by1 - by0 < 8:
        return None, None
    size = (FACE_PATCH, FACE_PATCH)
    a = cv2.resize(original_y[by0:by1, bx0:bx1], size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(output_y[by0:by1, bx0:bx1], size, interpolation=cv2.INTER_AREA)
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size, b


def find_output_face(output: np.ndarray, near: Face, analyzer: FaceAnalyzer) -> Face | None:
    """Detect a face in the output around where the swapped face should be (a crop: cheap, and the right person)."""
    x0, y0, x1, y1 = near.bbox
    s = max(x1 - x0, y1 - y0)
    h, w = output.shape[:2]
    cx0, cy0 = max(0, x0 - s), max(0, y0 - s)
    cx1, cy1 = min(w, x1 + s), min(h, y1 + s)
    crop = np.ascontiguousarray(output[cy0:cy1, cx0:cx1])
    faces = analyzer.detect(crop, scale=min(1.0, 120.0 / max(s, 1)))  # face ~120 px: HOG's sweet spot, cheap
    if not faces:
        return None
    centre = np.array([(x0 + x1) / 2 - cx0, (y0 + y1) / 2 - cy0])
    best = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - centre)))
    return Face(bbox=(best.bbox[0] + cx0, best.bbox[1] + cy0, best.bbox[2] + cx0, best.bbox[3] + cy0),
                landmarks=best.landmarks + np.array([cx0, cy0], np.float32), score=best.score)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class PendingRow:
    """A metrics row whose output embedding may still be computing in a ChipEmbedder worker;
    `.result()` waits for it and fills the identity fields."""

    def __init__(self, row: dict[str, Any], pending: Any, source: np.ndarray | None, target: Any,
                 t_ms: float) -> None:
        self.row, self._pending, self._source, self._target, self._t_ms = row, pending, source, target, t_ms

    def result(self) -> dict[str, Any]:
        row = self.row
        emb = None
        t_ms = self._t_ms
        if self._pending is not None:
            emb, embed_ms = self._pending.result()
            t_ms += embed_ms
            src = np.asarray(self._source, np.float32)
            row["id_cosine_raw"] = _cos(emb, src)
            row["id_dist_source"] = float(np.linalg.norm(emb - src))
            tgt = self._target.result()[0] if hasattr(self._target, "result") else self._target
            if tgt is not None:  # the metrics pass leaves it out unless the tracker already computed it
                row["id_dist_target"] = float(np.linalg.norm(emb - np.asarray(tgt, np.float32)))
        row["t_metrics_ms"] = round(t_ms, 3)
        row["embedding"] = emb
        return row


def start_measure(
    original_bgr: np.ndarray,
    output_bgr: np.ndarray,
    info: FrameInfo,
    source_embedding: np.ndarray,
    analyzer: FaceAnalyzer,
    target_embedding: np.ndarray | None = None,
    embedder: ChipEmbedder | None = None,
) -> PendingRow:
    """Everything of a metrics row except the (slow) output embedding, which goes to `embedder`.

    The face is re-detected in the output (find_output_face: a HOG pass on a window around the
    swap-time box, so `face_found_after` stays a real detection) before it is embedded."""
    t0 = time.perf_counter()
    embedder = embedder or ChipEmbedder(0)
    row: dict[str, Any] = {
        "frame": info.frame_index,
        "faces_target": int(info.faces_target),
        "swapped": bool(info.swapped),
        "face_found_after": False,
        "id_cosine_raw": None,
        "id_dist_source": None,
        "id_dist_target": None,
    }
    pending = target = None
    if info.faces:
        face = find_output_face(output_bgr, info.faces[0], analyzer)
        if face is not None:
            row["face_found_after"] = True
            tgt = target_embedding if target_embedding is not None else info.faces[0].embedding
            if getattr(analyzer.recognizer, "jitter", 0) == 0 and hasattr(analyzer.recognizer, "chip"):
                pending = embedder.submit(analyzer.recognizer.chip(output_bgr, face))
                if isinstance(tgt, DeferredEmbedding):  # the track's identity: embedded once per track
                    target = tgt.future(embedder)
                else:
                    target = tgt if tgt is not None else embedder.submit(
                        analyzer.recognizer.chip(original_bgr, info.faces[0]))
            else:  # another recognizer (or jitter): embed inline, the way it defines
                emb = analyzer.recognizer.embed(output_bgr, face).astype(np.float32)
                pending = _Done((emb, 0.0))
                tgt = embedding_vector(tgt)
                target = tgt if tgt is not None else analyzer.recognizer.embed(original_bgr, info.faces[0])
    row["psnr_outside_db"] = psnr_outside(original_bgr, output_bgr, info.mask)
    row["ssim_outside"] = ssim_outside(original_bgr, output_bgr, info.mask)
    row["landmark_jitter_px"] = info.landmark_jitter_px
    row["yaw_deg"] = info.yaw_deg
    row["warnings"] = list(info.warnings)
    row["t_detect_ms"] = round(info.timings.get("detect_ms", 0.0), 3)
    row["t_swap_ms"] = round(info.timings.get("swap_ms", 0.0) + info.timings.get("enhance_ms", 0.0), 3)
    return PendingRow(row, pending, source_embedding if pending is not None else None, target,
                      (time.perf_counter() - t0) * 1e3)


class _Done:
    """A finished value with a Future's `.result()`."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


def _waited(start: Callable[P, PendingRow]) -> Callable[P, dict[str, Any]]:
    """The blocking form of a start_* function: same arguments, returns the finished row."""

    def waited(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        return start(*args, **kwargs).result()

    return waited


#: One metrics row: start_measure's arguments, waited for. The extra key "embedding" (float32 [D]
#: or None) is for embeddings.npy, not JSON.
measure_frame = _waited(start_measure)
