"""SwapSession: pass-through of face-less frames, masks, warnings, timings, smoothing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceworker.frame_pipeline import FrameInfo, SwapSession
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.smoothing import LandmarkSmoother, OneEuroFilter
from faceworker.source import load_source_face


@pytest.fixture(scope="module")
def source():
    return load_source_face(shipped_faces()["t1_2"])


@pytest.mark.parametrize("speed", [0.0, 40.0, 300.0])  # px/s amplitude of the head motion
def test_smoothing_reduces_jitter_without_lag(speed: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(100) / 25.0
    truth = np.stack([200 + speed * np.sin(t), 150 + 20 * np.cos(0.7 * t)], 1)
    shape = rng.uniform(-60, 60, (1, 68, 2))  # a 120 px face
    pts = truth[:, None, :] + shape
    noisy = pts + rng.normal(0, 1.5, pts.shape)  # detector noise
    f = LandmarkSmoother(25.0)
    smoothed = np.stack([f(x) for x in noisy])

    def jitter(x: np.ndarray) -> float:  # frame-to-frame change of the error
        return float(np.sqrt((np.diff(x - pts, axis=0)[10:] ** 2).sum(-1).mean()))

    def error(x: np.ndarray) -> float:
        return float(np.sqrt(((x - pts)[10:] ** 2).sum(-1).mean()))

    assert jitter(smoothed) < 0.5 * jitter(noisy)
    assert error(smoothed) < 0.8 * error(noisy)  # closer to the truth: no lag even when moving fast


def test_one_euro_follows_fast_motion() -> None:
    f = OneEuroFilter(25.0, min_cutoff=1.0, beta=0.5)
    x = np.zeros(2)
    f(x)
    for _ in range(10):
        x = x + 20.0  # fast, steady move
        y = f(x)
    assert np.abs(y - x).max() < 20.0  # lags less than one frame's motion


def test_session_swaps_and_reports(source) -> None:
    frames = synth_target_frames(shipped_faces()["astronaut"], 6, (640, 360), 25, 0)
    s = SwapSession(source, "classic", options={"identity_weight": 1.0})
    for i, f in enumerate(frames):
        before = f.copy()
        out, info = s.process(f, 100 + i)
        assert np.array_equal(f, before)
        assert isinstance(info, FrameInfo) and info.frame_index == 100 + i
        assert info.swapped and info.faces_target == 1 and len(info.faces) == 1
        assert info.mask is not None and info.mask.dtype == np.uint8 and info.mask.shape == f.shape[:2]
        changed = np.any(out != f, axis=2)
        assert not np.any(changed & (info.mask == 0))  # every changed pixel is inside the dilated mask
        assert set(info.timings) >= {"detect_ms", "swap_ms", "enhance_ms"}
        assert info.yaw_deg is not None and abs(info.yaw_deg) < 25
    assert s.analyzer is not None


def test_face_less_frames_pass_through_untouched(source) -> None:
    faces = shipped_faces()
    frames = synth_target_frames(faces["t1_0"], 2, (640, 360), 25, 0)
    blank = np.full((360, 640, 3), 90, np.uint8)
    s = SwapSession(source)
    s.process(frames[0], 0)
    out, info = s.process(blank, 1)
    assert out is blank or np.array_equal(out, blank)
    assert not info.swapped and info.faces_target == 0 and "no_face_in_target" in info.warnings
    assert info.mask is not None and info.mask.max() == 0
    out, info = s.process(frames[1], 2)  # face comes back: re-acquired
    assert info.swapped


def test_source_warnings_reach_every_frame() -> None:
    turned = load_source_face(shipped_faces()["t1_4"])
    frames = synth_target_frames(shipped_faces()["t1_0"], 1, (640, 360), 25, 0)
    _, info = SwapSession(turned).process(frames[0], 0)
    assert "extreme_yaw_source" in info.warnings


def test_unknown_selector_rejected(source) -> None:
    with pytest.raises(ValueError):
        SwapSession(source, face_selector="everyone")


def test_many_and_reference_selectors_on_group_photo(source) -> None:
    from faceworker.faces import FaceAnalyzer
    from faceworker.sample import insightface_images_dir

    group = cv2.imread(str(insightface_images_dir() / "t1.jpg"))
    full = FaceAnalyzer(detect_scale=1.0)
    people = sorted(full.detect(group), key=lambda f: f.bbox[0])
    out, info = SwapSession(source, face_selector="many", analyzer=full).process(group, 0)
    assert info.swapped and len(info.faces) == 6 and info.faces_target == 6
    for p in people:  # every face's centre was changed
        cx, cy = p.landmarks[[30, 33]].mean(0).astype(int)
        assert info.mask[cy, cx] > 0
    want = people[0]
    ref = full.embed(group, want)
    out, info = SwapSession(source, face_selector="reference", reference_embedding=ref, analyzer=full).process(group, 0)
    assert len(info.faces) == 1
    for p in people[1:]:  # only the reference person was touched
        cx, cy = p.landmarks[[30, 33]].mean(0).astype(int)
        assert info.mask[cy, cx] == 0 and np.array_equal(out[cy, cx], group[cy, cx])
    cx, cy = want.landmarks[[30, 33]].mean(0).astype(int)
    assert info.mask[cy, cx] > 0
