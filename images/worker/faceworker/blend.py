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
    if cv2.countNonZero(src_mask) < 16 or cv2.countNonZero(ref_mask) < 16:
        return src_bgr
    src_lab = cv2.cvtColor(src_bgr, cv2.COLOR_BGR2LAB)
    ref_lab = cv2.cvtColor(ref_bgr, cv2.COLOR_BGR2LAB)
    s_mu, s_sd = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(src_lab, mask=src_mask))
    r_mu, r_sd = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(ref_lab, mask=ref_mask))
    gain = 1.0 + strength * ((r_sd + 1e-3) / (s_sd + 1e-3) - 1.0)
    gain = np.clip(gain, 0.5, 2.0)
    shift = s_mu + strength * (r_mu - s_mu)
    out = (src_lab.astype(np.float32) - s_mu) * gain + shift
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def feather_mask(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """Soft edge that stays *inside* the hard mask: alpha ramps 0 -> 255 over `feather_px` from the border.

    A distance transform (not erode + blur) because large elliptical kernels cost ~6 ms per ROI.
    """
    if feather_px <= 0:
        return mask
    dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(dist / float(feather_px), 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink where the ramp ends
    return (t * 255.0 + 0.5).astype(np.uint8)


def alpha_blend(frame: np.ndarray, face: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
    """frame*(1-a) + face*a inside the mask's bounding box only (cheap at 1080p)."""
    out = frame.copy()
    x0, y0, bw, bh = cv2.boundingRect(alpha_u8)
    if bw == 0 or bh == 0:
        return out
    y1, x1 = y0 + bh, x0 + bw
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


def pyramid_blend(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid blend: low frequencies mix over a wide band, fine detail over a narrow one.

    Hides seams and lighting steps better than a feather while keeping the source's texture
    (unlike Poisson cloning, which takes the colours of the boundary). Pixels outside the mask are
    restored afterwards, so the background stays byte-identical.
    """
    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return frame.copy()
    pad = 2 ** levels
    h, w = mask.shape
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(w, x0 + bw + 2 * pad), min(h, y0 + bh + 2 * pad)
    a = frame[y0:y1, x0:x1].astype(np.float32)
    b = face[y0:y1, x0:x1].astype(np.float32)
    m = (mask[y0:y1, x0:x1].astype(np.float32) / 255.0)[..., None]
    ga, gb, gm = [a], [b], [m]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1])[..., None] if gm[-1].ndim == 3 else cv2.pyrDown(gm[-1]))
    out = ga[-1] * (1 - gm[-1]) + gb[-1] * gm[-1]
    for i in range(levels - 1, -1, -1):
        size = (ga[i].shape[1], ga[i].shape[0])
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        mi = gm[i] if gm[i].ndim == 3 else gm[i][..., None]
        out = cv2.pyrUp(out, dstsize=size) + la * (1 - mi) + lb * mi
    res = frame.copy()
    region = mask[y0:y1, x0:x1] > 0
    res[y0:y1, x0:x1][region] = np.clip(out + 0.5, 0, 255).astype(np.uint8)[region]
    return res
