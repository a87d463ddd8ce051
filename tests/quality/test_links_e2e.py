"""The extra links of a real order run resolve, in a real embedded Airflow (api-server + scheduler).

One sample order through face_swap_order with the default gate (0.85 calibrated identity,
30 dB); then the links API of final_gate / publish returns the plugin's URLs, and those URLs
serve the QA report and the published video to an authenticated user (and nobody else).
"""
from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def finished_order(tmp_path_factory, sample_media):
    from airflow_server import ORDER_DAG, running_airflow

    root = tmp_path_factory.mktemp("links-e2e")
    ff_home = root / "ffhome"
    sample = ff_home / "inputs" / "sample"
    sample_media(sample, seconds=2)
    extra = {
        "FACEFACTORY_BULK_SCHEDULE": "none", "FACEFACTORY_INBOX": str(root / "inbox"),
        "FACEFACTORY_DEADLINE_ENABLED": "false", "FACEFACTORY_LOG_FORMAT": "json",
        "FACEFACTORY_WORK_ROOT": str(ff_home / "work"), "FACEFACTORY_PUBLISH_TO": str(ff_home / "published"),
        "FACEFACTORY_INPUT_ROOTS": str(ff_home / "inputs"),
    }
    with running_airflow(root, extra) as server:
        server.wait_for_dag(ORDER_DAG)
        server.unpause(ORDER_DAG)
        order = {"order_id": "links-1", "source": (sample / "source.png").as_uri(),
                 "target": (sample / "target.mp4").as_uri(), "chunk_frames": 32}
        status, run = server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
                                     {"dag_run_id": "order__links-1", "logical_date": None, "conf": order})
        assert status in (200, 201), run
        done = server.wait_run(ORDER_DAG, "order__links-1", timeout=900)
        assert done["state"] == "success", server.diagnose(ORDER_DAG, "order__links-1")
        yield server, "order__links-1"


def _get(url: str, token: str | None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), ""


def _links(server, run_id: str, task: str) -> dict:
    status, body = server.request("GET", f"/api/v2/dags/face_swap_order/dagRuns/{run_id}/taskInstances/{task}/links")
    assert status == 200, body
    return body.get("extra_links", body)


def test_qa_report_link_resolves(finished_order):
    server, run_id = finished_order
    links = _links(server, run_id, "final_gate")
    assert links.get("QA report") == "/facefactory/orders/links-1/report", links
    assert _links(server, run_id, "quality_gate").get("QA report") == "/facefactory/orders/links-1/report"
    assert not _links(server, run_id, "merge").get("QA report")
    token = server.token()
    status, body, ctype = _get(server.url + links["QA report"], token)
    assert status == 200 and ctype.startswith("text/html"), (status, body[:300])
    assert b"QA report" in body and b"PASSED" in body and b'id="contact-sheet"' in body
    assert _get(server.url + links["QA report"], None)[0] in (401, 403)


def test_published_video_link_resolves(finished_order):
    server, run_id = finished_order
    links = _links(server, run_id, "publish")
    assert links.get("Published video") == "/facefactory/orders/links-1/video", links
    status, body, ctype = _get(server.url + links["Published video"], server.token())
    assert status == 200 and ctype == "video/mp4" and body[4:8] == b"ftyp", (status, ctype, body[:16])
