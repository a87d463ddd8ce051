"""The cluster profile's shared services: PostgreSQL (metadata DB) and Redis (Celery broker).

Why a module of its own: the profile needs the two servers that a studio runs once for all its
hosts. On a workstation or in CI the profile starts private instances of them (initdb into a
temp dir, a free loopback port, a unix socket in that dir, trust auth), so several clusters can
share a machine and nothing of the system's own PostgreSQL/Redis is touched; in production the
URLs of the managed ones are given instead (FACEFACTORY_CLUSTER_DB_URL / _BROKER_URL) and only
checked. Installing the Debian packages is this module's job too (`ensure_packages`), never the
README's. Every failure is a RuntimeError whose message names the service and the fix.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from facefactory.airflow_env import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
APT_PACKAGES = {"postgres": "postgresql", "redis-server": "redis-server"}
CONNECT_TIMEOUT_S = 5


def postgres_bin() -> Path | None:
    """Folder of the newest Debian PostgreSQL server binaries (initdb, pg_ctl, postgres)."""
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found and (found[-1] / "initdb").exists() else None


def missing_packages() -> list[str]:
    """Debian packages the private services need that are not installed."""
    need = []
    if postgres_bin() is None:
        need.append(APT_PACKAGES["postgres"])
    if shutil.which("redis-server") is None:
        need.append(APT_PACKAGES["redis-server"])
    return need


def ensure_packages(log: Callable[[str], None] = print) -> None:
    """apt-get install PostgreSQL and Redis when missing (root, or sudo without a password)."""
    need = missing_packages()
    if not need:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        raise RuntimeError(f"cluster profile needs {' '.join(need)}: run `apt-get install -y "
                           f"{' '.join(need)}` as root (no sudo here)")
    log(f"facefactory: installing {' '.join(need)} (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, "apt-get", "update", "-qq"],
                [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *need]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    if still := missing_packages():
        raise RuntimeError(f"apt-get installed nothing usable for {still}")


def _service_user() -> str | None:
    """initdb refuses root: run the private PostgreSQL as `postgres` (or `nobody`) then."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither user postgres nor nobody exists for initdb")


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster: own data dir, socket dir and loopback port."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ff-pg-")))
    port: int = field(default_factory=free_port)
    database: str = "airflow"
    user: str = "airflow"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                             user=_service_user(), cwd=self.root)
        if res.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({res.returncode}): "
                               f"{(res.stderr or res.stdout)[-2000:]}")

    def start(self, timeout: float = 60) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        if user := _service_user():
            import pwd

            ids = pwd.getpwnam(user)
            for path in (self.root, sock):
                os.chown(path, ids.pw_uid, ids.pw_gid)
        self._run(str(bindir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
             "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            user=_service_user(), cwd=self.root, start_new_session=True)
        log.close()

        def accepting() -> None:
            res = subprocess.run([str(bindir / "pg_isready"), "-h", str(sock), "-p", str(self.port)],
                                 capture_output=True, timeout=10)
            if res.returncode != 0:
                raise RuntimeError(f"private PostgreSQL not ready after {timeout}s")

        _wait_ready(self.proc, "PostgreSQL", self.root / "postgres.log", accepting, timeout, pause_s=0.3)
        self._run(str(bindir / "createdb"), "-h", str(sock), "-p", str(self.port), "-U", self.user,
                  self.database)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 15 s, then remove the data."""
        stop_process_group(self.proc, signal.SIGINT)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A throw-away Redis: loopback port, no persistence, own dir."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ff-redis-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        _wait_ready(self.proc, "Redis", self.root / "redis.log", lambda: check_redis(self.url, timeout=1),
                    timeout, pause_s=0.2)

    def stop(self) -> None:
        stop_process_group(self.proc, signal.SIGTERM)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen, name: str, log: Path, ready: Callable[[], None], timeout: float,
                pause_s: float) -> None:
    """Poll `ready` (it raises RuntimeError while the service cannot serve yet) until it passes.
    A server that exits first fails with its log's tail, one still not ready after `timeout`
    with `ready`'s last error: both say why, instead of Airflow hanging on the URL later."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"private {name} exited ({proc.returncode}):\n"
                               + log.read_text(errors="replace")[-2000:])
        try:
            ready()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause_s)


def stop_process_group(proc: subprocess.Popen | None, sig: int, grace_s: float = 15) -> None:
    """Stop a server started in its own session (start_new_session): `sig` to its process group,
    SIGKILL after `grace_s`; nothing when it is not running."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
    except ProcessLookupError:
        pass


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def check_postgres(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Connect once; a RuntimeError naming host:port instead of Airflow hanging on it later."""
    import psycopg2

    try:
        psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"),
                         connect_timeout=int(max(1, timeout))).close()
    except psycopg2.Error as exc:
        raise RuntimeError(f"PostgreSQL metadata DB at {_where(url)} is unreachable: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r} "
                           "(check FACEFACTORY_CLUSTER_DB_URL, the server and the network)") from None


def check_redis(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """PING the broker; a RuntimeError naming host:port when it does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise RuntimeError(f"Redis broker at {_where(url)} is unreachable: {exc} "
                           "(check FACEFACTORY_CLUSTER_BROKER_URL, the server and the network)") from None
