"""Shared worker-test fixtures: small media built once per session, a moto S3 server, a test session.

Media are generated (ffmpeg lavfi, shipped sample faces); nothing binary is committed.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small synthetic clips: CFR with audio, VFR, odd size, rotated, plus broken 'videos'."""
    d = tmp_path_factory.mktemp("media")
    out = {
        "cfr": d / "cfr.mp4",
        "vfr": d / "vfr.mkv",
        "odd": d / "odd.mp4",
        "rotated": d / "rotated.mp4",
        "empty": d / "empty.mp4",
        "text": d / "text.mp4",
        "image": d / "image.png",
    }
    # 3 s, 75 frames, 320x180 with a sine audio track; B-frames on (as most camera files).
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3", "-f", "lavfi", "-i",
            "sine=frequency=440:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(out["cfr"]))
    # VFR: 30 fps for 2 s, then every third frame (10 fps) for 2 s.
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=4", "-vf",
            "select='lte(n\\,60)+not(mod(n\\,3))*gt(n\\,60)'", "-fps_mode", "vfr", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out["vfr"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-vf", "scale=321:241",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(out["odd"]))
    plain = d / "plain.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(plain))
    # ffmpeg 5.1 sets the display matrix only on a stream-copy remux
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(out["rotated"]))
    out["empty"].write_bytes(b"")
    out["text"].write_text("this is not a video\n" * 20)
    cv2.imwrite(str(out["image"]), np.full((64, 64, 3), 128, np.uint8))
    return out


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample order (source.png + target.mp4 with audio) from the shipped faces: 1.2 s, 640x360."""
    from faceworker.sample import build_sample_order

    d = tmp_path_factory.mktemp("sample")
    build_sample_order(d, seconds=1.2, size=(640, 360), fps=25)
    return d


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


@pytest.fixture
def counting_session() -> Iterator[type[CountingSession]]:
    CountingSession.calls = 0
    yield CountingSession


def prepared_order(root: Path, order: str, sample: Path, chunk_frames: int = 15) -> dict[str, Any]:
    """Local order after `embed` + `split` (real engine for both), as the DAG leaves it before swapping."""
    from faceworker.cli import main

    make_order(root, order, sample)
    assert main(["embed", "--work", str(root), "--order", order]) == 0
    assert main(["split", "--work", str(root), "--order", order, "--chunk-frames", str(chunk_frames)]) == 0
    return {"chunks": json.loads((root / "orders" / order / "chunks" / "chunks.json").read_text())}


# --------------------------------------------------------------------------- moto S3 server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto_server (from the venv) on a free loopback port for the whole session."""
    port = _free_port()
    binary = Path(sys.executable).with_name("moto_server")
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with the environment pointing boto3 at it."""
    import boto3

    monkeypatch.setenv("FACEFACTORY_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"work-{time.time_ns()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
