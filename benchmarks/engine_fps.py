"""Engine fps vs the ffmpeg I/O bound, at 720p and 1080p, on this machine's CPU.

For each size: synthesise a sample order (t1_2 onto the astronaut, moving), run the real pipeline
(`embed`, `split`, `run_chunk` with the classic swapper and the default metrics), and time on the
*same frames*:
  - bound_ffmpeg: plain `ffmpeg` decode + x264 encode (same preset/CRF as the worker), no Python;
  - bound_pipe:   decode -> Python -> encode through the worker's own pipes, no face work;
  - swap:         the chunk's swap pass: decode -> detect/track -> swap -> encode (the issue's "swap fps");
  - metrics:      the chunk's QA pass on the encoded output (re-detect + embed + PSNR/SSIM per frame);
  - chunk:        the whole `run_chunk` (both passes, probes, uploads).
Each as wall fps and CPU ms/frame (this process, its threads and its waited-for children: ffmpeg and
the metrics worker processes). The chunk runs twice: with the default metrics workers
(chunk_runner.metrics_workers: 2 on >= 2 CPUs, or FACEFACTORY_METRICS_WORKERS) and with
--compare-workers (default 0: embeddings inline), unless both are the same.
Ratios divide by the ffmpeg bound measured in the same run. Also measures the two mezzanine codecs
(x264 qp 0 ultrafast vs FFV1). Writes benchmarks/results/engine_fps.json.

    .venv/bin/python benchmarks/engine_fps.py [--seconds 2] [--sizes 1280x720,1920x1080] [--no-mezzanine]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faceworker import edit, frameio, probe
from faceworker.chunk_runner import METRICS_WORKERS_ENV, metrics_workers, run_chunk
from faceworker.cli import main as faceworker_main
from faceworker.logs import Logger
from faceworker.sample import build_sample_order
from faceworker.spec import ChunkSpec

RESULTS = Path(__file__).resolve().parent / "results" / "engine_fps.json"


def _quiet_logger() -> Logger:
    return Logger(stream=open(os.devnull, "w"))


def _cpu() -> float:
    """CPU seconds of this process and its (waited-for) children: unlike wall time, barely moved by
    other jobs on a shared machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cpu_of(fn: Any) -> tuple[float, float]:
    """(wall s, cpu s) of fn()."""
    c0, t0 = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, _cpu() - c0


def bound_ffmpeg(src: Path, out: Path, crf: int, preset: str) -> float:
    return _time(lambda: subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-map", "0:v:0", "-c:v", "libx264",
         "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-bf", "0", str(out)], check=True))


def bound_pipe(src: Path, out: Path, crf: int, preset: str) -> float:
    pr = probe.probe(src)

    def go() -> None:  # the chunk runner's own I/O: prefetching I420 reader, threaded writer
        w = frameio.BackgroundWriter(frameio.FrameWriter(out, pr.fps, pr.width, pr.height, crf=crf, preset=preset,
                                                     convert_in_python=True))
        for f in frameio.prefetch(frameio.read_frames(src, 0, pr.frames, size=(pr.width, pr.height), pix_fmt="yuv420p")):
            w.write(f)
        w.close()

    return _time(go)


def mezzanine(src: Path, tmp: Path, frames: int) -> dict[str, Any]:
    out = {}
    for codec in ("x264", "ffv1"):
        d = tmp / f"mezz-{codec}"
        secs = _time(lambda d=d, codec=codec: edit.split(src, d, frames, codec=codec))
        size = sum(p.stat().st_size for p in d.rglob("*.mkv"))
        out[codec] = {"split_s": round(secs, 3), "fps": round(frames / secs, 1), "bytes": size,
                      "mb_per_frame": round(size / frames / 1e6, 3)}
    return out


