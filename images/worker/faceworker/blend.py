"""Colour transfer and blending of a warped face into a frame.

Both blends touch only pixels where the mask is > 0, so everything outside the mask stays
byte-identical (the PSNR-outside-mask metric depends on it).
"""
from __future__ import annotations

import cv2
import numpy as np


def lab_color_transfer(src_bgr: np.ndarray, ref_bgr: np.ndarray, src_mask: np.ndarray, ref_mask: np.ndarray,
                       strength: float = 1.0) -> np.ndarray:
    """Match the LAB mean/std of src (inside src_mask) to ref (inside ref_mask).

    `strength` < 1 keeps part of the source's own contrast (texture carries identity).
    """
    sm, rm = src_mask > 0, ref_mask > 0
    if sm.sum() < 16 or rm.sum() < 16:
        return src_bgr
    src = cv2.cvtColor(src_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    ref = cv2.cvtColor(ref_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    s_px, r_px = src[sm], ref[rm]
    s_mu, s_sd = s_px.mean(0), s_px.std(0) + 1e-3
    r_mu, r_sd = r_px.mean(0), r_px.std(0) + 1e-3
    gain = 1.0 + strength * (r_sd / s_sd - 1.0)
    gain = np.clip(gain, 0.5, 2.0)
    shift = s_mu + strength * (r_mu - s_mu)
    out = (src - s_mu) * gain + shift
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def feather_mask(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """Soft edge that stays *inside* the hard mask: erode by half the feather, then blur."""
    if feather_px <= 0:
        return mask
    k = max(1, feather_px // 2)
    er = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    ksize = 2 * k + 1
    soft = cv2.GaussianBlur(er, (ksize, ksize), 0)
    soft[mask == 0] = 0
    return soft


def alpha_blend(frame: np.ndarray, face: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
    """frame*(1-a) + face*a inside the mask's bounding box only (cheap at 1080p)."""
    out = frame.copy()
    ys, xs = np.nonzero(alpha_u8)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = alpha_u8[y0:y1, x0:x1, None].astype(np.float32) / 255.0
    f = frame[y0:y1, x0:x1].astype(np.float32)
    g = face[y0:y1, x0:x1].astype(np.float32)
    blended = np.clip(f + (g - f) * a + 0.5, 0, 255).astype(np.uint8)
    region = alpha_u8[y0:y1, x0:x1] > 0
    out[y0:y1, x0:x1][region] = blended[region]
    return out


def seamless_blend(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, pad: int = 16) -> np.ndarray:
    """cv2.seamlessClone on a padded, contiguous ROI with a 3-channel mask (cv2 5.0 quirks, DESIGN §7).

    Pixels outside the mask are restored afterwards, so the background is untouched.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return frame.copy()
    h, w = mask.shape
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
    dst = np.ascontiguousarray(frame[y0:y1, x0:x1])
    src = np.ascontiguousarray(face[y0:y1, x0:x1])
    m = np.ascontiguousarray(mask[y0:y1, x0:x1])
    # seamlessClone needs the mask away from the ROI border
    m[:2, :] = 0
    m[-2:, :] = 0
    m[:, :2] = 0
    m[:, -2:] = 0
    if m.max() == 0:
        return frame.copy()
    m3 = cv2.merge([m, m, m])
    # Put the ROI in a canvas with a border so the clone's centre maths never clips.
    b = pad
    dst_p = cv2.copyMakeBorder(dst, b, b, b, b, cv2.BORDER_REFLECT_101)
    src_p = cv2.copyMakeBorder(src, b, b, b, b, cv2.BORDER_REFLECT_101)
    m_p = cv2.copyMakeBorder(m3, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
    my, mx = np.nonzero(m_p[:, :, 0])
    center = (int((mx.min() + mx.max() + 1) // 2), int((my.min() + my.max() + 1) // 2))
    cloned = cv2.seamlessClone(src_p, dst_p, m_p, center, cv2.NORMAL_CLONE)[b:-b, b:-b]
    out = frame.copy()
    region = m > 0
    out[y0:y1, x0:x1][region] = cloned[region]
    return out
