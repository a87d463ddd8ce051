"""The embedded default under a burst (issue 15): orders POSTed at the same moment and
manifests dropped into the inbox at once all publish, each with its own source's identity,
with no 5xx, no failed or retried task, no component exit and no `database is locked`.

Sized for CI (FACEFACTORY_BURST_REST / FACEFACTORY_BURST_BULK, default 6 + 4 tiny orders: as
many REST orders at once as killed the scheduler in issue 15, plus the inbox); the full 20 + 20 measurement is
`python tests/e2e/burst.py --rest 20 --bulk 20` (docs/embedded.md)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from burst import run_burst

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_burst_of_rest_and_bulk_orders_all_publish(tmp_path: Path) -> None:
    rest = int(os.environ.get("FACEFACTORY_BURST_REST", "6"))
    bulk = int(os.environ.get("FACEFACTORY_BURST_BULK", "4"))
    r = run_burst(tmp_path, rest, bulk, timeout=900)
    assert r["http_5xx_or_none"] == [], r
    assert r["http_statuses"] == [200], r
    assert r["scan_state"] == "success", r
    assert r["dead_components"] == {}, r
    assert r["not_success"] == {}, r
    assert r["failed_tasks"] == {} and r["retried_tasks"] == {}, r
    assert sum(r["locked_lines"].values()) == 0, r
    assert r["wrong_identity"] == {}, r
