"""Per-chunk swap session: track faces, swap, enhance, and say exactly which pixels changed."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceworker.faces import FaceAnalyzer
from faceworker.geometry import apply_affine, similarity_transform
from faceworker.tracking import FaceTracker
from faceworker.types import Enhancer, Face, FaceSwapper, SourceFace

EXTREME_YAW_DEG = 45.0  # target faces turned further than this are swapped but flagged


@dataclass
class FrameInfo:
    """What happened to one frame; metrics.measure_frame turns it into a metrics row."""

    frame_index: int
    faces_target: int = 0
    swapped: bool = False
    faces: list[Face] = field(default_factory=list)  # target faces used (smoothed landmarks)
    mask: np.ndarray | None = None  # uint8 HxW, dilated union of the pixels the swap changed
    yaw_deg: float | None = None
    landmark_jitter_px: float | None = None
    detected: bool = False  # full detection ran on this frame (vs tracking)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage


def _jitter(prev: np.ndarray | None, cur: np.ndarray) -> float | None:
    """RMS landmark displacement after removing the head's own motion (similarity fit)."""
    if prev is None or prev.shape != cur.shape:
        return None
    m = similarity_transform(prev, cur)
    return float(np.sqrt(((apply_affine(m, prev) - cur) ** 2).sum(1).mean()))


class SwapSession:
    """One chunk's worth of state; feed frames in order with `.process`."""

    def __init__(
        self,
        source: SourceFace,
        swapper: str | FaceSwapper = "classic",
        options: dict[str, Any] | None = None,
        model_dir: str | None = None,
        face_selector: str = "one",
        reference_embedding: np.ndarray | None = None,
        enhancer: str | Enhancer | None = "none",
        fps: float = 25.0,
        analyzer: FaceAnalyzer | None = None,
        detect_scale: float = 0.5,
        redetect_every: int = 5,
        mask_dilate_frac: float = 0.06,
    ) -> None:
        from faceworker.enhancers import get_enhancer
        from faceworker.swappers import get_swapper

        self.source = source
        self.analyzer = analyzer or FaceAnalyzer(detect_scale=detect_scale, redetect_every=redetect_every)
        self.swapper: FaceSwapper = get_swapper(swapper, model_dir, options) if isinstance(swapper, str) else swapper
        self.swapper.prepare(source)
        if isinstance(enhancer, str) or enhancer is None:
            self.enhancer = get_enhancer(enhancer or "none", model_dir)
        else:
            self.enhancer = enhancer
        self.tracker = FaceTracker(self.analyzer, face_selector, reference_embedding, redetect_every, fps)
        self.mask_dilate_frac = mask_dilate_frac
        self._prev: dict[int, np.ndarray] = {}
        self.source_warnings = list(source.warnings)

    def process(self, frame_bgr: np.ndarray, frame_index: int) -> tuple[np.ndarray, FrameInfo]:
        info = FrameInfo(frame_index=frame_index, warnings=list(self.source_warnings))
        t0 = time.perf_counter()
        faces = self.tracker.update(frame_bgr)
        t1 = time.perf_counter()
        info.timings["detect_ms"] = (t1 - t0) * 1e3
        info.detected = self.tracker.detected_last
        info.faces_target = max(self.tracker.faces_in_frame, len(faces)) if faces else self.tracker.faces_in_frame
        h, w = frame_bgr.shape[:2]
        union = np.zeros((h, w), np.uint8)
        if not faces:
            info.warnings.append("no_face_in_target")
            info.mask = union
            info.timings.update(swap_ms=0.0, enhance_ms=0.0)
            self._prev = {}
            return frame_bgr, info
        out = frame_bgr
        yaws = []
        jit = []
        prev_next: dict[int, np.ndarray] = {}
        for track, face in zip(self.tracker.tracks, faces):
            yaws.append(FaceAnalyzer.yaw_deg(face))
            j = _jitter(self._prev.get(track.track_id), face.landmarks)
            if j is not None:
                jit.append(j)
            prev_next[track.track_id] = face.landmarks
            out, m = self.swapper.swap(out, face)
            union = np.maximum(union, m)
        self._prev = prev_next
        t2 = time.perf_counter()
        info.timings["swap_ms"] = (t2 - t1) * 1e3
        info.mask = self._dilate(union, faces)
        if self.enhancer is not None and union.any():
            swapped = out
            for face in faces:
                out = self.enhancer.enhance(out, face, union)
            outside = info.mask == 0
            if out is not swapped:
                out[outside] = frame_bgr[outside]  # enhancers may not touch the background
        info.timings["enhance_ms"] = (time.perf_counter() - t2) * 1e3
        info.swapped = bool(union.any())
        info.faces = faces
        info.yaw_deg = float(yaws[0])
        info.landmark_jitter_px = float(np.mean(jit)) if jit else None
        if any(abs(y) > EXTREME_YAW_DEG for y in yaws):
            info.warnings.append("extreme_yaw")
        return out, info

    def _dilate(self, mask: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Grow the changed region so encoder ringing (8-16 px blocks) stays inside it."""
        if not mask.any():
            return mask
        size = max(f.size for f in faces)
        r = max(8, int(self.mask_dilate_frac * size))
        bx, by, bw, bh = cv2.boundingRect(mask)
        h, w = mask.shape
        y0, y1 = max(0, by - r), min(h, by + bh + r)
        x0, x1 = max(0, bx - r), min(w, bx + bw + r)
        out = np.zeros_like(mask)
        # Pixels within Euclidean distance r of a changed pixel: a disc dilation, 2-3x cheaper than
        # cv2.dilate with a (2r+1)² elliptic kernel and never larger than it (a few boundary pixels
        # fewer), so PSNR/SSIM "outside" cover at least the pixels they did. The ROI border is
        # padded so the distance is not cut short at the frame edge.
        roi = np.where(mask[y0:y1, x0:x1] > 0, 0, 255).astype(np.uint8)
        roi = cv2.copyMakeBorder(roi, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)
        dist = cv2.distanceTransform(roi, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        out[y0:y1, x0:x1] = np.where(dist <= r, 255, 0).astype(np.uint8)
        return out
