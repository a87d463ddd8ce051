"""Plain helpers for the worker tests (imported by name: several test folders have a conftest.py,
so `from conftest import` could pick another folder's)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def make_order(root: Path, order: str, sample: Path) -> Path:
    """A local work area holding one order's input/ (as ingest leaves it)."""
    inp = root / "orders" / order / "input"
    inp.mkdir(parents=True, exist_ok=True)
    (inp / "source.png").write_bytes((sample / "source.png").read_bytes())
    (inp / "target.mp4").write_bytes((sample / "target.mp4").read_bytes())
    return root


# --------------------------------------------------------------------------- test-only swap session


@dataclass
class FakeInfo:
    """What the runner needs from a FrameInfo (the real one lives in faceworker.frame_pipeline)."""

    frame_index: int
    faces_target: int = 1
    swapped: bool = True
    mask: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class CountingSession:
    """Test-only 'swap': inverts a fixed box; counts calls so tests can prove a checkpoint skipped work.
    Frames whose index is in `no_face` pass through untouched (like a frame without a face)."""

    calls = 0

    def __init__(self, no_face: frozenset[int] = frozenset(), **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.no_face = no_face
        self.analyzer = None

    def process(self, frame: np.ndarray, index: int) -> tuple[np.ndarray, FakeInfo]:
        type(self).calls += 1
        h, w = frame.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        if index in self.no_face:
            return frame, FakeInfo(index, faces_target=0, swapped=False, mask=mask, warnings=["no_face_in_target"])
        out = frame.copy()
        box = (slice(h // 4, h // 2), slice(w // 4, w // 2))
        out[box] = 255 - out[box]
        mask[h // 4 - 4: h // 2 + 4, w // 4 - 4: w // 2 + 4] = 255
        return out, FakeInfo(index, mask=mask, timings={"detect_ms": 1.0, "swap_ms": 2.0})


def fake_measure(original: np.ndarray, output: np.ndarray, info: FakeInfo, source_emb: np.ndarray,
                 analyzer: Any) -> dict[str, Any]:
    """Test-only metrics: real PSNR outside the mask, a fake embedding only on swapped frames."""
    assert info.mask is not None and info.mask.shape == original.shape[:2], "mask did not survive the runner"
    outside = info.mask == 0
    diff = (original.astype(np.float32) - output.astype(np.float32))[outside]
    mse = float((diff**2).mean())
    psnr = 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
    return {
        "faces_target": info.faces_target,
        "swapped": info.swapped,
        "face_found_after": info.swapped,
        "id_cosine_raw": 0.9 if info.swapped else None,
        "psnr_outside_db": round(psnr, 2),
        "warnings": info.warnings,
        "embedding": source_emb * 0.5 if info.swapped else None,
    }


def prepared_order(root: Path, order: str, sample: Path, chunk_frames: int = 15) -> dict[str, Any]:
    """Local order after `embed` + `split` (real engine for both), as the DAG leaves it before swapping."""
    from faceworker.cli import main

    make_order(root, order, sample)
    assert main(["embed", "--work", str(root), "--order", order]) == 0
    assert main(["split", "--work", str(root), "--order", order, "--chunk-frames", str(chunk_frames)]) == 0
    return {"chunks": json.loads((root / "orders" / order / "chunks" / "chunks.json").read_text())}
