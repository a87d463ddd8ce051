"""Order deadline (DeadlineAlert) with a real scheduler + triggerer.

A server of its own, with FACEFACTORY_DEADLINE_ENABLED=true and a 1.2 s deadline (the env the
spine's DAG reads at parse time, operators/config.py). An order whose target does not exist
fails in `ingest` after a few seconds, well past its deadline: the scheduler must detect the
miss, the triggerer must run the AsyncCallback (plugins/facefactory_deadlines.py), the callback
must record the miss in $FACEFACTORY_HOME/deadline_misses.jsonl, and the triggerer must
survive handling the callback's result.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_server import ORDER_DAG, AirflowServer, running_airflow, sample_order, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

DEADLINE_MINUTES = 0.02  # 1.2 s after the run is queued


@pytest.fixture(scope="module")
def deadline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    root = tmp_path_factory.mktemp("e2e-deadline")
    (root / "ffhome" / "inputs").mkdir(parents=True)
    env = server_env(root, FACEFACTORY_DEADLINE_ENABLED="true",
                     FACEFACTORY_DEADLINE_MINUTES=str(DEADLINE_MINUTES))
    with running_airflow(root, env) as server:
        server.wait_for_dag(ORDER_DAG)
        server.unpause(ORDER_DAG)
        yield server


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_deadline_miss_is_detected_and_recorded(deadline_server: AirflowServer) -> None:
    server = deadline_server
    order = sample_order(server, "e2e-late-1")  # no sample media here: ingest fails, slowly enough
    run_id = "order__e2e-late-1"
    status, body = server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
                                  {"dag_run_id": run_id, "logical_date": None, "conf": order})
    assert status == 200, body
    run = server.wait_run(ORDER_DAG, run_id, timeout=300)
    assert run["state"] == "failed"  # the order itself is bad; the deadline is what we check

    path = server.ff_home / "deadline_misses.jsonl"
    deadline = time.monotonic() + 120  # the callback may land just after the run ended
    while time.monotonic() < deadline and not any(r.get("run_id") == run_id for r in _records(path)):
        time.sleep(2)
    mine = [r for r in _records(path) if r.get("run_id") == run_id]
    assert mine, f"no deadline miss recorded for {run_id} in {path}\n" + server.env.tail_logs()
    miss = mine[0]
    assert miss["event"] == "deadline_missed" and miss["dag_id"] == ORDER_DAG
    assert miss["order_id"] == "e2e-late-1"
    assert miss["interval_s"] == pytest.approx(DEADLINE_MINUTES * 60)
    triggerer_log = (server.env.log_dir / "triggerer.log").read_text(errors="replace")
    assert "order deadline missed" in triggerer_log

    time.sleep(10)  # the triggerer stores the callback's result after running it
    assert server.env.dead() == {}, "a component died after the deadline callback:\n" + \
        server.env.tail_logs(4000)
    status, health = server.request("GET", "/api/v2/monitor/health", auth=False)
    assert health["triggerer"]["status"] == "healthy", health
