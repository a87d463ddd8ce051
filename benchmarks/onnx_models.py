"""Random-weight ONNX models with the exact I/O of the real model-pack files and FLOP-matched compute.

The real weights (inswapper_128, ArcFace w600k_r50, GFPGAN v1.4) are not shipped and cannot be
downloaded here, and the tiny test models in tests/worker/onnx_builders.py have the right I/O but
almost no compute. For timing the ONNX path (CPU vs CUDA execution provider) these stand-ins keep
the I/O *and* approximate the per-face compute with conv stacks of the same shape:

- swapper, inswapper_128-like: target [N,3,128,128] + source [N,512] -> [N,3,128,128] in [0,1].
  Conv encoder 128 -> 16 px, style blocks (reflect-pad conv, InstanceNorm, AdaIN from `source`
  through Gemm, residual) at 16 px, nearest-upsample conv decoder back to 128, sigmoid. The emap
  [512,512] is the graph's last initializer, unused by the graph (as in inswapper_128.onnx).
- recognizer, ArcFace IResNet50-like: input.1 [N,3,112,112] -> [N,512]. Stem conv, IR blocks
  (conv, PReLU, strided conv, shortcut) in four stages (3, 4, 14, 3 blocks; 64..512 channels),
  flatten 512x7x7 -> Gemm 512.
- enhancer, GFPGAN-like: input [1,3,512,512] in [-1,1] -> output, same shape, tanh. U-Net: strided
  residual encoder 512 -> 8 px, upsampling decoder with SFT-style modulation from the encoder
  features, toRGB conv.

All weights are He-initialised from a fixed seed, so activations stay finite (ArcFace's embedding
must be non-zero and finite, or the engine refuses it) and never drift into denormals (which
would make CPU timings meaningless). Compute is counted from the graph itself after ONNX shape
inference: multiply-accumulates of every Conv / Gemm / MatMul for one face (batch 1). Model zoos'
"FLOPs" for these networks (e.g. 6.3 G for IResNet50 at 112) are MACs; `gflop` = 2 x `gmac`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

_TESTS = Path(__file__).resolve().parents[1] / "tests" / "worker"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))
from onnx_builders import _save  # noqa: E402 - the tests' writer: same opset / IR version, checked model

EMAP_NAME = "onnx::MatMul_emap"  # not "emap": exercises the engine's `auto` -> last D x D initializer


@dataclass(frozen=True)
class Sizes:
    """Widths / depths of the three stand-ins (I/O never changes, only the compute in between)."""

    swap_enc: tuple[int, ...] = (64, 128, 256, 512)  # at 128, 64, 32, 16 px
    swap_blocks: int = 6  # style blocks at 16 px, swap_enc[-1] channels
    swap_dec: tuple[int, ...] = (256, 128, 64)  # at 32, 64, 128 px
    rec_stem: int = 64
    rec_stages: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14), (512, 3))
    enh_channels: tuple[int, ...] = (32, 64, 128, 256, 512, 512, 512)  # at 512, 256, ..., 8 px


FULL = Sizes()
QUICK = Sizes(swap_enc=(8, 8, 16, 16), swap_blocks=1, swap_dec=(8, 8, 8), rec_stem=8,
              rec_stages=((8, 1), (8, 1), (16, 1), (16, 1)), enh_channels=(4, 4, 8, 8, 8, 8, 8))


class _Graph:
    """Minimal graph builder: unique tensor names, He-initialised weights from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, arr: np.ndarray, stem: str = "c") -> str:
        nm = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op: str, inputs: list[str], stem: str | None = None, **attrs: Any) -> str:
        out = self.name(stem or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def weight(self, shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> np.ndarray:
        std = gain * np.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, pad: int | None = None,
             gain: float = 1.0, bias: bool = True) -> str:
        pad = k // 2 if pad is None else pad
        w = self.const(self.weight((cout, cin, k, k), cin * k * k, gain), "W")
        ins = [x, w] + ([self.const(np.zeros(cout, np.float32), "B")] if bias else [])
        return self.node("Conv", ins, "conv", kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def reflect_pad(self, x: str, p: int) -> str:
        return self.node("Pad", [x, self.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64), "pads")], "pad",
                         mode="reflect")

    def lrelu(self, x: str) -> str:
        return self.node("LeakyRelu", [x], "lrelu", alpha=0.2)

    def prelu(self, x: str, c: int) -> str:
        return self.node("PRelu", [x, self.const(np.full((c, 1, 1), 0.25, np.float32), "slope")], "prelu")

    def up2(self, x: str) -> str:
        return self.node("Resize", [x, "", self.const(np.array([1, 1, 2, 2], np.float32), "scales")], "up",
                         mode="nearest")

    def gemm(self, x: str, k: int, n: int, gain: float = 1.0) -> str:
        w = self.const(self.weight((k, n), k, gain), "G")
        return self.node("Gemm", [x, w, self.const(np.zeros(n, np.float32), "gb")], "gemm")


