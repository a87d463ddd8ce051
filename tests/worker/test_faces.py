"""Detection, landmarks, embeddings, source-face selection and tracking on shipped faces."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceworker import models
from faceworker.errors import BadInput
from faceworker.faces import FaceAnalyzer
from faceworker.geometry import JAW, MOUTH, estimate_yaw_deg
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.source import load_source_face
from faceworker.tracking import FaceTracker


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    return shipped_faces()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(detect_scale=1.0)


@pytest.fixture(scope="module")
def group() -> np.ndarray:
    from faceworker.sample import insightface_images_dir

    img = cv2.imread(str(insightface_images_dir() / "t1.jpg"))
    assert img is not None
    return img


def test_models_found_without_importing_package() -> None:
    import sys

    assert models.model_path("shape68").is_file()
    assert models.model_path("resnet").stat().st_size > 20_000_000
    assert "face_recognition_models" not in sys.modules


def test_astronaut_one_face_with_sane_landmarks(faces, analyzer) -> None:
    img = faces["astronaut"]
    found = analyzer.detect(img)
    assert len(found) == 1
    f = found[0]
    x0, y0, x1, y1 = f.bbox
    assert 150 < x0 < 220 and 60 < y0 < 110 and 60 < f.size < 140  # her face, not the flag or the helmet
    lm = f.landmarks
    assert lm.shape == (68, 2)
    eyes_y = lm[36:48, 1].mean()
    assert lm[17:27, 1].mean() < eyes_y < lm[30, 1] < lm[MOUTH, 1].mean() < lm[8, 1]  # brows, eyes, nose, mouth, chin
    assert lm[JAW[0], 0] < lm[30, 0] < lm[JAW[-1], 0]
    assert abs(estimate_yaw_deg(lm)) < 15


def test_group_photo_finds_all_six_at_full_scale(group, analyzer) -> None:
    assert len(analyzer.detect(group)) == 6


def test_downscaled_detection_falls_back_when_nothing_found(faces) -> None:
    small = cv2.resize(faces["astronaut"], (256, 256), interpolation=cv2.INTER_AREA)  # face ~50 px
    a = FaceAnalyzer(detect_scale=0.5)
    assert a._detect_rects(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), 0.5, 0) == []
    assert len(a.detect(small)) == 1  # found by the full-scale/upsampled fallback


def test_blank_image_has_no_face(analyzer) -> None:
    assert analyzer.detect(np.full((360, 640, 3), 127, np.uint8)) == []


def test_embedding_dim_and_identity(faces, analyzer) -> None:
    rec = analyzer.recognizer
    assert rec.name == "dlib_resnet_v1" and rec.dim == 128
    a = faces["t1_2"]
    fa = analyzer.detect(a)[0]
    e1 = rec.embed(a, fa)
    flipped = cv2.flip(a, 1)
    e2 = rec.embed(flipped, analyzer.detect(flipped)[0])
    b = faces["astronaut"]
    e3 = rec.embed(b, analyzer.detect(b)[0])
    assert e1.shape == (128,) and e1.dtype == np.float32
    assert np.linalg.norm(e1 - e2) < 0.45 < np.linalg.norm(e1 - e3)


def test_source_selector_only_rejects_several_faces(group) -> None:
    with pytest.raises(BadInput, match="6 faces"):
        load_source_face(group, selector="only")
    src = load_source_face(group, selector="largest")
    assert src.face.size == max(f.size for f in FaceAnalyzer(detect_scale=1.0).detect(group))
    assert src.embedding.shape == (128,)


def test_source_without_face_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no face"):
        load_source_face(np.full((200, 200, 3), 90, np.uint8))
    with pytest.raises(BadInput, match="selector"):
        load_source_face(shipped_faces()["astronaut"], selector="smallest")


def test_turned_head_source_warns_not_fails(faces) -> None:
    turned = load_source_face(faces["t1_4"])  # ~50° yaw
    frontal = load_source_face(faces["t1_2"])
    assert "extreme_yaw_source" in turned.warnings
    assert "extreme_yaw_source" not in frontal.warnings


def test_yaw_sign_follows_mirroring(faces, analyzer) -> None:
    img = faces["t1_4"]
    y1 = analyzer.yaw_deg(analyzer.detect(img)[0])
    y2 = analyzer.yaw_deg(analyzer.detect(cv2.flip(img, 1))[0])
    assert abs(y1) > 30 and abs(y2) > 30 and np.sign(y1) != np.sign(y2)


def test_tracker_follows_moving_face_cheaply(faces) -> None:
    frames = synth_target_frames(faces["t1_0"], 12, (640, 360), 25, 1)
    ref = FaceAnalyzer(detect_scale=1.0)
    tracker = FaceTracker(FaceAnalyzer(detect_scale=0.5), "one", redetect_every=6, smooth=False)
    detections = 0
    for f in frames:
        got = tracker.update(f)
        detections += tracker.detected_last
        truth = ref.detect(f)[0].landmarks
        assert len(got) == 1
        assert np.sqrt(((got[0].landmarks - truth) ** 2).sum(1).mean()) < 4.0
    assert detections <= 3  # frames 0 and 6 (+ at most one re-acquisition)


def test_tracker_reference_picks_the_right_person(group) -> None:
    a = FaceAnalyzer(detect_scale=1.0)
    people = sorted(a.detect(group), key=lambda f: f.bbox[0])
    want = people[3]
    ref = a.embed(group, want)
    tracker = FaceTracker(a, "reference", reference_embedding=ref)
    got = tracker.update(group)
    assert len(got) == 1
    assert np.abs(got[0].landmarks - want.landmarks).max() < 1.0
    many = FaceTracker(a, "many").update(group)
    assert len(many) == 6
    one = FaceTracker(a, "one").update(group)
    largest = max(people, key=lambda f: f.size)
    assert len(one) == 1 and np.abs(one[0].landmarks - largest.landmarks).max() < 1.0


def test_tracker_reference_none_when_person_absent(faces) -> None:
    a = FaceAnalyzer(detect_scale=1.0)
    ast = faces["astronaut"]
    ref = a.embed(ast, a.detect(ast)[0])
    tracker = FaceTracker(a, "reference", reference_embedding=ref)
    assert tracker.update(faces["t1_2"]) == []
    assert tracker.update(ast) != []


def test_selector_validation() -> None:
    with pytest.raises(ValueError):
        FaceTracker(FaceAnalyzer(), "all")
    with pytest.raises(ValueError):
        FaceTracker(FaceAnalyzer(), "reference")


def _place(canvas: np.ndarray, img: np.ndarray, face_px: int, centre: tuple[int, int]) -> None:
    """Paste `img` scaled so its detected face is ~face_px wide, centred at `centre`."""
    f = FaceAnalyzer(detect_scale=1.0).detect(img)[0]
    s = face_px / f.size
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    fc = f.landmarks.mean(0) * s
    x0, y0 = int(centre[0] - fc[0]), int(centre[1] - fc[1])
    h, w = small.shape[:2]
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(canvas.shape[1], x0 + w), min(canvas.shape[0], y0 + h)
    canvas[cy0:cy1, cx0:cx1] = small[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def test_one_selector_keeps_identity_when_a_bigger_face_appears(faces) -> None:
    """DESIGN §7: the half-scale pass misses a small face; position alone would jump to the other person."""
    a, b = faces["t1_2"], faces["astronaut"]
    f1 = np.full((720, 1280, 3), 60, np.uint8)
    _place(f1, a, 200, (400, 360))
    f2 = np.full((720, 1280, 3), 60, np.uint8)
    _place(f2, a, 70, (250, 200))  # ours, now small (missed at 0.5x) and elsewhere
    _place(f2, b, 220, (950, 380))  # someone else, big
    half = FaceAnalyzer(detect_scale=0.5)
    assert len(half.detect(f2)) == 1  # the premise: only the big stranger is seen at 0.5x
    tracker = FaceTracker(half, "one", redetect_every=1, smooth=False)
    assert len(tracker.update(f1)) == 1
    got = tracker.update(f2)
    assert len(got) == 1
    centre = got[0].landmarks.mean(0)
    assert np.linalg.norm(centre - [250, 200]) < 40  # still our person, not the stranger at (950, 380)


def test_hog_detector_saved_once_loads_the_same_detector(tmp_path, monkeypatch) -> None:
    """The detector is built once, saved to the cache and loaded from it by later processes;
    the loaded one finds exactly the same boxes, and a corrupt cache file is rebuilt."""
    import dlib
    from skimage import data

    from faceworker import models

    monkeypatch.setenv("FACEFACTORY_CACHE_DIR", str(tmp_path))
    image = data.astronaut()
    models.hog_detector.cache_clear()
    built = models.hog_detector()
    saved = list(tmp_path.glob("*.svm"))
    assert len(saved) == 1
    models.hog_detector.cache_clear()
    loaded = models.hog_detector()
    assert [str(r) for r in loaded(image, 1)] == [str(r) for r in built(image, 1)]
    assert [str(r) for r in loaded(image, 1)] == [str(r) for r in dlib.get_frontal_face_detector()(image, 1)]
    saved[0].write_bytes(b"not a detector")
    models.hog_detector.cache_clear()
    rebuilt = models.hog_detector()
    assert len(rebuilt(image, 0)) >= 1 and saved[0].stat().st_size > 1000
    models.hog_detector.cache_clear()
