"""Per-chunk swap session: track faces, swap, enhance, and say exactly which pixels changed."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from faceworker.faces import FaceAnalyzer
from faceworker.frames import FrameLike, FrameView, even_box
from faceworker.geometry import apply_affine, similarity_transform
from faceworker.masks import RegionMask
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
    changed: RegionMask | None = None  # the pixels the swap changed (compact, undilated)
    mask_dilate_px: int = 0  # `mask` grows `changed` by this many pixels
    yaw_deg: float | None = None
    landmark_jitter_px: float | None = None
    detected: bool = False  # full detection ran on this frame (vs tracking)
    track_ids: list[int] = field(default_factory=list)  # the tracker's track per face (a new id: a new track)
    cut: bool = False  # the tracker suspected a cut here (identity decided the face)
    redetected: bool = False  # a full detection because the track was lost or doubtful (not periodic)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    _full_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray | None:
        """uint8 HxW, 255 where the swap changed pixels, dilated so encoder ringing (8-16 px blocks)
        stays inside: what PSNR/SSIM "outside the mask" exclude. Built on first use (the metrics
        pass), not in the swap pass."""
        if self._full_mask is None and self.changed is not None:
            self._full_mask = self.changed.dilated(self.mask_dilate_px).full() if self.mask_dilate_px else \
                self.changed.full()
        return self._full_mask

    @mask.setter
    def mask(self, value: np.ndarray | None) -> None:
        self._full_mask = value
        self.changed = None

    def drop_mask(self) -> None:
        """Forget the frame-sized mask built from `changed` (~1-2 MB; `mask` builds it again)."""
        if self.changed is not None:
            self._full_mask = None


def _grow(box: tuple[int, int, int, int], px: int) -> tuple[int, int, int, int]:
    return box[0] - px, box[1] - px, box[2] + px, box[3] + px


def _jitter(prev: np.ndarray | None, cur: np.ndarray) -> float | None:
    """RMS landmark displacement after removing the head's own motion (similarity fit)."""
    if prev is None or prev.shape != cur.shape:
        return None
    m = similarity_transform(prev, cur)
    return float(np.sqrt(((apply_affine(m, prev) - cur) ** 2).sum(1).mean()))


class SwapSession:
    """One chunk's worth of state; feed frames in order with `.process`."""

    accepts_frame_view = True  # the chunk runner may feed I420 FrameViews instead of BGR arrays

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
        # the tracker embeds faces when identity must decide (reference/many from frame 0, one after a
        # cut) and inline metrics embed every frame: load that model with the session, not in the pass
        getattr(self.analyzer.recognizer, "load", lambda: None)()
        self.tracker = FaceTracker(self.analyzer, face_selector, reference_embedding, redetect_every, fps)
        self.mask_dilate_frac = mask_dilate_frac
        self._prev: dict[int, np.ndarray] = {}
        self.source_warnings = list(source.warnings)

    def process(self, frame: FrameLike, frame_index: int) -> tuple[Any, FrameInfo]:
        """Swap one frame. A BGR array gives a new BGR array back (the input is not changed); a
        FrameView is changed in place where the swap changed pixels and is returned."""
        view = frame if isinstance(frame, FrameView) else None
        info = FrameInfo(frame_index=frame_index, warnings=list(self.source_warnings))
        t0 = time.perf_counter()
        faces = self.tracker.update(frame)
        t1 = time.perf_counter()
        info.timings["detect_ms"] = (t1 - t0) * 1e3
        info.detected = self.tracker.detected_last
        info.cut = bool(getattr(self.tracker, "cut_last", False))
        info.redetected = bool(getattr(self.tracker, "redetected_last", False))
        info.track_ids = [t.track_id for t in self.tracker.tracks] if faces else []
        info.faces_target = max(self.tracker.faces_in_frame, len(faces)) if faces else self.tracker.faces_in_frame
        h, w = view.shape if view is not None else frame.shape[:2]
        if not faces:
            info.warnings.append("no_face_in_target")
            info.changed = RegionMask((h, w))
            info.timings.update(swap_ms=0.0, enhance_ms=0.0)
            self._prev = {}
            return frame, info
        yaws = []
        jit = []
        prev_next: dict[int, np.ndarray] = {}
        for track, face in zip(self.tracker.tracks, faces):
            yaws.append(FaceAnalyzer.yaw_deg(face))
            j = _jitter(self._prev.get(track.track_id), face.landmarks)
            if j is not None:
                jit.append(j)
            prev_next[track.track_id] = face.landmarks
        self._prev = prev_next
        regional = view is not None and view.is_i420 and self.enhancer is None and hasattr(self.swapper, "region")
        # encoder ringing (8-16 px blocks) must stay inside the mask the metrics exclude
        info.mask_dilate_px = max(8, int(self.mask_dilate_frac * max(f.size for f in faces)))
        if regional:
            assert view is not None  # regional implies a FrameView
            out: Any = self._swap_regions(view, faces, info)
        else:
            before = view.bgr() if view is not None else np.asarray(frame)
            out = before
            union = np.zeros((h, w), np.uint8)
            for face in faces:
                out, m = self.swapper.swap(out, face)
                np.maximum(union, m, out=union)
            info.changed = RegionMask.from_full(union)
        t2 = time.perf_counter()
        info.timings["swap_ms"] = (t2 - t1) * 1e3
        if not regional:
            if self.enhancer is not None and union.any():
                swapped = out
                for face in faces:
                    out = self.enhancer.enhance(out, face, union)
                outside = info.mask == 0
                if out is not swapped:
                    out[outside] = before[outside]  # enhancers may not touch the background
            if view is not None:  # write back only what changed: the rest stays as decoded
                changed = union if self.enhancer is None or info.mask is None else info.mask
                view.paste((0, 0, w, h), out, changed)
                out = view
        info.timings["enhance_ms"] = (time.perf_counter() - t2) * 1e3
        info.swapped = info.changed is not None and info.changed.any()
        info.faces = faces
        info.yaw_deg = float(yaws[0])
        info.landmark_jitter_px = float(np.mean(jit)) if jit else None
        if any(abs(y) > EXTREME_YAW_DEG for y in yaws):
            info.warnings.append("extreme_yaw")
        return out, info

    def _swap_regions(self, view: FrameView, faces: list[Face], info: FrameInfo) -> FrameView:
        """Swap each face on a BGR crop of just the box its swapper touches, then write the
        changed pixels back into the I420 frame (faces one after another, like the BGR path)."""
        h, w = view.shape
        info.changed = RegionMask((h, w))
        for face in faces:
            x0, y0, x1, y1 = even_box(_grow(self.swapper.region(face, (h, w)), 2), w, h)  # type: ignore[attr-defined]  # checked by hasattr in `regional`
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            crop = view.bgr_region((x0, y0, x1, y1))
            offset = np.array([x0, y0], np.float32)
            local = replace(face, landmarks=np.asarray(face.landmarks, np.float32) - offset,
                            bbox=(face.bbox[0] - x0, face.bbox[1] - y0, face.bbox[2] - x0, face.bbox[3] - y0))
            out_crop, m = self.swapper.swap(crop, local)
            view.paste((x0, y0, x1, y1), out_crop, m)
            info.changed.add((x0, y0, x1, y1), m)
        return view
