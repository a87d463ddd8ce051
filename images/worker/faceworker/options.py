"""What `faceworker swap-chunk --options` accepts.

A contract module (docs/contracts.md): the Airflow side builds reswap options from it
(quality/fallback.py) instead of inspecting the swapper's constructor or the chunk runner itself,
so a renamed keyword is changed here, in the engine, and nowhere else.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

# Keys of --options that the chunk runner consumes itself instead of handing them to the swapper.
# "detector": FaceAnalyzer settings for this chunk, e.g. {"detect_scale": 1.0, "upsample": 1,
# "redetect_every": 1} (what a reswap uses when the face was lost or landmarks jittered).
RUNNER_OPTIONS = ("detector",)


@lru_cache(maxsize=1)
def classic_options() -> frozenset[str]:
    """The keywords the classic swapper takes from --options (it rejects any other)."""
    from faceworker.swappers.classic import ClassicSwapper

    params = inspect.signature(ClassicSwapper.__init__).parameters
    return frozenset(n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD)
