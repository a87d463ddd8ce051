"""bulk_orders against a real Airflow: three manifests in the inbox (two valid, one invalid)
-> two face_swap_order runs succeed, one manifest is rejected with a machine-readable reason
and the scan run fails in its `report` task (visibly red, the reasons in its log); a re-scan
of the same order starts nothing new; the per-scan cap is enforced."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_server import BULK_DAG, ORDER_DAG, AirflowServer, sample_order

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]


def _scan(server: AirflowServer, run_id: str, expect: str = "success", **params: Any) -> dict[str, Any]:
    status, body = server.request("POST", f"/api/v2/dags/{BULK_DAG}/dagRuns",
                                  {"dag_run_id": run_id, "logical_date": None, "conf": params})
    assert status == 200, body
    run = server.wait_run(BULK_DAG, run_id, timeout=300)
    assert run["state"] == expect, server.diagnose(BULK_DAG, run_id)
    return server.task_states(BULK_DAG, run_id)


def _report_log(server: AirflowServer, run_id: str) -> str:
    logs = server.env.airflow_home / "logs" / f"dag_id={BULK_DAG}" / f"run_id={run_id}" / "task_id=report"
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")))


def _runs_of(server: AirflowServer, order_id: str) -> int:
    status, body = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns?run_id_pattern={order_id}")
    assert status == 200
    return int(body["total_entries"])


def test_bulk_inbox_two_valid_one_invalid(airflow_server: AirflowServer) -> None:
    inbox = Path(airflow_server.env.extra_env["FACEFACTORY_INBOX"])
    inbox.mkdir(parents=True, exist_ok=True)
    one = sample_order(airflow_server, "e2e-bulk-1", chunk_frames=64)
    two = sample_order(airflow_server, "e2e-bulk-2", chunk_frames=64)
    (inbox / "a-orders.json").write_text(json.dumps([one]))
    (inbox / "b-orders.csv").write_text(
        ",".join(two) + "\n" + ",".join(str(v) for v in two.values()) + "\n")
    (inbox / "c-bad.json").write_text(json.dumps(
        sample_order(airflow_server, "e2e-bulk-bad", chunk_frames=4, swapper="deepfake")))

    states = _scan(airflow_server, "scan-1", expect="failed")
    assert states["scan"] == "success" and states["file_processed"] == "success"
    assert states["report"] == "failed"
    report = _report_log(airflow_server, "scan-1")
    assert "1 manifest(s) rejected" in report and "c-bad.json: " in report, report
    assert "chunk_frames: must be a whole number" in report and "swapper: must be one of" in report
    assert {states["trigger_order[0]"], states["trigger_order[1]"]} == {"success"}

    reason = json.loads((inbox / "rejected" / "c-bad.json.reason.json").read_text())
    assert reason["status"] == "rejected" and (inbox / "rejected" / "c-bad.json").exists()
    assert {e["field"] for e in reason["errors"]} == {"chunk_frames", "swapper"}
    assert all(e["reason"] == "invalid_order" for e in reason["errors"])
    for name, run_id in (("a-orders.json", "order__e2e-bulk-1"), ("b-orders.csv", "order__e2e-bulk-2")):
        result = json.loads((inbox / "processed" / f"{name}.result.json").read_text())
        assert result["run_ids"] == [run_id]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == []
    assert _runs_of(airflow_server, "e2e-bulk-bad") == 0

    for run_id in ("order__e2e-bulk-1", "order__e2e-bulk-2"):
        run = airflow_server.wait_run(ORDER_DAG, run_id, timeout=900)
        assert run["state"] == "success", airflow_server.diagnose(ORDER_DAG, run_id)
        assert run["conf"]["chunk_frames"] == 64  # CSV cell arrived typed
    published = airflow_server.ff_home / "published"
    assert (published / "e2e-bulk-1.mp4").is_file() and (published / "e2e-bulk-2.mp4").is_file()

    # Re-scan: the same order again is skipped (run exists); a manifest over the cap is rejected.
    (inbox / "a-again.json").write_text(json.dumps(one))
    (inbox / "z-big.json").write_text(json.dumps([sample_order(airflow_server, f"e2e-big-{i}")
                                                  for i in range(2)]))
    states = _scan(airflow_server, "scan-2", expect="failed", max_runs=1)
    assert states["trigger_order[0]"] == "skipped" and states["report"] == "failed"
    assert _runs_of(airflow_server, "e2e-bulk-1") == 1
    assert (inbox / "processed" / "a-again.json").exists()
    big = json.loads((inbox / "rejected" / "z-big.json.reason.json").read_text())
    assert big["errors"][0]["reason"] == "too_many_orders" and big["errors"][0]["max_runs_per_scan"] == 1
    assert _runs_of(airflow_server, "e2e-big") == 0
