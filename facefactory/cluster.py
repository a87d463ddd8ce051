"""The cluster profile: Airflow on PostgreSQL + CeleryExecutor (Redis), work area on S3.

Why: a studio that outgrows one machine runs the scheduler, dag-processor, triggerer and API
server next to a managed PostgreSQL and Redis, and Celery workers on other hosts that share
nothing with them but the database, the broker and object storage. This profile runs exactly
that shape on one machine: every worker is a separate process tree with its own AIRFLOW_HOME,
FACEFACTORY_HOME, TMPDIR, log folder and hostname, so an order that silently depends on a local
path or a single worker fails here instead of in production. Swap tasks go to the `gpu` queue
(FACEFACTORY_SWAP_QUEUE, facefactory.operators.pod_spec), served by the gpu workers only; every other task
to `default`. docs/cluster.md maps it onto the Helm chart.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from facefactory import settings
from facefactory.airflow_env import AirflowEnv, free_port

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"

# Worker loss (docs/cluster.md "Recovery"): a task whose runner stops heart-beating for
# HEARTBEAT_TIMEOUT_S is failed by the scheduler (checked every DETECTION_S) and retried per
# its retries. Airflow's 300 s default is an eternity for 10-60 s chunks; the supervisor beats
# every few seconds, so 60 s still leaves room for a long GC pause or a busy 2-core box.
HEARTBEAT_TIMEOUT_S = 60
DETECTION_S = 10
# A task queued in the broker that no worker picks up is re-queued/failed after this long.
QUEUED_TIMEOUT_S = 600

CONNECT_ARGS: dict[str, int] = {"connect_timeout": 10}
"""psycopg2: fail a connection attempt after 10 s (unreachable DB: an error, not a hang)."""
ASYNC_CONNECT_ARGS: dict[str, int] = {"timeout": 10}
"""asyncpg (API server's async engine): the same bound."""


@dataclass
class WorkerSpec:
    """One Celery worker 'host': name (also its hostname), queues, task slots."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    env: dict[str, str] = field(default_factory=dict)  # this node's own extra settings (tests: hooks)


def default_workers(gpu_workers: int = 1, gpu_slots: int = 2, cpu_slots: int = 4) -> list[WorkerSpec]:
    """One `default`-queue worker plus `gpu_workers` gpu-queue workers (the GPU node pool)."""
    specs = [WorkerSpec("cpu-1", (DEFAULT_QUEUE,), cpu_slots)]
    specs += [WorkerSpec(f"gpu-{i + 1}", (GPU_QUEUE,), gpu_slots) for i in range(gpu_workers)]
    return specs


def node_hostname() -> str:
    """[core] hostname_callable of the profile's processes: the worker's own name.

    All workers share one machine here, so the FQDN would not tell them apart in the task
    instances' `hostname`; each worker process gets FACEFACTORY_NODE_NAME instead.
    """
    import socket

    return settings.raw("FACEFACTORY_NODE_NAME") or socket.getfqdn()


def node_processes(home: Path) -> list[int]:
    """Pids of processes started for the worker node at `home` (its AIRFLOW_HOME in their env)."""
    marker = f"AIRFLOW_HOME={home / 'airflow'}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@dataclass
class ClusterEnv(AirflowEnv):
    """AirflowEnv with CeleryExecutor on PostgreSQL/Redis and separate worker 'hosts'."""

    db_url: str = ""
    broker_url: str = ""
    nodes_root: Path = Path()
    worker_specs: dict[str, WorkerSpec] = field(default_factory=dict)
    node_env: dict[str, str] = field(default_factory=dict)  # S3 credentials etc. of every node
    parallelism: int = 8             # task slots of all workers together ([core] parallelism)

    def environ(self) -> dict[str, str]:
        env = super().environ()
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
            env.pop(key, None)
        db = self.db_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            # The scheduler's cap on queued+running tasks: the workers' slots, not one machine's.
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "facefactory.cluster.CONNECT_ARGS",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "facefactory.cluster.ASYNC_CONNECT_ARGS",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "facefactory.cluster.node_hostname",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(DETECTION_S),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT_S),
            "FACEFACTORY_SWAP_QUEUE": GPU_QUEUE,
            "FACEFACTORY_NODE_NAME": "control-plane",
        })
        env.update(self.node_env)
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ worker "hosts"

    def node_home(self, name: str) -> Path:
        return self.nodes_root / name

    def worker_environ(self, spec: WorkerSpec, log_port: int) -> dict[str, str]:
        """The control plane's settings, but this node's own disk: nothing shared with others."""
        home = self.node_home(spec.name)
        ff_home, af_home, tmp = home / "ffhome", home / "airflow", home / "tmp"
        for path in (ff_home / "inputs", tmp, af_home / "logs"):
            path.mkdir(parents=True, exist_ok=True)
        settings.write_airflow_cfg(af_home, ff_home)
        env = self.environ()
        env.update({
            "AIRFLOW_HOME": str(af_home),
            "FACEFACTORY_HOME": str(ff_home),
            "FACEFACTORY_INPUT_ROOTS": str(ff_home / "inputs"),
            "FACEFACTORY_NODE_NAME": spec.name,
            "TMPDIR": str(tmp),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(af_home / "logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        })
        env.update(spec.env)
        return env

    def start_worker(self, spec: WorkerSpec) -> None:
        """Start (or replace) worker `spec.name` as its own process group."""
        self.worker_specs[spec.name] = spec
        env = self.worker_environ(spec, free_port())
        args = ["airflow", "celery", "worker", "--queues", ",".join(spec.queues),
                "--concurrency", str(spec.concurrency), "--celery-hostname", f"{spec.name}@%h",
                "--without-mingle", "--without-gossip"]
        log = open(self.log_dir / f"worker-{spec.name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        key = f"worker-{spec.name}"
        if key in self.procs:
            self._old_groups.append(self.procs.pop(key))
        self.procs[key] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           cwd=self.node_home(spec.name))

    def kill_worker(self, name: str) -> int:
        """SIGKILL worker `name`'s whole process group (a host lost mid-task); returns its pid."""
        proc = self.procs.pop(f"worker-{name}")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in node_processes(self.node_home(name)):  # task runners in their own sessions
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.pid

    def stop(self, grace_s: float = 20) -> None:
        """Every process group, then any task runner of a node that left its worker's group."""
        super().stop(grace_s)
        for name in self.worker_specs:
            for pid in node_processes(self.node_home(name)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def restart(self, name: str) -> None:
        if name.startswith("worker-"):
            self.start_worker(self.worker_specs[name.removeprefix("worker-")])
        else:
            super().restart(name)
