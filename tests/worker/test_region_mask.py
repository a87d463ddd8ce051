"""RegionMask: the swap pass's compact record of changed pixels equals the frame-sized mask the
metrics used to get (disc dilation included), part by part."""
from __future__ import annotations

import cv2
import numpy as np

from faceworker.masks import RegionMask


def _disc_dilation(full: np.ndarray, r: int) -> np.ndarray:
    """Reference: every pixel within distance r of a set pixel, on the whole frame."""
    inv = np.where(full > 0, 0, 255).astype(np.uint8)
    return np.where(cv2.distanceTransform(inv, cv2.DIST_L2, cv2.DIST_MASK_5) <= r, 255, 0).astype(np.uint8)


def test_parts_round_trip_and_dilate_like_the_whole_frame() -> None:
    rng = np.random.default_rng(5)
    shape = (120, 200)
    m = RegionMask(shape)
    assert not m.any() and not m.full().any() and not m.dilated(9).full().any()
    a = (rng.random((30, 41)) > 0.6).astype(np.uint8) * 200  # soft values: only "non-zero" counts
    b = np.zeros((25, 20), np.uint8)
    b[5:15, 3:9] = 255
    m.add((2, 3, 43, 33), a)  # near the frame edge: the dilation must not be cut short there
    m.add((150, 90, 170, 115), b)
    m.add((60, 60, 70, 70), np.zeros((10, 10), np.uint8))  # nothing set: not kept
    ref = np.zeros(shape, np.uint8)
    ref[3:33, 2:43][a > 0] = 255
    ref[90:115, 150:170][b > 0] = 255
    assert m.any() and len(m.parts()) == 2
    assert np.array_equal(m.full(), ref)
    for r in (1, 8, 12):
        assert np.array_equal(m.dilated(r).full(), _disc_dilation(ref, r))


def test_from_full_keeps_the_bounding_box_only() -> None:
    full = np.zeros((50, 60), np.uint8)
    full[10:20, 30:33] = 7
    m = RegionMask.from_full(full)
    (box, local), = m.parts()
    assert box == (30, 10, 33, 20) and local.all()
    assert np.array_equal(m.full(), np.where(full > 0, 255, 0))
    assert not RegionMask.from_full(np.zeros((5, 5), np.uint8)).any()
