"""FaceTracker between detections: the predictor + patch check on most frames, a window HOG
detection at least every `redetect_every` frames, a full detection about once a second, and
still on the very frame a face disappears (cut, leaving the frame) or someone else takes its place."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceworker.faces import FaceAnalyzer
from faceworker.geometry import procrustes_residual
from faceworker.sample import shipped_faces
from faceworker.tracking import PATCH, FaceTracker, face_patch, ncc

SIZE = (640, 360)


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    return shipped_faces()


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    """A textured, face-free background (smooth colour blobs + fine noise)."""
    rng = np.random.default_rng(7)
    w, h = SIZE[0] * 2, SIZE[1] * 2
    small = rng.integers(40, 215, size=(h // 40, w // 40, 3), dtype=np.uint8)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    bg += rng.normal(0, 8, (h, w, 1)).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


_CROPS: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def _face_crop(faces: dict[str, np.ndarray], name: str, face_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(photo scaled so its face is ~face_px, the face centre in it)."""
    key = (name, face_px)
    if key not in _CROPS:
        img = faces[name]
        f = FaceAnalyzer(detect_scale=1.0).detect(img)[0]
        s = face_px / f.size
        _CROPS[key] = (cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), f.landmarks.mean(0) * s)
    return _CROPS[key]


