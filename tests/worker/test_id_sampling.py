"""Which frames carry an identity measurement: the stratified sample, track edges, tracker flags,
and the in-pass doubts (unchanged face, a different face) — plus the cheap checks they rest on."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from faceworker.id_sampling import ID_SAMPLE_EVERY, Doubt, ncc, plan
from faceworker.metrics import face_patches, ssim_outside, ssim_outside_bands
from faceworker.types import Face


@dataclass
class Info:
    faces: list = field(default_factory=list)
    track_ids: list = field(default_factory=list)
    cut: bool = False
    redetected: bool = False
    landmark_jitter_px: float | None = 0.5
    yaw_deg: float | None = 2.0


def _face(score: float = 1.5) -> Face:
    return Face(bbox=(10, 10, 60, 60), landmarks=np.zeros((68, 2), np.float32), score=score)


def _chunk(n: int, track: int = 0) -> list[Info]:
    return [Info(faces=[_face()], track_ids=[track]) for _ in range(n)]


def test_stratified_sample_and_chunk_edges() -> None:
    infos = _chunk(96)
    got = plan(infos, every=32, seed=7)
    assert got[0] == "track_start" and got[95] == "track_end"
    strata = [i for i, why in got.items() if why == "stratified"]
    assert len(strata) == 3 and [i // 32 for i in sorted(strata)] == [0, 1, 2]
    assert len(got) == 5  # nothing else is flagged on a clean chunk
    assert plan(infos, every=32, seed=7) == got  # reproducible per chunk
    positions = {tuple(sorted(plan(infos, every=32, seed=s))) for s in range(20)}
    assert len(positions) > 5  # the seed moves the stratified picks: no fixed blind phase


def test_track_edges_flags_and_faceless_frames() -> None:
    infos = _chunk(40)
    for i in range(10, 14):
        infos[i] = Info()  # no face
    for i in range(20, 40):
        infos[i].track_ids = [1]  # a new track (another person as far as the tracker knows)
    infos[25].cut = True
    infos[26].redetected = True
    infos[27].faces = [_face(score=0.1)]
    infos[29].landmark_jitter_px = 3.0
    infos[31].yaw_deg = -60.0
    got = plan(infos, every=ID_SAMPLE_EVERY, seed=0)
    assert {i: got[i] for i in (0, 9, 14, 19, 20, 39)} == {
        0: "track_start", 9: "track_end", 14: "track_start", 19: "track_end", 20: "track_start", 39: "track_end"}
    assert (got[25], got[26], got[27], got[29], got[31]) == ("cut", "redetect", "low_score", "jitter", "yaw")
    assert not set(got) & set(range(10, 14))  # no face: nothing to measure
    assert plan([Info() for _ in range(50)]) == {}


def test_doubt_flags_unchanged_and_different_faces() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    d = Doubt()
    for _ in range(5):
        assert d.check(20.0 + rng.normal(), base, swapped=True) is None
    assert d.check(1.2, base, swapped=True) == "unchanged"  # encoder noise only: not swapped
    assert d.check(5.0, base, swapped=True) == "unchanged"  # far below this chunk's typical change
    assert d.check(19.0, base, swapped=True) is None
    other = rng.integers(0, 255, (32, 32)).astype(np.uint8)
    assert d.check(19.0, other, swapped=True) == "appearance"  # stopped looking like the last face
    assert d.check(19.0, other, swapped=True) == "appearance"  # a run: still not the face before it
    assert d.check(19.0, base, swapped=True) is None  # back to the face before the run
    assert d.check(1.0, base, swapped=False) is None  # nothing was swapped: nothing to doubt


def test_an_appearance_doubt_run_is_bounded() -> None:
    from faceworker.id_sampling import MAX_DOUBT_RUN

    rng = np.random.default_rng(3)
    base, other = (rng.integers(0, 255, (32, 32)).astype(np.uint8) for _ in range(2))
    d = Doubt()
    d.check(20.0, base, swapped=True)
    flags = [d.check(20.0, other, swapped=True) for _ in range(MAX_DOUBT_RUN + 5)]
    assert flags[:MAX_DOUBT_RUN] == ["appearance"] * MAX_DOUBT_RUN
    assert flags[MAX_DOUBT_RUN + 1:] == [None] * 4  # the new look became the anchor
    assert ncc(base, base) == pytest.approx(1.0) and abs(ncc(base, other)) < 0.2


def test_the_way_back_after_a_doubt_allows_for_the_face_moving_since() -> None:
    """A face drifting slowly (each frame ~0.99 like the last) after five unswapped frames: the
    first swapped frame again is in doubt (it differs from the unswapped one before it), the next
    ones are compared with the face before the doubts, six or more frames older, and are not; a
    wrong face inside such a run still is."""
    from faceworker.id_sampling import MIN_APPEARANCE_NCC

    rng = np.random.default_rng(4)
    base = cv2.GaussianBlur(rng.random((64, 64)).astype(np.float32), (0, 0), 4)
    faces = [cv2.warpAffine(base, np.float32([[1, 0, 0.4 * k], [0, 1, 0]]), (64, 64))[16:48, 16:48]
             for k in range(16)]  # a smooth patch drifting 0.4 px a frame
    own = rng.random((32, 32)).astype(np.float32)
    assert ncc(faces[1], faces[0]) > MIN_APPEARANCE_NCC > ncc(faces[9], faces[2])  # older looks differ more
    d = Doubt()
    for k in range(3):
        assert d.check(20.0, faces[k], swapped=True) is None
    assert [d.check(0.8, own, swapped=True) for _ in range(5)] == ["unchanged"] * 5
    assert d.check(20.0, faces[8], swapped=True) == "appearance"  # unlike the unswapped frame before it
    assert d.check(20.0, faces[9], swapped=True) is None  # the face before the doubts, moved on: no new doubt
    assert d.check(20.0, faces[10], swapped=True) is None
    d2 = Doubt()
    d2.check(20.0, faces[0], swapped=True)
    assert [d2.check(20.0, own, swapped=True) for _ in range(8)] == ["appearance"] * 8  # a wrong face stays doubted


def test_face_patch_change_is_noise_for_an_unswapped_face() -> None:
    rng = np.random.default_rng(1)
    y = cv2.GaussianBlur(rng.integers(0, 255, (180, 320), np.uint8), (5, 5), 0)
    lm = np.array([[100, 50], [180, 50], [100, 150], [180, 150]], np.float32)
    noisy = np.clip(y.astype(int) + rng.integers(-3, 4, y.shape), 0, 255).astype(np.uint8)
    change, patch = face_patches(y, noisy, lm)
    assert change is not None and change < 1.5 and patch.shape == (32, 32)
    swapped = y.copy()
    swapped[60:140, 110:170] = 255 - swapped[60:140, 110:170]
    assert face_patches(y, swapped, lm)[0] > 20
    assert face_patches(y, y, np.zeros((0, 2), np.float32)) == (None, None)


def test_banded_ssim_tracks_full_frame_ssim() -> None:
    """SSIM on a rotating eighth of the rows reads what full-frame SSIM reads for frame-wide
    changes, pixel noise included (half resolution did not: it hid sigma-6 noise)."""
    rng = np.random.default_rng(2)
    a = cv2.GaussianBlur(rng.integers(0, 255, (360, 640), np.uint8), (7, 7), 0)
    mask = np.zeros(a.shape, np.uint8)
    mask[100:200, 200:300] = 255
    for sigma, blur in ((2, 1), (6, 1), (2, 5)):
        b = np.clip(a.astype(int) + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        if blur > 1:
            b = cv2.GaussianBlur(b, (blur, blur), 0)
        full = ssim_outside(a, b, mask)
        for phase in range(8):
            band = ssim_outside_bands(a, b, mask, phase, limited=False)
            assert abs(band - full) < 0.015, (sigma, blur, phase, full, band)
    assert ssim_outside_bands(a, a.copy(), mask, 0) == pytest.approx(1.0, abs=1e-4)
    heavy = a.copy()
    heavy[:, :100] = 0
    assert all(ssim_outside_bands(a, heavy, mask, p, limited=False) < 0.9 for p in range(8))
    stripe = a.copy()
    stripe[16:24] = 0  # rows only phase 2 scores: the rotation covers them within 8 frames
    got = [ssim_outside_bands(a, stripe, None, p, limited=False) for p in range(8)]
    assert got[2] < 0.9 and got[2] == min(got) and got[5] > 0.99  # 1 and 3 see its edge through the window
