#!/usr/bin/env python3
"""Orders per hour: the embedded default against the cluster profile with 1 and 2 gpu workers.

Each mode starts a fresh stack (embedded: facefactory.airflow_env, SQLite + LocalExecutor;
cluster: facefactory.cluster_stack, PostgreSQL + CeleryExecutor + S3 stand-in), submits N orders
at once through the REST client (facefactory.client, what `facefactory submit` uses), waits for
all, and reports orders per hour = N / (last run end - first submit), plus per-order wall times
from the API. The machine's load (os.getloadavg) is recorded before and after each mode: on a
shared machine the numbers are noisy, so compare modes from the same invocation only.

    .venv/bin/python benchmarks/cluster_throughput.py [--orders 20] [--seconds 4] [--size 1280x720]
        [--modes embedded,cluster-1gpu,cluster-2gpu] [--out benchmarks/results/cluster_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "images" / "worker")]

from facefactory.airflow_env import AirflowEnv, free_port  # noqa: E402 - after sys.path puts the repo's packages first
from facefactory.client import OrderClient, ServerConfig  # noqa: E402 - after sys.path puts the repo's packages first

PASSWORD = "bench-admin-pw"
GATE = {"min_id_cosine": 0.0, "min_psnr_db": 10}  # throughput, not the gate, is measured
QUIET = {"FACEFACTORY_BULK_SCHEDULE": "none", "FACEFACTORY_DEADLINE_ENABLED": "false",
         "FACEFACTORY_LOG_FORMAT": "json"}


def build_media(out: Path, seconds: float, size: tuple[int, int]) -> tuple[Path, Path]:
    from faceworker.sample import build_sample_order

    result = build_sample_order(out, seconds=seconds, size=size, fps=25)
    return Path(result["source"]), Path(result["target"])


@contextmanager
def embedded(root: Path, media: tuple[Path, Path]) -> Iterator[tuple[AirflowEnv, str, str]]:
    ff_home = root / "ffhome"
    inputs = ff_home / "inputs" / "bench"
    inputs.mkdir(parents=True)
    for path in media:
        shutil.copy(path, inputs / path.name)
    env = AirflowEnv(airflow_home=root / "airflow", ff_home=ff_home, port=free_port(), password=PASSWORD,
                     dag_refresh_s=5, log_ports=(free_port(), free_port()),
                     extra_env={**QUIET, "FACEFACTORY_WORK_ROOT": str(ff_home / "work"),
                                "FACEFACTORY_PUBLISH_TO": str(ff_home / "published"),
                                "FACEFACTORY_INPUT_ROOTS": str(ff_home / "inputs")})
    try:
        env.prepare()
        env.start()
        env.wait_ready(timeout=300)
        yield env, (inputs / media[0].name).as_uri(), (inputs / media[1].name).as_uri()
    finally:
        env.stop()


@contextmanager
def cluster(root: Path, media: tuple[Path, Path], gpu_workers: int) -> Iterator[tuple[AirflowEnv, str, str]]:
    import boto3

    from facefactory.cluster_stack import ClusterStack

    stack = ClusterStack(root=root, password=PASSWORD, gpu_workers=gpu_workers, dag_refresh_s=5,
                         extra_env=dict(QUIET), log=lambda line: print(line, file=sys.stderr))
    with stack:
        assert stack.env is not None
        conn = json.loads(stack.env.environ()["AIRFLOW_CONN_AWS_DEFAULT"])
        s3 = boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
                          aws_secret_access_key=conn["password"], region_name=conn["extra"]["region_name"])
        for path in media:
            s3.upload_file(str(path), "ff-inputs", f"bench/{path.name}")
        yield stack.env, f"s3://ff-inputs/bench/{media[0].name}", f"s3://ff-inputs/bench/{media[1].name}"


def run_orders(env: AirflowEnv, source: str, target: str, orders: int, tag: str,
               timeout: float) -> dict[str, Any]:
    client = OrderClient(ServerConfig(url=env.url, username="admin", password=PASSWORD))
    _wait_dag(client, timeout=300)
    started = time.time()
    run_ids = [client.submit({"order_id": f"{tag}-{i:02d}", "source": source, "target": target, **GATE}).run_id
               for i in range(orders)]
    deadline = time.monotonic() + timeout
    states: dict[str, Any] = {}
    while time.monotonic() < deadline and len(states) < len(run_ids):
        for run_id in run_ids:
            if run_id not in states:
                status = client.status(run_id)
                if status.state in ("success", "failed"):
                    states[run_id] = status
        time.sleep(5)
    runs = [_run_times(env, client, r) for r in run_ids]
    ends = [r["end"] for r in runs if r["end"]]
    span = (max(ends) - started) if ends else float("nan")
    ok = sum(1 for s in states.values() if s.state == "success")
    return {"orders": orders, "succeeded": ok, "unfinished": len(run_ids) - len(states),
            "span_s": round(span, 1), "orders_per_hour": round(ok / span * 3600, 1) if ends else None,
            "order_wall_s": sorted(round(r["end"] - r["start"], 1) for r in runs if r["end"] and r["start"])}


def _wait_dag(client: OrderClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.is_paused():
                client.unpause()
            return
        except Exception:  # not parsed yet
            time.sleep(3)
    raise TimeoutError("face_swap_order not parsed")


def _run_times(env: AirflowEnv, client: OrderClient, run_id: str) -> dict[str, float | None]:
    import urllib.request

    req = urllib.request.Request(f"{env.url}/auth/token", data=json.dumps(
        {"username": "admin", "password": PASSWORD}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        bearer = json.load(resp)["access_token"]
    req = urllib.request.Request(f"{env.url}/api/v2/dags/face_swap_order/dagRuns/{run_id}",
                                 headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        run = json.load(resp)

    def ts(value: str | None) -> float | None:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None

    return {"start": ts(run.get("start_date")), "end": ts(run.get("end_date"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--modes", default="embedded,cluster-1gpu,cluster-2gpu")
    ap.add_argument("--timeout", type=float, default=7200, help="per mode")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cluster_throughput.json")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    scratch = Path(tempfile.mkdtemp(prefix="ff-bench-cluster-"))
    os.environ.setdefault("FACEFACTORY_HOME", str(scratch / "caller"))
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "orders": args.orders, "seconds": args.seconds, "size": args.size,
        "note": "shared machine: numbers are noisy; compare modes of one run only", "modes": {}}
    try:
        media = build_media(scratch / "media", args.seconds, (width, height))
        for mode in args.modes.split(","):
            root = scratch / mode
            load_before = os.getloadavg()
            stack = embedded(root, media) if mode == "embedded" else cluster(
                root, media, gpu_workers=int(mode.removeprefix("cluster-").removesuffix("gpu")))
            with stack as (env, source, target):
                result = run_orders(env, source, target, args.orders, mode.replace("-", ""), args.timeout)
            result["load_before"] = [round(v, 2) for v in load_before]
            result["load_after"] = [round(v, 2) for v in os.getloadavg()]
            results["modes"][mode] = result
            print(f"{mode:14s} {result['succeeded']}/{args.orders} ok in {result['span_s']} s -> "
                  f"{result['orders_per_hour']} orders/h (load {result['load_before']} -> "
                  f"{result['load_after']})", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
