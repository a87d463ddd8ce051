"""inswapper_128-style learned swapper from an ONNX model pack (what FaceFusion users bring).

Contract of the model (as insightface's inswapper_128.onnx): `target` float32 [N,3,128,128], the
five-point-aligned target crop as RGB in [0,1]; `source` float32 [N,512], the source's ArcFace
embedding multiplied by the pack's `emap` matrix and L2-normalised; output [N,3,128,128] RGB [0,1].
The swapped crop is pasted back through the inverse alignment with a feathered mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker.align import align_crop, arcface_template, feather_mask, paste_back
from faceworker.errors import BadInput
from faceworker.onnx_runtime import RuntimeConfig, log_event
from faceworker.packs import ModelSpec, Pack, load_pack, open_onnx
from faceworker.recognizers import ArcFaceRecognizer, recognizer_from_pack
from faceworker.types import Face, SourceFace

_OPTIONS = {"mask_margin", "mask_blur", "batch_size", "strength"}
# Accepted for CLI/gate compatibility but meaningless here: the learned model always carries the
# full source identity (identity_weight), and detector settings belong to the chunk runner.
_IGNORED = {"identity_weight", "detector"}


def load_emap(pack: Pack, spec: ModelSpec, dim: int) -> np.ndarray:
    """The [dim, dim] embedding map: `emap` in the manifest entry is auto | none | <file>.npy | initializer:<name|last>."""
    how = str(spec.extra.get("emap", "auto"))
    if how in ("none", "identity"):
        return np.eye(dim, dtype=np.float32)
    if how.endswith(".npy"):
        path = (pack.root / how).resolve()
        if pack.root.resolve() not in path.parents or not path.is_file():
            raise BadInput(f"pack {pack.name!r}: emap file {how!r} not found inside {pack.root}")
        emap = np.load(path, allow_pickle=False)
    else:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(spec.path))
        inits = list(model.graph.initializer)
        chosen = None
        if how.startswith("initializer:"):
            want = how.split(":", 1)[1]
            chosen = inits[-1] if want == "last" and inits else next((i for i in inits if i.name == want), None)
        elif how == "auto":
            chosen = next((i for i in inits if i.name == "emap"), None)
            if chosen is None and inits and tuple(inits[-1].dims) == (dim, dim):
                chosen = inits[-1]  # inswapper_128.onnx keeps its emap as the graph's last initializer
        else:
            raise BadInput(f"pack {pack.name!r}: emap {how!r} must be auto, none, <file>.npy or initializer:<name|last>")
        if chosen is None:
            raise BadInput(f"pack {pack.name!r}: no emap found in {spec.file} (emap={how!r}); "
                           "set \"emap\" in the swapper's manifest entry")
        emap = numpy_helper.to_array(chosen)
    emap = np.asarray(emap, dtype=np.float32)
    if emap.shape != (dim, dim):
        raise BadInput(f"pack {pack.name!r}: emap has shape {emap.shape}, expected ({dim}, {dim})")
    return emap


class InswapperSwapper:
    """FaceSwapper protocol over an inswapper-style ONNX model; batches crops across faces/frames."""

    def __init__(self, pack: Pack, options: dict[str, Any] | None = None, config: RuntimeConfig | None = None,
                 recognizer: ArcFaceRecognizer | None = None) -> None:
        options = dict(options or {})
        ignored = sorted(set(options) & _IGNORED)
        if ignored:
            log_event("info", "swapper_options_ignored", swapper=pack.name, options=ignored)
        unknown = set(options) - _OPTIONS - _IGNORED
        if unknown:
            raise BadInput(f"swapper {pack.name!r}: unknown options {sorted(unknown)} (known: {sorted(_OPTIONS)})")
        spec = pack.require("swapper", "onnx")
        self.session = open_onnx(spec, config)
        self._bind_io(spec)
        self.recognizer = recognizer or recognizer_from_pack(pack, config)
        self.emap = load_emap(pack, spec, self.latent_dim)
        if self.recognizer.dim != self.latent_dim:
            raise BadInput(f"pack {pack.name!r}: recognizer gives {self.recognizer.dim}-D embeddings, "
                           f"swapper wants {self.latent_dim}-D source")
        self.name = pack.name
        self.template = arcface_template(self.size)
        self.mask = feather_mask(self.size, float(options.get("mask_margin", 0.1)), float(options.get("mask_blur", 0.08)))
        self.batch_size = max(1, int(options.get("batch_size", 8)))
        self.strength = float(options.get("strength", 1.0))
        self.latent: np.ndarray | None = None
        log_event("info", "swapper_ready", swapper=self.name, size=self.size, batched=self.batched,
                  recognizer=self.recognizer.name)

    def _bind_io(self, spec: ModelSpec) -> None:
        ins = self.session.get_inputs()
        four = [i for i in ins if len(i.shape) == 4]
        two = [i for i in ins if len(i.shape) == 2]
        if len(ins) != 2 or len(four) != 1 or len(two) != 1:
            raise BadInput(f"{spec.file}: a swapper needs inputs target [N,3,S,S] and source [N,D], "
                           f"got {[(i.name, i.shape) for i in ins]}")
        tgt, src = four[0], two[0]
        c, h, w = tgt.shape[1:]
        if (isinstance(c, int) and c != 3) or not (isinstance(h, int) and h == w):
            raise BadInput(f"{spec.file}: swapper target input must be [N,3,S,S], got {tgt.shape}")
        if spec.size is not None and spec.size != h:
            raise BadInput(f"{spec.file}: manifest size {spec.size} != model input size {h}")
        outs = self.session.get_outputs()
        if len(outs) != 1 or len(outs[0].shape) != 4 or outs[0].shape[2:] != [h, w]:
            raise BadInput(f"{spec.file}: swapper output must be one [N,3,{h},{w}] tensor, got {[o.shape for o in outs]}")
        if not isinstance(src.shape[1], int):
            raise BadInput(f"{spec.file}: swapper source input needs a fixed width, got {src.shape}")
        self.target_name, self.source_name = tgt.name, src.name
        self.size, self.latent_dim = int(h), int(src.shape[1])
        self.batched = not (isinstance(tgt.shape[0], int) and tgt.shape[0] == 1)

    # -- source ---------------------------------------------------------------------------------
    def source_latent(self, embedding: np.ndarray) -> np.ndarray:
        emb = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        emb = emb / np.linalg.norm(emb)
        latent = emb @ self.emap
        return (latent / np.linalg.norm(latent)).astype(np.float32)

    def prepare(self, source: SourceFace) -> None:
        """Source ArcFace embedding (reused from source.extra_embeddings when present) -> latent."""
        emb = source.extra_embeddings.get(self.recognizer.name)
        if emb is None or np.asarray(emb).size != self.recognizer.dim:
            emb = self.recognizer.embed(source.image_bgr, source.face)
            source.extra_embeddings[self.recognizer.name] = emb
        self.latent = self.source_latent(emb)

    # -- inference ------------------------------------------------------------------------------
    def _blob(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        arr = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops_bgr]).astype(np.float32) / 255.0
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))

    def infer(self, crops_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Swapped aligned crops (BGR uint8) for aligned target crops, in batches when the model allows."""
        if self.latent is None:
            raise RuntimeError("prepare(source) must be called before swapping")
        if not crops_bgr:
            return []
        blob = self._blob(crops_bgr)
        step = self.batch_size if self.batched else 1
        outs = []
        for i in range(0, len(blob), step):
            part = blob[i:i + step]
            src = np.repeat(self.latent, len(part), axis=0)
            outs.append(self.session.run(None, {self.target_name: part, self.source_name: src})[0])
        pred = np.concatenate(outs)
        rgb = np.clip(pred.transpose(0, 2, 3, 1) * 255.0, 0, 255).round().astype(np.uint8)
        return [np.ascontiguousarray(cv2.cvtColor(x, cv2.COLOR_RGB2BGR)) for x in rgb]

    # -- FaceSwapper ----------------------------------------------------------------------------
    def swap(self, frame_bgr: np.ndarray, target: Face) -> tuple[np.ndarray, np.ndarray]:
        return self.swap_faces(frame_bgr, [target])

    def swap_faces(self, frame_bgr: np.ndarray, faces: Sequence[Face]) -> tuple[np.ndarray, np.ndarray]:
        """All faces of one frame in one inference batch, pasted in order; mask = union of weights."""
        return self._swap_items([(frame_bgr, list(faces))])[0]

    def swap_batch(self, items: Sequence[tuple[np.ndarray, Face]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several (frame, face) pairs in one batch; same result as calling swap() on each."""
        return self._swap_items([(f, [face]) for f, face in items])

    def _swap_items(self, items: Sequence[tuple[np.ndarray, list[Face]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        aligned = [[align_crop(frame, face.landmarks, self.template, self.size) for face in faces]
                   for frame, faces in items]
        swapped = iter(self.infer([a.image for group in aligned for a in group]))
        results = []
        for (frame, _), group in zip(items, aligned):
            out = frame
            mask = np.zeros(frame.shape[:2], dtype=np.uint8)
            for crop in group:
                out, m = paste_back(out, next(swapped), crop.matrix, self.mask, strength=self.strength)
                np.maximum(mask, m, out=mask)
            results.append((out if group else frame.copy(), mask))
        return results


def load_pack_swapper(name: str, model_dir: str | Path | None = None, options: dict[str, Any] | None = None,
                      config: RuntimeConfig | None = None) -> InswapperSwapper:
    """Registry entry point (faceworker.swappers.get_swapper) for every non-classic swapper name."""
    return InswapperSwapper(load_pack(model_dir, name), options, config)
