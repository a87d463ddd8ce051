"""The fast classic swap (lookup tables, cv2.blendLinear, work box = the mask's box) against the
float implementation it replaced: same look (its speed is measured by benchmarks, not asserted here).

`_reference_swap` below is the previous `ClassicSwapper.swap` (BGR warp of the whole ROI, LAB
transfer in float32 per pixel, float alpha blend), kept here only as the yardstick.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from faceworker import blend, geometry
from faceworker.faces import FaceAnalyzer
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.source import load_source_face
from faceworker.swappers.classic import ClassicSwapper
from faceworker.types import Face

# ----------------------------------------------------------------------------- the old float code


def _ref_lab_transfer(src_bgr, ref_bgr, src_mask, ref_mask, strength=1.0):
    if cv2.countNonZero(src_mask) < 16 or cv2.countNonZero(ref_mask) < 16:
        return src_bgr
    src_lab = cv2.cvtColor(src_bgr, cv2.COLOR_BGR2LAB)
    ref_lab = cv2.cvtColor(ref_bgr, cv2.COLOR_BGR2LAB)
    s_mu, s_sd = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(src_lab, mask=src_mask))
    r_mu, r_sd = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(ref_lab, mask=ref_mask))
    gain = np.clip(1.0 + strength * ((r_sd + 1e-3) / (s_sd + 1e-3) - 1.0), 0.5, 2.0)
    shift = s_mu + strength * (r_mu - s_mu)
    out = (src_lab.astype(np.float32) - s_mu) * gain + shift
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def _ref_feather(mask, feather_px):
    dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(dist / float(feather_px), 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)
    return (t * 255.0 + 0.5).astype(np.uint8)


def _ref_alpha_blend(frame, face, alpha_u8):
    a = alpha_u8[..., None].astype(np.float32) / 255.0
    f, g = frame.astype(np.float32), face.astype(np.float32)
    out = frame.copy()
    region = alpha_u8 > 0
    out[region] = np.clip(f + (g - f) * a + 0.5, 0, 255).astype(np.uint8)[region]
    return out


def _hull_mask(pts, shape, factor):
    c = pts.mean(0)
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.round(cv2.convexHull(((pts - c) * factor + c).astype(np.float32))).astype(np.int32), 255)
    return m


def _reference_swap(sw: ClassicSwapper, frame: np.ndarray, target: Face) -> tuple[np.ndarray, np.ndarray]:
    h, w = frame.shape[:2]
    tlm = np.asarray(target.landmarks, np.float32)
    dst = sw.destination_points(tlm)
    (rx0, ry0, rx1, ry1), size = sw._roi(dst, (h, w))
    off = np.array([rx0, ry0], np.float32)
    shape = (ry1 - ry0, rx1 - rx0)
    m = geometry.similarity_transform(sw._src_pts[:68][geometry.STABLE], tlm[geometry.STABLE])
    m[:, 2] -= off
    warped = cv2.warpAffine(sw._src_img, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    hard = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(hard, np.round(cv2.convexHull(dst[sw._outline_index()] - off)).astype(np.int32), 255,
                       cv2.LINE_AA)
    hard[hard < 128] = 0
    hard[hard > 0] = 255
    roi = np.ascontiguousarray(frame[ry0:ry1, rx0:rx1])
    warped = _ref_lab_transfer(warped, roi, _hull_mask(dst[:68] - off, shape, 0.88), _hull_mask(tlm - off, shape, 0.88))
    out = frame.copy()
    out[ry0:ry1, rx0:rx1] = _ref_alpha_blend(roi, warped, _ref_feather(hard, int(sw.feather_frac * size)))
    mask = np.zeros((h, w), np.uint8)
    mask[ry0:ry1, rx0:rx1] = hard
    return out, mask


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scene():
    faces = shipped_faces()
    source = load_source_face(faces["t1_2"])
    frames = synth_target_frames(faces["astronaut"], 6, (1280, 720), 25, 2)
    analyzer = FaceAnalyzer(detect_scale=0.5)
    targets = [analyzer.detect(f)[0] for f in frames]
    sw = ClassicSwapper()
    sw.prepare(source)
    return sw, frames, targets


# ----------------------------------------------------------------------------- pieces


def test_blend_linear_equals_the_float_formula() -> None:
    """Every (frame, face) value pair at every alpha: same bytes as the float blend, a = 0 keeps the frame."""
    f = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    g = np.ascontiguousarray(f.T)
    f3, g3 = cv2.merge([f, f, f]), cv2.merge([g, g, g])
    for a in range(256):
        alpha = np.full(f.shape, a, np.uint8)
        out = np.empty_like(f3)
        blend.alpha_blend_into(out, f3, g3, alpha)
        want = np.clip(f3.astype(np.float32) + (g3.astype(np.float32) - f3) * (np.float32(a) / np.float32(255.0))
                       + 0.5, 0, 255).astype(np.uint8)
        assert np.array_equal(out, want), a
    out = blend.alpha_blend(f3, g3, np.zeros(f.shape, np.uint8))
    assert np.array_equal(out, f3)


def test_lab_lookup_table_equals_per_pixel_float_transfer() -> None:
    rng = np.random.default_rng(3)
    for strength in (1.0, 0.5, 0.0):
        src = cv2.GaussianBlur(rng.integers(0, 256, (120, 90, 3), np.uint8), (7, 7), 2)
        ref = cv2.GaussianBlur(rng.integers(40, 200, (120, 90, 3), np.uint8), (5, 5), 1)
        ms = np.zeros((120, 90), np.uint8)
        ms[10:100, 20:80] = 255
        mr = np.zeros_like(ms)
        mr[30:110, 5:70] = 255
        assert np.array_equal(blend.lab_color_transfer(src, ref, ms, mr, strength),
                              _ref_lab_transfer(src, ref, ms, mr, strength))


@pytest.mark.parametrize("feather", [1, 7, 18, 40])
def test_feather_lookup_ramp_within_one_level(feather: int) -> None:
    mask = np.zeros((200, 160), np.uint8)
    cv2.fillConvexPoly(mask, np.array([[20, 15], [140, 30], [130, 185], [30, 170]], np.int32), 255)
    got, want = blend.feather_mask(mask, feather), _ref_feather(mask, feather)
    assert np.abs(got.astype(int) - want).max() <= 1
    assert not got[mask == 0].any()  # never outside the hard mask


# ----------------------------------------------------------------------------- the whole swap


def test_swap_looks_like_the_float_implementation(scene) -> None:
    sw, frames, targets = scene
    for frame, target in zip(frames, targets):
        # whole 720p frame, and a crop of region() with shifted landmarks (what the swap pass does)
        x0, y0, x1, y1 = sw.region(target, frame.shape[:2])
        local = replace(target, landmarks=np.asarray(target.landmarks, np.float32) - [x0, y0])
        for img, face in ((frame, target), (np.ascontiguousarray(frame[y0:y1, x0:x1]), local)):
            out, mask = sw.swap(img, face)
            ref, ref_mask = _reference_swap(sw, img, face)
            assert np.array_equal(mask, ref_mask)
            inside = mask > 0
            diff = np.abs(out.astype(int) - ref)[inside]
            assert diff.mean() < 0.25, diff.mean()  # measured 0.03-0.06 on the sample order
            assert (diff > 3).mean() < 0.001
            assert np.array_equal(out[~inside], img[~inside])

