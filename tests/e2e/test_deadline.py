"""Order deadline (DeadlineAlert) with a real scheduler + triggerer: a run that outlives its tiny
deadline is detected by the scheduler and the AsyncCallback (plugins/facefactory_deadlines.py)
runs in the triggerer and records the miss."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_server import AirflowServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_deadline_miss_is_detected_and_recorded(airflow_server: AirflowServer,
                                                api_order: dict[str, Any]) -> None:
    run_id = api_order["submitted"].run_id
    path = airflow_server.ff_home / "deadline_misses.jsonl"
    deadline = time.monotonic() + 120  # the callback may land just after the run ended
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if any(r.get("run_id") == run_id for r in records):
                break
        time.sleep(2)
    mine = [r for r in records if r.get("run_id") == run_id]
    assert mine, f"no deadline miss recorded for {run_id} in {path}: {records}\n" + \
        airflow_server.env.tail_logs()
    miss = mine[0]
    assert miss["event"] == "deadline_missed" and miss["dag_id"] == "face_swap_order"
    assert miss["order_id"] == "e2e-api-1"
    assert miss["interval_s"] == pytest.approx(1.2)
    triggerer_log = (airflow_server.env.log_dir / "triggerer.log").read_text(errors="replace")
    assert "order deadline missed" in triggerer_log or "record_deadline_miss" in triggerer_log
