"""GFPGAN-style enhancer: ONNX path on a real face (alignment, inference, masked paste-back, blend)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import onnx_builders as ob

from faceworker.align import ffhq_template, five_points
from faceworker.enhancers import get_enhancer
from faceworker.enhancers.gfpgan import OnnxGfpganEnhancer, import_gfpgan_arch
from faceworker.errors import BadInput
from faceworker.packs import sha256_file, write_manifest
from faceworker.types import Enhancer

OFFSET = (300, 20)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    pack = d / "gfpgan"
    ob.build_enhancer(pack / "GFPGANv1.4.onnx")
    write_manifest(pack, "gfpgan", {"enhancer": "GFPGANv1.4.onnx"}, extra={"enhancer": {"size": 512}})
    ob.make_pack(d, "full", enhancer=True)
    return d


@pytest.fixture(scope="module")
def frame_and_face():
    frame = ob.on_canvas(ob.astronaut_bgr(), x=OFFSET[0], y=OFFSET[1])
    return frame, ob.shift_face(ob.astronaut_face(), *OFFSET)


def test_registry(model_dir):
    assert get_enhancer("none", str(model_dir)) is None
    assert get_enhancer("", str(model_dir)) is None
    en = get_enhancer("gfpgan", str(model_dir))
    assert isinstance(en, OnnxGfpganEnhancer) and isinstance(en, Enhancer)
    assert en.name == "gfpgan:gfpgan" and en.size == 512
    assert get_enhancer("gfpgan:full", str(model_dir)).name == "gfpgan:full"
    with pytest.raises(BadInput, match="unknown enhancer"):
        get_enhancer("codeformer", str(model_dir))
    with pytest.raises(BadInput, match="not found"):
        get_enhancer("gfpgan:absent", str(model_dir))


def test_crop_is_ffhq_aligned(model_dir, frame_and_face):
    """Re-detect the face in the 512 crop: its five points sit on the FFHQ template."""
    frame, face = frame_and_face
    en = get_enhancer("gfpgan", str(model_dir))
    crop = en.crop(frame, face)
    found = ob.detect_faces(crop)
    assert found
    err = np.linalg.norm(five_points(found[0].landmarks) - ffhq_template(512), axis=1)
    assert err.max() < 25, err


def _face_mask(frame, face) -> np.ndarray:
    import cv2

    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(face.landmarks.astype(np.int32)), 255)
    return mask


def test_enhance_changes_only_inside_mask_with_model_effect(model_dir, frame_and_face):
    frame, face = frame_and_face
    en = get_enhancer("gfpgan", str(model_dir))
    mask = _face_mask(frame, face)
    before = frame.copy()
    out = en.enhance(frame, face, mask)
    assert np.array_equal(frame, before)
    outside = mask == 0
    assert np.array_equal(out[outside], frame[outside]), "pixels outside the face mask changed"
    inside = mask == 255
    delta = out[inside].astype(float) - frame[inside].astype(float)
    # the tiny model adds +0.08 to R and -0.08 to B in [-1,1] units (about +-10 grey levels): BGR order kept
    assert delta[:, 2].mean() > 6 and delta[:, 0].mean() < -6 and abs(delta[:, 1].mean()) < 4


def test_blend_strength(model_dir, frame_and_face):
    frame, face = frame_and_face
    mask = _face_mask(frame, face)
    inside = mask == 255
    full = get_enhancer("gfpgan", str(model_dir)).enhance(frame, face, mask)
    from faceworker.enhancers.gfpgan import load_gfpgan_enhancer

    half = load_gfpgan_enhancer("gfpgan", str(model_dir), blend=0.5).enhance(frame, face, mask)
    none = load_gfpgan_enhancer("gfpgan", str(model_dir), blend=0.0).enhance(frame, face, mask)
    assert np.array_equal(none, frame)
    d_full = np.abs(full[inside].astype(float) - frame[inside]).mean()
    d_half = np.abs(half[inside].astype(float) - frame[inside]).mean()
    assert 0.4 * d_full < d_half < 0.6 * d_full
    with pytest.raises(BadInput, match="blend"):
        load_gfpgan_enhancer("gfpgan", str(model_dir), blend=1.5)


def test_without_mask_stays_inside_the_crop(model_dir, frame_and_face):
    frame, face = frame_and_face
    out = get_enhancer("gfpgan", str(model_dir)).enhance(frame, face, None)
    changed = (out != frame).any(axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 1000
    x0, y0, x1, y1 = face.bbox
    w = x1 - x0
    # the FFHQ crop covers about 2.5 face widths around the face, never the far background
    assert xs.min() > x0 - 1.5 * w and xs.max() < x1 + 1.5 * w and ys.max() < y1 + 1.5 * w
    assert not changed[:, :100].any()


def test_wrong_enhancer_io_is_bad_input(tmp_path):
    pack = tmp_path / "gfpgan"
    ob.build_enhancer(pack / "GFPGANv1.4.onnx", size=256)
    write_manifest(pack, "gfpgan", {"enhancer": "GFPGANv1.4.onnx"}, extra={"enhancer": {"size": 512}})
    with pytest.raises(BadInput, match="manifest size 512 != model input size 256"):
        get_enhancer("gfpgan", str(tmp_path))
    m = json.loads((pack / "manifest.json").read_text())
    m["models"][0]["size"] = 256
    m["models"][0]["inputs"] = {"input": [1, 3, 512, 512]}
    (pack / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BadInput, match="input 'input' has shape"):
        get_enhancer("gfpgan", str(tmp_path))


def test_pth_only_pack_without_gfpgan_package(tmp_path):
    pack = tmp_path / "gfpgan"
    pack.mkdir()
    (pack / "GFPGANv1.4.pth").write_bytes(b"weights")
    (pack / "manifest.json").write_text(json.dumps({"name": "gfpgan", "models": [
        {"role": "enhancer", "file": "GFPGANv1.4.pth", "sha256": sha256_file(pack / "GFPGANv1.4.pth")}]}))
    if import_gfpgan_arch() is not None:
        pytest.skip("gfpgan imports here: the torch path would be taken")
    with pytest.raises(BadInput, match="add the ONNX export"):
        get_enhancer("gfpgan", str(tmp_path))


def test_gfpgan_package_not_importable_here():
    """Documents the measured fact: no torch in the worker venv, so the ONNX path is the one used."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("gfpgan") is None:
        assert import_gfpgan_arch() is None
    else:  # pragma: no cover - GPU image with the gfpgan extra
        assert import_gfpgan_arch() is not None
