"""FrameView (I420 swap pass): region conversion, write-back of changed pixels only, and a swap
session fed I420 frames giving what the BGR path gives."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceworker.frame_pipeline import SwapSession
from faceworker.frames import FrameView, even_box, i420_size
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.source import load_source_face


def _i420(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def _planes(buf: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = buf.reshape(-1)
    return (flat[: w * h].reshape(h, w), flat[w * h: w * h * 5 // 4].reshape(h // 2, w // 2),
            flat[w * h * 5 // 4:].reshape(h // 2, w // 2))


@pytest.fixture(scope="module")
def source():
    return load_source_face(shipped_faces()["t1_2"])


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return synth_target_frames(shipped_faces()["astronaut"], 6, (640, 360), 25, 0)


def test_region_is_the_crop_of_the_whole_conversion() -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (120, 160, 3), np.uint8)
    view = FrameView(i420=_i420(bgr), width=160, height=120)
    box = even_box((13, 7, 101, 77), 160, 120)
    assert box == (12, 6, 102, 78)
    x0, y0, x1, y1 = box
    assert np.array_equal(view.bgr_region(box), view.bgr()[y0:y1, x0:x1])


def test_gray_is_the_expanded_luma(frames: list[np.ndarray]) -> None:
    f = frames[0]
    view = FrameView(i420=_i420(f), width=f.shape[1], height=f.shape[0])
    diff = np.abs(view.gray.astype(int) - cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    assert view.gray.shape == f.shape[:2] and diff.mean() < 1.5 and diff.max() <= 4


def test_paste_writes_only_masked_pixels_and_their_chroma_blocks() -> None:
    rng = np.random.default_rng(2)
    w, h = 64, 48
    buf = _i420(rng.integers(0, 256, (h, w, 3), np.uint8))
    orig = buf.copy()
    view = FrameView(i420=buf, width=w, height=h)
    box = (10, 8, 40, 30)
    patch = np.full((22, 30, 3), (0, 0, 255), np.uint8)  # pure red
    mask = np.zeros((22, 30), np.uint8)
    mask[5:9, 7:8] = 1  # one odd column, small non-255 values still count
    view.paste(box, patch, mask)
    y, u, v = _planes(buf, w, h)
    oy, ou, ov = _planes(orig, w, h)
    changed = y != oy
    want = np.zeros_like(changed)
    want[13:17, 17:18] = True
    assert np.array_equal(changed, want)
    changed_c = (u != ou) | (v != ov)
    assert changed_c.sum() == 3 and changed_c[6:9, 8].all()  # rows 13-16, column 17 -> chroma rows 6-8, column 8


def test_frameview_rejects_bad_buffers() -> None:
    with pytest.raises(ValueError):
        FrameView(i420=np.zeros(i420_size(63, 48), np.uint8), width=63, height=48)
    with pytest.raises(ValueError):
        FrameView(i420=np.zeros((48, 64), np.uint8), width=64, height=48)
    with pytest.raises(ValueError):
        FrameView()


def test_i420_session_matches_bgr_session_and_keeps_the_rest_as_decoded(source, frames: list[np.ndarray]) -> None:
    w, h = frames[0].shape[1], frames[0].shape[0]
    bgr_session, yuv_session = SwapSession(source), SwapSession(source)
    for i, f in enumerate(frames):
        decoded = cv2.cvtColor(_i420(f), cv2.COLOR_YUV2BGR_I420)  # what the I420 path sees
        ref, ref_info = bgr_session.process(decoded, i)
        buf = _i420(f)
        before = buf.copy()
        out, info = yuv_session.process(FrameView(i420=buf, width=w, height=h), i)
        assert isinstance(out, FrameView) and out.i420 is buf
        assert info.swapped and ref_info.swapped
        y, _, _ = _planes(buf, w, h)
        oy, _, _ = _planes(before, w, h)
        changed = y != oy
        assert changed.any() and not np.any(changed & (info.mask == 0))  # untouched outside the mask
        got = out.bgr()
        inside = ref_info.mask > 0
        diff = np.abs(got.astype(int) - ref.astype(int))[inside]
        assert diff.mean() < 3.0  # same swap; only I420 rounding of the changed pixels differs
        assert abs(int(info.mask.sum()) - int(ref_info.mask.sum())) < 0.02 * int(ref_info.mask.sum())


def test_i420_session_without_a_face_returns_the_frame_unchanged(source) -> None:
    buf = _i420(np.full((360, 640, 3), 90, np.uint8))
    before = buf.copy()
    out, info = SwapSession(source).process(FrameView(i420=buf, width=640, height=360), 0)
    assert np.array_equal(out.i420, before) and not info.swapped and "no_face_in_target" in info.warnings


def test_gray_covering_expands_only_what_is_asked_and_matches_the_whole_frame(frames: list[np.ndarray]) -> None:
    f = frames[0]
    h, w = f.shape[:2]
    full = FrameView(i420=_i420(f), width=w, height=h).gray
    view = FrameView(i420=_i420(f), width=w, height=h)
    g = view.gray_covering((100, 50, 200, 150))
    assert g.shape == (h, w)
    assert np.array_equal(g[50:150, 100:200], full[50:150, 100:200]) and g[:40].max() == 0
    g2 = view.gray_covering((-20, 140, 60, 400))  # clipped, and the union of both stays valid
    assert np.array_equal(g2[50:360, 0:200], full[50:360, 0:200])
    view.paste((100, 50, 200, 150), np.zeros((100, 100, 3), np.uint8), np.full((100, 100), 255, np.uint8))
    assert view.gray_covering((100, 50, 200, 150))[60:140, 110:190].max() < 20  # recomputed after a paste
