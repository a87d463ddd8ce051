"""One Euro filter on landmark arrays: steady when the face is still, responsive when it moves.

Casiez et al. 2012: an exponential low-pass whose cutoff rises with the signal's speed, so
slow jitter is removed while fast head motion does not lag. Applied per landmark coordinate.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array signal sampled at `freq` Hz (frames per second)."""

    def __init__(self, freq: float = 25.0, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.freq = float(freq)
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        self._x = None
        self._dx = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            return x.astype(np.float32)
        dt = 1.0 / self.freq
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        assert self._dx is not None  # set together with _x
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.astype(np.float32)


class LandmarkSmoother:
    """Pose-aware One Euro smoothing of 68-point landmarks.

    Per-point filtering must choose between jitter and lag: a fast-moving head makes every
    point fast. So the landmarks are split into a rigid pose (similarity transform from a
    reference shape, fitted on all 68 points, hence already low-noise) and a shape residual in
    the reference frame. The pose is filtered lightly (follows motion without lag), the
    residual -- where the detector's per-point noise lives -- strongly.
    """

    def __init__(self, fps: float = 25.0, pose_cutoff: float = 8.0, pose_beta: float = 30.0,
                 shape_cutoff: float = 0.8, shape_beta: float = 0.15) -> None:
        self.fps = fps
        self._pose = OneEuroFilter(fps, pose_cutoff, pose_beta)
        self._shape = OneEuroFilter(fps, shape_cutoff, shape_beta)
        self._ref: np.ndarray | None = None
        self._size = 1.0

    def reset(self) -> None:
        self._pose.reset()
        self._shape.reset()
        self._ref = None

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        from faceworker.geometry import similarity_transform

        lm = np.asarray(landmarks, np.float64)
        if self._ref is None:
            self._size = float(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1]), 1.0))
            self._ref = (lm - lm.mean(0)) / self._size  # unit-size reference shape
        m = similarity_transform(self._ref, lm)  # ref -> current
        a, b = m[0, 0], m[1, 0]
        pose = np.array([a / self._size, b / self._size, m[0, 2] / self._size, m[1, 2] / self._size])
        # shape residual expressed in reference (unit) coordinates
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        resid = (lm @ inv[:, :2].T + inv[:, 2]) - self._ref
        pose_f = self._pose(pose).astype(np.float64) * self._size
        resid_f = self._shape(resid * 100.0).astype(np.float64) / 100.0  # ~percent of face size
        mf = np.array([[pose_f[0], -pose_f[1], pose_f[2]], [pose_f[1], pose_f[0], pose_f[3]]])
        out = (self._ref + resid_f) @ mf[:, :2].T + mf[:, 2]
        return out.astype(np.float32)
