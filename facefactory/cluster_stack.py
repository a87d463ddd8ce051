"""Bring the whole cluster profile up and down in the right order, used by `facefactory up
--profile cluster` and by tests/cluster (so the tests exercise what a person runs).

Order: Debian packages -> PostgreSQL and Redis (private ones, or the given URLs checked) ->
object storage (the given s3:// work area, or a local moto server as a stand-in) -> Airflow
migrate + pool -> scheduler, dag-processor, triggerer, API server -> one probe per worker node
(work area reachable) -> the Celery workers. stop() undoes all of it, also after a failed start.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from facefactory import settings
from facefactory.airflow_env import free_port
from facefactory.cluster import ClusterEnv, WorkerSpec, default_workers
from facefactory.cluster_services import (
    PrivatePostgres,
    PrivateRedis,
    check_postgres,
    check_redis,
    ensure_packages,
    stop_process_group,
)

LOCAL_S3_KEY = "facefactory-local"
LOCAL_S3_SECRET = "facefactory-local-secret"
LOCAL_S3_REGION = "us-east-1"


class _PrivateService(Protocol):
    """What the stack needs of a private PostgreSQL or Redis (facefactory.cluster_services)."""

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...


_S = TypeVar("_S", bound=_PrivateService)


@dataclass
class LocalS3:
    """moto_server on a free loopback port: the S3 stand-in when no real bucket is given."""

    root: Path
    proc: subprocess.Popen | None = None
    endpoint: str = ""

    def start(self, buckets: tuple[str, ...], timeout: float = 60) -> None:
        binary = Path(sys.executable).with_name("moto_server")
        if not binary.exists():
            raise RuntimeError(f"moto_server not found beside {sys.executable} (pip install moto[server])")
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        log = open(self.root / "moto_server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"local S3 (moto_server) exited ({self.proc.returncode})")
            try:
                for bucket in buckets:
                    req = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
                    urllib.request.urlopen(req, timeout=5).read()
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"local S3 (moto_server) not answering after {timeout}s") from None
                time.sleep(0.3)

    def connection(self) -> str:
        return json.dumps({"conn_type": "aws", "login": LOCAL_S3_KEY, "password": LOCAL_S3_SECRET,
                           "extra": {"endpoint_url": self.endpoint, "region_name": LOCAL_S3_REGION}})

    def stop(self) -> None:
        stop_process_group(self.proc, signal.SIGTERM, grace_s=10)
        self.proc = None


@dataclass
class ClusterStack:
    """Everything of one cluster profile run; use as a context manager or start()/stop()."""

    root: Path
    port: int = 0                                     # API server port (0: a free one)
    password: str | None = None
    gpu_workers: int = 1
    gpu_slots: int = 2                                # slots of one gpu worker; pool = all of them
    cpu_slots: int = 4
    db_url: str = ""                                  # "" -> private PostgreSQL
    broker_url: str = ""                              # "" -> private Redis
    work_root: str = ""                               # "" -> local S3 stand-in
    publish_to: str = ""
    dag_refresh_s: int = 30
    extra_env: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print
    env: ClusterEnv | None = None
    _services: list[Any] = field(default_factory=list)  # started services, stopped in reverse

    @classmethod
    def from_environ(cls, root: Path, **kwargs: Any) -> ClusterStack:
        """Production URLs from FACEFACTORY_CLUSTER_DB_URL / _BROKER_URL and the S3 settings."""
        work_root = settings.raw("FACEFACTORY_WORK_ROOT") or ""
        return cls(root=root, db_url=settings.raw("FACEFACTORY_CLUSTER_DB_URL") or "",
                   broker_url=settings.raw("FACEFACTORY_CLUSTER_BROKER_URL") or "",
                   work_root=work_root if work_root.startswith("s3://") else "",
                   publish_to=settings.raw("FACEFACTORY_PUBLISH_TO") or "", **kwargs)

    def __enter__(self) -> ClusterStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, ready_timeout: float = 300) -> ClusterEnv:
        try:
            return self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, ready_timeout: float) -> ClusterEnv:
        self.root.mkdir(parents=True, exist_ok=True)
        node_env: dict[str, str] = {}
        if not (self.db_url and self.broker_url):
            ensure_packages(self.log)
        self.db_url = self._given_or_private(
            self.db_url, check_postgres, PrivatePostgres,
            lambda pg: f"facefactory: private PostgreSQL at {pg.url} (data in {pg.root})")
        self.broker_url = self._given_or_private(
            self.broker_url, check_redis, PrivateRedis, lambda redis: f"facefactory: private Redis at {redis.url}")
        if not self.work_root:
            s3 = LocalS3(self.root)
            self._services.append(s3)
            s3.start(("ff-inputs", "ff-work", "ff-published"))
            self.work_root, self.publish_to = "s3://ff-work/facefactory", "s3://ff-published/videos"
            node_env["AIRFLOW_CONN_AWS_DEFAULT"] = s3.connection()
            # The engine has no Airflow connection: a node's own S3 credentials (a pod's role or
            # secret in production) reach the swap's faceworker through the environment.
            node_env.update({"AWS_ACCESS_KEY_ID": LOCAL_S3_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_S3_SECRET,
                             "AWS_DEFAULT_REGION": LOCAL_S3_REGION,
                             "FACEFACTORY_S3_ENDPOINT_URL": s3.endpoint})
            self.log(f"facefactory: local S3 stand-in (moto) at {s3.endpoint}, buckets ff-inputs, ff-work, ff-published")
        node_env.update({"FACEFACTORY_WORK_ROOT": self.work_root,
                         "FACEFACTORY_PUBLISH_TO": self.publish_to or self.work_root + "/published"})
        port = self.port or free_port()
        self.env = ClusterEnv(
            airflow_home=self.root / "control" / "airflow", ff_home=self.root / "control" / "ffhome",
            port=port, password=self.password, dag_refresh_s=self.dag_refresh_s,
            gpu_slots=self.gpu_workers * self.gpu_slots, log_ports=(free_port(), free_port()),
            extra_env=dict(self.extra_env), db_url=self.db_url, broker_url=self.broker_url,
            parallelism=self.cpu_slots + self.gpu_workers * self.gpu_slots,
            nodes_root=self.root / "nodes", node_env=node_env)
        self.env.prepare()
        self.env.start()
        self.env.wait_ready(timeout=ready_timeout)
        for spec in default_workers(self.gpu_workers, self.gpu_slots, self.cpu_slots):
            self.probe(spec)
            self.env.start_worker(spec)
        return self.env

    def _given_or_private(self, url: str, check: Callable[[str], object], private: Callable[[], _S],
                          started: Callable[[_S], str]) -> str:
        """The given URL once its check passes, else a private service's: registered before it
        starts, so stop() cleans up after a failed start too, and announced with `started`."""
        if url:
            check(url)
            return url
        service = private()
        self._services.append(service)
        service.start()
        self.log(started(service))
        return service.url

    def probe(self, spec: WorkerSpec) -> None:
        """Refuse to start a worker that cannot use the work area (message names node and URI)."""
        assert self.env is not None
        env = self.env.worker_environ(spec, free_port())
        res = subprocess.run([sys.executable, "-m", "facefactory.cluster_probe", self.work_root],
                             env=env, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                               else f"work-area probe of {spec.name} failed ({res.returncode})")

    def stop(self) -> None:
        """Airflow first (its processes use the services), then the services in reverse."""
        if self.env is not None:
            self.env.stop()
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception as exc:  # keep stopping the others
                self.log(f"facefactory: stopping {type(service).__name__} failed: {exc}")
        self._services.clear()


def default_root() -> Path:
    """Where `up --profile cluster` keeps its homes: $FACEFACTORY_HOME/cluster, else a temp dir."""
    home = settings.raw("FACEFACTORY_HOME")
    return Path(home) / "cluster" if home else Path(tempfile.mkdtemp(prefix="ff-cluster-"))
