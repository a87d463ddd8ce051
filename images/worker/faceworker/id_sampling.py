"""Which frames of a chunk carry an identity measurement (the ~60-110 ms dlib ResNet embedding).

Embedding every frame made the metrics pass cost ~5x the swap it checks. Instead the identity
is measured on (docs/quality.md, "Identity sampling"):

- a stratified sample: one frame in every `every` frames of the chunk (a seeded pseudo-random
  position in each stratum, so a periodic defect cannot hide between fixed positions);
- the first and last face frame of the chunk and of every track (a new track is a new person
  as far as the tracker knows);
- every frame the tracker flags: a suspected cut, a re-detection after the track was lost or in
  doubt, a low HOG confidence, landmark jitter above half the gate's bar, an extreme yaw;
- every frame a cheap per-frame check doubts (decided in the pass, `Doubt`): the output face
  looks unchanged against the original (a skipped swap, the target's own face back), or it
  stopped looking like the previous output face (an identity change inside a track; the
  tracker's own bar for "the same face": grey 32x32 patch NCC >= 0.90), and the frames after
  it as long as they do not look like the face before the change.

A per-frame failure the cheap checks see is measured on that very frame; a defect they cannot
see (a whole chunk with the wrong identity, e.g. texture-only) is caught by the stratified
sample. Measured miss rates are in docs/quality.md.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ID_SAMPLE_EVERY = 48  # one stratified identity measurement per this many frames (~2 s at 25 fps)
LOW_SCORE = 0.3  # HOG confidence below which the tracker itself re-detects on every frame
JITTER_FLAG_PX = 2.0  # half the gate's default max_landmark_jitter_px
YAW_FLAG_DEG = 45.0  # the swap pass's extreme-yaw warning
UNCHANGED_ABS = 3.0  # mean |out - orig| of the face patch (8-bit luma) below this: unchanged
UNCHANGED_REL = 0.35  # ... or below this fraction of the chunk's running median face change
MIN_APPEARANCE_NCC = 0.90  # output face patch vs the previous frame's: another face below this
MAX_DOUBT_RUN = 12  # frames an appearance doubt may last before the current look is accepted
ANCHOR_NCC_DECAY = 0.01  # inside a run, the bar against the face before it drops this much a frame of age


def _has_face(info: Any) -> bool:
    return bool(getattr(info, "faces", None))


def plan(infos: Sequence[Any], every: int = ID_SAMPLE_EVERY, seed: int = 0) -> dict[int, str]:
    """{chunk-local frame index: reason} of the frames measured whatever the cheap checks say.

    `infos` are the swap pass's FrameInfo objects (faces, track_ids, cut, landmark_jitter_px,
    yaw_deg); `seed` makes the stratified positions reproducible per chunk."""
    n = len(infos)
    face = [_has_face(x) for x in infos]
    tracks = [tuple(getattr(x, "track_ids", None) or ()) for x in infos]
    out: dict[int, str] = {}

    def add(i: int, why: str) -> None:
        out.setdefault(i, why)

    for i in range(n):
        if not face[i]:
            continue
        info = infos[i]
        if i == 0 or not face[i - 1] or tracks[i] != tracks[i - 1]:
            add(i, "track_start")
        if i == n - 1 or not face[i + 1] or tracks[i + 1] != tracks[i]:
            add(i, "track_end")
        if getattr(info, "cut", False):
            add(i, "cut")
        if getattr(info, "redetected", False):
            add(i, "redetect")
        scores = [float(getattr(f, "score", 1.0)) for f in info.faces]
        if scores and min(scores) < LOW_SCORE:
            add(i, "low_score")
        jitter = getattr(info, "landmark_jitter_px", None)
        if jitter is not None and jitter > JITTER_FLAG_PX:
            add(i, "jitter")
        yaw = getattr(info, "yaw_deg", None)
        if yaw is not None and abs(yaw) > YAW_FLAG_DEG:
            add(i, "yaw")
    rng = np.random.default_rng(seed)
    every = max(1, int(every))
    for s in range(0, n, every):
        stratum = [i for i in range(s, min(n, s + every)) if face[i]]
        if not stratum:
            continue
        pick = int(rng.integers(0, every))
        add(min(stratum, key=lambda i: (abs(i - (s + pick)), i)), "stratified")
    return out


class Doubt:
    """The in-pass cheap-check rule: is this frame's output face in doubt (measure its identity)?

    Keeps the chunk's running face-change values (a swap changes the face by a chunk-typical
    amount; a frame far below it was probably not swapped), the previous output face patch, and
    the last patch that raised no doubt (the anchor). A frame whose output face stops looking
    like the previous one is in doubt, and so is every following frame that still does not look
    like the anchor: a run of wrong faces is measured frame by frame, not only where it starts
    (at most MAX_DOUBT_RUN frames, then the current look becomes the anchor: a real change of
    expression or light must not keep the ResNet busy for the rest of the chunk)."""

    def __init__(self) -> None:
        self._changes: list[float] = []
        self._prev_patch: np.ndarray | None = None
        self._anchor: np.ndarray | None = None
        self._anchor_age = 0  # frames since the anchor's
        self._run = 0

    def check(self, face_change: float | None, patch: np.ndarray | None, swapped: bool) -> str | None:
        """The reason to measure this frame, or None; call once per frame, in order."""
        why = None
        if face_change is not None and swapped:
            typical = float(np.median(self._changes)) if len(self._changes) >= 3 else None
            if face_change < UNCHANGED_ABS or (typical is not None and face_change < UNCHANGED_REL * typical):
                why = "unchanged"
            self._changes.append(face_change)
        if patch is not None:
            # inside a run the face before it decides (the way back to it is no new doubt); a face
            # moves and turns between frames, so the older that anchor the lower the bar (a wrong
            # face stays far below it: ~0.45 the target's own, <= 0.61 someone else)
            self._anchor_age += 1
            ref, bar = self._prev_patch, MIN_APPEARANCE_NCC
            if self._run:
                ref, bar = self._anchor, MIN_APPEARANCE_NCC - ANCHOR_NCC_DECAY * (self._anchor_age - 1)
            if why is None and ref is not None and ncc(patch, ref) < bar:
                why = "appearance"
            self._run = self._run + 1 if why == "appearance" else 0
            if why is None or self._run > MAX_DOUBT_RUN:
                self._anchor, self._run, self._anchor_age = patch, 0, 0
        self._prev_patch = patch
        return why


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equally sized patches (1 = same up to gain/offset)."""
    a = a.astype(np.float32).ravel() - float(a.mean())
    b = b.astype(np.float32).ravel() - float(b.mean())
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / den) if den > 1e-6 else 1.0
