"""The chunk's metrics (QA) pass: cheap checks on every frame, identity on a sample plus doubts.

Frames arrive as I420 (original and encoded output, decoded once each): PSNR in BGR and SSIM
on a rotating quarter of the luma rows outside the dilated mask, the face re-detected by a
HOG pass in a small window around the swap-time face (`face_found_after`), the face patch
compared with the original's (unchanged?) and the previous output's (another face?). The dlib
ResNet embedding (~60-110 ms, the old pass's main cost) runs only on the frames
`id_sampling` picks; every row says whether it carries one (`id_measured`, `id_reason`).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from faceworker.faces import DeferredEmbedding, FaceAnalyzer
from faceworker.frames import FrameView
from faceworker.geometry import landmark_bbox
from faceworker.id_sampling import ID_SAMPLE_EVERY, Doubt, plan
from faceworker.metrics import PendingRow, _Done, face_patches, psnr_outside, ssim_outside_bands
from faceworker.types import Face

# (window margin, face px) tries of the output re-detection. The swapped face is where the swap put
# it, so the first window is tight: 375/375 frames of the 720p sample hit it at 1.1 ms a frame
# (0.3 and 90 px: also 375/375, 2.2 ms); a miss gets the wider, finer second try.
NEAR = ((0.15, 84.0), (0.6, 110.0))


def _grown(box: tuple[int, int, int, int], frac: float) -> tuple[int, int, int, int]:
    s = max(box[2] - box[0], box[3] - box[1])
    m = int(frac * s)
    return box[0] - m, box[1] - m, box[2] + m, box[3] + m


def output_face_box(view: FrameView, near: Face, analyzer: FaceAnalyzer) -> tuple[int, int, int, int] | None:
    """A HOG detection of the swapped face in a window around its swap-time box (~1 ms at 720p;
    a wider, finer second try only when the first finds nothing), or None: the face is gone."""
    box = tuple(int(v) for v in landmark_bbox(np.asarray(near.landmarks, np.float32)))
    for k, (margin, face_px) in enumerate(NEAR):
        gray = view.gray_covering(_grown(box, margin + 0.05))  # type: ignore[arg-type]  # box is a 4-tuple of ints
        hit = analyzer.detect_near(gray, box, margin=margin, face_px=face_px,  # type: ignore[arg-type]  # same box
                                   upsample_small=k == len(NEAR) - 1)  # small faces (< 80 px): upsampled
        if hit is not None:
            return hit[0]
    return None


class ChunkMeasurer:
    """Turns (original, output, FrameInfo) triples into metrics rows, in frame order.

    `infos` are all of the chunk's FrameInfo objects (the swap pass has finished): the sampling
    plan needs the tracker's whole story (track ends) before the first row."""

    def __init__(self, infos: list[Any], width: int, height: int, source_embedding: np.ndarray,
                 analyzer: FaceAnalyzer, embedder: Any, every: int = ID_SAMPLE_EVERY, seed: int = 0,
                 i420: bool = True) -> None:
        self.width, self.height, self.i420 = width, height, i420
        self.source = np.asarray(source_embedding, np.float32)
        self.analyzer, self.embedder = analyzer, embedder
        self.planned = plan(infos, every, seed)
        self.every = every
        self.doubt = Doubt()

    def start(self, i: int, original: np.ndarray, output: np.ndarray, info: Any) -> PendingRow:
        """Frame i's row; its embedding (if measured) may still be computing in `embedder`."""
        t0 = time.perf_counter()
        h, w = self.height, self.width
        mask = info.mask
        if self.i420:
            orig, out = FrameView(i420=original, width=w, height=h), FrameView(i420=output, width=w, height=h)
            y_orig, y_out = original[:h], output[:h]
        else:  # odd sizes cannot be I420: BGR frames, the grey images stand in for luma
            orig, out = FrameView(bgr=original), FrameView(bgr=output)
            y_orig, y_out = orig.gray, out.gray
        # PSNR stays in BGR, as the gate's threshold was set: I420 PSNR reads ~5 dB higher on the
        # same frames (docs/quality.md), so a frame failing in BGR could pass there.
        psnr = psnr_outside(orig.bgr(), out.bgr(), mask)
        row: dict[str, Any] = {
            "frame": info.frame_index, "faces_target": int(info.faces_target), "swapped": bool(info.swapped),
            "face_found_after": False, "id_measured": False, "id_reason": None,
            "id_cosine_raw": None, "id_dist_source": None, "id_dist_target": None, "face_change": None,
            "psnr_outside_db": psnr,
            "ssim_outside": ssim_outside_bands(y_orig, y_out, mask, info.frame_index, limited=self.i420),
            "landmark_jitter_px": info.landmark_jitter_px, "yaw_deg": info.yaw_deg,
            "warnings": list(info.warnings),
            "t_detect_ms": round(info.timings.get("detect_ms", 0.0), 3),
            "t_swap_ms": round(info.timings.get("swap_ms", 0.0) + info.timings.get("enhance_ms", 0.0), 3),
        }
        pending = target = None
        if info.faces:
            face = info.faces[0]
            change, patch = face_patches(y_orig, y_out, face.landmarks)
            row["face_change"] = None if change is None else round(change, 3)
            why = self.doubt.check(change, patch, bool(info.swapped))
            why = self.planned.get(i) or why
            box = output_face_box(out, face, self.analyzer)
            row["face_found_after"] = box is not None
            if box is not None and why is not None:
                pending, target = self._embed(out, face, box)
                row["id_measured"], row["id_reason"] = True, why
        return PendingRow(row, pending, self.source if pending is not None else None, target,
                          (time.perf_counter() - t0) * 1e3)

    def _embed(self, out: FrameView, face: Face, box: tuple[int, int, int, int]) -> tuple[Any, Any]:
        """(pending output embedding, the track's target embedding if known)."""
        rec = self.analyzer.recognizer
        lm = self.analyzer.landmarks(out.gray_covering(_grown(box, 0.6)), box)
        found = Face(bbox=box, landmarks=lm)
        # id_dist_target only where the target's embedding is known already (the tracker needed it):
        # embedding the target for it cost one more ResNet pass per track and chunk, for a
        # reference value the gate does not use
        tgt = face.embedding.known() if isinstance(face.embedding, DeferredEmbedding) else face.embedding
        if getattr(rec, "jitter", 0) == 0 and hasattr(rec, "chip"):
            return self.embedder.submit(rec.chip(out.bgr(), found)), tgt
        emb = rec.embed(out.bgr(), found).astype(np.float32)  # another recognizer: embed inline
        return _Done((emb, 0.0)), tgt


def measure_chunk(pairs: Iterable[tuple[np.ndarray, np.ndarray]], infos: Any, frames: int,
                  measurer: ChunkMeasurer, finish: Callable[[int, dict[str, Any]], None],
                  seen: Callable[[int, np.ndarray, np.ndarray, dict[str, Any]], None] | None = None) -> None:
    """Run `measurer` over the chunk's (original, output) I420 pairs; `finish(i, row)` gets every
    row in order. `infos` has .get(i)/.release(i) (the runner's mask store); a small window of rows
    waits for embeddings computing in worker processes. `seen(i, original, output, row)` is called
    while frame i's pair is still at hand (its row without the embedding's results)."""
    window: deque[tuple[int, PendingRow]] = deque()
    depth = 2 * getattr(measurer.embedder, "workers", 0) + 2
    for i, (orig, out) in enumerate(pairs):
        if i >= frames:
            break
        pending = measurer.start(i, orig, out, infos.get(i))
        if seen is not None:
            seen(i, orig, out, pending.row)
        window.append((i, pending))
        infos.release(i)
        while len(window) > depth:
            j, pending = window.popleft()
            finish(j, pending.result())
    while window:
        j, pending = window.popleft()
        finish(j, pending.result())
