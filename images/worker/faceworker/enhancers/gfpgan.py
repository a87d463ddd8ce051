"""GFPGAN-style face restoration: FFHQ-aligned 512x512 crop in, restored crop out, pasted back in the mask.

Two back-ends with the same alignment and paste-back: the ONNX export (GFPGANv1.4.onnx, [-1,1] RGB
NCHW; works everywhere, CPU or CUDA) and, when the `gfpgan` package imports and the pack has .pth
weights, the PyTorch model. `gfpgan`/`basicsr` do not import next to the CPU torch available here
(docs/model-packs.md), so the ONNX path is the one that runs and is tested.
"""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker.align import align_crop, feather_mask, ffhq_template, paste_back
from faceworker.errors import BadInput
from faceworker.onnx_runtime import RuntimeConfig, log_event
from faceworker.packs import Pack, load_pack, open_onnx
from faceworker.types import Face

DEFAULT_PACK = "gfpgan"


def _to_blob(crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
    arr = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops_bgr]).astype(np.float32) / 255.0
    return np.ascontiguousarray(((arr - 0.5) / 0.5).transpose(0, 3, 1, 2))


def _from_blob(pred: np.ndarray) -> list[np.ndarray]:
    rgb = np.clip((pred.transpose(0, 2, 3, 1) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return [np.ascontiguousarray(cv2.cvtColor(x, cv2.COLOR_RGB2BGR)) for x in rgb]


class AlignedEnhancer:
    """Enhancer protocol: align to FFHQ, restore, paste back weighted by crop mask x face mask x blend."""

    name: str
    size: int = 512

    def __init__(self, name: str, size: int, blend: float) -> None:
        if not 0.0 <= blend <= 1.0:
            raise BadInput(f"enhancer {name!r}: blend must be in [0, 1], got {blend}")
        self.name, self.size, self.blend = name, size, blend
        self.template = ffhq_template(size)
        self.mask = feather_mask(size, margin=0.06, blur=0.1)

    def restore(self, crops_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def crop(self, frame_bgr: np.ndarray, face: Face) -> np.ndarray:
        return align_crop(frame_bgr, face.landmarks, self.template, self.size).image

    def enhance(self, frame_bgr: np.ndarray, target: Face, mask: np.ndarray | None) -> np.ndarray:
        aligned = align_crop(frame_bgr, target.landmarks, self.template, self.size)
        restored = self.restore([aligned.image])[0]
        out, _ = paste_back(frame_bgr, restored, aligned.matrix, self.mask, region_mask=mask, strength=self.blend)
        return out


class OnnxGfpganEnhancer(AlignedEnhancer):
    """The ONNX export of GFPGAN (or any model with its 512x512 [-1,1] RGB NCHW in/out)."""

    def __init__(self, pack: Pack, blend: float | None = None, config: RuntimeConfig | None = None) -> None:
        spec = pack.require("enhancer", "onnx")
        self.session = open_onnx(spec, config)
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4 or len(outs) != 1:
            raise BadInput(f"{spec.file}: enhancer needs one [N,3,S,S] input and one output, "
                           f"got {[i.shape for i in ins]} -> {[o.shape for o in outs]}")
        n, c, h, w = ins[0].shape
        if not (isinstance(h, int) and h == w) or (isinstance(c, int) and c != 3) or outs[0].shape[1:] != [c, h, w]:
            raise BadInput(f"{spec.file}: enhancer must map [N,3,S,S] to the same shape, "
                           f"got {ins[0].shape} -> {outs[0].shape}")
        if spec.size is not None and spec.size != h:
            raise BadInput(f"{spec.file}: manifest size {spec.size} != model input size {h}")
        self.input_name = ins[0].name
        self.batched = not (isinstance(n, int) and n == 1)
        super().__init__(f"gfpgan:{pack.name}", int(h), float(spec.extra.get("blend", 1.0) if blend is None else blend))
        log_event("info", "enhancer_ready", enhancer=self.name, backend="onnx", size=self.size, blend=self.blend)

    def restore(self, crops_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        blob = _to_blob(crops_bgr)
        if self.batched:
            pred = self.session.run(None, {self.input_name: blob})[0]
        else:
            pred = np.concatenate([self.session.run(None, {self.input_name: blob[i:i + 1]})[0] for i in range(len(blob))])
        return _from_blob(pred)


def import_gfpgan_arch() -> tuple[Any, Any] | None:
    """(torch, GFPGANv1Clean) if the gfpgan package imports, else None.

    basicsr 1.4.2 imports `torchvision.transforms.functional_tensor`, removed in torchvision 0.17;
    alias it to `functional` first (the only name used, rgb_to_grayscale, lives there now).
    """
    try:
        import torch
        import torchvision.transforms.functional as tv_functional

        if "torchvision.transforms.functional_tensor" not in sys.modules:
            shim = types.ModuleType("torchvision.transforms.functional_tensor")
            shim.rgb_to_grayscale = tv_functional.rgb_to_grayscale  # type: ignore[attr-defined]  # shim module for basicsr's old import
            sys.modules["torchvision.transforms.functional_tensor"] = shim
        arch = importlib.import_module("gfpgan.archs.gfpganv1_clean_arch")
    except Exception as exc:  # noqa: BLE001 - any import failure means: use ONNX
        log_event("info", "gfpgan_package_unavailable", reason=f"{type(exc).__name__}: {exc}")
        return None
    return torch, arch.GFPGANv1Clean


class TorchGfpganEnhancer(AlignedEnhancer):
    """GFPGANv1Clean from .pth weights via the gfpgan package (GPU image only, see docs)."""

    def __init__(self, pack: Pack, torch: Any, arch_cls: Any, blend: float | None = None) -> None:
        spec = pack.require("enhancer", "pth")
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        net = arch_cls(out_size=512, num_style_feat=512, channel_multiplier=int(spec.extra.get("channel_multiplier", 2)),
                       decoder_load_path=None, fix_decoder=False, num_mlp=8, input_is_latent=True,
                       different_w=True, narrow=1, sft_half=True)
        state = torch.load(str(spec.path), map_location="cpu", weights_only=True)
        key = "params_ema" if "params_ema" in state else ("params" if "params" in state else None)
        net.load_state_dict(state[key] if key else state, strict=True)
        self.net = net.eval().to(self.device)
        super().__init__(f"gfpgan:{pack.name}", 512, float(spec.extra.get("blend", 1.0) if blend is None else blend))
        log_event("info", "enhancer_ready", enhancer=self.name, backend="torch", device=str(self.device), blend=self.blend)

    def restore(self, crops_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self.torch.no_grad():
            x = self.torch.from_numpy(_to_blob(crops_bgr)).to(self.device)
            y = self.net(x, return_rgb=False)[0]
        return _from_blob(y.float().cpu().numpy())


def load_gfpgan_enhancer(name: str, model_dir: str | Path | None = None, blend: float | None = None,
                         config: RuntimeConfig | None = None) -> AlignedEnhancer:
    """`gfpgan` (pack dir `gfpgan`) or `gfpgan:<pack>`: .pth via the gfpgan package if it imports, else ONNX."""
    if name == "gfpgan":
        pack_name = DEFAULT_PACK
    elif name.startswith("gfpgan:"):
        pack_name = name.split(":", 1)[1]
    else:
        raise BadInput(f"unknown enhancer {name!r}: expected none, gfpgan or gfpgan:<pack>")
    pack = load_pack(model_dir, pack_name)
    if pack.get("enhancer", "pth") is not None:
        found = import_gfpgan_arch()
        if found is not None:
            return TorchGfpganEnhancer(pack, *found, blend=blend)
        if pack.get("enhancer", "onnx") is None:
            raise BadInput(f"pack {pack.name!r} has only .pth GFPGAN weights and the gfpgan package does not import "
                           "here; add the ONNX export (see docs/model-packs.md)")
    return OnnxGfpganEnhancer(pack, blend, config)
