"""Five-point similarity alignment for learned face models, and the inverse warp for paste-back.

Learned models (ArcFace, inswapper, GFPGAN) were trained on crops made by mapping five facial
points (eye centres, nose tip, mouth corners) onto a fixed template with a similarity transform.
Feeding them anything else degrades them badly, so every ONNX path goes through here.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# ArcFace / insightface 5-point template for a 112x112 crop (image-left eye first).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# FFHQ 5-point template for a 512x512 crop (what GFPGAN/facexlib align to).
FFHQ_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043],
     [313.08905, 371.15118]],
    dtype=np.float32,
)


def arcface_template(size: int) -> np.ndarray:
    """ArcFace template for a size x size crop, as insightface builds it.

    Multiples of 112 scale the template; any other size is treated as a 128-wide crop: scaled by
    size/128 and shifted right by 8*size/128 (the margin variant inswapper_128 expects).
    """
    if size % 112 == 0:
        return ARCFACE_112 * (size / 112.0)
    ratio = size / 128.0
    return ARCFACE_112 * ratio + np.array([8.0 * ratio, 0.0], dtype=np.float32)


def ffhq_template(size: int) -> np.ndarray:
    return FFHQ_512 * (size / 512.0)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners (image-left first) from dlib 68 (or pass-through 5) points."""
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.shape == (5, 2):
        return pts
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68 or 5 landmarks, got shape {pts.shape}")
    return np.stack(
        [pts[36:42].mean(axis=0), pts[42:48].mean(axis=0), pts[30], pts[48], pts[54]]
    ).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst (Umeyama); 2x3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


@dataclass
class AlignedCrop:
    """A crop and the affine that made it (frame -> crop)."""

    image: np.ndarray
    matrix: np.ndarray  # 2x3, frame coords -> crop coords

    @property
    def inverse(self) -> np.ndarray:
        return cv2.invertAffineTransform(self.matrix)


def align_crop(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> AlignedCrop:
    """Warp the face onto `template` in a size x size crop."""
    m = similarity_transform(five_points(landmarks), template)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return AlignedCrop(crop, m)


def feather_mask(size: int, margin: float = 0.1, blur: float = 0.08) -> np.ndarray:
    """Float32 [size, size] mask: 1 inside, 0 on a margin at the border, a smooth ramp between.

    Zero exactly at the crop border so the inverse warp never touches pixels outside the crop.
    """
    mask: np.ndarray = np.zeros((size, size), dtype=np.float32)
    m = max(1, int(round(size * margin)))
    mask[m:size - m, m:size - m] = 1.0
    k = max(1, int(round(size * blur))) | 1
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    edge = max(1, m // 4)
    mask[:edge, :] = 0
    mask[-edge:, :] = 0
    mask[:, :edge] = 0
    mask[:, -edge:] = 0
    return mask


def _roi(inv: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    pts = transform_points(corners, inv)
    h, w = shape
    x0 = max(0, int(np.floor(pts[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    crop_mask: np.ndarray,
    region_mask: np.ndarray | None = None,
    strength: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-warp `crop` into `frame` weighted by `crop_mask` (x `region_mask`/255 if given).

    Only the crop's bounding box is warped (cheap at 1080p). Pixels with weight 0 are returned
    bit-identical. Returns (new frame, uint8 mask of the weights actually applied).
    """
    size = crop.shape[0]
    out = frame.copy()
    full_mask = np.zeros(frame.shape[:2], dtype=np.uint8)
    inv = cv2.invertAffineTransform(matrix)
    roi = _roi(inv, size, frame.shape[:2])
    if roi is None or strength <= 0:
        return out, full_mask
    x0, y0, x1, y1 = roi
    shift = inv.copy()
    shift[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop, shift, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(crop_mask.astype(np.float32), shift, dsize, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    weight = np.clip(weight, 0.0, 1.0) * float(min(1.0, strength))
    if region_mask is not None:
        weight *= region_mask[y0:y1, x0:x1].astype(np.float32) / 255.0
    weight[weight < 1.0 / 512.0] = 0.0  # below half a grey level: leave the pixel alone exactly
    w3 = weight[..., None]
    base = frame[y0:y1, x0:x1].astype(np.float32)
    blended = base * (1.0 - w3) + warped.astype(np.float32) * w3
    region = np.where(w3 > 0, np.clip(np.rint(blended), 0, 255), base).astype(frame.dtype)
    out[y0:y1, x0:x1] = region
    full_mask[y0:y1, x0:x1] = np.clip(np.rint(weight * 255.0), 0, 255).astype(np.uint8)
    # a weight that rounds to 0 in the uint8 mask must still be marked as touched
    full_mask[y0:y1, x0:x1][(weight > 0) & (full_mask[y0:y1, x0:x1] == 0)] = 1
    return out, full_mask
