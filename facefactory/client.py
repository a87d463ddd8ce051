"""Orders over the Airflow REST API v2, with the official `apache-airflow-client`.

For people (and scripts) who do not want to write HTTP: submit an order (idempotent: the run id
is `order__<order_id>`, a second submit returns the existing run), read its state and its mapped
task instances, wait for it, and fetch the published URI from the `publish` task's XCom.
Server URL and credentials come from the environment, defaulting to the embedded Airflow that
`facefactory up` starts.

Every call is retried on connection errors and HTTP 5xx with exponential backoff, within a
bounded time (`FACEFACTORY_CLIENT_RETRY_S`, default 60 s), so a server restarting under a
`--wait` is waited out; when it stays away the caller gets a `ClientError` saying so, never a
urllib3 traceback. Retrying a trigger is safe: the run id is fixed, a repeat answers 409.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import urllib3

from facefactory import settings
from facefactory.operators import names
from facefactory.operators.order_schema import run_id_for

ORDER_DAG = names.DAG_ID
PUBLISH_TASK = names.PUBLISH
TERMINAL = {"success", "failed"}
FAILED_TI = {"failed", "upstream_failed"}
RETRY_STATUSES = frozenset({500, 502, 503, 504})
T = TypeVar("T")


def _af() -> Any:
    """The apache-airflow-client module, imported on first use: it costs ~1 s, and every
    `facefactory` command (even `order run`, which never talks HTTP) imports this module."""
    from airflow_client import client

    return client


class ClientError(RuntimeError):
    """Server unreachable, login refused, or the API said no (message says which)."""


@dataclass(frozen=True)
class ServerConfig:
    """Where the Airflow API is and who we are."""

    url: str
    username: str
    password: str
    retry_s: float = 60.0  # how long to keep retrying a call the server does not answer

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServerConfig:
        """FACEFACTORY_AIRFLOW_URL/_USER/_PASSWORD and FACEFACTORY_CLIENT_RETRY_S;
        defaults = the embedded `facefactory up`, 60 s of retries."""
        env = os.environ if environ is None else environ
        url = settings.raw("FACEFACTORY_AIRFLOW_URL", env) or settings.declared("FACEFACTORY_AIRFLOW_URL").default
        user = settings.raw("FACEFACTORY_AIRFLOW_USER", env) or settings.declared("FACEFACTORY_AIRFLOW_USER").default
        password = settings.raw("FACEFACTORY_AIRFLOW_PASSWORD", env) or _embedded_password(user, env)
        try:
            retry_s = max(0.0, settings.number("FACEFACTORY_CLIENT_RETRY_S", env))
        except ValueError:
            raise ClientError("FACEFACTORY_CLIENT_RETRY_S must be a number of seconds") from None
        return cls(url=url.rstrip("/"), username=user, password=password, retry_s=retry_s)


def _embedded_password(user: str, env: Any) -> str:
    """The password SimpleAuthManager generated for the embedded default (empty if none)."""
    from facefactory.airflow_env import embedded_airflow_home

    path = Path(env.get("AIRFLOW_HOME") or embedded_airflow_home()) / \
        "simple_auth_manager_passwords.json.generated"
    try:
        return str(json.loads(path.read_text()).get(user, ""))
    except (OSError, ValueError):
        return ""


class _Retryable(Exception):
    """A failure worth another try (no answer, or HTTP 5xx); `why` is for people."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _why(exc: BaseException) -> str:
    """`connection refused`, not urllib3's `HTTPConnectionPool(...): Max retries exceeded ...`."""
    inner: BaseException = exc
    while isinstance(reason := getattr(inner, "reason", None), BaseException):
        inner = reason
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(inner))
    if match:
        return match.group(1).strip().lower()
    return type(inner).__name__ if not str(inner) else str(inner)[:200]


