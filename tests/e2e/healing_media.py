"""Sample orders for the self-healing tests: a target video whose first frames hold no face.

A face-free opening chunk cannot fail the identity expectation (it only applies to frames
where the target had a face), so with a texture-only swap (identity_weight 0) exactly the
chunks that do show the face fail the first gate: a known, predictable set for `reswap`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker import sample


def _frames(face: np.ndarray, n: int, blank: int, size: tuple[int, int], fps: float,
            seed: int) -> Iterator[np.ndarray]:
    """`blank` frames of the sample's textured background alone, then the moving face."""
    width, height = size
    # Same generator and seed as iter_target_frames, so the background is the one behind the face.
    bg = sample._background(width, height, np.random.default_rng(seed))
    y, x = (bg.shape[0] - height) // 2, (bg.shape[1] - width) // 2
    still = np.ascontiguousarray(bg[y: y + height, x: x + width])
    for _ in range(min(blank, n)):
        yield still
    yield from sample.iter_target_frames(face, max(0, n - blank), size, fps, seed)


def build_faceless_start_order(out_dir: str | os.PathLike[str], *, blank_frames: int = 32,
                               seconds: float = 2.5, size: tuple[int, int] = (640, 360),
                               fps: float = 25, seed: int = 0) -> dict[str, Any]:
    """Write `source.png` and `target.mp4` (with audio) whose first `blank_frames` show no face."""
    faces = sample.shipped_faces()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "source.png"
    if not cv2.imwrite(str(source), faces[sample.DEFAULT_SOURCE]):
        raise OSError(f"cannot write {source}")
    n = int(round(seconds * fps))
    target = out / "target.mp4"
    probe = sample.write_target_video(
        _frames(faces[sample.DEFAULT_TARGET], n, blank_frames, size, fps, seed), target, fps, size, n / fps)
    return {"source": source, "target": target, "frames": int(probe.frames), "blank_frames": blank_frames}
