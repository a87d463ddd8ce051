"""ONNX model packs end to end on real faces: manifest checks, providers, alignment, ArcFace, inswapper."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
import onnx_builders as ob

from faceworker.align import (
    align_crop,
    arcface_template,
    ffhq_template,
    five_points,
    paste_back,
    similarity_transform,
    transform_points,
)
from faceworker.errors import BadInput
from faceworker.onnx_runtime import CPU, CUDA, RuntimeConfig, choose_providers, create_session
from faceworker.packs import load_pack, sha256_file
from faceworker.packs import main as packs_main
from faceworker.recognizers import load_pack_recognizer
from faceworker.swappers import get_swapper
from faceworker.swappers.inswapper import InswapperSwapper
from faceworker.types import FaceSwapper, Recognizer, SourceFace

OFFSET = (300, 20)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    ob.make_pack(d, "tinyswap")
    return d


@pytest.fixture(scope="module")
def frame_and_face():
    frame = ob.on_canvas(ob.astronaut_bgr(), x=OFFSET[0], y=OFFSET[1])
    return frame, ob.shift_face(ob.astronaut_face(), *OFFSET)


@pytest.fixture(scope="module")
def group():
    img = ob.insightface_image("t1.jpg")
    faces = ob.detect_faces(img)
    assert len(faces) >= 4
    return img, faces


@pytest.fixture(scope="module")
def source(group) -> SourceFace:
    img, faces = group
    return SourceFace(image_bgr=img, face=faces[0], embedding=np.zeros(128, np.float32))


def _copy_pack(src: Path, dst_root: Path, name: str) -> Path:
    dst = dst_root / name
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["name"] = name
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _edit_manifest(pack: Path, fn) -> None:
    m = json.loads((pack / "manifest.json").read_text())
    fn(m)
    (pack / "manifest.json").write_text(json.dumps(m))


# -- manifest ---------------------------------------------------------------------------------
def test_load_pack_reads_roles_hashes_and_io(model_dir):
    pack = load_pack(model_dir, "tinyswap")
    assert {m.role for m in pack.models} == {"swapper", "recognizer"}
    sw = pack.require("swapper")
    assert sw.inputs == {"target": ["N", 3, 128, 128], "source": ["N", 512]}
    assert sw.sha256 == sha256_file(sw.path)
    with pytest.raises(BadInput, match="no enhancer"):
        pack.require("enhancer")


def test_default_model_dir_from_env(model_dir, monkeypatch):
    monkeypatch.setenv("FACEFACTORY_MODEL_DIR", str(model_dir))
    assert load_pack(None, "tinyswap").root == model_dir / "tinyswap"


def test_unknown_pack_lists_available(model_dir):
    with pytest.raises(BadInput, match=r"not found.*packs there: tinyswap"):
        load_pack(model_dir, "nosuchpack")
    with pytest.raises(BadInput, match="invalid"):
        load_pack(model_dir, "../etc")


def test_sha256_mismatch_and_corrupt_file(model_dir, tmp_path):
    pack = _copy_pack(model_dir / "tinyswap", tmp_path, "p1")
    _edit_manifest(pack, lambda m: m["models"][0].__setitem__("sha256", "0" * 64))
    with pytest.raises(BadInput, match="sha256 mismatch"):
        load_pack(tmp_path, "p1")
    pack2 = _copy_pack(model_dir / "tinyswap", tmp_path, "p2")
    with (pack2 / "w600k_r50.onnx").open("ab") as fh:  # truncated/appended download
        fh.write(b"\0")
    with pytest.raises(BadInput, match=r"sha256 mismatch for w600k_r50.onnx"):
        load_pack(tmp_path, "p2")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["models"][0].__setitem__("file", "gone.onnx"), "does not exist"),
        (lambda m: m["models"][0].__setitem__("file", "../../outside.onnx"), "inside the pack"),
        (lambda m: m["models"][0].__setitem__("role", "upscaler"), "role 'upscaler'"),
        (lambda m: m["models"][0].pop("sha256"), "sha256"),
        (lambda m: m.__setitem__("models", []), "non-empty list"),
        (lambda m: m["models"].append(dict(m["models"][0])), "more than one swapper"),
        (lambda m: m["models"][0].__setitem__("inputs", {"target": [1, 3, -1]}), "bad dimension"),
        (lambda m: m.__setitem__("name", "other"), "does not match"),
    ],
)
def test_manifest_errors_are_bad_input(model_dir, tmp_path, edit, message):
    pack = _copy_pack(model_dir / "tinyswap", tmp_path, "bad")
    _edit_manifest(pack, edit)
    with pytest.raises(BadInput, match=message):
        load_pack(tmp_path, "bad")


def test_manifest_not_json(model_dir, tmp_path):
    pack = _copy_pack(model_dir / "tinyswap", tmp_path, "bad")
    (pack / "manifest.json").write_text("{nope")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_pack(tmp_path, "bad")


def test_io_mismatch_with_session_is_bad_input(model_dir, tmp_path, source):
    # manifest claims inswapper's 128 input, but the file is a 64x64 model
    pack = _copy_pack(model_dir / "tinyswap", tmp_path, "wrongsize")
    ob.build_swapper(pack / "inswapper_128.onnx", size=64)
    _edit_manifest(pack, lambda m: m["models"][0].update(
        sha256=sha256_file(pack / "inswapper_128.onnx"),
        inputs={"target": ["N", 3, 128, 128], "source": ["N", 512]}))
    with pytest.raises(BadInput, match=r"input 'target' has shape \['N', 3, 64, 64\], manifest says"):
        get_swapper("wrongsize", str(tmp_path))
    # renamed input
    pack2 = _copy_pack(model_dir / "tinyswap", tmp_path, "wrongname")
    ob.build_swapper(pack2 / "inswapper_128.onnx", source_name="latent")
    _edit_manifest(pack2, lambda m: m["models"][0].update(sha256=sha256_file(pack2 / "inswapper_128.onnx")))
    with pytest.raises(BadInput, match="input names"):
        get_swapper("wrongname", str(tmp_path))


def test_swapper_with_wrong_signature_is_bad_input(model_dir, tmp_path):
    from faceworker.packs import write_manifest

    pack = tmp_path / "dims"
    ob.build_swapper(pack / "inswapper_128.onnx", dim=256)  # source [N,256] but ArcFace gives 512
    ob.build_recognizer(pack / "w600k_r50.onnx")
    write_manifest(pack, "dims", {"swapper": "inswapper_128.onnx", "recognizer": "w600k_r50.onnx"})
    with pytest.raises(BadInput, match="512-D embeddings, swapper wants 256-D"):
        get_swapper("dims", str(tmp_path))
    pack2 = tmp_path / "norec"
    ob.build_swapper(pack2 / "inswapper_128.onnx")
    write_manifest(pack2, "norec", {"swapper": "inswapper_128.onnx"})
    with pytest.raises(BadInput, match="no recognizer"):
        get_swapper("norec", str(tmp_path))


def test_fp16_input_is_bad_input(model_dir, tmp_path):
    pack = _copy_pack(model_dir / "tinyswap", tmp_path, "fp16")
    ob.build_swapper(pack / "inswapper_128.onnx", target_type=onnx.TensorProto.FLOAT16)
    _edit_manifest(pack, lambda m: m["models"][0].update(sha256=sha256_file(pack / "inswapper_128.onnx")))
    with pytest.raises(BadInput, match=r"input 'target' is tensor\(float16\), only float32"):
        get_swapper("fp16", str(tmp_path))


def test_packs_cli_make_and_check(tmp_path, capsys):
    pack = tmp_path / "cli"
    ob.build_swapper(pack / "inswapper_128.onnx")
    ob.build_recognizer(pack / "w600k_r50.onnx")
    assert packs_main(["make", str(pack), "--swapper", "inswapper_128.onnx", "--recognizer", "w600k_r50.onnx"]) == 0
    assert packs_main(["check", "cli", "--model-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is True
    (pack / "w600k_r50.onnx").write_bytes(b"changed")
    assert packs_main(["check", "cli", "--model-dir", str(tmp_path)]) == 2
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["ok"] is False and "sha256 mismatch" in res["error"]


# -- providers ----------------------------------------------------------------------------------
def test_choose_providers():
    assert choose_providers("auto", [CPU]) == ([CPU], None)
    assert choose_providers("auto", [CUDA, CPU]) == ([CUDA, CPU], None)
    assert choose_providers("cpu", [CUDA, CPU]) == ([CPU], None)
    providers, warning = choose_providers("cuda", [CPU])
    assert providers == [CPU] and "onnxruntime-gpu" in warning


def test_runtime_config_from_env():
    cfg = RuntimeConfig.from_env({"FACEFACTORY_EXECUTION_PROVIDER": "CUDA", "FACEFACTORY_ORT_INTRA_THREADS": "2"})
    assert cfg.provider == "cuda" and cfg.intra_op_threads == 2
    with pytest.raises(BadInput, match="FACEFACTORY_EXECUTION_PROVIDER"):
        RuntimeConfig.from_env({"FACEFACTORY_EXECUTION_PROVIDER": "tpu"})
    with pytest.raises(BadInput, match="not a whole number"):
        RuntimeConfig.from_env({"FACEFACTORY_ORT_INTRA_THREADS": "many"})


def _log_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_session_logs_provider(model_dir, capsys):
    path = model_dir / "tinyswap" / "w600k_r50.onnx"
    sess = create_session(path, RuntimeConfig(provider="auto", intra_op_threads=1), role="recognizer")
    assert sess.get_providers()[0] == CPU  # no GPU on this machine
    events = [e for e in _log_lines(capsys.readouterr().err) if e["event"] == "onnx_session"]
    assert events and events[-1]["provider"] == CPU and events[-1]["role"] == "recognizer"


def test_cuda_requested_without_gpu_warns_and_uses_cpu(model_dir, capsys):
    sess = create_session(model_dir / "tinyswap" / "w600k_r50.onnx", RuntimeConfig(provider="cuda"),
                          available=lambda: [CPU])
    assert sess.get_providers() == [CPU]
    events = {e["event"]: e for e in _log_lines(capsys.readouterr().err)}
    assert events["onnx_provider_unavailable"]["level"] == "warning"
    assert events["onnx_session"]["provider"] == CPU


def test_cuda_init_failure_falls_back_to_cpu(model_dir, capsys):
    calls = []

    def factory(path, sess_options, providers):
        calls.append(providers)
        if any(p == CUDA or (isinstance(p, tuple) and p[0] == CUDA) for p in providers):
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return ort.InferenceSession(path, sess_options=sess_options, providers=providers)

    sess = create_session(model_dir / "tinyswap" / "w600k_r50.onnx", RuntimeConfig(provider="auto"),
                          available=lambda: [CUDA, CPU], factory=factory)
    assert sess.get_providers() == [CPU]
    assert calls[0][0] == (CUDA, {"device_id": 0}) and calls[1] == [CPU]
    events = {e["event"]: e for e in _log_lines(capsys.readouterr().err)}
    assert "no CUDA-capable device" in events["onnx_cuda_fallback"]["message"]
    assert events["onnx_session"]["provider"] == CPU


def test_session_cpu_env_skips_cuda(model_dir, monkeypatch):
    monkeypatch.setenv("FACEFACTORY_EXECUTION_PROVIDER", "cpu")
    seen = []

    def factory(path, sess_options, providers):
        seen.append(providers)
        return ort.InferenceSession(path, sess_options=sess_options, providers=providers)

    create_session(model_dir / "tinyswap" / "w600k_r50.onnx", available=lambda: [CUDA, CPU], factory=factory)
    assert seen == [[CPU]]


def test_unloadable_model_is_bad_input(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(BadInput, match="cannot load ONNX"):
        create_session(bad, RuntimeConfig())


# -- alignment ----------------------------------------------------------------------------------
def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (5, 2))
    a = np.deg2rad(23.0)
    m = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 40.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -12.0]])
    got = similarity_transform(src, transform_points(src, m))
    np.testing.assert_allclose(got, m, atol=1e-4)


def test_five_points_from_dlib_68(frame_and_face):
    _, face = frame_and_face
    pts = five_points(face.landmarks)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    with pytest.raises(ValueError):
        five_points(np.zeros((10, 2)))


def test_templates():
    np.testing.assert_allclose(arcface_template(224), arcface_template(112) * 2)
    # inswapper's 128 crop: same scale as 112's, shifted 8 px right
    np.testing.assert_allclose(arcface_template(128) - arcface_template(112), [[8, 0]] * 5, atol=1e-5)
    np.testing.assert_allclose(ffhq_template(256), ffhq_template(512) / 2)


@pytest.mark.parametrize("template_fn, size, upscale", [(ffhq_template, 512, 1), (arcface_template, 128, 3)])
def test_aligned_crop_has_the_face_where_the_template_says(frame_and_face, template_fn, size, upscale):
    """Independent check: re-detect the face *in the crop* and compare its 5 points to the template."""
    frame, face = frame_and_face
    crop = align_crop(frame, face.landmarks, template_fn(size), size).image
    big = cv2.resize(crop, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    pad = 64 * upscale
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = ob.detect_faces(big)
    assert found, "dlib finds no face in the aligned crop"
    pts = (five_points(found[0].landmarks) - pad) / upscale
    err = np.linalg.norm(pts - template_fn(size), axis=1)
    assert err.max() < 0.06 * size, (err, size)


def test_paste_back_identity_round_trip(frame_and_face):
    """Pasting the unmodified crop back reproduces the frame inside the mask, and nothing outside."""
    frame, face = frame_and_face
    crop = align_crop(frame, face.landmarks, ffhq_template(512), 512)
    from faceworker.align import feather_mask

    out, mask = paste_back(frame, crop.image, crop.matrix, feather_mask(512))
    outside = mask == 0
    assert np.array_equal(out[outside], frame[outside])
    inside = mask >= 250
    assert inside.sum() > 5000
    diff = np.abs(out[inside].astype(int) - frame[inside].astype(int))
    assert diff.mean() < 4.0  # two bilinear resamplings


# -- recognizer ---------------------------------------------------------------------------------
def test_arcface_recognizer_is_alignment_invariant(model_dir, frame_and_face, group):
    rec = load_pack_recognizer("arcface:tinyswap", model_dir)
    assert isinstance(rec, Recognizer) and rec.name == "arcface:tinyswap" and rec.dim == 512
    frame, face = frame_and_face
    e1 = rec.embed(frame, face)
    assert e1.shape == (512,) and abs(np.linalg.norm(e1) - 1) < 1e-5
    # the same photo scaled 1.5x and rotated 10 degrees: the aligned crop (and so the embedding) barely moves
    img = ob.astronaut_bgr()
    m = cv2.getRotationMatrix2D((256, 256), 10, 1.5)
    m[:, 2] += (128, 128)
    warped = cv2.warpAffine(img, m, (768, 768), borderMode=cv2.BORDER_REFLECT)
    moved = ob.shift_face(ob.astronaut_face(), 0, 0)
    moved.landmarks = transform_points(moved.landmarks, m)
    e2 = rec.embed(warped, moved)
    g_img, g_faces = group
    others = rec.embed_many([(g_img, f) for f in g_faces[:3]])
    same = float(e1 @ e2)
    assert same > 0.995
    assert all(same > float(e1 @ o) for o in others)


# -- swapper ------------------------------------------------------------------------------------
def test_registry_returns_pack_swapper(model_dir, source, frame_and_face):
    sw = get_swapper("tinyswap", str(model_dir))
    assert isinstance(sw, InswapperSwapper) and isinstance(sw, FaceSwapper)
    assert sw.name == "tinyswap" and sw.size == 128 and sw.batched
    frame, face = frame_and_face
    with pytest.raises(RuntimeError, match="prepare"):
        sw.swap(frame, face)
    with pytest.raises(BadInput, match="unknown options"):
        get_swapper("tinyswap", str(model_dir), {"colour": 1})
    # the CLI's --identity-weight is a classic knob: accepted, ignored
    assert get_swapper("tinyswap", str(model_dir), {"identity_weight": 0.8, "batch_size": 2}).batch_size == 2


def _expected_rgb_offset(model_path: Path, latent: np.ndarray) -> np.ndarray:
    model = onnx.load(str(model_path))
    w = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "W")
    return 0.25 * np.tanh(latent.reshape(-1) @ w)


def test_swap_follows_the_model_contract(model_dir, source, frame_and_face):
    """Frame pixel at the face centre == model(aligned RGB [0,1] crop, emap-mapped latent), pasted back."""
    sw = get_swapper("tinyswap", str(model_dir))
    sw.prepare(source)
    emb = source.extra_embeddings["arcface:tinyswap"]
    latent = emb @ sw.emap
    np.testing.assert_allclose(sw.latent[0], latent / np.linalg.norm(latent), atol=1e-6)
    frame, face = frame_and_face
    out, mask = sw.swap(frame, face)
    off_rgb = _expected_rgb_offset(model_dir / "tinyswap" / "inswapper_128.onnx", sw.latent)
    cx, cy = five_points(face.landmarks)[2].round().astype(int)  # nose tip: deep inside the mask
    assert mask[cy, cx] == 255
    patch_in = frame[cy - 3:cy + 4, cx - 3:cx + 4].reshape(-1, 3).astype(np.float64).mean(0) / 255.0
    patch_out = out[cy - 3:cy + 4, cx - 3:cx + 4].reshape(-1, 3).astype(np.float64).mean(0) / 255.0
    expected_bgr = np.clip(patch_in * 0.6 + 0.2 + off_rgb[::-1], 0, 1)
    np.testing.assert_allclose(patch_out, expected_bgr, atol=0.02)


def test_swap_changes_only_inside_mask(model_dir, source, frame_and_face):
    sw = get_swapper("tinyswap", str(model_dir))
    sw.prepare(source)
    frame, face = frame_and_face
    before = frame.copy()
    out, mask = sw.swap(frame, face)
    assert np.array_equal(frame, before), "input frame must not be modified in place"
    assert out.shape == frame.shape and out.dtype == np.uint8 and mask.dtype == np.uint8
    changed = (out != frame).any(axis=-1)
    assert changed.sum() > 0.5 * (mask > 128).sum()
    assert not (changed & (mask == 0)).any(), "pixels outside the mask changed"
    x0, y0, x1, y1 = face.bbox
    ys, xs = np.nonzero(mask)
    # the mask sits on the face: its centre is inside the dlib box and it does not spill far
    assert x0 < xs.mean() < x1 and y0 < ys.mean() < y1
    assert (mask > 0).sum() < 4 * (x1 - x0) * (y1 - y0)


def test_output_depends_on_source_and_target(model_dir, group, frame_and_face):
    g_img, g_faces = group
    frame, face = frame_and_face
    outs = []
    for f in g_faces[:2]:
        sw = get_swapper("tinyswap", str(model_dir))
        sw.prepare(SourceFace(image_bgr=g_img, face=f, embedding=np.zeros(128, np.float32)))
        outs.append(sw.swap(frame, face)[0])
    assert np.abs(outs[0].astype(int) - outs[1].astype(int)).max() > 10


def test_emap_variants(model_dir, tmp_path, source, frame_and_face):
    frame, face = frame_and_face
    ref = get_swapper("tinyswap", str(model_dir))
    ref.prepare(source)
    expected = ref.swap(frame, face)[0]
    # inswapper_128.onnx style: the emap is the unnamed last initializer
    last = _copy_pack(model_dir / "tinyswap", tmp_path, "last")
    ob.build_swapper(last / "inswapper_128.onnx", emap="last")
    _edit_manifest(last, lambda m: m["models"][0].update(sha256=sha256_file(last / "inswapper_128.onnx")))
    sw = get_swapper("last", str(tmp_path))
    sw.prepare(source)
    assert np.array_equal(sw.swap(frame, face)[0], expected)
    # emap as a .npy beside the model
    npy = _copy_pack(model_dir / "tinyswap", tmp_path, "npy")
    _, emap = ob.build_swapper(npy / "inswapper_128.onnx", emap=None)
    np.save(npy / "emap.npy", emap)
    _edit_manifest(npy, lambda m: m["models"][0].update(sha256=sha256_file(npy / "inswapper_128.onnx"),
                                                        emap="emap.npy"))
    sw = get_swapper("npy", str(tmp_path))
    sw.prepare(source)
    assert np.array_equal(sw.swap(frame, face)[0], expected)
    # no emap anywhere: clear error; explicit "none" works and gives a different latent
    _edit_manifest(npy, lambda m: m["models"][0].pop("emap"))
    with pytest.raises(BadInput, match="no emap found"):
        get_swapper("npy", str(tmp_path))
    _edit_manifest(npy, lambda m: m["models"][0].update(emap="none"))
    sw = get_swapper("npy", str(tmp_path))
    sw.prepare(source)
    assert not np.allclose(sw.latent, ref.latent)


def test_prepare_reuses_stored_embedding(model_dir, source):
    sw = get_swapper("tinyswap", str(model_dir))
    fake = np.zeros(512, np.float32)
    fake[0] = 1.0
    src = SourceFace(image_bgr=source.image_bgr, face=source.face, embedding=source.embedding,
                     extra_embeddings={"arcface:tinyswap": fake})
    sw.prepare(src)
    np.testing.assert_allclose(sw.latent[0], sw.emap[0] / np.linalg.norm(sw.emap[0]), atol=1e-6)


def test_batch_equals_single_calls(model_dir, tmp_path, source, frame_and_face, group):
    frame, face = frame_and_face
    g_img, g_faces = group
    sw = get_swapper("tinyswap", str(model_dir), {"batch_size": 4})
    sw.prepare(source)
    items = [(frame, face), (g_img, g_faces[1]), (g_img, g_faces[2])]
    batched = sw.swap_batch(items)
    for (img, f), (out, mask) in zip(items, batched):
        single_out, single_mask = sw.swap(img, f)
        assert np.array_equal(out, single_out) and np.array_equal(mask, single_mask)
    # a model with a fixed batch of 1 (as some exports are) gives the same frames, run one by one
    fixed = _copy_pack(model_dir / "tinyswap", tmp_path, "fixed")
    ob.build_swapper(fixed / "inswapper_128.onnx", batch=1)
    _edit_manifest(fixed, lambda m: m["models"][0].update(
        sha256=sha256_file(fixed / "inswapper_128.onnx"),
        inputs={"target": [1, 3, 128, 128], "source": [1, 512]}, outputs={"output": [1, 3, 128, 128]}))
    sw1 = get_swapper("fixed", str(tmp_path))
    assert not sw1.batched
    sw1.prepare(source)
    for (out, _), (ref, _) in zip(sw1.swap_batch(items), batched):
        assert np.array_equal(out, ref)


def test_swap_faces_many_in_one_frame(model_dir, source, group):
    g_img, g_faces = group
    sw = get_swapper("tinyswap", str(model_dir))
    sw.prepare(source)
    a, b = g_faces[0], g_faces[-1]  # far apart in the group photo
    out, mask = sw.swap_faces(g_img, [a, b])
    seq, m1 = sw.swap(g_img, a)
    seq, m2 = sw.swap(seq, b)
    assert np.array_equal(out, seq)
    assert np.array_equal(mask, np.maximum(m1, m2))
    for f in (a, b):
        cx, cy = five_points(f.landmarks)[2].round().astype(int)
        assert mask[cy, cx] > 200
    untouched, empty = sw.swap_faces(g_img, [])
    assert np.array_equal(untouched, g_img) and not empty.any()


# -- through the engine ---------------------------------------------------------------------------
def test_swap_session_uses_pack_swapper_and_enhancer(model_dir, tmp_path, source):
    """The chunk pipeline (frame_pipeline.SwapSession) with a pack swapper + ONNX enhancer on a real frame."""
    from faceworker.frame_pipeline import SwapSession
    from faceworker.packs import write_manifest

    models = tmp_path / "models"
    shutil.copytree(model_dir / "tinyswap", models / "tinyswap")
    ob.build_enhancer(models / "gfpgan" / "GFPGANv1.4.onnx")
    write_manifest(models / "gfpgan", "gfpgan", {"enhancer": "GFPGANv1.4.onnx"})
    frame = ob.on_canvas(ob.astronaut_bgr(), 960, 540, *OFFSET)
    frame[350:540, 300:812] = 90  # hide the suit's emblem, which dlib HOG takes for a face
    session = SwapSession(source, swapper="tinyswap", model_dir=str(models), enhancer="gfpgan")
    assert isinstance(session.swapper, InswapperSwapper) and session.enhancer is not None
    out, info = session.process(frame, 0)
    assert info.swapped and info.faces_target == 1
    changed = (out != frame).any(axis=-1)
    assert changed.sum() > 3000
    assert not (changed & (info.mask == 0)).any()


@pytest.mark.slow
def test_cli_swap_chunk_with_pack(model_dir, tmp_path):
    """`faceworker swap-chunk --swapper <pack> --enhancer gfpgan --model-dir D` on the sample order."""
    import subprocess

    from faceworker.packs import write_manifest

    models = tmp_path / "models"
    shutil.copytree(model_dir / "tinyswap", models / "tinyswap")
    ob.build_enhancer(models / "gfpgan" / "GFPGANv1.4.onnx")
    write_manifest(models / "gfpgan", "gfpgan", {"enhancer": "GFPGANv1.4.onnx"})
    fw = [sys.executable, "-m", "faceworker.cli"]
    env = {**os.environ, "FACEFACTORY_LOG_FORMAT": "json"}

    def run(*args: str) -> tuple[dict, str]:
        p = subprocess.run([*fw, *args], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr

    run("sample", "--out", str(tmp_path / "s"), "--seconds", "1", "--size", "640x360")
    inp = tmp_path / "w" / "orders" / "o1" / "input"
    inp.mkdir(parents=True)
    shutil.copy(tmp_path / "s" / "source.png", inp / "source.png")
    shutil.copy(tmp_path / "s" / "target.mp4", inp / "target.mp4")
    work = str(tmp_path / "w")
    run("embed", "--work", work, "--order", "o1", "--selector", "largest")
    run("split", "--work", work, "--order", "o1", "--chunk-frames", "25")
    res, err = run("swap-chunk", "--work", work, "--order", "o1", "--chunk", "0", "--start", "0", "--end", "25",
                   "--swapper", "tinyswap", "--enhancer", "gfpgan", "--model-dir", str(models))
    assert res["frames"] == 25 and res["summary"]["swapped_frames"] >= 23
    assert res["summary"]["min_psnr_db"] >= 30
    events = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    roles = {e["role"]: e["provider"] for e in events if e["event"] == "onnx_session"}
    assert roles == {"swapper": CPU, "recognizer": CPU, "enhancer": CPU}


def test_face_at_the_frame_edge(model_dir, source):
    """Half the face outside the frame: crops replicate the border, paste-back clips to the frame."""
    img = ob.astronaut_bgr()
    face = ob.astronaut_face()
    x_cut = int(five_points(face.landmarks)[2][0])  # cut through the nose
    frame = np.ascontiguousarray(img[:, x_cut:])
    edge_face = ob.shift_face(face, -x_cut, 0)
    sw = get_swapper("tinyswap", str(model_dir))
    sw.prepare(source)
    out, mask = sw.swap(frame, edge_face)
    assert out.shape == frame.shape and mask.shape == frame.shape[:2]
    changed = (out != frame).any(axis=-1)
    assert changed[:, :20].sum() > 100 and not (changed & (mask == 0)).any()
