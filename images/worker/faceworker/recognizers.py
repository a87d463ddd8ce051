"""ArcFace-style identity embeddings from an ONNX model pack (e.g. insightface's w600k_r50.onnx).

The inswapper source latent and the ArcFace identity metric both need the *same* 512-D embedding
of an aligned 112x112 face; this module is the one place that computes it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker.align import align_crop, arcface_template
from faceworker.errors import BadInput
from faceworker.onnx_runtime import RuntimeConfig
from faceworker.packs import ModelSpec, Pack, load_pack, open_onnx
from faceworker.types import Face


def _dynamic_batch(shape: list[Any]) -> bool:
    return not isinstance(shape[0], int) or shape[0] != 1


class ArcFaceRecognizer:
    """Recognizer protocol: 112x112 five-point-aligned RGB crop, (x-127.5)/127.5, NCHW -> L2-normalised 512-D."""

    def __init__(self, pack_name: str, spec: ModelSpec, config: RuntimeConfig | None = None) -> None:
        self.session = open_onnx(spec, config)
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise BadInput(f"{spec.file}: a recognizer needs one NCHW image input, got {[i.shape for i in inp]}")
        self.input_name = inp[0].name
        self.size = int(spec.size or inp[0].shape[2])
        if inp[0].shape[1] not in (3, None) and isinstance(inp[0].shape[1], int):
            raise BadInput(f"{spec.file}: recognizer input must have 3 channels, has {inp[0].shape[1]}")
        out = self.session.get_outputs()
        dim = out[0].shape[-1]
        self.dim = int(dim) if isinstance(dim, int) else 512
        self.batched = _dynamic_batch(inp[0].shape)
        self.name = f"arcface:{pack_name}"
        self.template = arcface_template(self.size)

    def crop(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The aligned crop the model sees (BGR, size x size)."""
        return align_crop(image_bgr, face.landmarks, self.template, self.size).image

    def blob(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        arr = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops_bgr]).astype(np.float32)
        arr = (arr - 127.5) / 127.5
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))

    def embed_crops(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """[N, dim] L2-normalised embeddings of already aligned crops."""
        if not crops_bgr:
            return np.zeros((0, self.dim), dtype=np.float32)
        blob = self.blob(crops_bgr)
        if self.batched:
            raw = self.session.run(None, {self.input_name: blob})[0]
        else:
            raw = np.concatenate([self.session.run(None, {self.input_name: blob[i:i + 1]})[0] for i in range(len(blob))])
        raw = raw.reshape(len(blob), -1).astype(np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        if np.any(norms == 0) or not np.all(np.isfinite(raw)):
            raise BadInput(f"{self.name}: model returned a zero or non-finite embedding")
        return raw / norms

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_crops([self.crop(image_bgr, face)])[0]

    def embed_many(self, items: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        return self.embed_crops([self.crop(img, f) for img, f in items])


def recognizer_from_pack(pack: Pack, config: RuntimeConfig | None = None) -> ArcFaceRecognizer:
    return ArcFaceRecognizer(pack.name, pack.require("recognizer", "onnx"), config)


def load_pack_recognizer(name: str, model_dir: str | Path | None = None,
                         config: RuntimeConfig | None = None) -> ArcFaceRecognizer:
    """`arcface:<pack>` or `<pack>`: the pack's ArcFace recognizer (for the identity metric)."""
    pack_name = name.split(":", 1)[1] if name.startswith("arcface:") else name
    return recognizer_from_pack(load_pack(model_dir, pack_name), config)