def _chunk_run(root: Path, frames: int, crf: int, preset: str, workers: int | None) -> dict[str, Any]:
    """One real run_chunk (checkpoint removed first); returns its timings plus the chunk's CPU seconds."""
    import shutil

    shutil.rmtree(root / "orders/bench/swapped", ignore_errors=True)
    spec = ChunkSpec(work=str(root), order="bench", chunk=0, start=0, end=frames, crf=crf, preset=preset)
    old = os.environ.get(METRICS_WORKERS_ENV)
    if workers is not None:
        os.environ[METRICS_WORKERS_ENV] = str(workers)
    res: dict[str, Any] = {}
    try:
        wall, cpu = _cpu_of(lambda: res.update(run_chunk(spec, log=_quiet_logger())))
    finally:
        if old is None:
            os.environ.pop(METRICS_WORKERS_ENV, None)
        else:
            os.environ[METRICS_WORKERS_ENV] = old
    t = dict(res["timings"])
    t["chunk_wall_s"], t["chunk_cpu_s"] = wall, cpu
    t["workers"] = workers if workers is not None else metrics_workers(frames)
    t["summary"] = res["summary"]
    return t


def _passes(t: dict[str, Any], frames: int, ffm: tuple[float, float]) -> dict[str, Any]:
    """wall fps, CPU ms/frame and both ratios to the ffmpeg bound for the swap / metrics / chunk passes."""
    out: dict[str, Any] = {"metrics_workers": t["workers"]}
    bound_fps, bound_cpu = frames / ffm[0], ffm[1]
    for name, wall, cpu in (("swap", t["swap_pass_s"], t["swap_cpu_s"]),
                            ("metrics", t["metrics_s"], t["metrics_cpu_s"]),
                            ("chunk", t["chunk_wall_s"], t["chunk_cpu_s"])):
        fps = frames / wall if wall > 0 else float("inf")
        out[name] = {"wall_fps": round(fps, 2), "cpu_ms_per_frame": round(1000 * cpu / frames, 1),
                     "ratio_wall_vs_ffmpeg": round(fps / bound_fps, 3),
                     "ratio_cpu_vs_ffmpeg": round(bound_cpu / cpu, 3) if cpu > 0 else None}
    out["stage_ms_per_frame"] = {k[:-2]: round(1000 * t[k] / frames, 1)
                                 for k in ("decode_s", "detect_s", "swap_s", "encode_s")}
    out["summary"] = t["summary"]
    return out


