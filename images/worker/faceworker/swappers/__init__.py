"""Swapper registry: `classic` (offline, no weights) or an ONNX model pack by name."""
from __future__ import annotations

from typing import Any

from faceworker.types import FaceSwapper


def get_swapper(name: str, model_dir: str | None = None, options: dict[str, Any] | None = None) -> FaceSwapper:
    options = dict(options or {})
    if name == "classic":
        from faceworker.swappers.classic import ClassicSwapper

        return ClassicSwapper(**options)
    from faceworker.swappers.inswapper import load_pack_swapper

    return load_pack_swapper(name, model_dir, options)
