"""Which setting wins when the order's flag and reswap's fallback options disagree."""
from __future__ import annotations

from faceworker.spec import ChunkSpec


def _spec(**kw):
    base = dict(work="/tmp/w", order="o", chunk=0, start=0, end=10)
    base.update(kw)
    return ChunkSpec(**base)


def test_fallback_options_override_the_orders_identity_weight() -> None:
    spec = _spec(identity_weight=0.0, options={"identity_weight": 1.0, "forehead": 0.6})
    assert spec.swapper_options() == {"identity_weight": 1.0, "forehead": 0.6}


def test_the_orders_identity_weight_applies_without_fallback() -> None:
    assert _spec(identity_weight=0.4).swapper_options() == {"identity_weight": 0.4}
