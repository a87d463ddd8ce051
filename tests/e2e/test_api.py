"""REST API v2 against a real Airflow: auth, trigger with the official client, idempotency,
polling mapped task instances, published URI from XCom, and the `facefactory` CLI on top."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from airflow_server import ORDER_DAG, AirflowServer, sample_order

from facefactory.client import ClientError, OrderClient, ServerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]


def _cli(server: AirflowServer, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facefactory.cli", *args], env=server.cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_unauthenticated_calls_are_refused(airflow_server: AirflowServer) -> None:
    status, _ = airflow_server.request("GET", "/api/v2/version", auth=False)
    assert status == 200  # the only open endpoint
    status, _ = airflow_server.request("GET", "/api/v2/dags", auth=False)
    assert status == 401
    status, _ = airflow_server.request(
        "POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
        {"dag_run_id": "order__intruder", "logical_date": None,
         "conf": sample_order(airflow_server, "intruder")}, auth=False)
    assert status == 401
    status, _ = airflow_server.request("GET", "/api/v2/dags", auth="not-a-jwt")
    assert status == 403  # a token that does not verify: Forbidden
    status, _ = airflow_server.request("POST", "/auth/token",
                                       {"username": "admin", "password": "wrong"}, auth=False)
    assert status == 401
    with pytest.raises(ClientError, match="refused"):
        OrderClient(ServerConfig(airflow_server.url, "admin", "wrong"))
    status, runs = airflow_server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns?run_id_pattern=intruder")
    assert status == 200 and runs["total_entries"] == 0


def test_invalid_conf_is_refused_with_the_schema_message(airflow_server: AirflowServer) -> None:
    order = sample_order(airflow_server, "e2e-bad", chunk_frames=4)
    status, body = airflow_server.request(
        "POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
        {"dag_run_id": "order__e2e-bad", "logical_date": None, "conf": order})
    assert status == 400, body
    assert "chunk_frames" in str(body) and "16" in str(body)
    res = _cli(airflow_server, "submit", "--source", order["source"], "--target", order["target"],
               "--order-id", "e2e-bad", "--set", "chunk_frames=4")
    assert res.returncode == 2, res.stderr
    assert "invalid order: chunk_frames: must be a whole number from 16 to 512; got 4" in res.stderr


def test_order_via_official_client_succeeds(airflow_server: AirflowServer,
                                            api_order: dict[str, Any]) -> None:
    status = api_order["status"]
    assert api_order["submitted"].created is True
    assert api_order["submitted"].run_id == "order__e2e-api-1"
    assert status.state == "success", api_order["diagnose"]()
    swaps = [t for t in status.tasks if t.task_id == "swap"]
    assert [t.map_index for t in swaps] == [0, 1]  # 50 frames / 32 per chunk, mapped
    assert all(t.state == "success" for t in swaps)
    uri = status.published_uri
    assert uri and uri.startswith("file://"), status.to_json()
    published = Path(urlparse(uri).path)
    assert published.is_file() and published.stat().st_size > 10_000
    from faceworker.probe import probe

    assert probe(str(published)).frames == 50


def test_same_order_twice_yields_one_run(airflow_server: AirflowServer,
                                         api_order: dict[str, Any]) -> None:
    client = airflow_server.client()
    again = client.submit(api_order["order"])
    assert again.created is False and again.run_id == api_order["submitted"].run_id
    status, body = airflow_server.request(
        "POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
        {"dag_run_id": again.run_id, "logical_date": None, "conf": api_order["order"]})
    assert status == 409, body
    status, runs = airflow_server.request(
        "GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns?run_id_pattern=e2e-api-1")
    assert status == 200 and runs["total_entries"] == 1


def test_cli_submit_wait_prints_the_published_uri_last(airflow_server: AirflowServer,
                                                       api_order: dict[str, Any]) -> None:
    order = api_order["order"]
    sets = [f"--set={k}={v}" for k, v in order.items() if k not in ("order_id", "source", "target")]
    res = _cli(airflow_server, "submit", "--source", order["source"], "--target", order["target"],
               "--order-id", order["order_id"], *sets, "--wait", "--poll", "1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == api_order["status"].published_uri
    assert "already exists" in res.stderr
    res = _cli(airflow_server, "status", api_order["submitted"].run_id)
    assert res.returncode == 0 and '"state": "success"' in res.stdout
    res = _cli(airflow_server, "wait", api_order["submitted"].run_id, "--poll", "1")
    assert res.returncode == 0
    assert res.stdout.strip().splitlines()[-1] == api_order["status"].published_uri


def test_cli_failed_order_exits_non_zero_with_task_and_reason(airflow_server: AirflowServer) -> None:
    order = sample_order(airflow_server, "e2e-missing-target")
    missing = Path(urlparse(order["target"]).path).with_name("no-such-video.mp4")
    res = _cli(airflow_server, "submit", "--source", order["source"], "--target", missing.as_uri(),
               "--order-id", order["order_id"], "--wait", "--poll", "1", timeout=600)
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    last = res.stderr.strip().splitlines()[-1]
    assert "failed in task ingest" in last and "no-such-video.mp4" in last, res.stderr
