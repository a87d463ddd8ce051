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

# target skin statistics from every 2nd row/column: a quarter of the colour conversion, the mean
# and std move by < 0.1 LAB levels on the sample order
_STATS_STEP = 2


def _shrunk_hull(pts: np.ndarray, factor: float, center: np.ndarray | None = None) -> np.ndarray:
    c = pts.mean(0) if center is None else center
    return np.round(cv2.convexHull(((pts - c) * factor + c).astype(np.float32))).astype(np.int32)


def _shrunk_hull_mask(pts: np.ndarray, shape: tuple[int, int], factor: float,
                      center: np.ndarray | None = None) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, _shrunk_hull(pts, factor, center), 255)
    return m


def _shrunk_hull_box(pts: np.ndarray, shape: tuple[int, int], factor: float) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1), clipped to `shape`, of the pixels `_shrunk_hull_mask` would fill."""
    x, y, bw, bh = cv2.boundingRect(_shrunk_hull(pts, factor))
    return max(0, x), max(0, y), min(shape[1], x + bw), min(shape[0], y + bh)


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
        self._src_stable: np.ndarray | None = None

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
        self._src_stable = self._src_pts[:68][geometry.STABLE]
        blend.warm_up_lab()

    # -- swap ------------------------------------------------------------------------------
    def destination_points(self, target_lm: np.ndarray) -> np.ndarray:
        """Where each source control point goes in the target frame."""
        return self._placement(np.asarray(target_lm, np.float32))[1]

    def _placement(self, target_lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(similarity source -> target fitted on the stable points, destination control points)."""
        assert self._src_pts is not None and self._src_stable is not None
        m = geometry.similarity_transform(self._src_stable, target_lm[geometry.STABLE])
        aligned = geometry.apply_affine(m, self._src_pts)
        if self.identity_weight >= 1.0:
            return m, aligned
        tgt = self._extended(target_lm)
        w = self.identity_weight
        return m, (w * aligned + (1.0 - w) * tgt).astype(np.float32)

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
        sim, dst = self._placement(tlm)
        outline = dst[self._outline_index()]
        (rx0, ry0, rx1, ry1), size = self._roi(dst, (h, w))
        empty = np.zeros((h, w), np.uint8)
        if rx1 - rx0 < 8 or ry1 - ry0 < 8:
            return frame_bgr.copy(), empty
        off = np.array([rx0, ry0], np.float32)
        roi_shape = (ry1 - ry0, rx1 - rx0)

        # 1. hard mask of the transferred region (ROI coordinates; drawing it is cheap)
        hard = np.zeros(roi_shape, np.uint8)
        cv2.fillConvexPoly(hard, np.round(cv2.convexHull(outline - off)).astype(np.int32), 255, cv2.LINE_AA)
        cv2.threshold(hard, 127, 255, cv2.THRESH_BINARY, dst=hard)
        if self.keep_target_mouth or self.keep_target_eyes:
            self._cut_features(hard, tlm - off, size)
        mx, my, mw, mh = cv2.boundingRect(hard)
        if mw == 0 or mh == 0:
            return frame_bgr.copy(), empty

        # 2. work box: everything below happens in the mask's box plus what the blend reads around it
        # (alpha: 1 px, so the feather's distance sees the zero rim; pyramid/seamless: their 16 px pad,
        # twice, as pyramid_blend places its box), clipped to the ROI. Alpha needs ~half the ROI.
        margin = 1 if self.blend_mode == "alpha" else 2 * 16 + 1
        bx0, by0 = max(0, mx - margin), max(0, my - margin)
        bx1, by1 = min(roi_shape[1], mx + mw + margin), min(roi_shape[0], my + mh + margin)
        hard = hard[by0:by1, bx0:bx1]
        x0, y0, x1, y1 = rx0 + bx0, ry0 + by0, rx0 + bx1, ry0 + by1  # work box in frame coordinates
        work_shape = (y1 - y0, x1 - x0)
        woff = np.array([x0, y0], np.float32)
        frame_box = frame_bgr[y0:y1, x0:x1]

        # 3. colour statistics: source skin -> target skin, each from well inside the face (hulls
        # shrunk by 12 %: the rim catches hair/background)
        skin = None  # (source skin mask in the work box, target LAB mean, std) when the colour is matched
        if self.color_strength > 0:
            inner = _shrunk_hull_mask(dst[:68] - woff, work_shape, 0.88)
            # the target's skin may reach outside the work box: read it from its own box (inside the ROI)
            sx0, sy0, sx1, sy1 = _shrunk_hull_box(tlm - off, roi_shape, 0.88)
            if sx1 > sx0 and sy1 > sy0:
                corner = np.array([sx0, sy0], np.float32)
                tgt_skin = _shrunk_hull_mask(tlm - off - corner, (sy1 - sy0, sx1 - sx0), 0.88,
                                             center=(tlm - off).mean(0) - corner)
                if cv2.countNonZero(inner) >= 16 and cv2.countNonZero(tgt_skin) >= 16:
                    ref = frame_bgr[ry0 + sy0:ry0 + sy1, rx0 + sx0:rx0 + sx1]
                    r_mu, r_sd = blend.lab_stats(ref, tgt_skin, step=_STATS_STEP)
                    skin = (inner, r_mu, r_sd)

        # 4. warp the source into the work box, colour. (Warping a LAB copy of the source made in
        # prepare() would save one conversion, ~0.25 ms, but moves the output by 0.28 levels on
        # average and flipped a borderline identity frame: not taken.)
        if self.identity_weight >= 1.0:
            m = sim.copy()
            m[:, 2] -= woff
            warped = cv2.warpAffine(self._src_img, m, (work_shape[1], work_shape[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = geometry.piecewise_affine_warp(self._src_img, self._src_pts, dst - woff, self._tris, work_shape)
        if skin is not None:
            inner, r_mu, r_sd = skin
            warped_lab = cv2.cvtColor(warped, cv2.COLOR_BGR2LAB)
            s_mu, s_sd = blend.lab_stats(warped_lab, inner, lab=True)
            warped = blend.apply_lab_lut(warped_lab, blend.lab_transfer_lut(s_mu, s_sd, r_mu, r_sd, self.color_strength))

        # 5. blend
        out = frame_bgr.copy()
        feather = int(self.feather_frac * size)
        if self.blend_mode == "seamless":
            out[y0:y1, x0:x1] = blend.seamless_blend(np.ascontiguousarray(frame_box), warped, hard)
        elif self.blend_mode == "pyramid":
            # blend weights from the feathered mask; its zero rim keeps the change inside `hard`
            out[y0:y1, x0:x1] = blend.pyramid_blend(np.ascontiguousarray(frame_box), warped,
                                                    blend.feather_mask(hard, feather))
        else:
            blend.alpha_blend_into(out[y0:y1, x0:x1], frame_box, warped, blend.feather_mask(hard, feather))
        mask = empty
        mask[y0:y1, x0:x1] = hard
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
        # one dilation of the union (= the union of the dilations), over the parts' box only
        hulls = [np.round(cv2.convexHull(tlm[g])).astype(np.int32) for g in groups]
        x, y, bw, bh = cv2.boundingRect(np.vstack(hulls))
        r = k // 2 + 1
        h, w = hard.shape
        x0, y0, x1, y1 = max(0, x - r), max(0, y - r), min(w, x + bw + r), min(h, y + bh + r)
        if x1 <= x0 or y1 <= y0:
            return
        part = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for hull in hulls:
            cv2.fillConvexPoly(part, hull - np.array([x0, y0], np.int32), 255)
        part = cv2.dilate(part, kernel)
        hard[y0:y1, x0:x1][part > 0] = 0
