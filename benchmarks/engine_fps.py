"""Engine fps vs the ffmpeg I/O bound, at 720p and 1080p, on this machine's CPU.

For each size: synthesise a sample order (t1_2 onto the astronaut, moving), run the real pipeline
(`embed`, `split`, `run_chunk` with the classic swapper), and time on the *same frames*:
  - bound_ffmpeg: plain `ffmpeg` decode + x264 encode (same preset/CRF as the worker), no Python;
  - bound_pipe:   decode -> Python -> encode through the worker's own pipes, no face work;
  - swap:         the chunk runner without metrics (decode + detect + swap + encode);
  - chunk:        the whole chunk including per-frame metrics on the encoded output.
Also measures the two mezzanine codecs (x264 qp 0 ultrafast vs FFV1) for split speed and size.
Ratios are against bounds measured in the same run. Writes benchmarks/results/engine_fps.json.

    .venv/bin/python benchmarks/engine_fps.py [--seconds 2] [--sizes 1280x720,1920x1080]
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

from faceworker import video
from faceworker.chunk_runner import _default_measure, run_chunk
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
    pr = video.probe(src)

    def go() -> None:
        with video.FrameWriter(out, pr.fps, pr.width, pr.height, crf=crf, preset=preset) as w:
            for f in video.read_frames(src, 0, pr.frames, size=(pr.width, pr.height)):
                w.write(f)

    return _time(go)


def mezzanine(src: Path, tmp: Path, frames: int) -> dict[str, Any]:
    out = {}
    for codec in ("x264", "ffv1"):
        d = tmp / f"mezz-{codec}"
        secs = _time(lambda: video.split(src, d, frames, codec=codec))
        size = sum(p.stat().st_size for p in d.rglob("*.mkv"))
        out[codec] = {"split_s": round(secs, 3), "fps": round(frames / secs, 1), "bytes": size,
                      "mb_per_frame": round(size / frames / 1e6, 3)}
    return out


def bench_size(size: tuple[int, int], seconds: float, tmp: Path, crf: int, preset: str) -> dict[str, Any]:
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
    ffm = min((_cpu_of(lambda: bound_ffmpeg(mezz, tmp / f"b{h}.mp4", crf, preset)) for _ in range(2)))
    pipe = min((_cpu_of(lambda: bound_pipe(mezz, tmp / f"p{h}.mp4", crf, preset)) for _ in range(2)))
    t_ffmpeg, t_pipe = ffm[0], pipe[0]
    spec = ChunkSpec(work=str(root), order="bench", chunk=0, start=0, end=frames, crf=crf, preset=preset)
    metrics_cpu = [0.0]

    def measure(*a: Any, **k: Any) -> dict[str, Any]:
        c0 = time.process_time()
        row = _default_measure(*a, **k)
        metrics_cpu[0] += time.process_time() - c0
        return row

    res: dict[str, Any] = {}
    _, chunk_cpu = _cpu_of(lambda: res.update(run_chunk(spec, measure=measure, log=_quiet_logger())))
    swap_cpu = chunk_cpu - metrics_cpu[0]
    t = res["timings"]
    swap_s = t["total_s"] - t["metrics_s"]
    row = {
        "size": f"{w}x{h}",
        "frames": frames,
        "bound_ffmpeg_fps": round(frames / t_ffmpeg, 2),
        "bound_pipe_fps": round(frames / t_pipe, 2),
        "swap_fps": round(frames / swap_s, 2),
        "chunk_fps": round(frames / t["total_s"], 2),
        "ratio_swap_vs_ffmpeg": round((frames / swap_s) / (frames / t_ffmpeg), 3),
        "ratio_swap_vs_pipe": round((frames / swap_s) / (frames / t_pipe), 3),
        "ratio_chunk_vs_ffmpeg": round((frames / t["total_s"]) / (frames / t_ffmpeg), 3),
        "cpu_ms_per_frame": {"bound_ffmpeg": round(1000 * ffm[1] / frames, 1),
                             "bound_pipe": round(1000 * pipe[1] / frames, 1),
                             "swap": round(1000 * swap_cpu / frames, 1),
                             "metrics": round(1000 * metrics_cpu[0] / frames, 1),
                             "chunk": round(1000 * chunk_cpu / frames, 1)},
        "cpu_ratio_swap_vs_ffmpeg": round(ffm[1] / swap_cpu, 3) if swap_cpu > 0 else None,
        "cpu_ratio_chunk_vs_ffmpeg": round(ffm[1] / chunk_cpu, 3) if chunk_cpu > 0 else None,
        "ms_per_frame": {k.replace("_s", ""): round(1000 * v / frames, 1) for k, v in t.items()
                         if k.endswith("_s")},
        "summary": res["summary"],
        "mezzanine": mezzanine(root / "orders/bench/input/target.mp4", tmp / f"m{h}", frames),
    }
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'size':>10} {'frames':>6} {'ffmpeg fps':>10} {'pipe fps':>9} {'swap fps':>9} {'chunk fps':>9} "
            f"{'swap/ffmpeg':>11} {'chunk/ffmpeg':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['size']:>10} {r['frames']:>6} {r['bound_ffmpeg_fps']:>10} {r['bound_pipe_fps']:>9} "
              f"{r['swap_fps']:>9} {r['chunk_fps']:>9} {r['ratio_swap_vs_ffmpeg']:>11} "
              f"{r['ratio_chunk_vs_ffmpeg']:>12}")
    print()
    print("per-stage ms/frame:")
    for r in rows:
        print(f"  {r['size']}: " + ", ".join(f"{k} {v}" for k, v in r["ms_per_frame"].items()))
    print("CPU ms/frame (all cores, this process + ffmpeg children; robust to other load):")
    for r in rows:
        c = r["cpu_ms_per_frame"]
        print(f"  {r['size']}: " + ", ".join(f"{k} {v}" for k, v in c.items())
              + f"; cpu ratio swap/ffmpeg {r['cpu_ratio_swap_vs_ffmpeg']}, chunk/ffmpeg {r['cpu_ratio_chunk_vs_ffmpeg']}")
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
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="engine-fps-") as tmpd:
        for size in sizes:
            rows.append(bench_size(size, args.seconds, Path(tmpd), args.crf, args.preset))  # type: ignore[arg-type]
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
