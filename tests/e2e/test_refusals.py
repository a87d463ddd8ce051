"""One refusal for every way in, against a real embedded Airflow.

Each invalid order is sent through REST (the route the UI's trigger form posts to),
`facefactory submit`, the bulk inbox and `facefactory order run`; every way must answer with the
same message (facefactory.operators.order_check), its refusal status (HTTP 400 / exit 2 / rejected/), and
create no face_swap_order run. One real order, triggered the way the form does it (no Run ID),
then checks the derived run id, its links, and that a duplicate answers 409 with the existing
run and no ERROR traceback in the API server log.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from airflow_server import BULK_DAG, ORDER_DAG, AirflowServer, sample_order

from facefactory.operators.order_check import order_problems, refusal

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]

# case -> (changes to a valid order, how the same changes read on the command line)
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown-field": ({"chunk_frame": 64}, ["--set", "chunk_frame=64"]),
    "wrong-type": ({"chunk_frames": "abc"}, ["--set", "chunk_frames=abc"]),
    "out-of-range": ({"chunk_frames": 4}, ["--set", "chunk_frames=4"]),
    "nan": ({"min_id_cosine": float("nan")}, ["--set", "min_id_cosine=nan"]),
    "bad-enum": ({"swapper": "deepfake"}, ["--set", "swapper=deepfake"]),
    "bad-uri": ({"source": "http://127.0.0.1/face.png"}, ["--source", "http://127.0.0.1/face.png"]),
    "bad-order-id": ({"order_id": "bad id!"}, ["--order-id", "bad id!"]),
}
WAYS = ["rest", "submit", "bulk", "order-run"]


def _order(server: AirflowServer, case: str) -> dict[str, Any]:
    return {**sample_order(server, f"e2e-refuse-{case}"), **CASES[case][0]}


def _expected(server: AirflowServer, case: str) -> str:
    return refusal(order_problems(_order(server, case)))


def _cli(server: AirflowServer, case: str, *command: str) -> subprocess.CompletedProcess[str]:
    order = sample_order(server, f"e2e-refuse-{case}")
    args = ["--source", order["source"], "--target", order["target"],
            "--order-id", order["order_id"], *CASES[case][1]]  # later flags win
    return subprocess.run([sys.executable, "-m", "facefactory.cli", *command, *args],
                          env=server.cli_env(), capture_output=True, text=True, timeout=300)


def _order_runs(server: AirflowServer) -> list[str]:
    status, body = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns?limit=1000")
    assert status == 200, body
    return sorted(r["dag_run_id"] for r in body["dag_runs"])


@pytest.fixture(scope="module")
def bulk_reasons(airflow_server: AirflowServer) -> dict[str, Any]:
    """Every case as its own manifest, all in one scan (one bulk run for the whole module)."""
    inbox = Path(airflow_server.env.extra_env["FACEFACTORY_INBOX"])
    inbox.mkdir(parents=True, exist_ok=True)
    before = _order_runs(airflow_server)
    for case in CASES:
        (inbox / f"refuse-{case}.json").write_text(json.dumps(_order(airflow_server, case)))
    status, body = airflow_server.request("POST", f"/api/v2/dags/{BULK_DAG}/dagRuns",
                                          {"dag_run_id": "scan-refusals", "logical_date": None,
                                           "conf": {}})
    assert status == 200, body
    run = airflow_server.wait_run(BULK_DAG, "scan-refusals", timeout=300)
    # Rejections make the scan run red through its `report` task (docs/triggering.md).
    assert run["state"] == "failed", airflow_server.diagnose(BULK_DAG, "scan-refusals")
    states = airflow_server.task_states(BULK_DAG, "scan-refusals")
    assert states["scan"] == "success" and states["report"] == "failed", states
    assert _order_runs(airflow_server) == before
    return {case: json.loads((inbox / "rejected" / f"refuse-{case}.json.reason.json").read_text())
            for case in CASES}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_way_in_refuses_with_the_same_message(airflow_server: AirflowServer, case: str,
                                                    way: str, request: pytest.FixtureRequest) -> None:
    expected = _expected(airflow_server, case)
    assert expected.startswith("invalid order: ") and "^" not in expected
    before = _order_runs(airflow_server)
    if way == "rest":
        status, body = airflow_server.request(
            "POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
            {"dag_run_id": None, "logical_date": None, "conf": _order(airflow_server, case)})
        assert status == 400, body
        assert body["detail"] == expected
    elif way == "submit":
        res = _cli(airflow_server, case, "submit")
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines()[-1] == f"facefactory: {expected}"
        assert "Traceback" not in res.stderr
    elif way == "order-run":
        res = _cli(airflow_server, case, "order", "run")
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines()[-1] == expected
    else:
        reason = request.getfixturevalue("bulk_reasons")[case]
        assert reason["status"] == "rejected"
        assert [f"invalid order: {e['field']}: {e['message']}" for e in reason["errors"]] == [expected]
    assert _order_runs(airflow_server) == before  # refused before any run was created


def _links(server: AirflowServer, run_id: str, task: str) -> dict[str, Any]:
    status, body = server.request(
        "GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}/taskInstances/{task}/links")
    assert status == 200, body
    return body.get("extra_links", body)


@pytest.fixture(scope="module")
def form_order(airflow_server: AirflowServer) -> dict[str, Any]:
    """One real order posted as the Airflow 3.3 form posts it when Run ID is left empty."""
    order = sample_order(airflow_server, "e2e-norunid-1", chunk_frames=64)
    body = {"conf": order, "data_interval_end": None, "data_interval_start": None,
            "logical_date": None, "partition_key": None}  # no dag_run_id key at all
    status, created = airflow_server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns", body)
    assert status == 200, created
    run = airflow_server.wait_run(ORDER_DAG, created["dag_run_id"], timeout=900)
    return {"order": order, "body": body, "created": created, "run": run}


def test_form_run_without_run_id_gets_the_order_run_id_and_links(
        airflow_server: AirflowServer, form_order: dict[str, Any]) -> None:
    assert form_order["created"]["dag_run_id"] == "order__e2e-norunid-1"
    assert form_order["run"]["state"] == "success", \
        airflow_server.diagnose(ORDER_DAG, "order__e2e-norunid-1")
    assert _links(airflow_server, "order__e2e-norunid-1", "final_gate")["QA report"] == \
        "/facefactory/orders/e2e-norunid-1/report"
    assert _links(airflow_server, "order__e2e-norunid-1", "publish")["Published video"] == \
        "/facefactory/orders/e2e-norunid-1/video"
    req = urllib.request.Request(airflow_server.url + "/facefactory/orders/e2e-norunid-1/video",
                                 headers={"Authorization": f"Bearer {airflow_server.token()}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200 and resp.read(8)[4:8] == b"ftyp"


def test_duplicate_order_answers_409_with_the_existing_run(
        airflow_server: AirflowServer, form_order: dict[str, Any]) -> None:
    api_log = airflow_server.env.log_dir / "api-server.log"
    mark = api_log.stat().st_size
    before = _order_runs(airflow_server)
    for body in (form_order["body"], {**form_order["body"], "dag_run_id": "order__e2e-norunid-1"}):
        status, answer = airflow_server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns", body)
        assert status == 409, answer
        assert answer["dag_run_id"] == "order__e2e-norunid-1" and answer["state"] == "success"
        assert "exists already" in answer["detail"]
    order = form_order["order"]
    sets = [f"--set={k}={v}" for k, v in order.items() if k not in ("order_id", "source", "target")]
    res = subprocess.run([sys.executable, "-m", "facefactory.cli", "submit", "--source",
                          order["source"], "--target", order["target"], "--order-id",
                          order["order_id"], *sets], env=airflow_server.cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "order__e2e-norunid-1: already exists (state success)" in res.stderr
    assert _order_runs(airflow_server) == before
    with api_log.open("rb") as fh:
        fh.seek(mark)
        tail = fh.read().decode(errors="replace")
    assert "Traceback" not in tail and "Unique constraint" not in tail, tail[-3000:]


def test_another_run_id_for_an_order_is_refused(airflow_server: AirflowServer) -> None:
    order = sample_order(airflow_server, "e2e-runid-2")
    status, body = airflow_server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
                                          {"dag_run_id": "manual__x", "logical_date": None,
                                           "conf": order})
    assert status == 400 and "order__e2e-runid-2" in body["detail"], body
    assert "order__e2e-runid-2" not in _order_runs(airflow_server)


def test_strangers_still_get_airflows_401(airflow_server: AirflowServer) -> None:
    order = {**sample_order(airflow_server, "e2e-stranger"), "chunk_frame": 1}
    status, _ = airflow_server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
                                       {"logical_date": None, "conf": order}, auth=False)
    assert status == 401


def test_health_answers_without_a_token(airflow_server: AirflowServer) -> None:
    """docs/triggering.md says which endpoints are open: version and the health check."""
    status, body = airflow_server.request("GET", "/api/v2/monitor/health", auth=False)
    assert status == 200 and "metadatabase" in body, body
