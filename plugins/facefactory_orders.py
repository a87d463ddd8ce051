"""API-server gate for new orders: the one refusal, 409 for duplicates, run ids from order ids.

The UI's trigger form and REST clients both create order runs with
``POST /api/v2/dags/face_swap_order/dagRuns`` (the Airflow 3.3 UI calls the public route too).
Airflow itself only checks Params, so unknown fields passed, bad values came back as a regex and
a dict dump, a duplicate run id surfaced as "Unique constraint violation" with an ERROR
traceback, and a form left without a Run ID got ``manual__<time>``, which the QA/video links
cannot map to an order. This root middleware sees the request before Airflow does and:

- refuses an invalid order with HTTP 400 and facefactory.operators.order_check's message (the same words as
  `facefactory submit`, bulk and `order run`), so no run is created;
- fills an empty ``dag_run_id`` with ``order__<order_id>`` and refuses any other run id;
- answers 409 with the existing run's id and state instead of letting the insert fail.

Only callers Airflow would let trigger the DAG are answered here; anyone else is passed through
untouched so Airflow answers 401/403 as it always does (a 409 must not tell strangers which
orders exist).
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from facefactory.operators import names
from facefactory.operators.order_check import Problem, order_problems, refusal
from facefactory.operators.order_schema import ORDER_FIELDS, run_id_for

log = logging.getLogger("facefactory.orders")

DAG_ID = names.DAG_ID
TRIGGER_PATH = re.compile(rf"/api/v2/dags/{DAG_ID}/dagRuns/?$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Verdict:
    """What to do with one trigger request: answer it here, or pass on a (rewritten) body."""

    status: int | None = None            # None = let Airflow create the run
    payload: dict[str, Any] | None = None
    body: dict[str, Any] | None = None   # the body to pass on (run id filled in)


def conf_problems(conf: Any) -> list[Problem]:
    """Problems of a run's conf: fields it leaves out take the form's defaults (valid by
    construction), so only what it says is checked, and Airflow's own conf keys are allowed."""
    problems = order_problems(conf, allow_injected=True)
    if isinstance(conf, dict):
        problems = [p for p in problems if not (p.message == "is required" and p.field not in conf
                                                and ORDER_FIELDS[p.field].get("default") is not None)]
    return problems


def decide(body: Any, find_run: Callable[[str], str | None]) -> Verdict:
    """The gate's decision for one trigger body; `find_run(run_id)` gives an existing run's state."""
    if not isinstance(body, dict):
        return Verdict()  # not a trigger body: Airflow answers 422 itself
    conf = body.get("conf")
    conf = {} if conf is None else conf
    if problems := conf_problems(conf):
        return _bad(refusal(problems), problems)
    order_id = conf.get("order_id", ORDER_FIELDS["order_id"]["default"])
    expected = run_id_for(order_id)
    given = body.get("dag_run_id")
    if given not in (None, "") and given != expected:
        problem = Problem("dag_run_id", f"leave the Run ID empty or use {expected!r}: an order's "
                          "run id is derived from its order id, so the same order never runs twice")
        return _bad(refusal([problem]), [problem])
    state = find_run(expected)
    if state is not None:
        return Verdict(409, {
            "detail": f"order {order_id!r} exists already as run {expected} (state {state}); "
                      "it is not run twice",
            "dag_run_id": expected, "state": state, "order_id": order_id,
        })
    return Verdict(body={**body, "dag_run_id": expected})


def _bad(detail: str, problems: list[Problem]) -> Verdict:
    return Verdict(400, {"detail": detail,
                         "problems": [p._asdict() for p in problems]})


def existing_run_state(run_id: str) -> str | None:
    """State of the order DAG's run `run_id` in the metadata DB (None = no such run)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == DAG_ID,
                                                          DagRun.run_id == run_id))
    return None if state is None else str(getattr(state, "value", state))


async def may_trigger(scope: Scope) -> bool:
    """Would Airflow let this caller trigger the order DAG? (bearer token, else the UI cookie)"""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from starlette.requests import Request

    request = Request(scope)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    credential = token if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    try:
        user = await resolve_user_from_token(credential)
        return bool(get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=DAG_ID),
            user=user))
    except Exception:  # noqa: BLE001 - no/expired/invalid token: Airflow gives the 401/403
        return False


class OrderGate:
    """Pure ASGI middleware (it must read and may rewrite the request body)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not TRIGGER_PATH.search(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        if raw is None:
            return  # the client went away before sending its order
        verdict = Verdict()
        if await may_trigger(scope):
            verdict = await _decide(raw)
        if verdict.status is not None:
            await _answer(send, verdict.status, verdict.payload or {})
            return
        if verdict.body is not None:
            raw = json.dumps(verdict.body).encode()
            scope = {**scope, "headers": _with_length(scope.get("headers", []), len(raw))}
        await self.app(scope, _replay(raw, receive), send)


async def _decide(raw: bytes) -> Verdict:
    from starlette.concurrency import run_in_threadpool

    try:
        body = json.loads(raw)
    except ValueError:
        return Verdict()  # Airflow answers malformed JSON itself
    try:
        return await run_in_threadpool(decide, body, existing_run_state)
    except Exception:  # noqa: BLE001 - the gate must never be why an order cannot be placed
        log.warning("facefactory order gate could not check a trigger; passing it to Airflow",
                    exc_info=True)
        return Verdict()


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (None when the client went away before sending it)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """The (rewritten) body once, then the real channel (so a disconnect is still seen)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class FacefactoryOrdersPlugin(AirflowPlugin):
    name = "facefactory_orders"
    fastapi_root_middlewares = [{"middleware": OrderGate, "name": "facefactory order gate"}]
