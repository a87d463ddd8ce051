"""The cluster profile's configuration and its clear errors (no cluster started; seconds)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from facefactory import cluster
from facefactory.airflow_env import free_port
from facefactory.cluster import ClusterEnv, WorkerSpec, default_workers
from facefactory.cluster_probe import probe_work_area
from facefactory.cluster_services import check_postgres, check_redis

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> ClusterEnv:
    return ClusterEnv(airflow_home=tmp_path / "control" / "airflow", ff_home=tmp_path / "control" / "ff",
                      port=free_port(), db_url="postgresql://airflow@127.0.0.1:5/airflow",
                      broker_url="redis://127.0.0.1:6/0", nodes_root=tmp_path / "nodes",
                      node_env={"FACEFACTORY_WORK_ROOT": "s3://w/orders"})


def test_control_plane_runs_celery_on_postgres(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.airflow_home.mkdir(parents=True)
    e = env.environ()
    assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] == "facefactory.cluster.CONNECT_ARGS"
    assert e["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6/0"
    assert e["FACEFACTORY_SWAP_QUEUE"] == cluster.GPU_QUEUE
    assert e["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == str(cluster.HEARTBEAT_TIMEOUT_S)


def test_workers_share_nothing_on_disk(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.airflow_home.mkdir(parents=True)
    a, b = (env.worker_environ(spec, free_port()) for spec in default_workers(gpu_workers=1))
    for key in ("AIRFLOW_HOME", "FACEFACTORY_HOME", "TMPDIR", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
                "FACEFACTORY_INPUT_ROOTS", "FACEFACTORY_NODE_NAME", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"):
        assert a[key] != b[key], key
    assert a["FACEFACTORY_WORK_ROOT"] == b["FACEFACTORY_WORK_ROOT"] == "s3://w/orders"
    assert not Path(a["FACEFACTORY_HOME"]).is_relative_to(Path(b["AIRFLOW_HOME"]).parent)


def test_only_gpu_workers_serve_the_gpu_queue() -> None:
    specs = default_workers(gpu_workers=2, gpu_slots=3)
    assert [s.queues for s in specs] == [("default",), ("gpu",), ("gpu",)]
    assert [s.name for s in specs] == ["cpu-1", "gpu-1", "gpu-2"]
    assert specs[1] == WorkerSpec("gpu-1", ("gpu",), 3)


def test_node_hostname_tells_workers_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_NODE_NAME", "gpu-7")
    assert cluster.node_hostname() == "gpu-7"


def test_helm_values_carry_the_profiles_worker_loss_settings() -> None:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "airflow-values.yaml").read_text())
    sched = values["config"]["scheduler"]
    assert int(sched["task_instance_heartbeat_timeout"]) == cluster.HEARTBEAT_TIMEOUT_S
    assert int(sched["task_instance_heartbeat_timeout_detection_interval"]) == cluster.DETECTION_S
    assert int(sched["task_queued_timeout"]) == cluster.QUEUED_TIMEOUT_S


def test_unreachable_postgres_and_redis_are_named_quickly() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"PostgreSQL metadata DB at 127.0.0.1:{port} is unreachable"):
        check_postgres(f"postgresql://airflow@127.0.0.1:{port}/airflow", timeout=2)
    with pytest.raises(RuntimeError, match=rf"Redis broker at 127.0.0.1:{port} is unreachable"):
        check_redis(f"redis://127.0.0.1:{port}/0", timeout=2)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("which", ["db", "broker"])
def test_up_cluster_refuses_an_unreachable_service(which: str, tmp_path: Path) -> None:
    """`facefactory up --profile cluster` exits 1 with the service named, no hang."""
    port = free_port()
    env = {"FACEFACTORY_HOME": str(tmp_path / "ff"), "AIRFLOW_HOME": str(tmp_path / "af"),
           "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
           "PYTHONPATH": f"{REPO}:{REPO / 'images' / 'worker'}",
           "FACEFACTORY_CLUSTER_DB_URL": f"postgresql://airflow@127.0.0.1:{port}/airflow",
           "FACEFACTORY_CLUSTER_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    if which == "broker":
        pytest.importorskip("psycopg2")
        env["FACEFACTORY_CLUSTER_DB_URL"] = ""  # private PostgreSQL first, then the broker check
        env["FACEFACTORY_CLUSTER_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
    res = subprocess.run([sys.executable, "-m", "facefactory.cli", "up", "--profile", "cluster",
                          "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    name = "PostgreSQL metadata DB" if which == "db" else "Redis broker"
    assert f"{name} at 127.0.0.1:{port} is unreachable" in res.stderr


def test_worker_without_work_area_access_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": "k", "password": "s",
         "extra": {"endpoint_url": dead, "region_name": "us-east-1"}}))
    monkeypatch.setenv("FACEFACTORY_S3_MAX_ATTEMPTS", "1")
    with pytest.raises(RuntimeError, match=r"node gpu-9: no access to the work area s3://ff-work/orders/\.probe/"):
        probe_work_area("s3://ff-work/orders", "gpu-9")
    with pytest.raises(RuntimeError, match="is not on S3"):
        probe_work_area("/tmp/work", "gpu-9")


def test_publish_with_the_s3_endpoint_down_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 down during publish: a transient S3 error naming the action and endpoint, no hang."""
    from facefactory.operators.publish import publish
    from facefactory.operators.s3.errors import S3Error

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
        {"conn_type": "aws", "login": "k", "password": "s",
         "extra": {"endpoint_url": dead, "region_name": "us-east-1"}}))
    monkeypatch.setenv("FACEFACTORY_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("FACEFACTORY_PUBLISH_ROOTS", "s3://ff-published")  # as the profile configures it
    video = tmp_path / "out.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    started = time.monotonic()
    with pytest.raises(S3Error, match=r"Could not connect to the endpoint URL"):
        publish(str(video), "s3://ff-published/videos", "o-down")
    assert time.monotonic() - started < 120


def test_the_order_dag_puts_swaps_on_the_gpu_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed with the profile's environment, swap and reswap go to `gpu`, the rest to default."""
    import importlib.util

    monkeypatch.setenv("FACEFACTORY_SWAP_QUEUE", cluster.GPU_QUEUE)
    spec = importlib.util.spec_from_file_location("ff_order_dag_gpu", REPO / "dags" / "face_swap_order.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.face_swap_order() if callable(getattr(module, "face_swap_order", None)) else None
    dag = dag or next(v for v in vars(module).values() if type(v).__name__ == "DAG")
    queues = {t.task_id: (t.partial_kwargs.get("queue") if hasattr(t, "partial_kwargs") else t.queue)
              for t in dag.tasks}
    assert queues["swap"] == queues["reswap"] == cluster.GPU_QUEUE
    assert all(q in (None, "default") for tid, q in queues.items() if tid not in ("swap", "reswap")), queues