def with_retries(cfg: ServerConfig, what: str, call: Callable[[], T],
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried on no answer / HTTP 5xx with backoff (0.5 s doubling, at most 8 s
    apart) for `cfg.retry_s` seconds; then ClientError("cannot reach Airflow ...")."""
    deadline = time.monotonic() + cfg.retry_s
    delay = 0.5
    while True:
        try:
            try:
                return call()
            except _af().ApiException as exc:
                if exc.status in RETRY_STATUSES:
                    raise _Retryable(f"HTTP {exc.status} {exc.reason or ''}".strip()) from exc
                raise
            except urllib.error.HTTPError as exc:
                if exc.code in RETRY_STATUSES:
                    raise _Retryable(f"HTTP {exc.code} {exc.reason or ''}".strip()) from exc
                raise
            except (urllib3.exceptions.HTTPError, urllib.error.URLError, OSError) as exc:
                raise _Retryable(_why(exc)) from exc
        except _Retryable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientError(f"cannot reach Airflow at {cfg.url} ({what}): {exc.why}; "
                                  f"gave up after retrying for {cfg.retry_s:.0f}s") from None
            sleep(min(delay, left))
            delay = min(delay * 2, 8.0)


def fetch_token(cfg: ServerConfig, timeout: float = 30) -> str:
    """JWT from POST /auth/token (SimpleAuthManager and FAB both serve it)."""
    body = json.dumps({"username": cfg.username, "password": cfg.password}).encode()

    def login() -> str:
        req = urllib.request.Request(f"{cfg.url}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return str(json.load(resp)["access_token"])

    try:
        return with_retries(cfg, "login", login)
    except urllib.error.HTTPError as exc:
        raise ClientError(f"login as {cfg.username!r} at {cfg.url} refused: HTTP {exc.code} "
                          f"{exc.read().decode(errors='replace')[:300]}") from None


@dataclass
class TaskState:
    task_id: str
    map_index: int
    state: str | None
    try_number: int

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass
class RunStatus:
    """One order run as the API sees it."""

    run_id: str
    state: str
    conf: dict[str, Any]
    tasks: list[TaskState] = field(default_factory=list)
    published_uri: str | None = None
    failure: dict[str, Any] | None = None   # {"task", "reason"} of the first failed task
    created: bool | None = None             # submit: False when the run already existed

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "state": self.state, "created": self.created,
                "published_uri": self.published_uri, "failure": self.failure,
                "order_id": self.conf.get("order_id"),
                "tasks": [{"task": t.label, "state": t.state, "try": t.try_number}
                          for t in self.tasks]}


class OrderClient:
    """Thin, typed wrapper over DagRunApi / TaskInstanceApi / XComApi for face_swap_order."""

    def __init__(self, cfg: ServerConfig | None = None, dag_id: str = ORDER_DAG) -> None:
        self.cfg = cfg or ServerConfig.from_env()
        self.dag_id = dag_id
        # retries=False: urllib3 gives up at once and with_retries does the (slower) retrying.
        self.conf = _af().Configuration(host=self.cfg.url, access_token=fetch_token(self.cfg),
                                     retries=False)
        self.api = _af().ApiClient(self.conf)
        self.dag_runs = _af().DagRunApi(self.api)
        self.tis = _af().TaskInstanceApi(self.api)
        self.xcoms = _af().XComApi(self.api)
        self.dags = _af().DAGApi(self.api)

    def is_paused(self) -> bool:
        return bool(self._call(self.dags.get_dag, self.dag_id).is_paused)

    def unpause(self) -> None:
        self._call(self.dags.patch_dag, self.dag_id, _af().DAGPatchBody(is_paused=False))

    def submit(self, order: dict[str, Any]) -> RunStatus:
        """Trigger `order__<order_id>`; HTTP 409 means it exists already: return that run."""
        run_id = run_id_for(order["order_id"])
        body = _af().TriggerDAGRunPostBody(dag_run_id=run_id, conf=order, logical_date=None)
        try:
            self._call(self.dag_runs.trigger_dag_run, self.dag_id, body, raw=True)
            created = True
        except _af().ApiException as exc:
            if exc.status != 409:  # 409: the order's run exists (maybe from a retried try)
                raise ClientError(_api_message("trigger", exc)) from exc
            created = False
        status = self.status(run_id)
        status.created = created
        return status

    def status(self, run_id: str) -> RunStatus:
        """Run state, every (mapped) task instance, failure reason, published URI."""
        run = self._call(self.dag_runs.get_dag_run, self.dag_id, run_id)
        tis = self._call(self.tis.get_task_instances, self.dag_id, run_id, limit=1000)
        tasks = sorted((TaskState(t.task_id, t.map_index, _enum(t.state), t.try_number)
                        for t in tis.task_instances), key=lambda t: (t.task_id, t.map_index))
        status = RunStatus(run_id=run_id, state=_enum(run.state) or "", conf=run.conf or {},
                           tasks=tasks)
        if status.state == "success":
            status.published_uri = self.published_uri(run_id)
        failed = [t for t in tasks if t.state in FAILED_TI]
        root = next((t for t in failed if t.state == "failed"), failed[0] if failed else None)
        if root is not None:
            status.failure = {"task": root.label, "reason": self.failure_reason(run_id, root)}
        return status

    def wait(self, run_id: str, timeout_s: float = 3600, poll_s: float = 5,
             on_change: Any = None) -> RunStatus:
        """Poll until the run is success/failed (TimeoutError after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        seen = ""
        while True:
            run = self._call(self.dag_runs.get_dag_run, self.dag_id, run_id)
            state = _enum(run.state) or ""
            if on_change is not None and state != seen:
                on_change(state)
            seen = state
            if state in TERMINAL:
                return self.status(run_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run_id} still {state} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def published_uri(self, run_id: str) -> str | None:
        """The `publish` task's return value: a URI string, or a dict with `uri`/`url`."""
        try:
            entry = self._call(self.xcoms.get_xcom_entry, self.dag_id, PUBLISH_TASK, run_id,
                               "return_value", stringify=False, raw=True)
        except _af().ApiException as exc:
            if exc.status == 404:
                return None
            raise ClientError(_api_message("xcom", exc)) from exc
        value = getattr(entry.actual_instance, "value", None)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        if isinstance(value, dict):
            for key in ("uri", "published_uri", "url", "presigned_url"):
                if value.get(key):
                    return str(value[key])
        return None if value is None else str(value)

    def failure_reason(self, run_id: str, task: TaskState) -> str:
        """The exception of the failed task's last try, from its structured log.

        Read raw: the generated StructuredLogMessage model drops the `level`/`error_detail` keys."""
        try:
            resp = self._call(
                self.tis.get_log_without_preload_content, self.dag_id, run_id, task.task_id,
                max(task.try_number, 1), full_content=True, map_index=task.map_index,
                accept="application/json", raw=True)
            body = json.loads(resp.data)
        except (_af().ApiException, ValueError) as exc:
            return f"(log unavailable: {exc})"
        if getattr(resp, "status", 200) >= 400:
            return f"(log unavailable: HTTP {resp.status})"
        return _last_error(body.get("content", []))

    def _call(self, fn: Any, *args: Any, raw: bool = False, **kwargs: Any) -> Any:
        """One API call with retries; a 401 (token expired during a long wait) logs in again
        once. Other refusals become ClientError, or stay ApiException with raw=True."""
        def call() -> Any:
            return fn(*args, **kwargs)

        try:
            try:
                return with_retries(self.cfg, fn.__name__, call)
            except _af().ApiException as exc:
                if exc.status != 401:
                    raise
                self.conf.access_token = fetch_token(self.cfg)
                return with_retries(self.cfg, fn.__name__, call)
        except _af().ApiException as exc:
            if raw:
                raise
            raise ClientError(_api_message(fn.__name__, exc)) from exc


def _enum(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _api_message(what: str, exc: Any) -> str:
    detail = exc.body or exc.reason
    try:
        detail = json.loads(detail).get("detail", detail)
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{what}: HTTP {exc.status}: {detail}"


def _last_error(content: Any) -> str:
    """Most telling line of a structured task log: the last exception, else the last error."""
    items = content if isinstance(content, list) else [content]
    errors: list[str] = []
    last = ""
    for item in items:
        if not isinstance(item, dict):
            last = str(item)
            continue
        last = str(item.get("event", ""))
        detail = item.get("error_detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            errors.append(f"{detail[0].get('exc_type')}: {detail[0].get('exc_value')}")  # raised, not its cause
        elif str(item.get("level", "")).lower() in ("error", "critical"):
            errors.append(last)
    return (errors[-1] if errors else last or "(empty log)")[:2000]
