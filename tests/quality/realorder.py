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

    def prepare(self, source) -> None:  # noqa: ANN001 - test stub: the source face is ignored
        pass

    def swap(self, frame_bgr: np.ndarray, target) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - a Face, for its bbox only
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

    def factory(**kw):  # noqa: ANN003 - passes SwapSession's keyword arguments through
        return SwapSession(**{**kw, "swapper": NoOpSwapper()})

    for c in chunks:
        run_chunk(ChunkSpec(work=str(root), order=order, chunk=c["chunk"], start=c["start"], end=c["end"]),
                  session_factory=factory)
    return od


class InjectingSession:
    """Test-only wrapper around the real SwapSession that damages the output of chosen frames
    after a real swap, the way a broken swap would, while the FrameInfo still says "swapped":

    - "skip": the frame goes out exactly as it came in (the swap silently did nothing);
    - "own_face": the swap runs, then the target's own inner face is put back (landmark box);
    - "lose_face": the swapped region is flattened to its mean colour (no face left to see).
    The tracker sees every frame as usual, so the rest of the chunk is a normal swap."""

    def __init__(self, inner, damage: dict[int, str]) -> None:  # noqa: ANN001 - test wrapper: inner is the real SwapSession
        self.inner, self.damage = inner, damage
        self.analyzer = inner.analyzer
        self.accepts_frame_view = inner.accepts_frame_view

    def process(self, frame, frame_index: int):  # noqa: ANN001, ANN201 - same frame and result types as SwapSession.process
        from faceworker.frames import FrameView

        kind = self.damage.get(frame_index)
        if kind is None:
            return self.inner.process(frame, frame_index)
        assert isinstance(frame, FrameView) and frame.is_i420, "the runner feeds I420 FrameViews"
        before = frame.i420.copy()
        out, info = self.inner.process(frame, frame_index)
        assert info.swapped and info.faces, f"frame {frame_index}: nothing swapped to damage"
        h, w = out.shape
        buf = out.i420
        if kind == "skip":
            buf[:] = before
        elif kind == "own_face":
            lm = info.faces[0].landmarks
            x0, y0 = (int(v) // 2 * 2 for v in lm.min(0))
            x1, y1 = (int(v) // 2 * 2 + 2 for v in lm.max(0))
            _restore_box(buf, before, (max(0, x0), max(0, y0), min(w, x1), min(h, y1)), w, h)
        elif kind == "lose_face":
            m = info.changed.full() > 0
            y = buf[:h]
            y[m] = int(y[m].mean())
            mc = m[::2, ::2]
            u = buf[h:h + h // 4].reshape(h // 2, w // 2)
            v = buf[h + h // 4:].reshape(h // 2, w // 2)
            u[mc], v[mc] = 128, 128
        else:
            raise ValueError(kind)
        return FrameView(i420=buf, width=w, height=h), info


def _restore_box(buf: np.ndarray, before: np.ndarray, box: tuple[int, int, int, int], w: int, h: int) -> None:
    """Copy the Y, U and V samples of an even box from `before` into `buf` (both I420)."""
    x0, y0, x1, y1 = box
    buf[y0:y1, x0:x1] = before[y0:y1, x0:x1]
    for off in (h, h + h // 4):
        dst = buf[off:off + h // 4].reshape(h // 2, w // 2)
        src = before[off:off + h // 4].reshape(h // 2, w // 2)
        dst[y0 // 2:y1 // 2, x0 // 2:x1 // 2] = src[y0 // 2:y1 // 2, x0 // 2:x1 // 2]


def make_damaged_order(root: Path, real: Path, order: str, damage: dict[int, str]) -> tuple[Path, int]:
    """A copy of the real order whose chunk holding the damaged frames is re-swapped by the real
    engine through InjectingSession; returns (order dir, that chunk's id)."""
    from faceworker.chunk_runner import run_chunk
    from faceworker.frame_pipeline import SwapSession
    from faceworker.spec import ChunkSpec

    od = root / "orders" / order
    od.mkdir(parents=True)
    for sub in ("input", "chunks", "swapped"):
        shutil.copytree(real / sub, od / sub)
    chunks = json.loads((od / "chunks" / "chunks.json").read_text())
    chunks = chunks["chunks"] if isinstance(chunks, dict) else chunks
    (c,) = [c for c in chunks if c["start"] <= min(damage) < c["end"]]
    assert max(damage) < c["end"], "damage one chunk"

    def factory(**kw):  # noqa: ANN003, ANN202 - passes SwapSession's keyword arguments through
        return InjectingSession(SwapSession(**kw), damage)

    (od / "swapped" / f"{c['chunk']:05d}" / "done.json").unlink()
    run_chunk(ChunkSpec(work=str(root), order=order, chunk=c["chunk"], start=c["start"], end=c["end"]),
              session_factory=factory)
    return od, int(c["chunk"])