def bench_size(size: tuple[int, int], seconds: float, tmp: Path, crf: int, preset: str,
               mezz_codecs: bool = True, pool_workers: int | None = 0) -> dict[str, Any]:
    w, h = size
    root = tmp / f"work{h}"
    inp = root / "orders" / "bench" / "input"
    inp.mkdir(parents=True)
    info = build_sample_order(inp, seconds=seconds, size=size)
    frames = info["frames"]
    devnull = open(os.devnull, "w")
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = devnull  # the CLI prints results/logs; the benchmark prints its own table
    try:
        assert faceworker_main(["embed", "--work", str(root), "--order", "bench"]) == 0
        assert faceworker_main(["split", "--work", str(root), "--order", "bench", "--chunk-frames",
                                str(frames)]) == 0
    finally:
        sys.stdout, sys.stderr = old
    mezz = root / "orders/bench/chunks/00000/segment.mkv"
    # best of two: the bounds are cheap, and the minimum is the least disturbed by other load
    ffm = min(_cpu_of(lambda: bound_ffmpeg(mezz, tmp / f"b{h}.mp4", crf, preset)) for _ in range(2))
    pipe = min(_cpu_of(lambda: bound_pipe(mezz, tmp / f"p{h}.mp4", crf, preset)) for _ in range(2))
    load = os.getloadavg()[0]
    runs = {"default": _passes(_chunk_run(root, frames, crf, preset, None), frames, ffm)}
    if pool_workers is not None and pool_workers != runs["default"]["metrics_workers"]:
        runs["compare"] = _passes(_chunk_run(root, frames, crf, preset, pool_workers), frames, ffm)
    row: dict[str, Any] = {
        "size": f"{w}x{h}",
        "frames": frames,
        "loadavg_1m_at_start": round(load, 2),
        "bound_ffmpeg": {"wall_fps": round(frames / ffm[0], 2), "cpu_ms_per_frame": round(1000 * ffm[1] / frames, 1)},
        "bound_pipe": {"wall_fps": round(frames / pipe[0], 2), "cpu_ms_per_frame": round(1000 * pipe[1] / frames, 1),
                       "ratio_wall_vs_ffmpeg": round(ffm[0] / pipe[0], 3), "ratio_cpu_vs_ffmpeg": round(ffm[1] / pipe[1], 3)},
        "runs": runs,
        # The bound is the best of two runs, so the swap pass gets the same statistic: the best of its
        # runs (default and compare run the identical swap pass; only the metrics pass differs).
        "swap_best": max((r["swap"] for r in runs.values()), key=lambda x: x["wall_fps"]),
    }
    if mezz_codecs:
        row["mezzanine"] = mezzanine(root / "orders/bench/input/target.mp4", tmp / f"m{h}", frames)
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'size':>10} {'metrics':>8} {'pass':>8} {'wall fps':>9} {'CPU ms/f':>9} "
            f"{'wall ratio':>10} {'CPU ratio':>9}   (ratio = pass fps / ffmpeg-bound fps, same run)")
    print(head)
    print("-" * len(head))
    for r in rows:
        b, p = r["bound_ffmpeg"], r["bound_pipe"]
        print(f"{r['size']:>10} {'':>8} {'ffmpeg':>8} {b['wall_fps']:>9} {b['cpu_ms_per_frame']:>9} {1.0:>10} {1.0:>9}")
        print(f"{r['size']:>10} {'':>8} {'pipe':>8} {p['wall_fps']:>9} {p['cpu_ms_per_frame']:>9} "
              f"{p['ratio_wall_vs_ffmpeg']:>10} {p['ratio_cpu_vs_ffmpeg']:>9}")
        for mode, run in r["runs"].items():
            label = f"{mode}:{run['metrics_workers']}"
            for name in ("swap", "metrics", "chunk"):
                x = run[name]
                print(f"{r['size']:>10} {label:>8} {name:>8} {x['wall_fps']:>9} {x['cpu_ms_per_frame']:>9} "
                      f"{x['ratio_wall_vs_ffmpeg']:>10} {x['ratio_cpu_vs_ffmpeg']:>9}")
    print()
    print("swap-pass stages, wall ms/frame (decode = waiting for the prefetch thread, encode = waiting for the writer):")
    for r in rows:
        for mode, run in r["runs"].items():
            print(f"  {r['size']} {mode}: " + ", ".join(f"{k} {v}" for k, v in run["stage_ms_per_frame"].items()))
    print("load average (1 min) when each size started: "
          + ", ".join(f"{r['size']} {r['loadavg_1m_at_start']}" for r in rows))
    print("swap pass, best of its runs (the bound is best of two too): " + ", ".join(
        f"{r['size']} {r['swap_best']['wall_fps']} fps = {r['swap_best']['ratio_wall_vs_ffmpeg']} of the bound by wall, "
        f"{r['swap_best']['ratio_cpu_vs_ffmpeg']} by CPU" for r in rows))
    if all("mezzanine" in r for r in rows):
        print("mezzanine (split of the target, all frames):")
        for r in rows:
            print(f"  {r['size']}: " + "; ".join(
                f"{c} {m['fps']} fps, {m['mb_per_frame']} MB/frame" for c, m in r["mezzanine"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--no-mezzanine", action="store_true", help="skip the mezzanine codec comparison")
    ap.add_argument("--compare-workers", type=int, default=0,
                    help="also run the chunk with this many metrics worker processes (0 = inline; "
                         "-1 skips the comparison)")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="engine-fps-") as tmpd:
        for size in sizes:
            rows.append(bench_size(size, args.seconds, Path(tmpd), args.crf, args.preset,
                                   not args.no_mezzanine,
                                   None if args.compare_workers < 0 else args.compare_workers))
    print_table(rows)
    doc = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                       "loadavg_before": [round(v, 2) for v in load0],
                       "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
           "settings": {"seconds": args.seconds, "crf": args.crf, "preset": args.preset, "swapper": "classic"},
           "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
