"""A small real order in a temp work area, produced by the engine (faceworker CLI), for gate/report tests.

2 s of 640x360 at 25 fps in two chunks: sample → embed → split → swap-chunk ×2 (classic).
``noop_order`` copies the same inputs and runs the engine's chunk runner with a swapper that
returns the frame unchanged (test-only), the case the identity gate must catch.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

FW = str(Path(sys.executable).with_name("faceworker"))
CHUNK_FRAMES = 25


def _fw(*args: str) -> dict:
    out = subprocess.run([FW, *args], check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_real_order(root: Path, order: str = "o1", seconds: int = 2) -> Path:
    sample = root / "sample"
    _fw("sample", "--out", str(sample), "--seconds", str(seconds), "--size", "640x360")
    od = root / "orders" / order
    (od / "input").mkdir(parents=True)
    shutil.copy(sample / "source.png", od / "input" / "source.png")
    shutil.copy(sample / "target.mp4", od / "input" / "target.mp4")
    probe = _fw("probe", str(od / "input" / "target.mp4"))
    (od / "input" / "probe.json").write_text(json.dumps(probe))
    _fw("embed", "--work", str(root), "--order", order)
    split = _fw("split", "--work", str(root), "--order", order, "--chunk-frames", str(CHUNK_FRAMES))
    for c in split["chunks"]:
        _fw("swap-chunk", "--work", str(root), "--order", order, "--chunk", str(c["chunk"]),
            "--start", str(c["start"]), "--end", str(c["end"]))
    return od


class NoOpSwapper:
    """Test-only swapper that leaves the target face unchanged."""

    name = "noop"

    def prepare(self, source) -> None:  # noqa: ANN001
        pass

    def swap(self, frame_bgr: np.ndarray, target) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        mask = np.zeros(frame_bgr.shape[:2], np.uint8)
        x0, y0, x1, y1 = (int(v) for v in target.bbox)
        mask[max(0, y0):y1, max(0, x0):x1] = 255
        return frame_bgr.copy(), mask


def make_noop_order(root: Path, real: Path, order: str = "noop") -> Path:
    from faceworker.chunk_runner import run_chunk
    from faceworker.frame_pipeline import SwapSession
    from faceworker.spec import ChunkSpec

    od = root / "orders" / order
    od.mkdir(parents=True)
    shutil.copytree(real / "input", od / "input")
    shutil.copytree(real / "chunks", od / "chunks")
    chunks = json.loads((od / "chunks" / "chunks.json").read_text())
    chunks = chunks["chunks"] if isinstance(chunks, dict) else chunks

    def factory(**kw):  # noqa: ANN003
        return SwapSession(**{**kw, "swapper": NoOpSwapper()})

    for c in chunks:
        run_chunk(ChunkSpec(work=str(root), order=order, chunk=c["chunk"], start=c["start"], end=c["end"]),
                  session_factory=factory)
    return od
