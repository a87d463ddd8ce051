#!/usr/bin/env python3
"""What Airflow costs per order: the same sample order run (a) directly through the engine
CLI (embed, split, swap-chunk per chunk, merge) and (b) as a face_swap_order DAG run via
`facefactory order run`, in the same process tree and on the same machine. Prints both wall
times and their ratio; writes benchmarks/results/order_overhead.json.

    .venv/bin/python scripts/bench_order_overhead.py [--seconds 3] [--size 640x360] [--chunk-frames 32]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def worker(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([tool("faceworker"), *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def direct(env: dict[str, str], work: Path, sample: Path, order: str, chunk_frames: int) -> float:
    """The engine alone: the minimum any orchestration could achieve, run serially."""
    inp = work / "orders" / order / "input"
    inp.mkdir(parents=True)
    shutil.copy(sample / "source.png", inp / "source.png")
    shutil.copy(sample / "target.mp4", inp / "target.mp4")
    start = time.perf_counter()
    worker(env, "probe", str(inp / "target.mp4"))
    worker(env, "embed", "--work", str(work), "--order", order)
    chunks = worker(env, "split", "--work", str(work), "--order", order, "--chunk-frames", str(chunk_frames))
    for c in chunks["chunks"]:
        worker(env, "swap-chunk", "--work", str(work), "--order", order, "--chunk", str(c["chunk"]),
               "--start", str(c["start"]), "--end", str(c["end"]))
    worker(env, "merge", "--work", str(work), "--order", order)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--chunk-frames", type=int, default=32)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "order_overhead.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
        home = Path(tmp) / "var"
        env = {**os.environ, "FACEFACTORY_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        for key in ("FACEFACTORY_WORK_ROOT", "FACEFACTORY_PUBLISH_TO", "FACEFACTORY_INPUT_ROOTS"):
            env.pop(key, None)
        sample = home / "inputs" / "sample"
        worker(env, "sample", "--out", str(sample), "--seconds", str(args.seconds), "--size", args.size)
        # Prepare Airflow first (migration is set-up, not per-order cost).
        subprocess.run([sys.executable, "-c", "from facefactory.commands.order import "
                        "ensure_embedded_airflow as e; e()"], env=env, check=True)
        baseline = direct(env, Path(tmp) / "direct-work", sample, "bench-direct", args.chunk_frames)
        start = time.perf_counter()
        res = subprocess.run(
            [tool("facefactory"), "order", "run", "--source", (sample / "source.png").as_uri(),
             "--target", (sample / "target.mp4").as_uri(), "--order-id", "bench-airflow",
             "--set", f"chunk_frames={args.chunk_frames}"], env=env, capture_output=True, text=True)
        airflow_s = time.perf_counter() - start
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
    result = {"seconds": args.seconds, "size": args.size, "chunk_frames": args.chunk_frames,
              "engine_direct_s": round(baseline, 2), "airflow_order_s": round(airflow_s, 2),
              "ratio": round(airflow_s / baseline, 2), "overhead_s": round(airflow_s - baseline, 2),
              "note": "airflow_order_s includes the quality gate and QA report, which the direct run skips"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
