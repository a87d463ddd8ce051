"""Classic (weight-free) face swap: the source's face *shape* and texture, the target's pose.

Why shape matters: warping only the source texture onto the target's landmarks leaves the
dlib identity ~88 % with the target (DESIGN §7). So the inner-face geometry comes from the
source, placed on the target by a similarity transform fitted on stable points (eyes, nose,
brows); `identity_weight` interpolates every landmark between that aligned source geometry
(1.0) and the target's own geometry (0.0, a texture-only swap that keeps the target's
expression). The transferred region is extended above the brows and slightly beyond the jaw,
because the recognizer's chip sees forehead and face outline too.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from faceworker import blend, geometry
from faceworker.errors import BadInput
from faceworker.types import Face, SourceFace


def _shrunk_hull_mask(pts: np.ndarray, shape: tuple[int, int], factor: float) -> np.ndarray:
    c = pts.mean(0)
    hull = cv2.convexHull(((pts - c) * factor + c).astype(np.float32))
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.round(hull).astype(np.int32), 255)
    return m


class ClassicSwapper:
    """FaceSwapper: landmark alignment + piecewise-affine warp + LAB colour + feathered/pyramid/seamless blend."""

    name = "classic"

    def __init__(
        self,
        identity_weight: float = 1.0,
        forehead: float = 0.45,
        grow: float = 1.05,
        blend_mode: str = "alpha",
        feather_frac: float = 0.08,
        color_strength: float = 1.0,
        keep_target_mouth: bool = False,
        keep_target_eyes: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise BadInput(f"unknown classic swapper options: {sorted(unknown)}")
        if not 0.0 <= float(identity_weight) <= 1.0:
            raise BadInput("identity_weight must be within [0, 1]")
        if blend_mode not in ("alpha", "seamless", "pyramid"):
            raise BadInput("blend_mode must be 'alpha', 'seamless' or 'pyramid'")
        self.identity_weight = float(identity_weight)
        self.forehead = float(forehead)
        self.grow = float(grow)
        self.blend_mode = blend_mode
        self.feather_frac = float(feather_frac)
        self.color_strength = float(color_strength)
        self.keep_target_mouth = bool(keep_target_mouth)
        self.keep_target_eyes = bool(keep_target_eyes)
        self._src_img: np.ndarray | None = None
        self._src_pts: np.ndarray | None = None
        self._tris: np.ndarray | None = None

    # -- points ----------------------------------------------------------------------------
    def _extended(self, lm: np.ndarray) -> np.ndarray:
        """68 landmarks + forehead rows + the grown outline ring (the warp's control points)."""
        fh = geometry.forehead_points(lm, (self.forehead * 0.5, self.forehead))
        ring = geometry.outline_points(lm, self.forehead, self.grow)
        return np.vstack([lm, fh, ring]).astype(np.float32)

    def _outline_index(self) -> np.ndarray:
        n_ring = 17 + 10
        total = 68 + 20 + n_ring
        return np.arange(total - n_ring, total)

    def prepare(self, source: SourceFace) -> None:
        self._src_img = np.ascontiguousarray(source.image_bgr)
        self._src_pts = self._extended(np.asarray(source.face.landmarks, np.float32))
        self._tris = geometry.delaunay(self._src_pts)

    # -- swap ------------------------------------------------------------------------------
    def destination_points(self, target_lm: np.ndarray) -> np.ndarray:
        """Where each source control point goes in the target frame."""
        assert self._src_pts is not None
        src68 = self._src_pts[:68]
        m = geometry.similarity_transform(src68[geometry.STABLE], target_lm[geometry.STABLE])
        aligned = geometry.apply_affine(m, self._src_pts)
        if self.identity_weight >= 1.0:
            return aligned
        tgt = self._extended(target_lm)
        w = self.identity_weight
        return (w * aligned + (1.0 - w) * tgt).astype(np.float32)

    @staticmethod
    def _roi(dst: np.ndarray, shape: tuple[int, int]) -> tuple[tuple[int, int, int, int], int]:
        """The box (clipped to the frame) that a swap onto these destination points reads and writes."""
        h, w = shape
        x0, y0, x1, y1 = geometry.landmark_bbox(dst)
        size = max(x1 - x0, y1 - y0)
        pad = int(0.1 * size) + 4
        return (max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)), size

    def region(self, target: Face, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Box of the frame (x0, y0, x1, y1) this swap depends on and may change; nothing outside it
        is read or written, so a caller may hand `swap` just this crop (with shifted landmarks)."""
        if self._src_pts is None:
            raise RuntimeError("ClassicSwapper.region called before prepare()")
        box, _ = self._roi(self.destination_points(np.asarray(target.landmarks, np.float32)), shape)
        return box

    def swap(self, frame_bgr: np.ndarray, target: Face) -> tuple[np.ndarray, np.ndarray]:
        if self._src_img is None or self._src_pts is None or self._tris is None:
            raise RuntimeError("ClassicSwapper.swap called before prepare()")
        h, w = frame_bgr.shape[:2]
        tlm = np.asarray(target.landmarks, np.float32)
        dst = self.destination_points(tlm)
        outline = dst[self._outline_index()]
        (rx0, ry0, rx1, ry1), size = self._roi(dst, (h, w))
        empty = np.zeros((h, w), np.uint8)
        if rx1 - rx0 < 8 or ry1 - ry0 < 8:
            return frame_bgr.copy(), empty
        off = np.array([rx0, ry0], np.float32)
        roi_shape = (ry1 - ry0, rx1 - rx0)

        # 1. warp the source into the ROI
        if self.identity_weight >= 1.0:
            m = geometry.similarity_transform(self._src_pts[:68][geometry.STABLE], tlm[geometry.STABLE])
            m[:, 2] -= off
            warped = cv2.warpAffine(self._src_img, m, (roi_shape[1], roi_shape[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = geometry.piecewise_affine_warp(self._src_img, self._src_pts, dst - off, self._tris, roi_shape)

        # 2. hard mask of the transferred region (ROI coordinates)
        hard = np.zeros(roi_shape, np.uint8)
        cv2.fillConvexPoly(hard, np.round(cv2.convexHull(outline - off)).astype(np.int32), 255, cv2.LINE_AA)
        hard[hard < 128] = 0
        hard[hard > 0] = 255
        if self.keep_target_mouth or self.keep_target_eyes:
            self._cut_features(hard, tlm - off, size)
        if hard.max() == 0:
            return frame_bgr.copy(), empty

        # 3. colour: source skin statistics -> target skin statistics over the same region
        roi = np.ascontiguousarray(frame_bgr[ry0:ry1, rx0:rx1])
        if self.color_strength > 0:
            # skin statistics from well inside the face (hulls shrunk by 12 %): the rim catches hair/background
            inner = _shrunk_hull_mask(dst[:68] - off, roi_shape, 0.88)
            tgt_skin = _shrunk_hull_mask(tlm - off, roi_shape, 0.88)
            warped = blend.lab_color_transfer(warped, roi, inner, tgt_skin, self.color_strength)

        # 4. blend
        if self.blend_mode == "seamless":
            out_roi = blend.seamless_blend(roi, warped, hard)
        elif self.blend_mode == "pyramid":
            # blend weights from the feathered mask; its zero rim keeps the change inside `hard`
            out_roi = blend.pyramid_blend(roi, warped, blend.feather_mask(hard, int(self.feather_frac * size)))
        else:
            alpha = blend.feather_mask(hard, int(self.feather_frac * size))
            out_roi = blend.alpha_blend(roi, warped, alpha)
        out = frame_bgr.copy()
        out[ry0:ry1, rx0:rx1] = out_roi
        mask = empty
        mask[ry0:ry1, rx0:rx1] = hard
        return out, mask

    def _cut_features(self, hard: np.ndarray, tlm: np.ndarray, size: int) -> None:
        """Keep the target's own mouth/eyes (its expression) by removing them from the mask."""
        k = max(3, int(0.04 * size)) | 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        groups = []
        if self.keep_target_mouth:
            groups.append(geometry.MOUTH[:12])
        if self.keep_target_eyes:
            groups += [geometry.LEFT_EYE, geometry.RIGHT_EYE]
        for g in groups:
            part = np.zeros_like(hard)
            cv2.fillConvexPoly(part, np.round(cv2.convexHull(tlm[g])).astype(np.int32), 255)
            part = cv2.dilate(part, kernel)
            hard[part > 0] = 0
