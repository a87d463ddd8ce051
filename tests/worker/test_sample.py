"""Sample media: shipped faces, the default source choice, synthetic targets, sample orders with audio."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceworker import probe, sample


def test_shipped_faces() -> None:
    faces = sample.shipped_faces()
    assert set(faces) == {"astronaut", "tom_hanks", *(f"t1_{i}" for i in range(6))}
    assert faces["astronaut"].shape == (512, 512, 3) and faces["tom_hanks"].shape == (112, 112, 3)
    for name, img in faces.items():
        assert img.dtype == np.uint8 and img.ndim == 3 and min(img.shape[:2]) >= 100, name
    # copies: callers may scribble on them
    faces["astronaut"][:] = 0
    assert sample.shipped_faces()["astronaut"].any()


def test_t1_faces_are_distinct_people_left_to_right() -> None:
    """Each t1 crop holds one face, and the crops are different people (embedding distance > 0.6)."""
    from faceworker.faces import FaceAnalyzer

    fa = FaceAnalyzer(detect_scale=1.0)
    faces = sample.shipped_faces()
    embs = []
    for i in range(6):
        img = faces[f"t1_{i}"]
        found = fa.detect(img)
        assert found, f"t1_{i}"
        embs.append(fa.embed(img, found[0]))
    d = np.linalg.norm(np.asarray(embs)[:, None] - np.asarray(embs)[None], axis=-1)
    assert d[np.triu_indices(6, 1)].min() > 0.6


def test_default_source_is_the_largest_frontal_t1_face() -> None:
    from faceworker.faces import FaceAnalyzer

    fa = FaceAnalyzer(detect_scale=1.0)
    stats = {}
    for name, img in sample.shipped_faces().items():
        if name.startswith("t1_"):
            f = fa.detect(img)[0]
            stats[name] = (abs(FaceAnalyzer.yaw_deg(f)), f.size)
    frontal = {k: v for k, v in stats.items() if v[0] < 10}
    assert sample.DEFAULT_SOURCE in frontal
    assert stats[sample.DEFAULT_SOURCE][1] == max(v[1] for v in frontal.values())


def test_synth_target_frames_move_smoothly_and_keep_the_face_large() -> None:
    from faceworker.faces import FaceAnalyzer

    frames = sample.synth_target_frames(sample.shipped_faces()["astronaut"], 50, size=(1280, 720), seed=3)
    assert len(frames) == 50 and frames[0].shape == (720, 1280, 3)
    fa = FaceAnalyzer()
    boxes = []
    for f in frames[::7]:
        found = fa.detect(f)
        assert found
        boxes.append(found[0].bbox)
    heights = [b[3] - b[1] for b in boxes]
    assert min(heights) >= 180
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
    assert np.ptp(centres[:, 0]) > 20  # it moves...
    step = np.abs(np.diff(np.asarray(frames[:10], np.float32), axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < 25  # ...smoothly (consecutive frames stay close)
    again = sample.synth_target_frames(sample.shipped_faces()["astronaut"], 3, size=(1280, 720), seed=3)
    assert np.array_equal(again[2], frames[2])  # deterministic per seed


def test_build_sample_order_writes_video_with_audio(tmp_path: Path) -> None:
    res = sample.build_sample_order(tmp_path, source="tom_hanks", target="t1_0", seconds=0.8, size=(320, 240))
    assert Path(res["source"]).exists() and res["frames"] == 20
    pr = probe.probe(res["target"])
    assert (pr.width, pr.height) == (320, 240) and pr.frames == 20 and pr.audio
    assert pr.audio[0]["duration"] == pytest.approx(0.8, abs=0.05)


def test_unknown_face_and_bad_size(tmp_path: Path) -> None:
    from faceworker.errors import BadInput

    with pytest.raises(BadInput, match="unknown sample face"):
        sample.build_sample_order(tmp_path, source="nobody")
    with pytest.raises(BadInput, match="bad size"):
        sample.parse_size("641x360")
