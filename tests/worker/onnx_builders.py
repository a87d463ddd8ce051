"""Tiny ONNX models with the exact I/O of inswapper_128, ArcFace w600k and GFPGAN, plus real test faces.

No weights can be downloaded here, so tests drive the whole model-pack path with self-made graphs
whose outputs depend on their inputs (a wrong wiring changes the numbers), on real face photos.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facefactory-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _dim(batch: int | str) -> int | str:
    return batch


def build_swapper(path: Path, *, size: int = 128, dim: int = 512, batch: int | str = "N",
                  emap: str | None = "named", seed: int = 0, target_name: str = "target",
                  source_name: str = "source", output_name: str = "output",
                  target_type: int = TensorProto.FLOAT) -> tuple[Path, np.ndarray]:
    """target [N,3,S,S] + source [N,D] -> clip(target*0.6 + 0.2 + 0.25*tanh(source @ W) per channel, 0, 1).

    emap: "named" (initializer called emap, as the brief's packs), "last" (unnamed last initializer,
    as inswapper_128.onnx), or None. Returns (path, emap matrix).
    """
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((dim, 3)) * 3.0).astype(np.float32)
    emap_m = (np.eye(dim) + 0.2 * rng.standard_normal((dim, dim))).astype(np.float32)
    target_in = target_name
    nodes = []
    if target_type != TensorProto.FLOAT:  # e.g. a float16 export: cast in, like fp16 models' first node
        target_in = "target_f32"
        nodes.append(helper.make_node("Cast", [target_name], [target_in], to=TensorProto.FLOAT))
    nodes += [
        helper.make_node("MatMul", [source_name, "W"], ["off"]),
        helper.make_node("Tanh", ["off"], ["off_t"]),
        helper.make_node("Mul", ["off_t", "amp"], ["off_s"]),
        helper.make_node("Unsqueeze", ["off_s", "axes"], ["off4"]),
        helper.make_node("Mul", [target_in, "gain"], ["t_g"]),
        helper.make_node("Add", ["t_g", "bias"], ["t_b"]),
        helper.make_node("Add", ["t_b", "off4"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], [output_name]),
    ]
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.array(0.25, np.float32), "amp"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array(0.6, np.float32), "gain"),
        numpy_helper.from_array(np.array(0.2, np.float32), "bias"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    if emap == "named":
        inits.append(numpy_helper.from_array(emap_m, "emap"))
    elif emap == "last":
        inits.append(numpy_helper.from_array(emap_m, "onnx::MatMul_999"))
    graph = helper.make_graph(
        nodes, "tiny_inswapper",
        [helper.make_tensor_value_info(target_name, target_type, [_dim(batch), 3, size, size]),
         helper.make_tensor_value_info(source_name, TensorProto.FLOAT, [_dim(batch), dim])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [_dim(batch), 3, size, size])],
        inits,
    )
    return _save(graph, path), emap_m


def build_recognizer(path: Path, *, size: int = 112, dim: int = 512, batch: int | str = "N", seed: int = 1,
                     input_name: str = "input.1", output_name: str = "embedding") -> Path:
    """[N,3,S,S] -> 8x8 average pool -> flatten -> random projection -> [N,D]: different faces differ."""
    rng = np.random.default_rng(seed)
    cells = 3 * (size // 8) ** 2
    w = (rng.standard_normal((cells, dim)) / np.sqrt(cells)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", [input_name], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "P"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [_dim(batch), 3, size, size])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [_dim(batch), dim])],
        [numpy_helper.from_array(w, "P")],
    )
    return _save(graph, path)


def build_enhancer(path: Path, *, size: int = 512, batch: int | str = 1, input_name: str = "input",
                   output_name: str = "output") -> Path:
    """[N,3,S,S] in [-1,1] -> 3x3 sharpening conv + slight warm tint -> clip [-1,1] (same shape)."""
    k = np.zeros((3, 3, 3, 3), np.float32)
    sharpen = np.array([[0, -0.25, 0], [-0.25, 2.0, -0.25], [0, -0.25, 0]], np.float32)
    for c in range(3):
        k[c, c] = sharpen
    bias = np.array([0.08, 0.0, -0.08], np.float32)  # RGB: warmer, so the effect is measurable
    nodes = [
        helper.make_node("Conv", [input_name, "K", "B"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["conv", "lo", "hi"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_gfpgan",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [_dim(batch), 3, size, size])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [_dim(batch), 3, size, size])],
        [numpy_helper.from_array(k, "K"), numpy_helper.from_array(bias, "B"),
         numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
         numpy_helper.from_array(np.array(1.0, np.float32), "hi")],
    )
    return _save(graph, path)


def make_pack(model_dir: Path, name: str = "tinyswap", *, swapper: bool = True, recognizer: bool = True,
              enhancer: bool = False, swapper_kwargs: dict | None = None, extra: dict | None = None) -> Path:
    """A complete pack directory with manifest.json (hashes and I/O read from the files)."""
    from faceworker.packs import write_manifest

    pack = model_dir / name
    models = {}
    if swapper:
        build_swapper(pack / "inswapper_128.onnx", **(swapper_kwargs or {}))
        models["swapper"] = "inswapper_128.onnx"
    if recognizer:
        build_recognizer(pack / "w600k_r50.onnx")
        models["recognizer"] = "w600k_r50.onnx"
    if enhancer:
        build_enhancer(pack / "GFPGANv1.4.onnx")
        models["enhancer"] = "GFPGANv1.4.onnx"
    write_manifest(pack, name, models, extra=extra)
    return pack


# -- real faces ---------------------------------------------------------------------------------
@cache
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


@cache
def insightface_image(name: str) -> np.ndarray:
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    assert spec and spec.submodule_search_locations
    img = cv2.imread(str(Path(spec.submodule_search_locations[0]) / "data" / "images" / name))
    assert img is not None, name
    return img


@cache
def _analyzer():
    from faceworker.faces import FaceAnalyzer

    return FaceAnalyzer(detect_scale=1.0)


def detect_faces(image_bgr: np.ndarray):
    """dlib HOG + 68 landmarks via the engine's FaceAnalyzer, largest first."""
    return _analyzer().detect(image_bgr)


@cache
def astronaut_face():
    """The astronaut's face (the only detection on the bare 512x512 photo)."""
    faces = detect_faces(astronaut_bgr())
    assert len(faces) == 1, [f.bbox for f in faces]
    return faces[0]


def shift_face(face, dx: int, dy: int):
    """The same face moved by (dx, dy): for a photo pasted into a larger frame."""
    from faceworker.types import Face

    x0, y0, x1, y1 = face.bbox
    return Face(bbox=(x0 + dx, y0 + dy, x1 + dx, y1 + dy), landmarks=face.landmarks + np.float32([dx, dy]),
                score=face.score)


def on_canvas(image_bgr: np.ndarray, width: int = 960, height: int = 540, x: int = 300, y: int = 20) -> np.ndarray:
    """Place a photo on a textured frame so paste-back has a background to leave alone."""
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (5, 5), 0)
    h, w = image_bgr.shape[:2]
    frame[y:y + h, x:x + w] = image_bgr
    return frame
