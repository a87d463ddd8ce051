"""Colour transfer and blending of a warped face into a frame.

Every blend leaves the pixels where the mask is 0 byte-identical (the PSNR-outside-mask metric
depends on it): pyramid and seamless restore them, the alpha blend gives the frame pixel exactly
at alpha 0. Per-pixel work is done by OpenCV on 8-bit data where it can (lookup tables,
cv2.blendLinear): the float32 numpy versions cost ~3x more at 720p face sizes.
"""
from __future__ import annotations

import cv2
import numpy as np


def lab_transfer_lut(src_mu: np.ndarray, src_sd: np.ndarray, ref_mu: np.ndarray, ref_sd: np.ndarray,
                     strength: float = 1.0) -> np.ndarray:
    """The per-channel affine LAB map of `lab_color_transfer` as a 1x256x3 uint8 table for cv2.LUT.

    Same float32 arithmetic (and truncation) per value as applying the map to every pixel.
    """
    s_mu, s_sd, r_mu, r_sd = (np.asarray(v, np.float32).reshape(3) for v in (src_mu, src_sd, ref_mu, ref_sd))
    gain = 1.0 + strength * ((r_sd + 1e-3) / (s_sd + 1e-3) - 1.0)
    gain = np.clip(gain, 0.5, 2.0)
    shift = s_mu + strength * (r_mu - s_mu)
    table = (_LEVELS - s_mu) * gain + shift
    return np.clip(table, 0, 255).astype(np.uint8).reshape(1, 256, 3)


_LEVELS = np.arange(256, dtype=np.float32)[:, None]


def warm_up_lab() -> None:
    """Build OpenCV's 8-bit LAB conversion tables now (~70 ms, once a process, on the first
    BGR<->LAB call): a swapper calls this from prepare(), so the first swapped frame does not pay it."""
    pixel = np.zeros((1, 1, 3), np.uint8)
    cv2.cvtColor(cv2.cvtColor(pixel, cv2.COLOR_BGR2LAB), cv2.COLOR_LAB2BGR)


