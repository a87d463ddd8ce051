"""Classic swapper: geometry from the source, untouched background, degenerate triangles, options."""
from __future__ import annotations

import time

import numpy as np
import pytest

from faceworker import geometry
from faceworker.errors import BadInput
from faceworker.faces import FaceAnalyzer
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.source import load_source_face
from faceworker.swappers import get_swapper
from faceworker.swappers.classic import ClassicSwapper
from faceworker.types import FaceSwapper


@pytest.fixture(scope="module")
def setup():
    faces = shipped_faces()
    source = load_source_face(faces["t1_2"])
    frame = synth_target_frames(faces["astronaut"], 1, (640, 360), 25, 2)[0]
    target = FaceAnalyzer(detect_scale=1.0).detect(frame)[0]
    return source, frame, target


def test_registry_returns_protocol_instance() -> None:
    sw = get_swapper("classic", None, {"identity_weight": 0.7})
    assert isinstance(sw, FaceSwapper) and sw.identity_weight == 0.7
    with pytest.raises(BadInput):
        get_swapper("classic", None, {"identity_wieght": 1})
    with pytest.raises(BadInput):
        ClassicSwapper(identity_weight=1.5)


@pytest.mark.parametrize("opts", [{}, {"blend_mode": "seamless"}, {"blend_mode": "pyramid"}, {"identity_weight": 0.5},
                                  {"keep_target_mouth": True, "keep_target_eyes": True}])
def test_pixels_outside_mask_are_identical(setup, opts) -> None:
    source, frame, target = setup
    sw = ClassicSwapper(**opts)
    sw.prepare(source)
    before = frame.copy()
    out, mask = sw.swap(frame, target)
    assert np.array_equal(frame, before)  # input not modified in place
    assert mask.dtype == np.uint8 and mask.shape == frame.shape[:2]
    outside = mask == 0
    assert np.array_equal(out[outside], frame[outside])
    inside = mask > 0
    assert inside.sum() > 0.5 * target.size**2  # forehead + face, not a sliver
    assert np.abs(out[inside].astype(int) - frame[inside]).mean() > 5  # and it really changed


def test_geometry_comes_from_source(setup) -> None:
    source, _, target = setup
    full, none = ClassicSwapper(identity_weight=1.0), ClassicSwapper(identity_weight=0.0)
    full.prepare(source)
    none.prepare(source)
    tlm = target.landmarks
    d_full = full.destination_points(tlm)[:68]
    d_none = none.destination_points(tlm)[:68]
    assert np.abs(d_none - tlm).max() < 1e-3  # weight 0: the target's own geometry
    # weight 1: the source's shape (up to similarity), not the target's
    assert geometry.procrustes_residual(d_full, source.face.landmarks) < 1e-3
    assert geometry.procrustes_residual(tlm, source.face.landmarks) > 0.02


def test_mouth_cut_keeps_target_mouth(setup) -> None:
    source, frame, target = setup
    sw = ClassicSwapper(keep_target_mouth=True)
    sw.prepare(source)
    out, mask = sw.swap(frame, target)
    mouth_c = target.landmarks[48:60].mean(0).astype(int)
    assert mask[mouth_c[1], mouth_c[0]] == 0
    assert np.array_equal(out[mouth_c[1], mouth_c[0]], frame[mouth_c[1], mouth_c[0]])


def test_degenerate_triangles_are_skipped() -> None:
    pts = np.array([[10, 10], [100, 12], [50, 90], [60, 40], [60, 40.0001], [80, 80]], np.float32)
    tris = geometry.delaunay(pts)
    assert all(geometry.triangle_area(pts[t]) >= 0.5 for t in tris)
    # a collapsed destination triangle must be skipped, not warped (cv2 5.0 takes ~22 s on one)
    img = np.random.default_rng(0).integers(0, 255, (120, 120, 3), np.uint8)
    dst = pts.copy()
    dst[1] = dst[0]  # collapse every triangle that uses points 0 and 1
    all_tris = np.array([[0, 1, 2], [2, 3, 5], [0, 3, 2]], np.int32)
    t0 = time.perf_counter()
    out = geometry.piecewise_affine_warp(img, pts, dst, all_tris, (120, 120))
    assert time.perf_counter() - t0 < 1.0
    assert out.shape == img.shape


def test_swap_far_outside_frame_returns_untouched(setup) -> None:
    source, frame, target = setup
    sw = ClassicSwapper()
    sw.prepare(source)
    shifted = type(target)(bbox=target.bbox, landmarks=target.landmarks + 5000)
    out, mask = sw.swap(frame, shifted)
    assert mask.max() == 0 and np.array_equal(out, frame)


def test_swap_before_prepare_is_an_error(setup) -> None:
    _, frame, target = setup
    with pytest.raises(RuntimeError):
        ClassicSwapper().swap(frame, target)


def test_swap_is_cheap_at_720p(setup) -> None:
    source, _, _ = setup
    frame = synth_target_frames(shipped_faces()["t1_0"], 1, (1280, 720), 25, 0)[0]
    target = FaceAnalyzer(detect_scale=0.5).detect(frame)[0]
    sw = ClassicSwapper()
    sw.prepare(source)
    sw.swap(frame, target)
    t0 = time.perf_counter()
    for _ in range(5):
        sw.swap(frame, target)
    assert (time.perf_counter() - t0) / 5 < 0.08  # ~5-15 ms measured; generous for a shared CPU
