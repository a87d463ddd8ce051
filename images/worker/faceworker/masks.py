"""A frame-sized binary mask kept as the few boxes where it is set, packed 1 bit a pixel.

Why: the swap pass records, for every frame, which pixels the swap changed; only the metrics pass
needs them as a frame-sized image (PSNR/SSIM outside the dilated mask). Allocating, scanning,
dilating and packing a 1280x720 array per frame cost ~1 ms of the swap pass's ~8 ms of face work;
a face box is ~5 % of the frame. So the swap pass adds boxes here and the metrics pass asks for
`dilated(r).full()`.
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


class RegionMask:
    """Union of boxes with a binary (non-zero = set) mask each, in a frame of `shape` (h, w)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self._parts: list[tuple[Box, bytes]] = []  # box, np.packbits of its (h*w) set pixels

    @classmethod
    def from_full(cls, mask: np.ndarray) -> RegionMask:
        """The set pixels of a frame-sized mask, kept as their bounding box."""
        out = cls(mask.shape[:2])
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask))
        if w and h:
            out.add((x, y, x + w, y + h), mask[y:y + h, x:x + w])
        return out

    def add(self, box: Box, local: np.ndarray) -> None:
        """Set the pixels of `box` where `local` (that box's size) is non-zero."""
        x0, y0, x1, y1 = box
        if local.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"mask of shape {local.shape[:2]} does not fit box {box}")
        set_pixels = local > 0
        if set_pixels.any():  # only parts with something set are kept: any() needs no unpacking
            self._parts.append((box, np.packbits(set_pixels).tobytes()))

    def parts(self) -> list[tuple[Box, np.ndarray]]:
        """(box, bool array) of every added part."""
        out = []
        for (x0, y0, x1, y1), bits in self._parts:
            n = (y1 - y0) * (x1 - x0)
            out.append(((x0, y0, x1, y1), np.unpackbits(np.frombuffer(bits, np.uint8), count=n)
                        .reshape(y1 - y0, x1 - x0).astype(bool)))
        return out

    def any(self) -> bool:
        return bool(self._parts)

    def dilated(self, radius: int) -> RegionMask:
        """Pixels within Euclidean distance `radius` of a set pixel (a disc dilation, part by part:
        the dilation of a union is the union of the dilations)."""
        h, w = self.shape
        out = RegionMask(self.shape)
        r = int(radius)
        for (bx0, by0, bx1, by1), local in self.parts():
            x0, y0, x1, y1 = max(0, bx0 - r), max(0, by0 - r), min(w, bx1 + r), min(h, by1 + r)
            # distance to the nearest set pixel: zero-valued "set" pixels for distanceTransform, and a
            # one-pixel unset border so the distance is not cut short at the frame edge.
            roi = np.full((y1 - y0 + 2, x1 - x0 + 2), 255, np.uint8)
            roi[by0 - y0 + 1:by1 - y0 + 1, bx0 - x0 + 1:bx1 - x0 + 1][local] = 0
            # the 5x5 chamfer mask: half the cost of DIST_MASK_PRECISE, same disc at these radii (measured)
            dist = cv2.distanceTransform(roi, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
            out.add((x0, y0, x1, y1), dist <= r)
        return out

    def full(self) -> np.ndarray:
        """The frame-sized uint8 mask, 255 where set."""
        full = np.zeros(self.shape, np.uint8)
        for (x0, y0, x1, y1), local in self.parts():
            full[y0:y1, x0:x1][local] = 255
        return full
