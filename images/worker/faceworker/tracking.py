"""Follow the chosen face(s) between detections, by identity rather than by position.

Three kinds of frame (costs in the 720p swap pass, docs/engine.md):

- a full-frame HOG detection (~11 ms at half scale, +60 ms per embedding the decision needs; a
  new `one` track keeps only its aligned chip, embedded on first use): when
  there is no track, when a track is lost or doubtful, every `redetect_every` frames for `many`
  (new faces), and once a second of video for `one`/`reference` (re-anchors the box, refreshes
  the face count, lets identity correct a track that followed the wrong thing);
  `redetect_every=1` keeps meaning a full detection on every frame, for every selector;
- a HOG detection in a small window around each track (`detect_near`, ~1.1 ms), at least every
  `redetect_every` frames and whenever the cheap check below is in doubt;
- the other frames: the previous frame's landmarks moved by optical flow (pyramidal Lucas-Kanade
  on a grey crop around the face, ~0.7 ms), and a cheap appearance check: the grey 32x32 patch
  under the new landmarks must correlate (NCC) with the previous frame's patch (>= 0.90) and
  with the patch at the last HOG detection (>= 0.80), lie wholly inside the frame, and the
  shape must stay close to the detected one.

Why flow and not the 68-point predictor on those frames: the predictor walks a ~100 MB model, so
in the swap pass (whose warps and encoder evict the caches between calls) it cost 4-5 ms a call at
720p, the largest single item of the pass. On the sample order the flowed landmarks stay within
~1 px (mean) of the predictor's after 1 to 4 frames, as close as the predictor's own frame-to-frame
jitter, and every window detection (at least every `redetect_every` frames) puts the predictor's
landmarks back, so flow never runs longer than that. Only the inner points are flowed: the jaw
line lies on edges (the flow slides along them) and moves with the face instead (a similarity fit
on the flowed points), as do points the flow loses; when too many are lost the frame goes to the
window detection.

Flow and the predictor alone follow texture wherever it goes, so they cannot say a face is
gone; the patch can. Measured on the sample order and synthetic clips: a tracked face's patch
correlates >= 0.93 with the previous frame's (median 0.99, fast motion included); after a cut
to background or to someone elsewhere the patch under the predictor's landmarks gave <= 0.3, two
different people's faces aligned by their landmarks <= 0.61; a face reaching the frame edge has
no patch. Those frames go to the window detection, which says whether a face is there. The
window detection every `redetect_every` frames and the anchor patch catch slow changes (a
dissolve) that frame-to-frame correlation would follow.

At each full detection the chosen face is matched to the track by its dlib embedding: DESIGN §7
saw a nearest-centre tracker jump to the wrong person when the downscaled detector missed a small
face. When the window detection finds a face whose patch does not correlate with the last one
(< CUT_NCC: a cut, someone else now standing there), overlap with the old box is not trusted in
the full detection that follows: identity decides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from faceworker.faces import DeferredEmbedding, FaceAnalyzer, embedding_vector
from faceworker.frames import FrameLike, FrameView
from faceworker.geometry import apply_affine, landmark_bbox, procrustes_residual, similarity_transform
from faceworker.smoothing import LandmarkSmoother
from faceworker.spec import FACE_SELECTORS
from faceworker.types import Face

SAME_PERSON_DIST = 0.6  # dlib's Euclidean same-person threshold
MAX_RESIDUAL = 0.12  # Procrustes residual vs the detected shape above which the track is lost
GRAY_PAD = 0.6  # grey image kept valid this far (x face box) around a predictor call
SELECTORS = FACE_SELECTORS
# a track found again: its landmarks, its grey patch (None at the frame edge), the window detection
_Located = tuple[np.ndarray, np.ndarray | None, tuple[tuple[int, int, int, int], float] | None]

FULL_DETECT_S = 1.0  # one/reference: a full-frame detection at least this often (seconds of video)
PATCH = 32  # side of the grey appearance patch (px)
MIN_NCC_PREV = 0.90  # patch vs the previous frame's: below this the frame is re-detected by HOG
MIN_NCC_ANCHOR = 0.80  # patch vs the last HOG detection's: slow drift/dissolve guard
CUT_NCC = 0.70  # a window detection whose patch correlates less with the last: a cut, identity decides
MIN_GLIDE_SCORE = 0.3  # a track whose last HOG score is lower is re-detected by HOG on every frame
FLOW_PAD = 0.3  # the grey crop kept for the next frame's flow: the landmark box grown by this (x face size)
FLOW_WIN, FLOW_LEVELS = 21, 3  # Lucas-Kanade window (px) and pyramid levels (moves up to ~80 px a frame)
FLOWED = np.arange(17, 68)  # landmarks followed by flow (brows, eyes, nose, mouth); the jaw (0-16) moves rigidly
MIN_FLOW_POINTS = 42  # of those 51 the flow must find again, else the window detection decides
NEAR_MARGIN, NEAR_FACE_PX = 0.3, 90.0  # detect_near window for a tracked face: ~1.1 ms at 720p (0.8/100: 3.6 ms)


@dataclass
class Track:
    track_id: int
    raw: np.ndarray  # last unsmoothed landmarks
    ref_shape: np.ndarray  # landmarks at the last detection (shape check)
    box_offset: np.ndarray  # detection box relative to the landmark box, in face-size units
    smoother: LandmarkSmoother
    embedding: np.ndarray | DeferredEmbedding | None = None
    score: float = 0.0
    smoothed: np.ndarray | None = None
    history: list[np.ndarray] = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # centre motion, px/frame
    patch: np.ndarray | None = None  # normalised grey patch under the last landmarks
    anchor: np.ndarray | None = None  # the patch at the last HOG detection
    since_hog: int = 0  # frames since a HOG detection (window or full) confirmed this track
    flow_ref: tuple[np.ndarray, tuple[int, int]] | None = None  # grey crop around `raw`, its top-left corner


def _box_offset(det_box: tuple[int, int, int, int], lm: np.ndarray) -> np.ndarray:
    lx0, ly0, lx1, ly1 = landmark_bbox(lm)
    s = max(lx1 - lx0, ly1 - ly0, 1)
    return (np.asarray(det_box, np.float32) - [lx0, ly0, lx1, ly1]) / s


def _box_from(lm: np.ndarray, offset: np.ndarray) -> tuple[int, int, int, int]:
    lx0, ly0, lx1, ly1 = landmark_bbox(lm)
    s = max(lx1 - lx0, ly1 - ly0, 1)
    b = np.asarray([lx0, ly0, lx1, ly1], np.float32) + offset * s
    return tuple(int(round(v)) for v in b)  # type: ignore[return-value]  # four coordinates in, four out


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def _grown(box: tuple[int, int, int, int], frac: float) -> tuple[int, int, int, int]:
    """`box` grown by `frac` of its larger side on every side."""
    pad = int(np.ceil(frac * max(box[2] - box[0], box[3] - box[1], 1)))
    return box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad


def face_patch(gray: np.ndarray, lm: np.ndarray) -> np.ndarray | None:
    """Zero-mean, unit-norm PATCH x PATCH grey patch of the landmark box; None when the box is not
    wholly inside the frame or has no texture (then appearance cannot vouch for the track)."""
    x0, y0, x1, y1 = landmark_bbox(lm)
    h, w = gray.shape[:2]
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 8 or y1 - y0 < 8:
        return None
    p = cv2.resize(gray[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    n = float(np.sqrt((p * p).sum()))
    return p / n if n > 1e-3 * PATCH else None


def _flow_region(lm: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = _grown(landmark_bbox(lm), FLOW_PAD)
    h, w = shape
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def _flow_crop(frame: FrameView | np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The grey crop around `lm` the next frame's flow starts from (None: the face is off the frame)."""
    shape = frame.shape if isinstance(frame, FrameView) else frame.shape[:2]
    x0, y0, x1, y1 = _flow_region(lm, shape)
    if x1 - x0 < FLOW_WIN or y1 - y0 < FLOW_WIN:
        return None
    gray = frame.gray_covering((x0, y0, x1, y1)) if isinstance(frame, FrameView) else frame
    return np.ascontiguousarray(gray[y0:y1, x0:x1]), (x0, y0)