def _model(g: _Graph, name: str, inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto]) -> onnx.GraphProto:
    return helper.make_graph(g.nodes, name, inputs, outputs, g.inits)


def swapper_graph(sizes: Sizes = FULL, seed: int = 0, dim: int = 512) -> onnx.GraphProto:
    g = _Graph(seed)
    e0, e1, e2, e3 = sizes.swap_enc
    x = g.lrelu(g.conv(g.reflect_pad("target", 3), 3, e0, k=7, pad=0))  # 128 px
    x = g.lrelu(g.conv(x, e0, e1, stride=2))  # 64
    x = g.lrelu(g.conv(x, e1, e2, stride=2))  # 32
    x = g.lrelu(g.conv(x, e2, e3, stride=2))  # 16
    c = e3
    ones = g.const(np.ones(c, np.float32), "in_scale")
    zeros = g.const(np.zeros(c, np.float32), "in_bias")
    one = g.const(np.array(1.0, np.float32), "one")
    axes = g.const(np.array([2, 3], np.int64), "axes")

    def adain(h: str) -> str:
        h = g.node("InstanceNormalization", [h, ones, zeros], "inorm", epsilon=1e-5)
        gamma = g.node("Unsqueeze", [g.gemm("source", dim, c, gain=0.1), axes], "gamma")
        beta = g.node("Unsqueeze", [g.gemm("source", dim, c, gain=0.1), axes], "beta")
        return g.node("Add", [g.node("Mul", [h, g.node("Add", [gamma, one])]), beta])

    for _ in range(sizes.swap_blocks):
        h = g.node("Relu", [adain(g.conv(g.reflect_pad(x, 1), c, c, pad=0))])
        h = adain(g.conv(g.reflect_pad(h, 1), c, c, pad=0, gain=0.5))
        x = g.node("Add", [x, h], "res")
    for cout in sizes.swap_dec:  # 32, 64, 128 px
        x = g.lrelu(g.conv(g.up2(x), c, cout))
        c = cout
    x = g.conv(g.reflect_pad(x, 3), c, 3, k=7, pad=0, gain=0.5)
    g.nodes.append(helper.make_node("Sigmoid", [x], ["output"]))
    emap = (np.eye(dim) + 0.05 * g.rng.standard_normal((dim, dim))).astype(np.float32)
    g.inits.append(numpy_helper.from_array(emap, EMAP_NAME))  # last initializer, as in inswapper_128.onnx
    return _model(g, "inswapper_like",
                  [helper.make_tensor_value_info("target", TensorProto.FLOAT, ["N", 3, 128, 128]),
                   helper.make_tensor_value_info("source", TensorProto.FLOAT, ["N", dim])],
                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 128, 128])])


