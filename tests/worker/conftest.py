"""Shared worker-test fixtures: small media built once per session, a moto S3 server, a test session.

Media are generated (ffmpeg lavfi, shipped sample faces); nothing binary is committed.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from worker_support import CountingSession


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


@pytest.fixture
def counting_session() -> Iterator[type[CountingSession]]:
    CountingSession.calls = 0
    yield CountingSession


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
        except Exception as exc:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start") from exc
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
