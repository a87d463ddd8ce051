"""Wall time of every order stage other than the swaps, against the ffmpeg bound of the same clip.

Runs the functions the DAG's tasks call (facefactory.operators.media.ingest / split / merge, facefactory.quality.gate.evaluate,
the QA report), each in a FRESH Python process so its imports are counted (`import_s`) apart from
its work (`run_s`), on a private work root. The swaps in between run in-process (run_chunk, one
chunk after the other; their time is not a stage here) and are checkpointed, so a second run of
this script on the same --work reuses them. Also counts the `faceworker` processes each stage starts,
and takes each stage's CPU seconds (its process and every child it waited for): on a shared machine
wall time follows the load, CPU time much less; ratios are given for both.

    faceworker sample --out /tmp/x --seconds 60 --size 1280x720
    python benchmarks/order_stages.py --media /tmp/x --work /tmp/x-work [--stages ingest,chunk,...]

bound = `ffmpeg -i target.mp4 -c:v libx264 -preset veryfast -crf 18` of the whole clip (audio dropped).
Writes benchmarks/results/order_stages.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "order_stages.json"
STAGES = ("ingest", "chunk", "swaps", "quality_gate", "final_gate", "report", "merge")
ORDER_ID = "bench-stages"


def _order(media: Path) -> dict[str, Any]:
    return {"order_id": ORDER_ID, "source": f"file://{media / 'source.png'}",
            "target": f"file://{media / 'target.mp4'}", "swapper": "classic", "enhancer": "none",
            "face_selector": "one", "chunk_frames": 96, "min_id_cosine": 0.85, "min_psnr_db": 30.0}


def _count_workers() -> dict[str, int]:
    """Wrap facefactory.operators.media.run_worker to count the engine processes a stage starts."""
    from facefactory.operators import media

    counts: dict[str, int] = {}
    real = media.run_worker

    def counted(args: list[str], timeout_s: float) -> dict[str, Any]:
        counts[args[0]] = counts.get(args[0], 0) + 1
        return real(args, timeout_s)

    media.run_worker = counted
    return counts


def run_stage(stage: str, media: Path, work: Path) -> dict[str, Any]:
    """One stage in this (fresh) process: import time, then the stage's own time."""
    t0 = time.perf_counter()
    from facefactory.operators import config
    from facefactory.operators import media as m

    if stage in ("quality_gate", "final_gate"):
        from facefactory.quality import gate  # noqa: F401 - imported only to time the import
    if stage == "report":
        from facefactory.quality import report  # noqa: F401 - imported only to time the import
    if stage == "swaps":
        from faceworker import chunk_runner  # noqa: F401 - imported only to time the import
    import_s = time.perf_counter() - t0
    counts = _count_workers()
    cfg = config.run_time(use_variables=False)
    order = _order(media)
    odir = m.order_dir(cfg, ORDER_ID)
    state = work / "bench-ingested.json"
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if stage == "ingest":
        ingested = m.ingest(order, cfg)
        state.write_text(json.dumps(ingested))
    else:
        ingested = json.loads(state.read_text())
    if stage == "chunk":
        chunks = m.split(order, ingested, cfg, max_chunks=1024)
        (work / "bench-chunks.json").write_text(json.dumps(chunks))
        extra["chunks"] = len(chunks)
    elif stage == "swaps":
        from faceworker.chunk_runner import run_chunk
        from faceworker.spec import ChunkSpec

        for c in json.loads((work / "bench-chunks.json").read_text()):
            r = run_chunk(ChunkSpec(work=m.work_root(cfg), order=ORDER_ID, chunk=c["chunk"],
                                    start=c["start"], end=c["end"]))
            extra.setdefault("cached", 0)
            extra["cached"] += int(bool(r["cached"]))
    elif stage in ("quality_gate", "final_gate"):
        from facefactory.quality.gate import evaluate

        res = evaluate(odir, order, int(ingested["frames"]), stage=stage)
        extra["passed"] = res.passed
    elif stage == "report":
        extra["report"] = bool(m.qa_report(cfg, order))
    elif stage == "merge":
        extra["frames"] = m.merge(order, ingested, cfg)["frames"]
    run_s = time.perf_counter() - t0
    return {"stage": stage, "import_s": round(import_s, 3), "run_s": round(run_s, 3),
            "wall_s": round(import_s + run_s, 3), "faceworker_processes": counts, **extra}


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bound(media: Path) -> tuple[float, float]:
    """(wall s, CPU s) of ffmpeg decode + x264 veryfast crf 18 of the whole clip (the issue's bound)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _children_cpu_s()
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(media / "target.mp4"), "-an",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", f"{tmp}/b.mp4"], check=True)
        return time.perf_counter() - t0, _children_cpu_s() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, required=True, help="dir with source.png and target.mp4")
    ap.add_argument("--work", type=Path, required=True, help="private work root (reused between runs)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--no-bound", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one stage in this process
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    media, work = args.media.resolve(), args.work.resolve()
    if args.one:
        print(json.dumps(run_stage(args.one, media, work)))
        return 0
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FACEFACTORY_WORK_ROOT": str(work), "FACEFACTORY_INPUT_ROOTS": str(media),
           "FACEFACTORY_HOME": str(work / "home")}
    rows = []
    load0 = os.getloadavg()
    if not args.no_bound:
        wall, cpu = bound(media)
        rows.append({"stage": "bound", "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})
        print(json.dumps(rows[-1]), flush=True)
    for stage in args.stages.split(","):
        c0 = _children_cpu_s()
        proc = subprocess.run([sys.executable, __file__, "--media", str(media), "--work", str(work), "--one", stage],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"stage {stage} failed (exit {proc.returncode})")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        rows[-1]["cpu_s"] = round(_children_cpu_s() - c0, 3)  # the stage's process and everything it ran
        print(json.dumps(rows[-1]), flush=True)
    b = next((r for r in rows if r["stage"] == "bound"), None)
    if b:
        for r in rows[1:]:
            r["wall_ratio"] = round(r["wall_s"] / b["wall_s"], 3)
            r["cpu_ratio"] = round(r["cpu_s"] / b["cpu_s"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "load_before": load0, "load_after": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
