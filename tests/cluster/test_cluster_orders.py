"""Orders on the cluster profile, for real: PostgreSQL, Redis, Celery workers with separate
homes, work area and published videos on S3 (moto), orders submitted with `facefactory submit`.

One stack for the module (tests/cluster/conftest.py): twelve orders at once, then the gpu worker
SIGKILLed mid-chunk, then the scheduler restarted under four running orders.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_server import LENIENT, ORDER_DAG, AirflowServer
from cluster_checks import (
    SERVICE_ERRORS,
    SOURCES,
    SWAP_TASKS,
    download,
    faceworker_verify,
    identity_votes,
    max_overlap,
    scratch,
    source_embeddings,
    task_instances,
    tries,
    when,
)

from facefactory.cluster import GPU_QUEUE, HEARTBEAT_TIMEOUT_S, WorkerSpec
from faceworker.testhooks import PAUSE_AT, PAUSE_DIR, PAUSE_S

pytestmark = pytest.mark.slow

ORDER_TIMEOUT_S = 900
# 12 orders, 1-6 s (mixed), three sources in turn.
TWELVE = [(SOURCES[i % 3], seconds) for i, seconds in enumerate((1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6))]


def submit_cmd(order_id: str, source: str, target: str, *sets: str) -> list[str]:
    """`facefactory submit` (the REST client) for one order."""
    cmd = [str(Path(sys.executable).parent / "facefactory"), "submit", "--order-id", order_id,
           "--source", source, "--target", target]
    for key, value in LENIENT.items():
        cmd += ["--set", f"{key}={value}"]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def submit_all(cluster: dict[str, Any], orders: list[tuple[str, str, str, tuple[str, ...]]]) -> list[str]:
    """Submit every order at once (one `facefactory submit` process each); returns run ids."""
    server: AirflowServer = cluster["server"]
    procs = [(order_id, subprocess.Popen(submit_cmd(order_id, source, target, *sets), env=server.cli_env(),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for order_id, source, target, sets in orders]
    for order_id, proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (order_id, err[-2000:])
    return [f"order__{order_id}" for order_id, _ in procs]


def submit(cluster: dict[str, Any], order_id: str, source: str, target: str, *sets: str) -> str:
    return submit_all(cluster, [(order_id, source, target, sets)])[0]


def wait_all(server: AirflowServer, run_ids: list[str], timeout: float = ORDER_TIMEOUT_S) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        token = server.token()
        for run_id in run_ids:
            if states.get(run_id) in ("success", "failed"):
                continue
            status, run = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}", auth=token)
            if status == 200:
                states[run_id] = run["state"]
        if all(states.get(r) in ("success", "failed") for r in run_ids):
            return states
        if dead := {n: c for n, c in server.env.dead().items()}:
            raise AssertionError(f"cluster components died: {dead}\n{server.env.tail_logs()}")
        time.sleep(3)
    raise TimeoutError(f"orders not finished after {timeout}s: {states}")


def published(server: AirflowServer, run_id: str) -> str:
    """The published URI as `facefactory submit --wait` reports it (the client's reading)."""
    uri = server.client().published_uri(run_id)
    assert uri and uri.startswith("s3://ff-published/"), (run_id, uri)
    return uri


def service_errors(cluster: dict[str, Any]) -> list[str]:
    """Lines of any node's task logs that name a database or broker failure."""
    hits = []
    for log in Path(cluster["root"]).rglob("*.log"):
        if "dag_id=" not in str(log):
            continue
        for line in log.read_text(errors="replace").splitlines():
            if any(marker in line for marker in SERVICE_ERRORS):
                hits.append(f"{log.name}: {line[:300]}")
    return hits


def test_twelve_orders_at_once(cluster: dict[str, Any], media: dict[str, Any], s3: Any) -> None:
    server: AirflowServer = cluster["server"]
    batch = [(f"c12-{i:02d}", *media["upload"](face, seconds), ("chunk_frames=50",))
             for i, (face, seconds) in enumerate(TWELVE)]
    started = time.monotonic()
    orders = dict(zip(submit_all(cluster, batch), (face for face, _ in TWELVE)))
    states = wait_all(server, list(orders))
    elapsed = time.monotonic() - started
    failed = {r: server.diagnose(ORDER_DAG, r) for r, s in states.items() if s != "success"}
    assert not failed, failed
    print(f"12 orders published in {elapsed:.0f}s", flush=True)

    # Swaps ran on the gpu worker only, everything else on the default worker.
    tis = [ti for run_id in orders for ti in task_instances(server, run_id)]
    ran = [ti for ti in tis if ti["state"] == "success"]
    for ti in ran:
        want = ("gpu-1", GPU_QUEUE) if ti["task_id"] in SWAP_TASKS else ("cpu-1", "default")
        if ti["task_id"] == "cdn_ready":
            continue  # deferred: finishes in the triggerer, on no worker
        assert (ti["hostname"], ti["queue"]) == want, (ti["task_id"], ti["map_index"], ti["hostname"], ti["queue"])
    assert any(ti["task_id"] == "swap" for ti in ran)

    # The gpu_swaps pool (2 slots) was never exceeded.
    swaps = [(when(ti["start_date"]), when(ti["end_date"])) for ti in ran if ti["task_id"] in SWAP_TASKS]
    assert all(s and e for s, e in swaps)
    assert max_overlap(swaps) <= cluster["env"].gpu_slots

    # No task failed or retried because of the database or the broker.
    assert all(ti["try_number"] == 1 for ti in ran), [
        (ti["task_id"], ti["map_index"], ti["try_number"]) for ti in ran if ti["try_number"] != 1]
    assert not service_errors(cluster)

    # Each published video carries its own order's source identity.
    sources = source_embeddings(SOURCES)
    tmp = scratch()
    for run_id, face in orders.items():
        video = download(s3, published(server, run_id), tmp / f"{run_id}.mp4")
        faceworker_verify(video)
        votes = identity_votes(video, sources)
        assert Counter(votes).most_common(1)[0][0] == face, (run_id, face, votes)


def _wait_for(pred: Any, timeout: float, what: str, poll: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(poll)
    raise TimeoutError(what)


def test_gpu_worker_killed_mid_chunk(cluster: dict[str, Any], media: dict[str, Any], s3: Any,
                                    tmp_path: Path) -> None:
    """SIGKILL gpu-1 (its whole process tree: the host is gone) while it swaps a chunk; a
    replacement worker gpu-2 (new home, new hostname) finishes the order.

    gpu-1 is restarted with the test hook that holds chunk 2 half-swapped (faceworker.testhooks),
    so the kill lands mid-chunk every time: polling for a "running" swap raced the chunk's end.
    """
    server: AirflowServer = cluster["server"]
    env = cluster["env"]
    markers = tmp_path / "pause"
    spec = env.worker_specs["gpu-1"]
    env.kill_worker("gpu-1")  # idle: the earlier orders are done
    env.start_worker(WorkerSpec("gpu-1", spec.queues, spec.concurrency, env={
        PAUSE_AT: "swap_mid_chunk:2", PAUSE_DIR: str(markers), PAUSE_S: "900"}))
    face = SOURCES[1]
    source, target = media["upload"](face, 6)
    run_id = submit(cluster, "c-kill", source, target, "chunk_frames=25")  # 150 frames: 6 chunks

    _wait_for(lambda: list(markers.glob("swap_mid_chunk-*")), 600, "chunk 2 never reached mid-chunk on gpu-1", 0.5)
    swaps = [ti for ti in task_instances(server, run_id) if ti["task_id"] == "swap"]
    held = [ti for ti in swaps if ti["map_index"] == 2]
    assert held and held[0]["state"] == "running" and held[0]["hostname"] == "gpu-1", held
    done_before = {ti["map_index"] for ti in swaps if ti["state"] == "success"}
    killed_at = datetime.now(UTC)
    env.kill_worker("gpu-1")
    env.start_worker(WorkerSpec("gpu-2", spec.queues, spec.concurrency))
    states = wait_all(server, [run_id])
    assert states[run_id] == "success", server.diagnose(ORDER_DAG, run_id)
    published_at = datetime.now(UTC)

    by_index: dict[int, list[dict[str, Any]]] = {}
    for t in tries(server, run_id, "swap"):
        by_index.setdefault(t["map_index"], []).append(t)
    for index in done_before:  # chunks finished before the kill were not redone
        assert [t["try_number"] for t in by_index[index]] == [1], (index, by_index[index])
    # The chunks that were running on gpu-1 when it died: their first try did not succeed.
    killed = {i for i, ts in by_index.items()
              if any(t["try_number"] == 1 and t["state"] != "success" for t in ts)}
    assert 2 in killed, {i: [(t["try_number"], t["state"], t["hostname"]) for t in ts] for i, ts in by_index.items()}
    for index in killed:  # redone once, on the replacement worker
        assert sorted(t["try_number"] for t in by_index[index]) == [1, 2], (index, by_index[index])
        last = max(by_index[index], key=lambda t: t["try_number"])
        assert last["state"] == "success" and last["hostname"] == "gpu-2", last
    for index, ts in by_index.items():  # and nothing else ran twice
        assert index in killed or [t["try_number"] for t in ts] == [1], (index, ts)
    retry_start = min(when(t["start_date"]) for i in killed for t in by_index[i] if t["try_number"] == 2)
    print(f"worker loss: chunks {sorted(killed)} killed; retry started "
          f"{(retry_start - killed_at).total_seconds():.0f}s after the kill, order published "
          f"{(published_at - killed_at).total_seconds():.0f}s after it "
          f"(heartbeat timeout {HEARTBEAT_TIMEOUT_S}s)", flush=True)

    video = download(s3, published(server, run_id), scratch() / "kill.mp4")
    faceworker_verify(video)
    votes = identity_votes(video, source_embeddings(SOURCES))
    assert Counter(votes).most_common(1)[0][0] == face, votes


def test_scheduler_restart_under_four_orders(cluster: dict[str, Any], media: dict[str, Any], s3: Any) -> None:
    server: AirflowServer = cluster["server"]
    env = cluster["env"]
    run_ids = submit_all(cluster, [(f"c-restart-{i}", *media["upload"](SOURCES[i % 3], 3), ("chunk_frames=25",))
                                   for i in range(4)])

    def all_running() -> bool:
        return all(any(ti["task_id"] == "swap" and ti["state"] in ("running", "success")
                       for ti in task_instances(server, r)) or _state(server, r) == "success"
                   for r in run_ids[:2])

    _wait_for(all_running, 600, "orders never reached their swaps", 1)
    proc = env.procs["scheduler"]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    env.restart("scheduler")
    states = wait_all(server, run_ids)
    assert all(s == "success" for s in states.values()), {r: server.diagnose(ORDER_DAG, r) for r in run_ids}
    for run_id in run_ids:
        order_id = run_id.removeprefix("order__")
        pub = [t for t in tries(server, run_id, "publish")]
        assert [t["try_number"] for t in pub] == [1], pub
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ff-published", Prefix="videos/").get("Contents", [])
                if f"/{order_id}/" in o["Key"] and o["Key"].endswith(".mp4")]
        assert len(keys) == 1, keys  # published once, not twice


def _state(server: AirflowServer, run_id: str) -> str | None:
    status, run = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}")
    return run.get("state") if status == 200 else None
