"""The UI plugin: extra links resolve to the plugin app's URLs, and the app serves the files."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))

import facefactory_links as fl  # noqa: E402 - after the sys.path entry for plugins/


def key(task: str, run_id: str = "order__o-17", dag_id: str = "face_swap_order") -> tuple:
    return SimpleNamespace(task_id=task), SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task, map_index=-1)


def test_qa_report_link_only_on_gate_tasks():
    link = fl.QAReportLink()
    for task in ("quality_gate", "final_gate"):
        op, k = key(task)
        assert link.get_link(op, ti_key=k) == "/facefactory/orders/o-17/report"
    assert link.get_link(*key("merge")[:1], ti_key=key("merge")[1]) == ""
    op, k = key("final_gate", run_id="manual__2026")
    assert link.get_link(op, ti_key=k) == ""
    op, k = key("final_gate", dag_id="other")
    assert link.get_link(op, ti_key=k) == ""


def test_published_link_needs_a_published_uri(monkeypatch):
    link = fl.PublishedVideoLink()
    op, k = key("publish")
    monkeypatch.setattr(fl, "published_uri", lambda oid, dag_id=fl.DAG_ID: None)
    assert link.get_link(op, ti_key=k) == ""
    monkeypatch.setattr(fl, "published_uri", lambda oid, dag_id=fl.DAG_ID: "file:///x/o-17.mp4")
    assert link.get_link(op, ti_key=k) == "/facefactory/orders/o-17/video"
    assert link.get_link(*key("final_gate")[:1], ti_key=key("final_gate")[1]) == ""


def test_plugin_registers_links_and_app():
    p = fl.FacefactoryLinksPlugin
    assert {lk.name for lk in p.global_operator_extra_links} == {"QA report", "Published video"}
    assert p.fastapi_apps[0]["url_prefix"] == "/facefactory"


@pytest.fixture()
def client(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("FACEFACTORY_WORK_ROOT", str(tmp_path / "work"))
    return TestClient(fl.create_app(auth=lambda: None)), tmp_path / "work" / "orders"


def test_app_serves_report_files(client):
    c, orders = client
    assert c.get("/orders/o-17/report").status_code == 404
    rep = orders / "o-17" / "report"
    rep.mkdir(parents=True)
    (rep / "index.html").write_text("<html><h1>QA report</h1></html>")
    (rep / "metrics.png").write_bytes(b"\x89PNG\r\n\x1a\n....")
    r = c.get("/orders/o-17/report")
    assert r.status_code == 200 and "QA report" in r.text and r.headers["content-type"].startswith("text/html")
    r = c.get("/orders/o-17/report/metrics.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert c.get("/orders/o-17/report/secrets.txt").status_code == 404
    assert c.get("/orders/..%2F..%2Fetc/report").status_code == 404


def test_app_serves_published_video(client, monkeypatch, tmp_path):
    c, _ = client
    video = tmp_path / "pub" / "o-17.mp4"
    video.parent.mkdir()
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    monkeypatch.setattr(fl, "published_uri", lambda oid, dag_id=fl.DAG_ID: video.as_uri() if oid == "o-17" else None)
    r = c.get("/orders/o-17/video")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content.endswith(b"mp42")
    assert c.get("/orders/o-18/video").status_code == 404


def test_default_app_requires_authentication(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("FACEFACTORY_WORK_ROOT", str(tmp_path))
    r = TestClient(fl.create_app(), raise_server_exceptions=False).get("/orders/o-17/report")
    assert r.status_code in (401, 403), r.status_code
