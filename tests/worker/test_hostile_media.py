"""Hostile media the engine must refuse, or bring back as it came (issue 15, point 6).

Tiny files made here with ffmpeg and numpy; the whole-order versions of these cases run through
the real DAG in tests/reliability/test_catalogue.py.
"""
from __future__ import annotations

import struct
import subprocess
import zlib
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceworker import edit, frameio, probe
from faceworker.chunk_runner import decode_image
from faceworker.errors import BadInput
from faceworker.image_header import check_pixels, image_size


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


def bomb_header(side: int = 20000) -> bytes:
    """The first bytes of a PNG that declares side x side pixels (the full decompression bomb is
    built by tests/e2e/catalogue.py): all the check may read, since nothing may decode it."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
            + b"\0" * 64)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp"])
def test_image_size_is_read_from_the_header(ext):
    img = np.zeros((37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)


def test_pixel_bomb_is_refused_before_decoding(monkeypatch):
    data = bomb_header()
    assert image_size(data) == (20000, 20000)

    def no_decode(*_a, **_k):  # noqa: ANN002, ANN003, ANN202 - stand-in for cv2.imdecode that only raises
        raise AssertionError("the bomb reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(BadInput, match=r"20000x20000 pixels .*FACEFACTORY_MAX_IMAGE_PIXELS"):
        decode_image(data, "source photo")


def test_pixel_cap_is_configurable(monkeypatch):
    ok, buf = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))
    monkeypatch.setenv("FACEFACTORY_MAX_IMAGE_PIXELS", "9999")
    with pytest.raises(BadInput, match="limit is"):
        check_pixels(buf.tobytes(), "photo")
    monkeypatch.setenv("FACEFACTORY_MAX_IMAGE_PIXELS", "10000")
    assert check_pixels(buf.tobytes(), "photo") == (100, 100)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(out))
    return out


def test_truncated_mp4_with_moov_first_is_refused(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match=r"truncated: its header declares 25 frames, only \d+ can be read"):
        probe.probe(cut)
    assert probe.probe(clip).frames == 25  # the complete file is fine


def test_odd_sized_input_comes_back_at_its_size(tmp_path):
    """Work runs padded to even (yuv420p); merge crops back to the input's displayed size."""
    seg = tmp_path / "seg.mp4"
    with frameio.FrameWriter(seg, 25, 160, 90) as w:
        for i in range(10):
            w.write(np.full((90, 160, 3), 20 * i, np.uint8))
    src = tmp_path / "odd.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=0.4", "-vf", "format=yuv444p,crop=159:89:0:0",
            "-c:v", "libx264", "-pix_fmt", "yuv444p", str(src))
    assert (probe.probe(src).width, probe.probe(src).height) == (159, 89)
    out = edit.merge([seg], src, tmp_path / "out.mp4", 10, Fraction(25), size=(159, 89))
    assert (out.width, out.height, out.frames) == (159, 89, 10)


def test_rotated_input_is_probed_and_decoded_upright(tmp_path):
    """A 90-degree display matrix: the probe reports the displayed size and frames decode upright."""
    upright = tmp_path / "upright.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            str(upright))
    sideways = tmp_path / "sideways.mp4"
    _ffmpeg("-i", str(upright), "-vf", "transpose=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(sideways))
    rotated = tmp_path / "rotated.mp4"
    _ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=270", str(rotated))
    pr = probe.probe(rotated)
    assert pr.rotation in (90, 270) and (pr.width, pr.height) == (160, 90)
    want = next(frameio.read_frames(upright, 0, 1)).astype(int)
    got = next(frameio.read_frames(rotated, 0, 1)).astype(int)
    assert got.shape == want.shape and np.abs(got - want).mean() < 8