def _scene(bg: np.ndarray, faces: dict[str, np.ndarray], people: list[tuple[str, int, float, float]],
           pan: int = 0, scale: float = 1.0) -> np.ndarray:
    """A frame of the (slowly panning) background with each (name, face_px, cx, cy) pasted on it."""
    w, h = SIZE
    w, h = int(w * scale), int(h * scale)
    canvas = cv2.resize(bg[:SIZE[1], pan:pan + SIZE[0]], (w, h)) if scale != 1.0 else bg[:h, pan:pan + w].copy()
    for name, px, cx, cy in people:
        crop, centre = _face_crop(faces, name, px)
        x0, y0 = int(round(cx - centre[0])), int(round(cy - centre[1]))
        ch, cw = crop.shape[:2]
        ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(w, x0 + cw), min(h, y0 + ch)
        if ax1 > ax0 and ay1 > ay0:
            canvas[ay0:ay1, ax0:ax1] = crop[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
    return canvas


def _moving(bg, faces, n: int, name: str = "t1_0", px: int = 150, step: float = 4.0) -> list[np.ndarray]:
    return [_scene(bg, faces, [(name, px, 220 + step * i, 180 + 10 * np.sin(i / 4))], pan=i) for i in range(n)]


class _Counting(FaceAnalyzer):
    """A FaceAnalyzer that counts HOG passes (full and windowed) and predictor runs."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls = {"full": 0, "near": 0, "landmarks": 0}

    def detect_boxes(self, *a, **k):
        self.calls["full"] += 1
        return super().detect_boxes(*a, **k)

    def detect_near(self, *a, **k):
        self.calls["near"] += 1
        return super().detect_near(*a, **k)

    def landmarks(self, *a, **k):
        self.calls["landmarks"] += 1
        return super().landmarks(*a, **k)


def test_patch_and_ncc() -> None:
    rng = np.random.default_rng(0)
    gray = cv2.GaussianBlur(rng.integers(0, 255, (200, 300), dtype=np.uint8), (0, 0), 2)
    lm = np.stack(np.meshgrid(np.linspace(100, 180, 17), np.linspace(50, 130, 4)), -1).reshape(-1, 2)[:68]
    p = face_patch(gray, lm.astype(np.float32))
    assert p is not None and p.shape == (PATCH, PATCH)
    assert ncc(p, p) == pytest.approx(1.0, abs=1e-5)
    assert ncc(p, -p) == pytest.approx(-1.0, abs=1e-5)
    assert face_patch(gray, (lm + [250, 0]).astype(np.float32)) is None  # partly outside the frame
    assert face_patch(np.full((200, 300), 90, np.uint8), lm.astype(np.float32)) is None  # no texture
    assert ncc(None, p) == -1.0


def test_detect_without_landmarks_fills_them_on_demand(faces) -> None:
    a = FaceAnalyzer(detect_scale=1.0)
    img = faces["astronaut"]
    full = a.detect(img)
    lazy = a.detect(img, landmarks=False)
    assert [f.bbox for f in lazy] == [f.bbox for f in full]
    assert lazy[0].landmarks.shape == (0, 2)
    assert np.array_equal(a.with_landmarks(img, lazy[0]).landmarks, full[0].landmarks)


def test_most_frames_are_tracked_by_the_predictor_alone(background, faces) -> None:
    frames = _moving(background, faces, 30)
    analyzer = _Counting(detect_scale=0.5)
    tracker = FaceTracker(analyzer, "one", redetect_every=5, fps=25, smooth=False)
    truth = FaceAnalyzer(detect_scale=1.0)
    paths = []
    before = dict(tracker.counts)
    for f in frames:
        got = tracker.update(f)
        assert len(got) == 1
        ref = truth.detect(f)[0].landmarks
        assert np.sqrt(((got[0].landmarks - ref) ** 2).sum(1).mean()) < 4.0
        paths.append(next(k for k in tracker.counts if tracker.counts[k] != before[k]))
        before = dict(tracker.counts)
    assert paths[0] == "full" and paths.count("full") == 2  # frame 0 and once a second (frame 25)
    assert paths.count("glide") >= 20
    # a HOG detection (window or full) confirms the track at least every redetect_every frames
    run = 0
    for p in paths:
        run = run + 1 if p == "glide" else 0
        assert run < 5
    assert analyzer.calls["full"] == 2
    assert analyzer.calls["near"] <= 8
    assert analyzer.calls["landmarks"] <= 1.2 * len(frames)


def test_redetect_every_one_still_means_a_full_detection_on_every_frame(background, faces) -> None:
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=1)
    for f in _moving(background, faces, 4):
        assert len(tracker.update(f)) == 1 and tracker.detected_last
    assert tracker.counts == {"full": 4, "near": 0, "glide": 0}


@pytest.mark.parametrize("gone", ["background", "blank"])
def test_a_cut_to_a_frame_without_a_face_is_noticed_on_that_frame(background, faces, gone) -> None:
    frames = _moving(background, faces, 12)
    empty = _scene(background, faces, [], pan=3) if gone == "background" else np.full_like(frames[0], 90)
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=5)
    for f in frames[:3]:
        assert len(tracker.update(f)) == 1
    assert tracker.counts["glide"] == 2  # so the next frame would be a predictor-only frame
    assert tracker.update(empty) == []
    for f in frames[4:]:  # the face comes back: found again, then tracked
        assert len(tracker.update(f)) == 1


def test_a_face_leaving_the_frame_is_dropped_when_it_is_gone(background, faces) -> None:
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=5, smooth=False)
    for i in range(30):
        cx = 320 + max(0, i - 4) * 30.0  # still, then leaving to the right at 30 px/frame
        got = tracker.update(_scene(background, faces, [("t1_3", 150, cx, 180)]))
        if cx - 75 >= SIZE[0]:  # the whole face box is out of the frame
            assert got == [], i
        elif cx + 75 <= SIZE[0]:  # the whole face box is in the frame
            assert len(got) == 1, i
        if got:  # never left behind at the border
            assert abs(float(got[0].landmarks[:, 0].mean()) - cx) < 30, i


@pytest.mark.parametrize("redetect_every", [5, 100])
def test_a_dissolve_to_background_is_dropped(background, faces, redetect_every) -> None:
    """Frame to frame a slow dissolve looks alike; the patch at the last HOG detection does not
    (redetect_every=100: no periodic window detection to fall back on)."""
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=redetect_every)
    face = _scene(background, faces, [("t1_0", 150, 300, 180)])
    empty = _scene(background, faces, [])
    frames = 25
    for i in range(4 + frames + 6):
        t = min(1.0, max(0.0, (i - 4) / frames))
        got = tracker.update(cv2.addWeighted(face, 1 - t, empty, t, 0))
        if i < 6:
            assert len(got) == 1
        if i >= 4 + frames + 5:  # background only, for 5 frames
            assert all(abs(float(g.landmarks[:, 0].mean()) - 300) > 75 for g in got), i


def test_one_keeps_its_person_when_a_cut_puts_someone_else_in_their_place(background, faces) -> None:
    """A window detection alone would take the stranger standing where our face was; the patch no
    longer correlates, so identity decides instead of overlap."""
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=5)
    for i in range(7):
        assert len(tracker.update(_scene(background, faces, [("t1_0", 150, 200 + 2 * i, 180)]))) == 1
    for i in range(7, 20):
        got = tracker.update(_scene(background, faces, [("t1_3", 150, 200 + 2 * i, 180), ("t1_0", 140, 470, 190)]))
        assert len(got) == 1
        assert abs(float(got[0].landmarks[:, 0].mean()) - 470) < 40, i


def test_many_finds_a_new_face_within_redetect_every_frames(background, faces) -> None:
    tracker = FaceTracker(FaceAnalyzer(), "many", redetect_every=3)
    assert tracker.full_every == 3  # `many` needs full detections to see new faces
    for i in range(4):
        assert len(tracker.update(_scene(background, faces, [("t1_0", 150, 200 + 2 * i, 180)]))) == 1
    counts = []
    for i in range(4, 10):  # a second person walks in on frame 4 (a tracked frame)
        counts.append(len(tracker.update(
            _scene(background, faces, [("t1_0", 150, 200 + 2 * i, 180), ("t1_3", 150, 470, 190)]))))
    assert counts == [1, 1, 2, 2, 2, 2]  # found by the full detection on frame 6, then tracked


def test_fast_motion_is_followed(background, faces) -> None:
    """25 px/frame (a face crossing a 640 px frame in one second): doubtful frames fall back to HOG."""
    frames = _moving(background, faces, 14, step=25.0)
    tracker = FaceTracker(FaceAnalyzer(), "one", redetect_every=5, smooth=False)
    truth = FaceAnalyzer(detect_scale=1.0)
    for f in frames:
        got = tracker.update(f)
        assert len(got) == 1
        ref = truth.detect(f)[0].landmarks
        assert np.sqrt(((got[0].landmarks - ref) ** 2).sum(1).mean()) < 6.0
        assert procrustes_residual(got[0].landmarks, ref) < 0.05


class _CountingFallbacks(FaceAnalyzer):
    """Counts HOG passes that may fall back to full scale / upsampling (the ~100 ms ones)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.thorough = 0
        self.quick = 0

    def detect_boxes(self, gray, scale=None, fallbacks=True):
        if fallbacks:
            self.thorough += 1
        else:
            self.quick += 1
        return super().detect_boxes(gray, scale, fallbacks)


def test_face_less_stretches_run_the_costly_fallbacks_only_every_half_second(background, faces) -> None:
    analyzer = _CountingFallbacks()
    tracker = FaceTracker(analyzer, "one", redetect_every=5, fps=25.0)
    assert tracker.probe_every == 12
    empty = [_scene(background, faces, [], pan=i) for i in range(25)]
    for f in empty:
        assert tracker.update(f) == []
    assert analyzer.thorough == 3 and analyzer.quick == 22  # frames 0, 12, 24
    # a face of normal size appearing mid-stretch is found by the quick pass on that very frame
    assert len(tracker.update(_scene(background, faces, [("t1_0", 150, 300, 180)], pan=26))) == 1
    # redetect_every=1 (the reswap's thorough mode) keeps every fallback on every frame
    strict = _CountingFallbacks()
    t1 = FaceTracker(strict, "one", redetect_every=1, fps=25.0)
    for f in empty[:4]:
        t1.update(f)
    assert strict.thorough == 4 and strict.quick == 0


def test_track_identity_is_embedded_only_when_needed(background, faces) -> None:
    """`one` keeps its face's identity as a chip (DeferredEmbedding): nothing is embedded while
    overlap decides; the value equals an eager embedding, and the metrics pass submits it once."""
    from faceworker.faces import ChipEmbedder, DeferredEmbedding

    analyzer = FaceAnalyzer()
    tracker = FaceTracker(analyzer, "one", fps=25.0)
    frames = _moving(background, faces, 30)
    for f in frames:
        assert tracker.update(f)
    ident = tracker.tracks[0].embedding
    assert isinstance(ident, DeferredEmbedding) and ident._value is None  # never needed in 30 frames
    first = FaceAnalyzer().detect(frames[0])[0]
    eager = analyzer.embed(frames[0], first)
    with ChipEmbedder(0) as embedder:
        fut = ident.future(embedder)
        assert ident.future(embedder) is fut  # one submission per track, however many frames ask
        assert np.linalg.norm(fut.result()[0] - eager) < 0.05  # same person, same frame (landmarks may differ a little)
    assert ident.value() is fut.result()[0]
