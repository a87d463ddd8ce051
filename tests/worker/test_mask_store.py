"""_MaskStore keeps per-frame masks compactly between the swap and metrics passes, losslessly."""
from __future__ import annotations

import numpy as np

from faceworker.chunk_runner import _MaskStore
from faceworker.frame_pipeline import FrameInfo


def test_masks_round_trip_exactly() -> None:
    rng = np.random.default_rng(3)
    shape = (90, 160)
    binary = np.zeros(shape, np.uint8)
    binary[10:50, 20:77] = 255
    binary[30:33, 90:91] = 255
    soft = np.zeros(shape, np.uint8)
    soft[5:40, 60:140] = rng.integers(0, 256, (35, 80), np.uint8)
    empty = np.zeros(shape, np.uint8)
    store = _MaskStore()
    for i, m in enumerate((binary, soft, empty)):
        info = FrameInfo(frame_index=i)
        info.mask = m.copy()
        store.add(info, shape)
        assert info.mask is None  # held packed, not as a full frame
    for i, m in enumerate((binary, soft, empty)):
        got = store.get(i).mask
        assert got.dtype == np.uint8 and np.array_equal(got, m)
        store.release(i)
        assert store.get(i).mask is not None


def test_region_masks_are_built_for_metrics_and_dropped_after() -> None:
    from faceworker.masks import RegionMask

    shape = (90, 160)
    info = FrameInfo(frame_index=0, changed=RegionMask(shape), mask_dilate_px=4)
    local = np.zeros((20, 30), np.uint8)
    local[5:15, 10:20] = 255
    info.changed.add((40, 30, 70, 50), local)
    store = _MaskStore()
    store.add(info, shape)
    got = store.get(0)
    assert got.mask is not None and got.mask.shape == shape
    assert got.mask[35:45, 50:60].all() and got.mask[31, 50] == 255 and got.mask[30, 50] == 0  # grown by 4 px
    store.release(0)
    assert got._full_mask is None  # not held for the rest of the chunk
    assert np.array_equal(store.get(0).mask[35:45, 50:60], np.full((10, 10), 255, np.uint8))