def _flowed(t: Track, view: FrameView) -> np.ndarray | None:
    """The track's landmarks moved into this frame: the inner points (brows, eyes, nose, mouth) by
    pyramidal Lucas-Kanade flow between the kept crop and the same region of this frame, starting
    from the face's last motion; the jaw line, which lies on edges and background the flow slides
    along, and any inner point the flow loses, follow the found points rigidly (similarity fit).
    None when fewer than MIN_FLOW_POINTS inner points are found."""
    assert t.flow_ref is not None
    before, (x0, y0) = t.flow_ref
    h, w = before.shape
    now = view.gray_covering((x0, y0, x0 + w, y0 + h))[y0:y0 + h, x0:x0 + w]
    origin = np.array([x0, y0], np.float32)
    inner = t.raw[FLOWED]
    pts = (inner - origin).astype(np.float32).reshape(-1, 1, 2)
    guess = (pts + t.velocity).astype(np.float32)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        before, np.ascontiguousarray(now), pts, guess, winSize=(FLOW_WIN, FLOW_WIN), maxLevel=FLOW_LEVELS,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03), flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    if moved is None or status is None:
        return None
    found = status.reshape(-1).astype(bool)
    if int(found.sum()) < MIN_FLOW_POINTS:
        return None
    moved = moved.reshape(-1, 2) + origin
    m = similarity_transform(inner[found], moved[found])
    lm = apply_affine(m, t.raw)  # every point moved with the face ...
    lm[FLOWED[found]] = moved[found]  # ... the inner ones the flow found by their own motion
    return lm.astype(np.float32)


