"""One decoded frame, kept as I420 (what the decoder gives and the encoder takes) in the swap pass.

Why: at 720p, converting every whole frame to BGR and back costs more than the face work of a
typical frame, yet only the face region changes. A FrameView hands out the luma plane as the
grey image the detector needs, converts to BGR only the region a swapper works on (or the whole
frame, lazily, when something asks for it), and writes back only the pixels the swap changed, so
every other pixel reaches the encoder exactly as it was decoded.
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

# Limited-range luma (16..235) to full range: close to cv2.COLOR_BGR2GRAY of the decoded BGR frame.
_Y_TO_GRAY = np.clip(np.round((np.arange(256, dtype=np.float32) - 16.0) * (255.0 / 219.0)), 0, 255).astype(np.uint8)


def i420_size(width: int, height: int) -> tuple[int, int]:
    """Shape (rows, cols) of one I420 frame buffer (Y plane, then U, then V)."""
    return height * 3 // 2, width


def even_box(box: Box, width: int, height: int) -> Box:
    """Grow a box to even corners inside the frame: I420 chroma covers 2x2 pixel blocks."""
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0) & ~1, max(0, y0) & ~1
    x1, y1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
    return x0, y0, x1, y1


class FrameView:
    """A frame as I420 with BGR views on demand, or a plain BGR frame (then every view is a slice)."""

    def __init__(self, *, bgr: np.ndarray | None = None, i420: np.ndarray | None = None,
                 width: int | None = None, height: int | None = None) -> None:
        if (bgr is None) == (i420 is None):
            raise ValueError("FrameView needs exactly one of bgr= or i420=")
        if bgr is not None:
            self.height, self.width = bgr.shape[:2]
        else:
            if width is None or height is None or width % 2 or height % 2:
                raise ValueError("an I420 FrameView needs even width and height")
            self.width, self.height = int(width), int(height)
            assert i420 is not None
            if i420.shape != i420_size(self.width, self.height) or i420.dtype != np.uint8:
                raise ValueError(f"I420 buffer {i420.shape} does not fit {self.width}x{self.height}")
        self.i420 = i420
        self._bgr = bgr
        self._gray: np.ndarray | None = None
        self._gray_part: np.ndarray | None = None  # full-size grey, valid only inside _gray_box
        self._gray_box: Box | None = None

    @classmethod
    def of(cls, frame: FrameLike) -> FrameView:
        return frame if isinstance(frame, FrameView) else cls(bgr=frame)

    @property
    def is_i420(self) -> bool:
        return self.i420 is not None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    # -- planes ----------------------------------------------------------------------------
    def _planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.i420 is not None
        return _split_i420(self.i420, self.width, self.height)

    @property
    def gray(self) -> np.ndarray:
        """Full-range grey image for detection and landmarks (the luma plane, expanded)."""
        if self._gray is None:
            if self.i420 is not None and self._bgr is None:
                self._gray = cv2.LUT(self._planes()[0], _Y_TO_GRAY)
            else:
                self._gray = cv2.cvtColor(self.bgr(), cv2.COLOR_BGR2GRAY)
        return self._gray

    def gray_covering(self, box: Box) -> np.ndarray:
        """A full-size grey image that is valid at least inside `box` (clipped to the frame).

        Frames that are only tracked need the face's neighbourhood, not the whole frame: the luma
        of a 720p frame costs ~0.2-0.9 ms to expand, a face region a tenth of that. Outside the
        valid area the image is zero. Falls back to the whole-frame `gray` for BGR frames."""
        if self._gray is not None or self.i420 is None or self._bgr is not None:
            return self.gray
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(self.width, box[2]), min(self.height, box[3])
        if x1 <= x0 or y1 <= y0:
            x0 = y0 = x1 = y1 = 0
        have = self._gray_box
        if have is not None and have[0] <= x0 and have[1] <= y0 and have[2] >= x1 and have[3] >= y1:
            assert self._gray_part is not None
            return self._gray_part
        if have is not None:
            x0, y0, x1, y1 = min(x0, have[0]), min(y0, have[1]), max(x1, have[2]), max(y1, have[3])
        if self._gray_part is None:
            self._gray_part = np.zeros((self.height, self.width), np.uint8)
        if x1 > x0 and y1 > y0:
            y = self._planes()[0]
            self._gray_part[y0:y1, x0:x1] = cv2.LUT(y[y0:y1, x0:x1], _Y_TO_GRAY)
        self._gray_box = (x0, y0, x1, y1)
        return self._gray_part

    def bgr(self) -> np.ndarray:
        """The whole frame as BGR (converted once, on first use)."""
        if self._bgr is None:
            assert self.i420 is not None  # a BGR-built view has _bgr from the start
            self._bgr = np.asarray(cv2.cvtColor(self.i420, cv2.COLOR_YUV2BGR_I420))
        return self._bgr

    def bgr_region(self, box: Box) -> np.ndarray:
        """BGR pixels of an even-cornered box (a copy the caller may change)."""
        x0, y0, x1, y1 = box
        if self._bgr is not None:
            return self._bgr[y0:y1, x0:x1].copy()
        y, u, v = self._planes()
        sub = np.empty(i420_size(x1 - x0, y1 - y0), np.uint8)
        for dst, src in zip(_split_i420(sub, x1 - x0, y1 - y0),
                            (y[y0:y1, x0:x1], u[y0 // 2:y1 // 2, x0 // 2:x1 // 2], v[y0 // 2:y1 // 2, x0 // 2:x1 // 2])):
            dst[:] = src
        return cv2.cvtColor(sub, cv2.COLOR_YUV2BGR_I420)

    # -- writing back ----------------------------------------------------------------------
    def paste(self, box: Box, bgr: np.ndarray, mask: np.ndarray) -> None:
        """Write `bgr` (the box's pixels) where `mask` > 0; every other pixel stays as decoded.

        In I420 a chroma sample is written where any pixel of its 2x2 block is in the mask.
        """
        x0, y0, x1, y1 = box
        if not mask.any():
            return
        if self.i420 is None:
            region = self._bgr[y0:y1, x0:x1]  # type: ignore[index]  # set in __init__ for BGR views
            np.copyto(region, bgr, where=(mask > 0)[..., None])
            self._gray = None
            return
        h, w = y1 - y0, x1 - x0
        sy, su, sv = _split_i420(cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2YUV_I420), w, h)
        y, u, v = self._planes()
        on = cv2.threshold(mask, 0, 255, cv2.THRESH_BINARY)[1]
        # a 2x2 block's area mean is > 0 exactly when one of its pixels is in the mask
        on_c = cv2.resize(on, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        _copy_where(sy, on, y[y0:y1, x0:x1])
        _copy_where(su, on_c, u[y0 // 2:y1 // 2, x0 // 2:x1 // 2])
        _copy_where(sv, on_c, v[y0 // 2:y1 // 2, x0 // 2:x1 // 2])
        self._bgr = None
        self._gray = None
        self._gray_part = None
        self._gray_box = None


def _copy_where(src: np.ndarray, mask: np.ndarray, dst_view: np.ndarray) -> None:
    """dst_view[mask > 0] = src[mask > 0], in place (dst_view is a window of a plane)."""
    np.copyto(dst_view, src, where=mask > 0)


def _split_i420(buf: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of one I420 buffer (writable when the buffer is)."""
    w, h = width, height
    flat = buf.reshape(-1)
    return (flat[: w * h].reshape(h, w), flat[w * h: w * h * 5 // 4].reshape(h // 2, w // 2),
            flat[w * h * 5 // 4:].reshape(h // 2, w // 2))


FrameLike = np.ndarray | FrameView
