"""A real embedded Airflow for e2e tests: free loopback port, temp homes, always stopped.

Uses facefactory.airflow_env (what `facefactory up` runs), so the tests exercise the real
api-server + scheduler (LocalExecutor, SQLite) + dag-processor + triggerer, not a mock.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefactory.airflow_env import AirflowEnv, free_port
from facefactory.client import OrderClient, ServerConfig

PASSWORD = "e2e-admin-pw"
ORDER_DAG = "face_swap_order"
BULK_DAG = "bulk_orders"
# Lenient gate: these tests are about the ways in; the gate has its own tests (tests/quality).
LENIENT = {"min_id_cosine": 0.0, "min_psnr_db": 10}


def sample_order(server: AirflowServer, order_id: str, **overrides: Any) -> dict[str, Any]:
    """A tiny valid order on the session's sample media (2 s, 640x360, 25 fps)."""
    sample = server.ff_home / "inputs" / "sample"
    return {"order_id": order_id, "source": (sample / "source.png").as_uri(),
            "target": (sample / "target.mp4").as_uri(), "chunk_frames": 32, **LENIENT, **overrides}


@dataclass
class AirflowServer:
    """Handle on a running embedded Airflow plus small raw-HTTP helpers for assertions."""

    env: AirflowEnv
    username: str
    password: str

    @property
    def url(self) -> str:
        return self.env.url

    @property
    def ff_home(self) -> Path:
        return self.env.ff_home

    def config(self) -> ServerConfig:
        return ServerConfig(url=self.url, username=self.username, password=self.password)

    def client(self) -> OrderClient:
        return OrderClient(self.config())

    def cli_env(self) -> dict[str, str]:
        """Environment for `facefactory submit/status/wait` subprocesses against this server."""
        env = self.env.environ()
        env.update(FACEFACTORY_AIRFLOW_URL=self.url, FACEFACTORY_AIRFLOW_USER=self.username,
                   FACEFACTORY_AIRFLOW_PASSWORD=self.password)
        return env

    def token(self) -> str:
        status, body = self.request("POST", "/auth/token",
                                    {"username": self.username, "password": self.password},
                                    auth=False)
        assert status in (200, 201), body
        return str(body["access_token"])

    def request(self, method: str, path: str, body: Any = None, auth: bool | str = True,
                ) -> tuple[int, Any]:
        """One HTTP call; returns (status, parsed JSON or text). auth=str uses that token."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {auth if isinstance(auth, str) else self.token()}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the dag-processor has parsed `dag_id`; fail fast on its import error."""
        deadline = time.monotonic() + timeout
        token = self.token()
        while time.monotonic() < deadline:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}", auth=token)
            if status == 200:
                return body
            _, errors = self.request("GET", "/api/v2/importErrors", auth=token)
            for err in (errors or {}).get("import_errors", []):
                if Path(err.get("filename", "")).stem == dag_id:
                    raise AssertionError(f"{dag_id} failed to import:\n{err.get('stack_trace')}")
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s\n{self.env.tail_logs()}")

    def unpause(self, dag_id: str) -> None:
        status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, body

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        """Poll a DAG run until success/failed; returns the run JSON."""
        deadline = time.monotonic() + timeout
        token, token_at = self.token(), time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - token_at > 600:
                token, token_at = self.token(), time.monotonic()
            status, run = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", auth=token)
            if status == 200 and run["state"] in ("success", "failed"):
                return run
            if dead := self.env.dead():
                raise AssertionError(f"airflow components died: {dead}\n{self.env.tail_logs()}")
            time.sleep(2)
        raise TimeoutError(f"{dag_id}/{run_id} not finished after {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """{task label: state} for every (mapped) task instance of a run."""
        status, body = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        assert status == 200, body
        return {(t["task_id"] if t["map_index"] < 0 else f"{t['task_id']}[{t['map_index']}]"):
                t["state"] for t in body["task_instances"]}

    def diagnose(self, dag_id: str, run_id: str) -> str:
        """Task states and the error events of the run's task logs, for assertion messages."""
        lines = [f"{dag_id}/{run_id}: {self.task_states(dag_id, run_id)}"]
        logs = self.env.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        for path in sorted(logs.rglob("*.log")) if logs.exists() else []:
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if str(event.get("level")) in ("error", "critical"):
                    detail = event.get("error_detail") or [{}]
                    lines.append(f"{path.relative_to(logs)}: {event.get('event')} "
                                 f"{detail[0].get('exc_type', '')}: {detail[0].get('exc_value', '')}")
        return "\n".join(lines)


def server_env(root: Path, **overrides: str) -> dict[str, str]:
    """FACEFACTORY_* settings of an e2e server rooted at `root` (all under its temp dir)."""
    ff_home = root / "ffhome"
    env = {
        "FACEFACTORY_INBOX": str(root / "inbox"),
        "FACEFACTORY_BULK_SCHEDULE": "none",
        "FACEFACTORY_LOG_FORMAT": "json",
        "FACEFACTORY_WORK_ROOT": str(ff_home / "work"),
        "FACEFACTORY_PUBLISH_TO": str(ff_home / "published"),
        "FACEFACTORY_INPUT_ROOTS": str(ff_home / "inputs"),
    }
    env.update(overrides)
    return env


@contextmanager
def running_airflow(root: Path, extra_env: dict[str, str] | None = None,
                    ready_timeout: float = 240) -> Iterator[AirflowServer]:
    """Start an embedded Airflow under `root`; stop every process group on exit, even on error."""
    env = AirflowEnv(
        airflow_home=root / "airflow",
        ff_home=root / "ffhome",
        port=free_port(),
        password=PASSWORD,
        dag_refresh_s=5,
        log_ports=(free_port(), free_port()),
        extra_env=dict(extra_env or {}),
    )
    try:
        env.prepare()
        env.start()
        env.wait_ready(timeout=ready_timeout)
        yield AirflowServer(env=env, username="admin", password=PASSWORD)
    finally:
        env.stop()
