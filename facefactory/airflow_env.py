"""The embedded Airflow: api-server (with the UI), scheduler, dag-processor and triggerer.

One place that knows how to configure and start/stop them, used by `facefactory up` and by the
e2e test fixture (tests/e2e/airflow_server.py), so what the tests exercise is what users run.
Everything is configured through environment variables on the child processes (never the
caller's own environment), which lets several independent Airflows share one machine.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from facefactory import settings

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
DEFAULT_USER = "admin"


def facefactory_home() -> Path:
    """FACEFACTORY_HOME as the spine's settings resolve it (default <repo>/var)."""
    return settings.load().home


def embedded_airflow_home() -> Path:
    """AIRFLOW_HOME of the embedded default: $AIRFLOW_HOME, else $FACEFACTORY_HOME/airflow."""
    return settings.airflow_home()


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowEnv:
    """Configuration and processes of one embedded Airflow."""

    airflow_home: Path
    ff_home: Path
    host: str = "127.0.0.1"
    port: int = 8080
    password: str | None = None      # None: SimpleAuthManager generates one (read it back)
    users: str = f"{DEFAULT_USER}:admin"
    dag_refresh_s: int = 30          # how often the dag-processor looks for new DAG files
    paused_at_creation: bool = False  # embedded default: DAGs run as soon as they are parsed
    gpu_slots: int = 2               # size of pool gpu_swaps
    log_ports: tuple[int, int] = (8793, 8794)  # worker and triggerer log servers (free ones in tests)
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    # Process groups of components that exited and were restarted: their children (e.g. task
    # runners of a dead scheduler) may still be finishing a task; stop() ends them too.
    _old_groups: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def log_dir(self) -> Path:
        return self.airflow_home / "logs" / "facefactory"

    def _secrets(self) -> dict[str, str]:
        """JWT/session secrets shared by all components (must match), stable across restarts."""
        path = self.airflow_home / "facefactory_secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {"jwt_secret": secrets.token_urlsafe(64), "secret_key": secrets.token_urlsafe(32),
                  "fernet_key": _fernet_key()}
        path.write_text(json.dumps(values))
        path.chmod(0o600)
        return values

    def environ(self) -> dict[str, str]:
        """Environment of every airflow child process (and of `airflow` CLI calls)."""
        keys = self._secrets()
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        env.update({
            "AIRFLOW_HOME": str(self.airflow_home),
            "FACEFACTORY_HOME": str(self.ff_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(self.paused_at_creation),
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": self.users,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
            # SQLite waits for its write lock instead of failing after 5 s (facefactory.sqlite_db).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "facefactory.sqlite_db.CONNECT_ARGS",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "facefactory.sqlite_db.ASYNC_CONNECT_ARGS",
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(self.dag_refresh_s),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(self.dag_refresh_s),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # 2 cores + SQLite: a task's start call can take >5 s (the default); a timed-out
            # call is retried, gets 400 "already running", and the task fails for nothing.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": env.get(
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            # Deadlines are on where a scheduler runs (facefactory.deadlines); set false to opt out.
            "FACEFACTORY_DEADLINE_ENABLED": settings.raw("FACEFACTORY_DEADLINE_ENABLED", env) or "true",
        })
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ lifecycle

    def prepare(self) -> None:
        """Create the folders, fix the password (if given) and migrate the metadata DB."""
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.ff_home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.password is not None:
            names = [u.split(":")[0] for u in self.users.split(",") if u.strip()]
            self.passwords_file.write_text(json.dumps({n: self.password for n in names}) + "\n")
            settings.write_airflow_cfg(self.airflow_home, self.ff_home)  # the repo's template
        self.airflow("db", "migrate", timeout=300)
        self.airflow("pools", "set", "gpu_swaps", str(self.gpu_slots),
                     "swap tasks at once (GPU budget)", timeout=120)

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one `airflow` CLI command against this environment; raise with its output on failure."""
        res = subprocess.run(["airflow", *args], env=self.environ(), capture_output=True,
                             text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({res.returncode}):\n"
                               f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res

    def start(self, components: tuple[str, ...] = COMPONENTS) -> None:
        """Start each component in its own process group, output to log_dir/<name>.log."""
        env = self.environ()
        for name in components:
            args = ["airflow", name]
            if name == "api-server":
                args += ["--host", self.host, "--port", str(self.port), "--workers", "1"]
            log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            self.procs[name] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def restart(self, name: str) -> None:
        """Start an exited component again. Its old process group is kept (a dead scheduler's
        task runners may be finishing their task) and ended by stop()."""
        old = self.procs.pop(name)
        self._old_groups.append(old)
        self.start((name,))

    def dead(self) -> dict[str, int]:
        """Components that exited, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait until the API answers and scheduler, dag-processor and triggerer report healthy."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if dead := self.dead():
                raise RuntimeError(f"airflow components exited: {dead}; see {self.log_dir}\n"
                                   + self.tail_logs())
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    health = json.load(r)
                wanted = [c for c in ("scheduler", "dag_processor", "triggerer")
                          if c.replace("_", "-") in self.procs]
                states = {c: (health.get(c) or {}).get("status") for c in wanted}
                if all(s == "healthy" for s in states.values()):
                    return
                last = f"health {states}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(1)
        raise TimeoutError(f"airflow not ready after {timeout}s ({last})\n" + self.tail_logs())

    def tail_logs(self, chars: int = 2000, names: tuple[str, ...] | None = None) -> str:
        """Last lines of each component's log (for error messages)."""
        out = []
        for name in names or tuple(self.procs):
            path = self.log_dir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def stop(self, grace_s: float = 20) -> None:
        """SIGTERM every process group, then SIGKILL what is left after grace_s."""
        procs = [*self.procs.values(), *self._old_groups]
        for proc in procs:  # also groups whose leader exited: their children may not have
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # also reaps leftover children (task runners)
            proc.wait()
        self.procs.clear()
        self._old_groups.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def credentials(self) -> tuple[str, str]:
        """(user, password) of the first configured user, from the passwords file."""
        user = self.users.split(",")[0].split(":")[0]
        if self.password is not None:
            return user, self.password
        return user, json.loads(self.passwords_file.read_text())[user]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
