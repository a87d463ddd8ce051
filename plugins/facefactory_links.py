"""Airflow UI plugin: "QA report" / "Published video" extra links and the app that serves them.

Airflow 3 resolves global operator extra links in the API server, so each link only builds a
URL under this plugin's FastAPI app (mounted at ``/facefactory``); the app reads the order's
work area (``FACEFACTORY_WORK_ROOT``, local or s3://) and the ``publish`` task's XCom. Both
routes require the same permission as reading the order's DAG runs (the UI's session cookie
or a bearer token), so a report is never more visible than the run itself.
"""
from __future__ import annotations

import logging
import mimetypes
import re
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from facefactory.operators import names
from facefactory.operators.order_schema import ORDER_ID_PATTERN

log = logging.getLogger("facefactory.links")

DAG_ID = names.DAG_ID
URL_PREFIX = "/facefactory"
RUN_PREFIX = names.RUN_ID_PREFIX
GATE_TASKS = names.GATE_STAGES
PUBLISH_TASK = names.PUBLISH
ORDER_ID = re.compile(ORDER_ID_PATTERN)
REPORT_FILES = {"index.html", "metrics.png", "contact_sheet.png", "cost.json"}


def order_id_of(run_id: str) -> str | None:
    """The order id encoded in a face_swap_order run id (``order__<order_id>``)."""
    if not run_id.startswith(RUN_PREFIX):
        return None
    oid = run_id[len(RUN_PREFIX):]
    return oid if ORDER_ID.match(oid) else None


def _base_path() -> str:
    """Path part of ``[api] base_url`` when Airflow is served under a sub-path."""
    from urllib.parse import urlparse

    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - without Airflow's config (tests, CLI) there is no sub-path
        base = ""
    return urlparse(base).path.rstrip("/")


def report_url(order_id: str) -> str:
    return f"{_base_path()}{URL_PREFIX}/orders/{order_id}/report"


def video_url(order_id: str) -> str:
    return f"{_base_path()}{URL_PREFIX}/orders/{order_id}/video"


def _order_area(order_id: str) -> Any:
    """The order's `faceworker.workarea.OrderArea` under the deployment's work root."""
    from facefactory import settings
    from faceworker.workarea import OrderArea, open_store

    return OrderArea(open_store(settings.load().work_root), order_id)


def published_uri(order_id: str, dag_id: str = DAG_ID) -> str | None:
    """The URI the ``publish`` task returned for this order's run (None before it succeeded)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select  # noqa: F401 - Select is built by get_many

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=RUN_PREFIX + order_id, key=names.XCOM_RETURN,
                                                 task_ids=PUBLISH_TASK, dag_ids=dag_id, limit=1)).first()
        if row is None:
            return None
        value = XComModel.deserialize_value(row)
    return value if isinstance(value, str) and value else None


class QAReportLink(BaseOperatorLink):
    """Opens the order's QA report from the gate tasks."""

    name = "QA report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        oid = order_id_of(ti_key.run_id)
        if getattr(operator, "task_id", None) not in GATE_TASKS or ti_key.dag_id != DAG_ID or not oid:
            return ""
        return report_url(oid)


class PublishedVideoLink(BaseOperatorLink):
    """Opens the published video from the publish task, once it exists."""

    name = "Published video"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        oid = order_id_of(ti_key.run_id)
        if getattr(operator, "task_id", None) != PUBLISH_TASK or ti_key.dag_id != DAG_ID or not oid:
            return ""
        try:
            return video_url(oid) if published_uri(oid, ti_key.dag_id) else ""
        except Exception:  # noqa: BLE001 - no DB (e.g. parsing): no link rather than an error
            return ""


def require_order_access() -> Any:
    """Same check as GET on the order DAG's runs (overridable in tests via dependency_overrides)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID)


def _checked(order_id: str) -> str:
    if not ORDER_ID.match(order_id):
        raise HTTPException(status_code=404, detail="unknown order")
    return order_id


def create_app(auth: Any | None = None) -> FastAPI:
    """The report/video app; ``auth`` is the access dependency (default: Airflow's DAG-run read)."""
    app = FastAPI(title="facefactory QA", description="QA reports and published videos of orders")
    dep = [Depends(auth if auth is not None else require_order_access())]

    @app.get("/orders/{order_id}/report", response_class=HTMLResponse, dependencies=dep)
    def report(order_id: str) -> Response:
        return _report_file(_checked(order_id), "index.html")

    @app.get("/orders/{order_id}/report/{name}", dependencies=dep)
    def report_asset(order_id: str, name: str) -> Response:
        if name not in REPORT_FILES:
            raise HTTPException(status_code=404, detail="no such report file")
        return _report_file(_checked(order_id), name)

    @app.get("/orders/{order_id}/validation.json", dependencies=dep)
    def validation(order_id: str) -> Response:
        return _work_file(_checked(order_id), "quality/validation.json")

    @app.get("/orders/{order_id}/video", dependencies=dep)
    def video(order_id: str) -> Response:
        uri = published_uri(_checked(order_id))
        if not uri:
            raise HTTPException(status_code=404, detail=f"order {order_id} has not been published")
        return _serve_uri(uri, "video/mp4")

    return app


def _report_file(order_id: str, name: str) -> Response:
    return _work_file(order_id, f"report/{name}")


def _work_file(order_id: str, rel: str) -> Response:
    from facefactory.quality import workarea as wa

    uri = _order_area(order_id).uri(rel)
    if not wa.exists(uri):
        raise HTTPException(status_code=404, detail=f"{rel} not written yet for order {order_id}")
    media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    return _serve_uri(uri, media)


def _serve_uri(uri: str, media_type: str) -> Response:
    """Local files are streamed; s3:// objects are redirected to a short-lived presigned URL."""
    from facefactory.quality import workarea as wa

    if uri.startswith(("http://", "https://")):
        return RedirectResponse(uri)
    if uri.startswith("s3://"):
        bucket, key = wa.split_s3(uri)
        url = wa.s3_client().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=900)
        return RedirectResponse(url)
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
    if not path.is_file():
        raise HTTPException(status_code=404, detail="file is gone")
    return FileResponse(path, media_type=media_type)


class FacefactoryLinksPlugin(AirflowPlugin):
    name = "facefactory_links"
    global_operator_extra_links = [QAReportLink(), PublishedVideoLink()]
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "facefactory QA reports"}]
