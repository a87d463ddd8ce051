"""Enhancer registry: `none`, or `gfpgan` (ONNX export from the model dir, or the gfpgan package)."""
from __future__ import annotations

from faceworker.types import Enhancer


def get_enhancer(name: str, model_dir: str | None = None) -> Enhancer | None:
    if name in ("", "none", None):
        return None
    from faceworker.enhancers.gfpgan import load_gfpgan_enhancer

    return load_gfpgan_enhancer(name, model_dir)
