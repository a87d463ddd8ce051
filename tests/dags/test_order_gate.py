"""The API-server order gate (plugins/facefactory_orders.py) without a server: its decisions,
and the ASGI plumbing around a stand-in app (the real API server is in tests/e2e/test_refusals.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))

import facefactory_orders as fo

CONF = {"order_id": "g-1", "source": "file:///in/s.png", "target": "file:///in/t.mp4"}


def no_run(run_id: str) -> str | None:
    return None


def test_invalid_conf_is_refused_with_the_one_message() -> None:
    verdict = fo.decide({"conf": {**CONF, "chunk_frame": 64}}, no_run)
    assert verdict.status == 400
    assert verdict.payload["detail"].startswith("invalid order: chunk_frame: unknown order field")
    assert verdict.payload["problems"][0]["field"] == "chunk_frame"


def test_missing_fields_take_the_form_defaults_but_required_nulls_do_not() -> None:
    assert fo.decide({"conf": {"order_id": "g-2"}}, no_run).status is None
    assert fo.decide({"conf": {**CONF, "target": None}}, no_run).status == 400


def test_empty_run_id_is_derived_from_the_order_id() -> None:
    for given in (None, ""):
        verdict = fo.decide({"dag_run_id": given, "conf": CONF, "note": "n"}, no_run)
        assert verdict.status is None
        assert verdict.body == {"dag_run_id": "order__g-1", "conf": CONF, "note": "n"}
    assert fo.decide({"conf": None}, no_run).body["dag_run_id"] == "order__sample-0001"


def test_another_run_id_is_refused() -> None:
    verdict = fo.decide({"dag_run_id": "manual__x", "conf": CONF}, no_run)
    assert verdict.status == 400 and "'order__g-1'" in verdict.payload["detail"]


def test_duplicate_answers_409_with_the_existing_run() -> None:
    verdict = fo.decide({"conf": CONF}, lambda run_id: "running" if run_id == "order__g-1" else None)
    assert verdict.status == 409
    assert verdict.payload["dag_run_id"] == "order__g-1" and verdict.payload["state"] == "running"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    from starlette.testclient import TestClient

    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # stands in for Airflow
        body = json.loads((await receive())["body"] or b"null")
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})

    async def allowed(scope: Any) -> bool:
        return dict(scope["headers"]).get(b"authorization") == b"Bearer ok"

    monkeypatch.setattr(fo, "may_trigger", allowed)
    monkeypatch.setattr(fo, "existing_run_state", lambda run_id: "success" if "dup" in run_id else None)
    test_client = TestClient(fo.OrderGate(app))
    test_client.seen = seen
    return test_client


def test_asgi_refuses_rewrites_and_passes_through(client: Any) -> None:
    url, auth = "/api/v2/dags/face_swap_order/dagRuns", {"Authorization": "Bearer ok"}
    res = client.post(url, json={"conf": {**CONF, "min_id_cosine": "x"}}, headers=auth)
    assert res.status_code == 400 and "min_id_cosine: must be a number" in res.json()["detail"]
    res = client.post(url, json={"conf": {**CONF, "order_id": "dup-1"}}, headers=auth)
    assert res.status_code == 409 and res.json()["dag_run_id"] == "order__dup-1"
    assert client.seen == []  # nothing reached Airflow
    res = client.post(url, json={"dag_run_id": None, "conf": CONF}, headers=auth)
    assert res.status_code == 200 and client.seen[-1]["dag_run_id"] == "order__g-1"
    # Strangers and other routes are Airflow's business (401/403 there), untouched here.
    res = client.post(url, json={"conf": {**CONF, "chunk_frame": 1}})
    assert res.status_code == 200 and client.seen[-1] == {"conf": {**CONF, "chunk_frame": 1}}
    res = client.post("/api/v2/dags/other/dagRuns", json={"conf": {"x": 1}}, headers=auth)
    assert res.status_code == 200 and client.seen[-1] == {"conf": {"x": 1}}
