"""Follow the chosen face(s) between detections, by identity rather than by position.

Full HOG detection runs every `redetect_every` frames (or when a track's landmarks stop
looking like a face); in between, the 68-point predictor is re-run in a box derived from the
previous landmarks (~1-2 ms instead of 30-120 ms). At each detection the chosen face is
matched to the track by its dlib embedding: DESIGN §7 saw a nearest-centre tracker jump to the
wrong person when the downscaled detector missed a small face.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceworker.faces import FaceAnalyzer
from faceworker.frames import FrameLike, FrameView
from faceworker.geometry import landmark_bbox, procrustes_residual
from faceworker.smoothing import LandmarkSmoother
from faceworker.types import Face

SAME_PERSON_DIST = 0.6  # dlib's Euclidean same-person threshold
MAX_RESIDUAL = 0.12  # Procrustes residual vs the detected shape above which the track is lost
SELECTORS = ("one", "reference", "many")


@dataclass
class Track:
    track_id: int
    raw: np.ndarray  # last unsmoothed landmarks
    ref_shape: np.ndarray  # landmarks at the last detection (shape check)
    box_offset: np.ndarray  # detection box relative to the landmark box, in face-size units
    smoother: LandmarkSmoother
    embedding: np.ndarray | None = None
    score: float = 0.0
    smoothed: np.ndarray | None = None
    history: list[np.ndarray] = field(default_factory=list)


def _box_offset(det_box: tuple[int, int, int, int], lm: np.ndarray) -> np.ndarray:
    lx0, ly0, lx1, ly1 = landmark_bbox(lm)
    s = max(lx1 - lx0, ly1 - ly0, 1)
    return (np.asarray(det_box, np.float32) - [lx0, ly0, lx1, ly1]) / s


def _box_from(lm: np.ndarray, offset: np.ndarray) -> tuple[int, int, int, int]:
    lx0, ly0, lx1, ly1 = landmark_bbox(lm)
    s = max(lx1 - lx0, ly1 - ly0, 1)
    b = np.asarray([lx0, ly0, lx1, ly1], np.float32) + offset * s
    return tuple(int(round(v)) for v in b)  # type: ignore[return-value]


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


class FaceTracker:
    """Per-chunk face state: which face(s) to swap and their smoothed landmarks."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        selector: str = "one",
        reference_embedding: np.ndarray | None = None,
        redetect_every: int | None = None,
        fps: float = 25.0,
        smooth: bool = True,
    ) -> None:
        if selector not in SELECTORS:
            raise ValueError(f"face selector must be one of {SELECTORS}, not {selector!r}")
        if selector == "reference" and reference_embedding is None:
            raise ValueError("face selector 'reference' needs a reference embedding")
        self.analyzer = analyzer
        self.selector = selector
        self.reference = None if reference_embedding is None else np.asarray(reference_embedding, np.float32)
        self.redetect_every = max(1, int(redetect_every or analyzer.redetect_every))
        self.fps = fps
        self.smooth = smooth
        self.tracks: list[Track] = []
        self._since_detect = 0
        self._next_id = 0
        self.faces_in_frame = 0  # faces seen by the last detection
        self.detected_last = False

    # -- public ----------------------------------------------------------------------------
    def update(self, frame: FrameLike) -> list[Face]:
        """Faces to swap in this frame (smoothed landmarks), empty when none is found.

        `frame` is a BGR image or a FrameView; only the grey image is needed unless an identity
        embedding must be computed, and only then is an I420 frame converted to BGR.
        """
        view = FrameView.of(frame)
        gray = view.gray
        self.detected_last = False
        if self.tracks and self._since_detect < self.redetect_every - 1 and self._follow(gray):
            self._since_detect += 1
        else:
            self._detect(view, gray)
            self._since_detect = 0
            self.detected_last = True
        return [self._face(t) for t in self.tracks]

    # -- internals -------------------------------------------------------------------------
    def _follow(self, gray: np.ndarray) -> bool:
        """Re-find each track in a window around its last box; False when one is lost.

        A window detection (a few ms) rather than the landmark predictor alone: the predictor
        returns a plausible face shape wherever it is pointed, so it cannot notice a lost face.
        """
        h, w = gray.shape[:2]
        updated = []
        for t in self.tracks:
            box = _box_from(t.raw, t.box_offset)
            if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
                return False
            hit = self.analyzer.detect_near(gray, box)
            if hit is None:
                return False
            lm = self.analyzer.landmarks(gray, hit[0])
            if procrustes_residual(lm, t.ref_shape) > MAX_RESIDUAL:
                return False
            updated.append((lm, hit))
        for t, (lm, (box, score)) in zip(self.tracks, updated):
            t.box_offset = _box_offset(box, lm)
            t.score = score
            self._set(t, lm)
        return True

    def _set(self, t: Track, lm: np.ndarray) -> None:
        if t.smoothed is not None:
            jump = float(np.linalg.norm(lm.mean(0) - t.raw.mean(0)))
            size = float(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1]), 1.0))
            if jump > 0.5 * size:  # a different face or a cut: don't smear across it
                t.smoother.reset()
        t.raw = lm
        t.smoothed = t.smoother(lm) if self.smooth else lm

    def _new_track(self, face: Face) -> Track:
        t = Track(
            track_id=self._next_id,
            raw=face.landmarks,
            ref_shape=face.landmarks,
            box_offset=_box_offset(face.bbox, face.landmarks),
            smoother=LandmarkSmoother(self.fps),
            embedding=face.embedding,
            score=face.score,
        )
        self._next_id += 1
        self._set(t, face.landmarks)
        return t

    def _refresh(self, t: Track, face: Face) -> None:
        t.ref_shape = face.landmarks
        t.box_offset = _box_offset(face.bbox, face.landmarks)
        t.score = face.score
        if face.embedding is not None:
            t.embedding = face.embedding
        self._set(t, face.landmarks)

    def _embed(self, frame: FrameView, face: Face) -> np.ndarray:
        if face.embedding is None:
            self.analyzer.embed(frame.bgr(), face)
        assert face.embedding is not None
        return face.embedding

    def _detect(self, frame: FrameView, gray: np.ndarray) -> None:
        faces = self.analyzer.detect(gray)
        if self.selector == "reference":
            chosen = self._still_there(faces)
            if chosen is None:
                chosen = self._closest(frame, faces, self.reference)
            if chosen is None and self.analyzer.detect_scale < 1.0:
                # the downscaled detector misses small faces: look again at full scale
                faces = self.analyzer.detect(gray, scale=1.0)
                chosen = self._closest(frame, faces, self.reference)
            self.faces_in_frame = len(faces)
            self._assign([chosen] if chosen is not None else [])
            return
        self.faces_in_frame = len(faces)
        if self.selector == "one":
            if not faces:
                self.tracks = []
                return
            self._assign([self._pick_one(frame, gray, faces)])
            return
        for f in faces:
            self._embed(frame, f)
        self._assign(faces)

    def _still_there(self, faces: list[Face]) -> Face | None:
        """The one detection overlapping the single current track, if exactly one does (no embedding needed)."""
        if len(self.tracks) != 1:
            return None
        t = self.tracks[0]
        prev = _box_from(t.raw, t.box_offset)
        overlapping = [f for f in faces if _iou(prev, f.bbox) > 0.3]
        return overlapping[0] if len(overlapping) == 1 else None

    def _pick_one(self, frame: FrameView, gray: np.ndarray, faces: list[Face]) -> Face:
        """The tracked person if still there (by overlap when unambiguous, else by identity), else the largest face.

        Embeddings cost ~60 ms each, so they are computed only when overlap cannot decide.
        """
        if not self.tracks:
            self._embed(frame, faces[0])  # the track's identity, reused for id_dist_target
            return faces[0]
        t = self.tracks[0]
        kept = self._still_there(faces)
        if kept is not None:
            return kept
        if t.embedding is None:
            return faces[0]
        same = self._closest(frame, faces, t.embedding)
        if same is None and self.analyzer.detect_scale < 1.0:
            # our face may be too small for the downscaled pass (DESIGN §7): look at full scale
            full = self.analyzer.detect(gray, scale=1.0)
            same = self._closest(frame, full, t.embedding)
        if same is not None:
            return same
        self._embed(frame, faces[0])
        return faces[0]

    def _closest(self, frame: FrameView, faces: list[Face], ref: np.ndarray | None) -> Face | None:
        if ref is None or not faces:
            return None
        dists = [float(np.linalg.norm(self._embed(frame, f) - ref)) for f in faces]
        i = int(np.argmin(dists))
        return faces[i] if dists[i] < SAME_PERSON_DIST else None

    def _assign(self, faces: list[Face]) -> None:
        """Match detections to existing tracks (embedding first, then overlap); others start new tracks."""
        remaining = list(self.tracks)
        new_tracks: list[Track] = []
        for f in faces:
            best, best_score = None, 0.0
            for t in remaining:
                if t.embedding is not None and f.embedding is not None:
                    score = 1.0 - float(np.linalg.norm(t.embedding - f.embedding))
                    score = score if score > 1.0 - SAME_PERSON_DIST else 0.0
                else:
                    score = _iou(_box_from(t.raw, t.box_offset), f.bbox)
                if score > best_score:
                    best, best_score = t, score
            if best is not None:
                remaining.remove(best)
                self._refresh(best, f)
                new_tracks.append(best)
            else:
                new_tracks.append(self._new_track(f))
        self.tracks = new_tracks

    @staticmethod
    def _face(t: Track) -> Face:
        lm = t.smoothed if t.smoothed is not None else t.raw
        return Face(bbox=landmark_bbox(lm), landmarks=lm.astype(np.float32), score=t.score, embedding=t.embedding)