def recognizer_graph(sizes: Sizes = FULL, seed: int = 1, dim: int = 512) -> onnx.GraphProto:
    g = _Graph(seed)
    c = sizes.rec_stem
    x = g.prelu(g.conv("input.1", 3, c), c)  # 112 px
    res = 112
    for cout, blocks in sizes.rec_stages:
        for b in range(blocks):
            s = 2 if b == 0 else 1
            h = g.prelu(g.conv(x, c, cout), cout)
            h = g.conv(h, cout, cout, stride=s, gain=0.3)  # small residual branch: stable over 24 blocks
            sc = g.conv(x, c, cout, k=1, stride=s) if (s == 2 or c != cout) else x
            x = g.node("Add", [h, sc], "res")
            c = cout
        res //= 2
    flat = g.node("Flatten", [x], "flat", axis=1)
    g.nodes.append(helper.make_node("Gemm", [flat, g.const(g.weight((c * res * res, dim), c * res * res), "fc"),
                                             g.const(np.zeros(dim, np.float32), "fcb")], ["683"]))
    return _model(g, "arcface_like",
                  [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
                  [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", dim])])


def enhancer_graph(sizes: Sizes = FULL, seed: int = 2) -> onnx.GraphProto:
    g = _Graph(seed)
    ch = sizes.enh_channels  # ch[i] at 512 / 2**i px
    x = g.lrelu(g.conv("input", 3, ch[0], k=1))
    feats = [x]
    for i in range(len(ch) - 1):  # residual downsampling: 512 -> 8 px
        h = g.lrelu(g.conv(x, ch[i], ch[i]))
        h = g.lrelu(g.conv(h, ch[i], ch[i + 1], stride=2, gain=0.7))
        x = g.node("Add", [h, g.conv(x, ch[i], ch[i + 1], k=1, stride=2, gain=0.7)], "res")
        feats.append(x)
    x = g.lrelu(g.conv(x, ch[-1], ch[-1]))
    for i in range(len(ch) - 2, -1, -1):  # decoder 16 -> 512 px, SFT modulation from the encoder
        x = g.lrelu(g.conv(g.up2(x), ch[i + 1], ch[i]))
        x = g.lrelu(g.conv(x, ch[i], ch[i]))
        scale = g.conv(feats[i], ch[i], ch[i], k=1, gain=0.1)
        shift = g.conv(feats[i], ch[i], ch[i], k=1, gain=0.1)
        x = g.node("Add", [g.node("Mul", [x, g.node("Add", [scale, g.const(np.array(1.0, np.float32), "one")])]),
                           shift], "sft")
    x = g.conv(x, ch[0], 3, gain=0.5)
    g.nodes.append(helper.make_node("Tanh", [x], ["output"]))
    return _model(g, "gfpgan_like",
                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])])


def _dims(vi: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]  # N -> 1


def count_macs(graph: onnx.GraphProto) -> dict[str, int]:
    """Multiply-accumulates per face (symbolic batch = 1) of Conv / Gemm / MatMul, from shape inference."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {vi.name: _dims(vi) for vi in [*inferred.value_info, *inferred.input, *inferred.output]}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    out: dict[str, int] = {"Conv": 0, "Gemm": 0, "MatMul": 0}
    for node in graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # [Cout, Cin/group, kh, kw]
            n, co, h, wd = shapes[node.output[0]]
            out["Conv"] += n * co * h * wd * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            out[node.op_type] += int(np.prod(a[:-1])) * a[-1] * b[-1]
    out["total"] = sum(out.values())
    return out


def build(graph: onnx.GraphProto, path: Path) -> dict[str, Any]:
    """Save `graph` (checked, opset of the tests) and describe it: file size, parameters, MACs, FLOPs."""
    t0 = time.perf_counter()
    macs = count_macs(graph)
    _save(graph, path)
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    return {"file": path.name, "mb": round(path.stat().st_size / 1e6, 1), "params_m": round(params / 1e6, 2),
            "gmac": round(macs["total"] / 1e9, 2), "gflop": round(2 * macs["total"] / 1e9, 2),
            "gmac_by_op": {k: round(v / 1e9, 3) for k, v in macs.items() if k != "total" and v},
            "nodes": len(graph.node), "build_s": round(time.perf_counter() - t0, 2)}


def make_packs(model_dir: Path, sizes: Sizes = FULL) -> dict[str, dict[str, Any]]:
    """Two packs as docs/model-packs.md lays them out: inswapper_128 (swapper + recognizer) and gfpgan.

    Manifests are written by the engine's own `faceworker.packs.write_manifest` (sha256, I/O)."""
    from faceworker.packs import write_manifest

    swap_dir, enh_dir = model_dir / "inswapper_128", model_dir / "gfpgan"
    info = {
        "swapper": build(swapper_graph(sizes), swap_dir / "inswapper_128.onnx"),
        "recognizer": build(recognizer_graph(sizes), swap_dir / "w600k_r50.onnx"),
        "enhancer": build(enhancer_graph(sizes), enh_dir / "GFPGANv1.4.onnx"),
    }
    write_manifest(swap_dir, "inswapper_128", {"swapper": "inswapper_128.onnx", "recognizer": "w600k_r50.onnx"},
                   extra={"swapper": {"size": 128, "emap": "auto"}, "recognizer": {"size": 112}})
    write_manifest(enh_dir, "gfpgan", {"enhancer": "GFPGANv1.4.onnx"}, extra={"enhancer": {"size": 512}})
    return info