def lab_stats(img: np.ndarray, mask: np.ndarray, *, lab: bool = False, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """LAB mean and std (float32 [3] each) of `img` (BGR, or LAB when `lab`) where `mask` > 0.

    `step` > 1 samples every step-th row and column only (the statistics of a face's skin barely
    move, the colour conversion gets step² times cheaper).
    """
    if step > 1:
        img = np.ascontiguousarray(img[::step, ::step])
        mask = np.ascontiguousarray(mask[::step, ::step])
    if not lab:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    mu, sd = cv2.meanStdDev(img, mask=mask)
    return mu.reshape(3).astype(np.float32), sd.reshape(3).astype(np.float32)


def apply_lab_lut(src_lab: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """BGR image of `src_lab` after the per-channel table `lut` (from `lab_transfer_lut`)."""
    return cv2.cvtColor(cv2.LUT(src_lab, lut), cv2.COLOR_LAB2BGR)


def lab_color_transfer(src_bgr: np.ndarray, ref_bgr: np.ndarray, src_mask: np.ndarray, ref_mask: np.ndarray,
                       strength: float = 1.0, ref_step: int = 1) -> np.ndarray:
    """Match the LAB mean/std of src (inside src_mask) to ref (inside ref_mask).

    `strength` < 1 keeps part of the source's own contrast (texture carries identity). The map is
    affine per LAB channel, so it is applied as a 256-entry lookup table (cv2.LUT) on the 8-bit LAB
    image instead of float math per pixel. `ref_bgr` may be just the box around `ref_mask`;
    `ref_step` subsamples it for the statistics (see `lab_stats`).
    """
    if cv2.countNonZero(src_mask) < 16 or cv2.countNonZero(ref_mask) < 16:
        return src_bgr
    src_lab = cv2.cvtColor(src_bgr, cv2.COLOR_BGR2LAB)
    s_mu, s_sd = lab_stats(src_lab, src_mask, lab=True)
    r_mu, r_sd = lab_stats(ref_bgr, ref_mask, step=ref_step)
    return apply_lab_lut(src_lab, lab_transfer_lut(s_mu, s_sd, r_mu, r_sd, strength))


# smoothstep ramp sampled at 256 steps of the distance/feather ratio (0..1), as alpha 0..255
_RAMP_STEPS = 255.0
_t = np.minimum(np.arange(256, dtype=np.float32) / np.float32(_RAMP_STEPS), 1.0)
_SMOOTH_RAMP = (_t * _t * (3.0 - 2.0 * _t) * 255.0 + 0.5).astype(np.uint8)
del _t


def feather_mask(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """Soft edge that stays *inside* the hard mask: alpha ramps 0 -> 255 over `feather_px` from the border.

    A distance transform (not erode + blur, large elliptical kernels cost ~6 ms per ROI), turned
    into the smoothstep ramp by a rounded 8-bit index and a lookup table (no float passes).
    """
    if feather_px <= 0:
        return mask
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_3)
    idx = cv2.convertScaleAbs(dist, alpha=_RAMP_STEPS / float(feather_px))  # rounded, saturates at 255
    return cv2.LUT(idx, _SMOOTH_RAMP)


def alpha_blend_into(dst: np.ndarray, frame: np.ndarray, face: np.ndarray, alpha_u8: np.ndarray) -> None:
    """dst = frame*(1-a) + face*a, rounded; all four the same height/width (dst may be a view).

    cv2.blendLinear on float weights 255-a and a: equals the float formula of `alpha_blend`
    (checked for every a, frame and face value), and a = 0 gives the frame pixel exactly.
    """
    w2 = alpha_u8.astype(np.float32)
    w1 = np.float32(255.0) - w2
    cv2.blendLinear(frame, face, w1, w2, dst=dst)


def alpha_blend(frame: np.ndarray, face: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
    """frame*(1-a) + face*a inside the mask's bounding box only (cheap at 1080p)."""
    out = frame.copy()
    x0, y0, bw, bh = cv2.boundingRect(alpha_u8)
    if bw == 0 or bh == 0:
        return out
    y1, x1 = y0 + bh, x0 + bw
    alpha_blend_into(out[y0:y1, x0:x1], frame[y0:y1, x0:x1], face[y0:y1, x0:x1], alpha_u8[y0:y1, x0:x1])
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

    The pyramid is linear, so L(frame)·(1-m) + L(face)·m = L(frame) + L(face - frame)·m per level:
    one pyramid of the difference instead of two, and the frame's own reconstruction is the frame.
    """
    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return frame.copy()
    pad = 2 ** levels
    h, w = mask.shape
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(w, x0 + bw + 2 * pad), min(h, y0 + bh + 2 * pad)
    a = frame[y0:y1, x0:x1].astype(np.float32)
    gd: list[np.ndarray] = [np.asarray(cv2.subtract(face[y0:y1, x0:x1], frame[y0:y1, x0:x1], dtype=cv2.CV_32F))]
    gm: list[np.ndarray] = [mask[y0:y1, x0:x1].astype(np.float32) * np.float32(1.0 / 255.0)]
    for _ in range(levels):
        gd.append(cv2.pyrDown(gd[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    acc = gd[-1] * gm[-1][..., None]
    for i in range(levels - 1, -1, -1):
        size = (gd[i].shape[1], gd[i].shape[0])
        detail = gd[i] - cv2.pyrUp(gd[i + 1], dstsize=size)
        acc = cv2.pyrUp(acc, dstsize=size) + detail * gm[i][..., None]
    res = frame.copy()
    region = mask[y0:y1, x0:x1] > 0
    res[y0:y1, x0:x1][region] = np.clip(a + acc + 0.5, 0, 255).astype(np.uint8)[region]
    return res
