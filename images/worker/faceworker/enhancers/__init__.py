"""Enhancer registry: `none`, `gfpgan` (pack dir `gfpgan`) or `gfpgan:<pack>`.

The ONNX export is used unless the pack has .pth weights and the gfpgan package imports
(docs/model-packs.md).
"""
from __future__ import annotations

from faceworker.types import Enhancer


def get_enhancer(name: str, model_dir: str | None = None) -> Enhancer | None:
    if name in ("", "none", None):
        return None
    from faceworker.enhancers.gfpgan import load_gfpgan_enhancer

    return load_gfpgan_enhancer(name, model_dir)
