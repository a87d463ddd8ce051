"""Landmark geometry: index groups, similarity fits, yaw, forehead extension, Delaunay warps.

Everything works on dlib's 68-point layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

JAW = list(range(0, 17))
BROWS = list(range(17, 27))
NOSE = list(range(27, 36))
EYES = list(range(36, 48))
LEFT_EYE = list(range(36, 42))  # image-left eye
RIGHT_EYE = list(range(42, 48))
MOUTH = list(range(48, 68))
INNER_MOUTH = list(range(60, 68))
# Rigid-ish points used to align faces: eye corners, nose bridge/base, brow ends.
STABLE = [36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35, 17, 21, 22, 26]

# Two canonical 68-point shapes are not shipped; a mean shape is learned from the first
# frames instead, so tracking confidence compares against the face's own shape.


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src -> dst, as a 2x3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float64)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def procrustes_residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance after similarity alignment of a onto b, relative to b's size (0 = same shape)."""
    m = similarity_transform(a, b)
    diff = apply_affine(m, a) - b
    size = float(np.ptp(b[:, 0]) + np.ptp(b[:, 1])) / 2 or 1.0
    return float(np.sqrt((diff**2).sum(1).mean()) / size)


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0)


def estimate_yaw_deg(lm: np.ndarray) -> float:
    """Head yaw from the nose tip's position between the jaw sides, along the eye axis.

    0 for a frontal face; the sign says which way the head turns. Accurate to roughly ±10°,
    enough to flag strongly turned heads (|yaw| > ~35°).
    """
    le, re = eye_centres(lm)
    axis = re - le
    n = float(np.linalg.norm(axis))
    if n < 1e-6:
        return 0.0
    axis = axis / n
    proj = lm @ axis
    left = proj[30] - proj[JAW[0]]
    right = proj[JAW[-1]] - proj[30]
    total = left + right
    if total <= 1e-6:
        return 90.0
    r = float(np.clip((left - right) / total, -1.0, 1.0))
    return math.degrees(math.asin(r))


def forehead_points(lm: np.ndarray, fractions: tuple[float, ...] = (0.45,)) -> np.ndarray:
    """Points above each brow point, at `fraction` of the brow-to-chin height.

    dlib's landmarks stop at the brows; the recognizer's chip sees the forehead too, so the
    swapped region is extended upward (DESIGN §7: this moved identity the most).
    """
    brow_mid = lm[BROWS].mean(0)
    chin = lm[8]
    up = brow_mid - chin
    h = float(np.linalg.norm(up))
    if h < 1e-6:
        return np.zeros((0, 2), np.float32)
    up = up / h
    pts = [lm[i] + up * h * f for f in fractions for i in BROWS]
    return np.asarray(pts, np.float32)


def outline_points(lm: np.ndarray, forehead: float = 0.45, grow: float = 1.0) -> np.ndarray:
    """Closed outline of the transferred region: jaw + forehead arc, optionally grown from the centre."""
    fh = forehead_points(lm, (forehead,))[::-1]  # right-to-left so the ring is ordered
    ring = np.vstack([lm[JAW], fh]).astype(np.float32)
    if grow != 1.0:
        c = lm[[27, 28, 29, 30, 33]].mean(0)
        ring = c + (ring - c) * grow
    return ring.astype(np.float32)


def landmark_bbox(lm: np.ndarray, shape: tuple[int, ...] | None = None) -> tuple[int, int, int, int]:
    x0, y0 = np.floor(lm.min(0)).astype(int)
    x1, y1 = np.ceil(lm.max(0)).astype(int)
    if shape is not None:
        h, w = shape[:2]
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(w, x1), min(h, y1)
    return int(x0), int(y0), int(x1), int(y1)


def delaunay(points: np.ndarray, min_area: float = 0.5) -> np.ndarray:
    """Delaunay triangles (index triples) of `points`, dropping degenerate ones.

    A zero-area triangle (e.g. two coinciding lip landmarks) makes cv2 5.0 warpAffine take
    ~22 s (DESIGN §7), so triangles below `min_area` px² are skipped.
    """
    pts = np.asarray(points, np.float32)
    x0, y0 = np.floor(pts.min(0)) - 2
    x1, y1 = np.ceil(pts.max(0)) + 2
    sub = cv2.Subdiv2D((int(x0), int(y0), int(x1 - x0) + 1, int(y1 - y0) + 1))
    for p in pts:
        sub.insert((float(p[0]), float(p[1])))
    tris = []
    lookup = {(round(float(p[0]), 3), round(float(p[1]), 3)): i for i, p in enumerate(pts)}
    for t in np.asarray(sub.getTriangleList()).reshape(-1, 3, 2):
        idx = []
        for v in t:
            key = (round(float(v[0]), 3), round(float(v[1]), 3))
            if key not in lookup:
                break
            idx.append(lookup[key])
        if len(idx) == 3 and triangle_area(pts[idx]) >= min_area:
            tris.append(idx)
    return np.asarray(tris, np.int32).reshape(-1, 3)


def triangle_area(tri: np.ndarray) -> float:
    a, b, c = np.asarray(tri, np.float64)
    return abs(float((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1]))) / 2.0


def piecewise_affine_warp(
    src_img: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    tris: np.ndarray,
    out_shape: tuple[int, int],
    min_area: float = 0.5,
) -> np.ndarray:
    """Warp src_img so that src_pts land on dst_pts, triangle by triangle, into an out_shape canvas."""
    h, w = out_shape
    out = np.zeros((h, w, src_img.shape[2]), src_img.dtype)
    for tri in tris:
        s = np.asarray(src_pts[tri], np.float32)
        d = np.asarray(dst_pts[tri], np.float32)
        if triangle_area(s) < min_area or triangle_area(d) < min_area:
            continue
        x, y, bw, bh = cv2.boundingRect(d)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            continue
        sx, sy, sw, sh = cv2.boundingRect(s)
        sx0, sy0 = max(sx - 1, 0), max(sy - 1, 0)
        sx1, sy1 = min(sx + sw + 1, src_img.shape[1]), min(sy + sh + 1, src_img.shape[0])
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        patch = np.ascontiguousarray(src_img[sy0:sy1, sx0:sx1])
        m = cv2.getAffineTransform((s - [sx0, sy0]).astype(np.float32), (d - [x0, y0]).astype(np.float32))
        warped = cv2.warpAffine(patch, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        tmask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(tmask, np.round(d - [x0, y0]).astype(np.int32), 1, lineType=cv2.LINE_8)
        roi = out[y0:y1, x0:x1]
        roi[tmask > 0] = warped[tmask > 0]
    return out
