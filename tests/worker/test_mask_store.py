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
