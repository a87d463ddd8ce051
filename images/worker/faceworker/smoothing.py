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
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.astype(np.float32)


class LandmarkSmoother:
    """One Euro filter with scale-aware speed: beta is per face size, so a 1080p face behaves like a 720p one."""

    def __init__(self, fps: float = 25.0, min_cutoff: float = 1.5, beta: float = 0.3) -> None:
        self.fps = fps
        self.min_cutoff = min_cutoff
        self.beta = beta
        self._f = OneEuroFilter(fps, min_cutoff, beta)
        self._scale = 1.0

    def reset(self) -> None:
        self._f.reset()

    def __call__(self, landmarks: np.ndarray) -> np.ndarray:
        lm = np.asarray(landmarks, np.float64)
        size = float(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1]), 1.0))
        # normalise coordinates to face size so beta does not depend on resolution
        if self._f._x is None:
            self._scale = size / 100.0
        return self._f(lm / self._scale) * self._scale
