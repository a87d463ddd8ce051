#!/usr/bin/env python3
"""Whole-order throughput: a real order through Airflow against the ffmpeg bound of the same clip.

For each size: builds a clip with a moving face and audio from the shipped sample faces
(`faceworker sample`), measures the bound on that clip in the same run (`ffmpeg -i target.mp4
-c:v libx264 -preset veryfast -crf 18`, the best of two), runs the order with `facefactory order
run` on a fresh embedded default (SQLite, local work area, default order settings), then reads
from the run's task instances and the swap tasks' done.json:

- order wall time and its ratio to the bound;
- seconds per stage (ingest, chunk, the swap tasks from the first start to the last end, the
  gates, merge, publish) and each as a fraction of the bound;
- CPU milliseconds per frame of the swap pass and of the QA (metrics) pass, and their ratio.

Prints a table and writes JSON to benchmarks/results/order_throughput.json (--out).

    .venv/bin/python benchmarks/order_throughput.py [--seconds 60] [--sizes 1280x720,1920x1080]
        [--code DIR]   # measure another checkout's code (e.g. a worktree of an older commit)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGES = ("ingest", "chunk", "swap", "quality_gate", "reswap", "final_gate", "merge", "publish", "cdn_ready")


def tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def code_env(code: Path, home: Path) -> dict[str, str]:
    """Environment of a fresh embedded default running the checkout at `code`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEFACTORY_", "AIRFLOW__"))}
    env.update(
        FACEFACTORY_HOME=str(home), AIRFLOW_HOME=str(home / "airflow"),
        PYTHONPATH=os.pathsep.join([str(code), str(code / "images" / "worker")]),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def ffmpeg_bound(target: Path, scratch: Path, tries: int = 2) -> dict[str, float]:
    """Wall and CPU seconds of a plain decode + x264 encode of the whole clip (best of `tries`)."""
    best: dict[str, float] = {}
    for _ in range(tries):
        out = scratch / "bound.mp4"
        before = os.times()
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(target), "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "18", str(out)], check=True)
        wall = time.perf_counter() - start
        after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        if not best or wall < best["wall_s"]:
            best = {"wall_s": wall, "cpu_s": cpu}
        out.unlink(missing_ok=True)
    return best


def task_rows(airflow_db: Path, run_id: str) -> list[dict[str, Any]]:
    """(task_id, map_index, state, start, end) of the run, from the metadata DB."""
    import sqlite3

    con = sqlite3.connect(str(airflow_db))
    try:
        rows = con.execute(
            "select task_id, map_index, state, start_date, end_date from task_instance "
            "where run_id = ? order by start_date", (run_id,)).fetchall()
    finally:
        con.close()

    def ts(value: str | None) -> float | None:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() if value else None

    return [{"task_id": r[0], "map_index": r[1], "state": r[2], "start": ts(r[3]), "end": ts(r[4])}
            for r in rows]


def stage_seconds(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task id: span (first start to last end), summed task seconds and task count."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        ran = [r for r in rows if r["task_id"] == stage and r["start"] and r["end"]]
        if not ran:
            continue
        out[stage] = {
            "span_s": round(max(r["end"] for r in ran) - min(r["start"] for r in ran), 2),
            "task_s": round(sum(r["end"] - r["start"] for r in ran), 2),
            "tasks": len(ran),
        }
    return out


def chunk_costs(order_dir: Path) -> dict[str, Any]:
    """CPU ms per frame of the swap and QA passes, summed over the chunks' done.json."""
    frames = swap_cpu = qa_cpu = 0.0
    measured = 0
    for done in sorted(order_dir.glob("swapped/*/done.json")):
        doc = json.loads(done.read_text())
        t = doc.get("timings", {})
        frames += int(doc.get("frames", 0))
        swap_cpu += float(t.get("swap_cpu_s", 0.0))
        qa_cpu += float(t.get("metrics_cpu_s", 0.0))
    for metrics in order_dir.glob("swapped/*/metrics.json"):
        rows = json.loads(metrics.read_text()).get("frames", [])
        measured += sum(1 for r in rows if r.get("id_cosine_raw") is not None)
    if not frames:
        return {}
    return {
        "frames": int(frames),
        "swap_cpu_ms_per_frame": round(1e3 * swap_cpu / frames, 2),
        "qa_cpu_ms_per_frame": round(1e3 * qa_cpu / frames, 2),
        "qa_over_swap": round(qa_cpu / swap_cpu, 3) if swap_cpu else None,
        "identity_measured_frames": measured,
    }


def run_order(env: dict[str, str], sample: Path, order_id: str, log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(  # not run from a checkout: `python -m` puts the working dir first on the path
            [sys.executable, "-m", "facefactory.cli", "order", "run", "--order-id", order_id,
             "--source", (sample / "source.png").as_uri(), "--target", (sample / "target.mp4").as_uri()],
            env=env, stdout=fh, stderr=subprocess.STDOUT, check=False, cwd=sample)
    return time.perf_counter() - start, proc.returncode


def measure(size: str, seconds: float, code: Path, scratch: Path) -> dict[str, Any]:
    home = scratch / f"var-{size}"
    env = code_env(code, home)
    sample = home / "inputs" / "bench"
    sample.mkdir(parents=True)
    subprocess.run([tool("faceworker"), "sample", "--out", str(sample), "--seconds", str(seconds),
                    "--size", size], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    # Airflow set-up (config, DB, pool) outside the timed order: `facefactory order run` does it once
    subprocess.run([sys.executable, "-c", "from facefactory.commands.order import ensure_embedded_airflow as e; e()"],
                   env=env, check=True, cwd=sample)  # cwd: see run_order
    bound = ffmpeg_bound(sample / "target.mp4", scratch)
    order_id = f"bench-{size}"
    log = scratch / f"order-{size}.log"
    wall, rc = run_order(env, sample, order_id, log)
    if rc != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"the {size} order failed (exit {rc}); log above")
    stages = stage_seconds(task_rows(home / "airflow" / "airflow.db", f"order__{order_id}"))
    for item in stages.values():
        item["span_over_bound"] = round(item["span_s"] / bound["wall_s"], 3)
    load = os.getloadavg()
    return {
        "size": size, "seconds": seconds, "code": str(code),
        "bound_wall_s": round(bound["wall_s"], 2), "bound_cpu_s": round(bound["cpu_s"], 2),
        "order_wall_s": round(wall, 2), "order_over_bound": round(wall / bound["wall_s"], 2),
        "stages": stages, "chunks": chunk_costs(home / "work" / "orders" / order_id),
        "load_after": [round(x, 2) for x in load],
    }


def print_result(r: dict[str, Any]) -> None:
    print(f"\n{r['size']} {r['seconds']:g}s: order {r['order_wall_s']:.1f}s = {r['order_over_bound']:.2f}x "
          f"the ffmpeg bound ({r['bound_wall_s']:.1f}s wall, {r['bound_cpu_s']:.1f} CPU-s)")
    print(f"  {'stage':<14}{'span s':>9}{'x bound':>9}{'tasks':>7}{'task s':>9}")
    for name, s in r["stages"].items():
        print(f"  {name:<14}{s['span_s']:>9.2f}{s['span_over_bound']:>9.3f}{s['tasks']:>7}{s['task_s']:>9.2f}")
    c = r["chunks"]
    if c:
        print(f"  swap pass {c['swap_cpu_ms_per_frame']} CPU-ms/frame, QA pass {c['qa_cpu_ms_per_frame']} "
              f"CPU-ms/frame (QA/swap {c['qa_over_swap']}); identity measured on "
              f"{c['identity_measured_frames']} of {c['frames']} frames")
    print(f"  load average after: {r['load_after']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose code runs the order")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "order_throughput.json")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, work area)")
    args = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="ff-order-bench-"))
    results = []
    try:
        for size in args.sizes.split(","):
            result = measure(size.strip(), args.seconds, args.code.resolve(), scratch)
            print_result(result)
            results.append(result)
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
           "cpus": os.cpu_count(), "results": results}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