def ncc(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Normalised cross-correlation of two face_patch results (-1 when either is missing)."""
    if a is None or b is None:
        return -1.0
    return float((a * b).sum())


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
        # `many` needs full detections to find new faces; `one`/`reference` only to re-anchor
        if selector == "many" or self.redetect_every == 1:
            self.full_every = self.redetect_every
        else:
            self.full_every = max(self.redetect_every, int(round(FULL_DETECT_S * fps)))
        # With no face in sight, the costly full-scale and upsampled fallbacks (~100 ms a 720p frame)
        # run only every `probe_every` frames (half a second); the cheap downscaled pass runs on
        # every frame, so a face of normal size is still picked up on the frame it appears.
        self.probe_every = max(self.redetect_every, int(round(0.5 * fps))) if self.redetect_every > 1 else 1
        self._empty_frames = 0
        self.fps = fps
        self.smooth = smooth
        self.tracks: list[Track] = []
        self._since_detect = 0
        self._next_id = 0
        self._cut = False
        self.faces_in_frame = 0  # faces seen by the last detection
        self.detected_last = False
        self.redetected_last = False  # the last full detection ran because a track was lost or doubtful
        self.counts = {"full": 0, "near": 0, "glide": 0}  # how each frame's tracks were found

    # -- public ----------------------------------------------------------------------------
    def update(self, frame: FrameLike) -> list[Face]:
        """Faces to swap in this frame (smoothed landmarks), empty when none is found.

        `frame` is a BGR image or a FrameView; only the grey image is needed unless an identity
        embedding must be computed, and only then is an I420 frame converted to BGR.
        """
        view = FrameView.of(frame)
        self.detected_last = False
        self.redetected_last = False
        self._cut = False
        due = not self.tracks or self._since_detect >= self.full_every - 1
        if not due and self._follow(view):
            self._since_detect += 1
        else:
            self.redetected_last = not due  # a track was lost or in doubt, not a periodic re-anchor
            self._detect(view, view.gray)
            self._empty_frames = 0 if self.tracks else self._empty_frames + 1
            self._since_detect = 0
            self.detected_last = True
            self.counts["full"] += 1
        return [self._face(t) for t in self.tracks]

    @property
    def cut_last(self) -> bool:
        """The last `update` saw a face that did not look like the previous frame's (a cut?)."""
        return self._cut

    # -- internals -------------------------------------------------------------------------
    def _follow(self, view: FrameView) -> bool:
        """Find each track again in this frame; False when one is lost (or doubtful after a
        window detection), which makes the caller run a full detection."""
        updated = []
        for t in self.tracks:
            found = None
            if t.since_hog + 1 < self.redetect_every:
                found = self._glide(view, t)
            if found is None:
                found = self._near(view, t)
                if found is None:
                    return False  # lost, or a cut (then identity decides in the full detection)
            updated.append((t, found))
        for t, (lm, patch, hit) in updated:
            if hit is None:
                t.since_hog += 1
                self.counts["glide"] += 1
            else:
                box, score = hit
                t.box_offset = _box_offset(box, lm)
                t.score = score
                t.anchor = patch
                t.since_hog = 0
                self.counts["near"] += 1
            t.patch = patch
            self._set(t, lm, view)
        return True

    def _glide(self, view: FrameView, t: Track) -> _Located | None:
        """Landmarks moved from the previous frame's by optical flow; None when the flow lost the
        face or the appearance or the shape check is in doubt."""
        if t.score < MIN_GLIDE_SCORE or t.patch is None or t.flow_ref is None:
            return None
        lm = _flowed(t, view)
        if lm is None:
            return None
        patch = face_patch(view.gray_covering(landmark_bbox(lm)), lm)
        if ncc(patch, t.patch) < MIN_NCC_PREV or ncc(patch, t.anchor) < MIN_NCC_ANCHOR:
            return None
        if procrustes_residual(lm, t.ref_shape) > MAX_RESIDUAL:
            return None
        return lm, patch, None

    def _near(self, view: FrameView, t: Track) -> _Located | None:
        """A HOG detection in a small window around the track, then landmarks in its box.

        Unlike the predictor alone (which returns a face-like shape anywhere) it says when the
        face is gone."""
        h, w = view.shape
        box = _box_from(t.raw + t.velocity, t.box_offset)
        if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
            return None
        gray = view.gray_covering(_grown(box, NEAR_MARGIN + 0.05))
        hit = self.analyzer.detect_near(gray, box, margin=NEAR_MARGIN, face_px=NEAR_FACE_PX)
        if hit is None:
            return None
        gray = view.gray_covering(_grown(hit[0], GRAY_PAD))
        lm = self.analyzer.landmarks(gray, hit[0])
        if procrustes_residual(lm, t.ref_shape) > MAX_RESIDUAL:
            return None
        patch = face_patch(gray, lm)
        if patch is not None and t.patch is not None and ncc(patch, t.patch) < CUT_NCC:
            self._cut = True  # a face here, but it does not look like the last frame's: a cut?
            return None
        return lm, patch, hit

    def _set(self, t: Track, lm: np.ndarray, frame: FrameView | np.ndarray) -> None:
        """Take `lm` as the track's landmarks in this frame (`frame`: its view, or a full grey image)."""
        size = float(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1]), 1.0))
        motion = (lm.mean(0) - t.raw.mean(0)).astype(np.float32)
        jump = float(np.linalg.norm(motion))
        if t.smoothed is not None and jump > 0.5 * size:  # a different face or a cut: don't smear across it
            t.smoother.reset()
        # constant-velocity prediction for the next frame's box; not across jumps
        t.velocity = motion if t.smoothed is not None and jump < 0.25 * size else np.zeros(2, np.float32)
        t.raw = lm
        t.smoothed = t.smoother(lm) if self.smooth else lm
        t.flow_ref = _flow_crop(frame, lm)

    def _new_track(self, face: Face, gray: np.ndarray) -> Track:
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
        t.patch = t.anchor = face_patch(gray, face.landmarks)
        self._set(t, face.landmarks, gray)
        return t

    def _refresh(self, t: Track, face: Face, gray: np.ndarray) -> None:
        t.ref_shape = face.landmarks
        t.box_offset = _box_offset(face.bbox, face.landmarks)
        t.score = face.score
        if face.embedding is not None:
            t.embedding = face.embedding
        t.patch = t.anchor = face_patch(gray, face.landmarks)
        t.since_hog = 0
        self._set(t, face.landmarks, gray)

    def _embed(self, frame: FrameView, face: Face) -> np.ndarray:
        if face.embedding is None:
            self.analyzer.with_landmarks(frame.gray, face)
            self.analyzer.embed(frame.bgr(), face)
        vec = embedding_vector(face.embedding)
        assert vec is not None
        return vec

    def _detect(self, frame: FrameView, gray: np.ndarray) -> None:
        # landmarks only for the faces that are kept (or embedded): the predictor is ~2 ms a face
        thorough = self._empty_frames % self.probe_every == 0
        faces = self.analyzer.detect(gray, landmarks=False, fallbacks=thorough)
        if self.selector == "reference":
            chosen = None if self._cut else self._still_there(faces)
            if chosen is None:
                chosen = self._closest(frame, faces, self.reference)
            if chosen is None and self.analyzer.detect_scale < 1.0 and thorough:
                # the downscaled detector misses small faces: look again at full scale
                faces = self.analyzer.detect(gray, scale=1.0, landmarks=False)
                chosen = self._closest(frame, faces, self.reference)
            self.faces_in_frame = len(faces)
            self._assign([chosen] if chosen is not None else [], gray)
            return
        self.faces_in_frame = len(faces)
        if self.selector == "one":
            if not faces:
                self.tracks = []
                return
            self._assign([self._pick_one(frame, gray, faces)], gray)
            return
        for f in faces:
            self._embed(frame, f)
        self._assign(faces, gray)

    def _still_there(self, faces: list[Face]) -> Face | None:
        """The one detection overlapping the single current track, if exactly one does (no embedding needed)."""
        if len(self.tracks) != 1:
            return None
        t = self.tracks[0]
        prev = _box_from(t.raw, t.box_offset)
        overlapping = [f for f in faces if _iou(prev, f.bbox) > 0.3]
        return overlapping[0] if len(overlapping) == 1 else None

    def _pick_one(self, frame: FrameView, gray: np.ndarray, faces: list[Face]) -> Face:
        """The tracked person if still there (by overlap when unambiguous and there was no cut,
        else by identity), else the largest face.

        Embeddings cost ~60 ms each, so they are computed only when overlap cannot decide.
        """
        if not self.tracks:
            # the track's identity (also the metrics' id_dist_target): kept as a chip, embedded only
            # when a later detection needs it or by the metrics pass
            self.analyzer.with_landmarks(frame.gray, faces[0])
            self.analyzer.embed_later(frame.bgr(), faces[0])
            return faces[0]
        t = self.tracks[0]
        kept = None if self._cut else self._still_there(faces)
        if kept is not None:
            return kept
        if t.embedding is None:
            return faces[0]
        same = self._closest(frame, faces, t.embedding)
        if same is None and self.analyzer.detect_scale < 1.0:
            # our face may be too small for the downscaled pass (DESIGN §7): look at full scale
            full = self.analyzer.detect(gray, scale=1.0, landmarks=False)
            same = self._closest(frame, full, t.embedding)
        if same is not None:
            return same
        self._embed(frame, faces[0])
        return faces[0]

    def _closest(self, frame: FrameView, faces: list[Face],
                 ref: np.ndarray | DeferredEmbedding | None) -> Face | None:
        ref = embedding_vector(ref) if faces else None
        if ref is None:
            return None
        dists = [float(np.linalg.norm(self._embed(frame, f) - ref)) for f in faces]
        i = int(np.argmin(dists))
        return faces[i] if dists[i] < SAME_PERSON_DIST else None

    def _assign(self, faces: list[Face], gray: np.ndarray) -> None:
        """Match detections to existing tracks (embedding first, then overlap); others start new tracks."""
        remaining = list(self.tracks)
        new_tracks: list[Track] = []
        for f in faces:
            self.analyzer.with_landmarks(gray, f)
            best, best_score = None, 0.0
            for t in remaining:
                if t.embedding is not None and f.embedding is not None:  # computes deferred ones only here
                    te, fe = embedding_vector(t.embedding), embedding_vector(f.embedding)
                    assert te is not None and fe is not None
                    score = 1.0 - float(np.linalg.norm(te - fe))
                    score = score if score > 1.0 - SAME_PERSON_DIST else 0.0
                else:
                    score = _iou(_box_from(t.raw, t.box_offset), f.bbox)
                if score > best_score:
                    best, best_score = t, score
            if best is not None:
                remaining.remove(best)
                self._refresh(best, f, gray)
                new_tracks.append(best)
            else:
                new_tracks.append(self._new_track(f, gray))
        self.tracks = new_tracks

    @staticmethod
    def _face(t: Track) -> Face:
        lm = t.smoothed if t.smoothed is not None else t.raw
        return Face(bbox=landmark_bbox(lm), landmarks=lm.astype(np.float32), score=t.score, embedding=t.embedding)
