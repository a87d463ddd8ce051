"""The engine's ONNX model-pack path on onnxruntime's CUDA vs CPU execution provider, same run.

Builds FLOP-matched random-weight stand-ins of inswapper_128, ArcFace w600k_r50 and GFPGAN v1.4
(benchmarks/onnx_models.py: exact pack I/O, realistic compute; the real weights are not shipped)
as two packs with engine-written manifests, then for each provider opens them the way the worker
does (`get_swapper("inswapper_128")`, `get_enhancer("gfpgan")`, provider chosen by the engine from
FACEFACTORY_EXECUTION_PROVIDER) and times on a synthetic 1280x720 BGR frame with one face (68
landmarks from a template; no dlib detection):
  - session: object construction (sha256 + session + emap) and each session's own load_ms (from the
    engine's `onnx_session` log line), plus the first call of each model (CUDA: cuDNN algo search);
  - model_*: bare `session.run` of each model on a ready blob (inference only, batch 1);
  - prepare: swapper.prepare(source) (ArcFace embedding of the source + emap latent);
  - embed: recognizer.embed(frame, face) (align 112 + model);
  - swap: swapper.swap(frame, face) (align 128 + model + paste-back), one face per frame;
  - swap_batch8: swapper.swap_batch of 8 (frame, face) pairs in one inference call, per face;
  - enhance: enhancer.enhance(frame, face, mask) (FFHQ align 512 + model + paste-back);
  - swap_enhance: swap then enhance, per frame (what `--enhancer gfpgan` costs per face).
Warm-up calls excluded; median of N wall times; ms/face, faces/s and CPU/CUDA ratio (measured in this
run); also the median process CPU time per call (`cpu_ms`, all threads: barely moved by other load).
Which providers each session actually got (session.get_providers()) and the engine's log events
are recorded; a CUDA request that ends on CPU is reported loudly (and exits 3 with --require-cuda).

    python3 benchmarks/onnx_providers.py [--frames 30] [--cpu-frames 5] [--providers cpu,cuda]
                                         [--out results/onnx_providers.json] [--quick] [--require-cuda]
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "onnx_providers.json"
for _p in (REPO / "images" / "worker", Path(__file__).resolve().parent):  # the repo's engine, not an installed one
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import cv2  # noqa: E402 - after the sys.path loop above
import numpy as np  # noqa: E402 - after the sys.path loop above
import onnx_models  # noqa: E402 - after the sys.path loop above
import onnxruntime as ort  # noqa: E402 - after the sys.path loop above

from faceworker import packs as ff_packs  # noqa: E402 - after the sys.path loop above
from faceworker.align import align_crop  # noqa: E402 - after the sys.path loop above
from faceworker.enhancers import get_enhancer  # noqa: E402 - after the sys.path loop above
from faceworker.enhancers.gfpgan import _to_blob as gfpgan_blob  # noqa: E402 - after the sys.path loop above
from faceworker.onnx_runtime import CUDA, RuntimeConfig  # noqa: E402 - after the sys.path loop above
from faceworker.swappers import get_swapper  # noqa: E402 - after the sys.path loop above
from faceworker.types import Face, SourceFace  # noqa: E402 - after the sys.path loop above

PROVIDER_ENV = "FACEFACTORY_EXECUTION_PROVIDER"
FRAME_W, FRAME_H = 1280, 720
# dlib 68-point layout of a frontal face (a dlib detection of skimage's astronaut), centred on the
# landmarks' mean and scaled so the outer eye corners (36, 45) are 1.0 apart.
TEMPLATE_68 = np.array([
    [-0.73, -0.39], [-0.73, -0.19], [-0.72, -0.01], [-0.70, 0.19], [-0.65, 0.38], [-0.55, 0.56], [-0.40, 0.69],
    [-0.23, 0.81], [-0.05, 0.84], [0.15, 0.83], [0.33, 0.73], [0.50, 0.59], [0.61, 0.44], [0.68, 0.26],
    [0.73, 0.06], [0.76, -0.12], [0.80, -0.32], [-0.62, -0.57], [-0.53, -0.66], [-0.40, -0.67], [-0.27, -0.64],
    [-0.13, -0.59], [0.20, -0.57], [0.33, -0.62], [0.46, -0.62], [0.60, -0.59], [0.68, -0.49], [0.03, -0.42],
    [0.01, -0.27], [0.01, -0.14], [0.01, -0.01], [-0.17, 0.06], [-0.08, 0.09], [0.00, 0.11], [0.08, 0.09],
    [0.16, 0.08], [-0.48, -0.44], [-0.40, -0.49], [-0.28, -0.49], [-0.20, -0.39], [-0.30, -0.39], [-0.40, -0.39],
    [0.23, -0.37], [0.31, -0.44], [0.43, -0.44], [0.51, -0.39], [0.43, -0.36], [0.33, -0.36], [-0.38, 0.19],
    [-0.25, 0.19], [-0.10, 0.19], [0.00, 0.23], [0.10, 0.21], [0.21, 0.21], [0.35, 0.23], [0.21, 0.39],
    [0.08, 0.46], [-0.03, 0.48], [-0.13, 0.46], [-0.27, 0.38], [-0.33, 0.23], [-0.10, 0.26], [-0.02, 0.28],
    [0.08, 0.26], [0.30, 0.24], [0.08, 0.38], [-0.02, 0.39], [-0.12, 0.38],
], dtype=np.float32)


def make_face(cx: float, cy: float, eye_span: float) -> Face:
    lm = (TEMPLATE_68 * np.float32(eye_span) + np.float32([cx, cy])).astype(np.float32)
    x0, y0 = lm.min(axis=0)
    x1, y1 = lm.max(axis=0)
    return Face(bbox=(int(x0), int(y0), int(x1) + 1, int(y1) + 1), landmarks=lm, score=1.0)


def synthetic_frame(w: int, h: int, seed: int) -> np.ndarray:
    """Textured BGR frame with a skin-toned ellipse where the face goes (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    cv2.ellipse(frame, (w // 2, h // 2), (110, 145), 0, 0, 360, (120, 150, 200), -1)
    return frame


# -- engine log capture -------------------------------------------------------------------------
class _Tee(io.TextIOBase):
    """sys.stderr stand-in: passes everything through and keeps the engine's JSON log events."""

    def __init__(self, real: Any) -> None:
        self.real, self.events, self._buf = real, [], ""

    def write(self, s: str) -> int:
        self.real.write(s)
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "event" in rec:
                self.events.append(rec)
        return len(s)

    def flush(self) -> None:
        self.real.flush()


def _ms(fn: Callable[[], Any], n: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "max_ms": round(max(times), 3), "n": n,
            "cpu_ms": round(statistics.median(cpu), 3)}  # process CPU time (all threads): work, not latency


def _per_face(r: dict[str, Any], faces: int) -> dict[str, Any]:
    med = r["median_ms"] / faces
    return {**r, "faces_per_call": faces, "ms_per_face": round(med, 3),
            "faces_per_s": round(1000 / med, 2) if med > 0 else None}


def bench_provider(provider: str, model_dir: Path, frames: int, warmup: int,
                   models: dict[str, Any]) -> dict[str, Any]:
    """Open the packs with FACEFACTORY_EXECUTION_PROVIDER=provider and time every stage."""
    # the provider the engine is to pick, and its log lines as JSON at info level (parsed below)
    env = {PROVIDER_ENV: provider, "FACEFACTORY_LOG_FORMAT": "json", "FACEFACTORY_LOG_LEVEL": "info"}
    old_env, old_err = {k: os.environ.get(k) for k in env}, sys.stderr
    os.environ.update(env)
    tee = _Tee(old_err)
    sys.stderr = tee
    out: dict[str, Any] = {"requested": provider, "config": RuntimeConfig.from_env().__dict__}
    try:
        ff_packs._HASH_CACHE.clear()  # each provider pays the same sha256 cost in its construction time
        t0 = time.perf_counter()
        swapper = get_swapper("inswapper_128", str(model_dir))
        t1 = time.perf_counter()
        enhancer = get_enhancer("gfpgan", str(model_dir))
        t2 = time.perf_counter()
        sessions = {"swapper": swapper.session, "recognizer": swapper.recognizer.session, "enhancer": enhancer.session}
        used = {role: list(s.get_providers()) for role, s in sessions.items()}
        out["session_providers"] = used
        out["used"] = {role: p[0] if p else None for role, p in used.items()}
        out["construct_ms"] = {"swapper_and_recognizer": round((t1 - t0) * 1000, 1),
                               "enhancer": round((t2 - t1) * 1000, 1)}
        out["session_load_ms"] = {e.get("role"): e.get("load_ms") for e in tee.events
                                  if e.get("event") == "onnx_session"}
        want_cuda = provider in ("cuda", "auto") and CUDA in ort.get_available_providers()
        out["cuda_used"] = all(v == CUDA for v in out["used"].values())
        if provider == "cuda" and not out["cuda_used"]:
            out["skipped"] = "CUDA was requested but the sessions run on " + json.dumps(out["used"])
            return out
        if want_cuda and not out["cuda_used"]:
            out["skipped"] = "auto with CUDA available, but sessions run on " + json.dumps(out["used"])
            return out

        frame = synthetic_frame(FRAME_W, FRAME_H, seed=1)
        face = make_face(FRAME_W / 2, FRAME_H / 2 - 10, eye_span=120.0)
        src_img = synthetic_frame(512, 512, seed=2)
        source = SourceFace(image_bgr=src_img, face=make_face(256, 250, 140.0), embedding=np.zeros(128, np.float32))

        # bare model inference on ready blobs (what the provider does, without the engine around it)
        rec, sw = swapper.recognizer, swapper
        rec_blob = rec.blob([rec.crop(frame, face)])
        sw_blob = sw._blob([align_crop(frame, face.landmarks, sw.template, sw.size).image])
        enh_blob = gfpgan_blob([enhancer.crop(frame, face)])
        latent = np.full((1, sw.latent_dim), 1.0 / np.sqrt(sw.latent_dim), np.float32)
        runs = {
            "recognizer": lambda: rec.session.run(None, {rec.input_name: rec_blob}),
            "swapper": lambda: sw.session.run(None, {sw.target_name: sw_blob, sw.source_name: latent}),
            "enhancer": lambda: enhancer.session.run(None, {enhancer.input_name: enh_blob}),
        }
        first = {}
        for role, fn in runs.items():
            t = time.perf_counter()
            fn()
            first[role] = round((time.perf_counter() - t) * 1000, 1)
        out["first_call_ms"] = first
        stages: dict[str, Any] = {}
        for role, fn in runs.items():
            stages[f"model_{role}"] = _per_face(_ms(fn, frames, warmup), 1)
            stages[f"model_{role}"]["gflop_per_s"] = round(
                models[role]["gflop"] / (stages[f"model_{role}"]["median_ms"] / 1000), 1)

        def prepare() -> None:
            source.extra_embeddings.clear()  # else prepare() reuses the cached embedding
            swapper.prepare(source)

        stages["prepare"] = _per_face(_ms(prepare, frames, warmup), 1)
        stages["embed"] = _per_face(_ms(lambda: rec.embed(frame, face), frames, warmup), 1)
        stages["swap"] = _per_face(_ms(lambda: swapper.swap(frame, face), frames, warmup), 1)
        batch = [(frame, face)] * 8
        stages["swap_batch8"] = _per_face(_ms(lambda: swapper.swap_batch(batch), max(2, frames // 4), 1), 8)
        swapped, mask = swapper.swap(frame, face)
        stages["enhance"] = _per_face(_ms(lambda: enhancer.enhance(swapped, face, mask), frames, warmup), 1)

        def swap_enhance() -> None:
            out_frame, m = swapper.swap(frame, face)
            enhancer.enhance(out_frame, face, m)

        stages["swap_enhance"] = _per_face(_ms(swap_enhance, frames, warmup), 1)
        out["stages"] = stages
        out["mask_pixels"] = int(np.count_nonzero(mask))
        return out
    finally:
        sys.stderr = old_err
        out["log_events"] = [e for e in tee.events
                             if str(e.get("event", "")).startswith(("onnx_", "swapper_", "enhancer_"))]
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "onnxruntime": ort.__version__, "onnxruntime_path": str(Path(ort.__file__).parent),
        "available_providers": ort.get_available_providers(), "numpy": np.__version__, "opencv": cv2.__version__,
        "gpu": None, "loadavg_before": [round(v, 2) for v in os.getloadavg()],
        "env": {k: os.environ[k] for k in ("FACEFACTORY_ORT_INTRA_THREADS", "FACEFACTORY_ORT_INTER_THREADS",
                                           "FACEFACTORY_CUDA_DEVICE", "CUDA_VISIBLE_DEVICES") if k in os.environ},
    }
    try:
        import onnx

        info["onnx"] = onnx.__version__
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            info["gpu"] = r.stdout.strip() or r.stderr.strip() or None
        except (OSError, subprocess.SubprocessError) as exc:
            info["gpu"] = f"nvidia-smi failed: {exc}"
    return info


STAGE_ORDER = ("model_recognizer", "model_swapper", "model_enhancer", "prepare", "embed", "swap", "swap_batch8",
               "enhance", "swap_enhance")


def print_table(doc: dict[str, Any]) -> None:
    res = doc["providers"]
    cols = [p for p in res if "stages" in res[p]]
    print("\nmodels (random weights, FLOP-matched; MAC = multiply-accumulate, 1 MAC = 2 FLOP, per face):")
    for role, m in doc["models"].items():
        print(f"  {role:<10} {m['file']:<20} {m['gmac']:>7.2f} GMAC {m['gflop']:>7.2f} GFLOP  "
              f"{m['params_m']:>6.2f} M params {m['mb']:>6.1f} MB")
    for p, r in res.items():
        print(f"  {p}: sessions on {json.dumps(r.get('used'))}; construct ms {json.dumps(r.get('construct_ms'))}; "
              f"session load ms {json.dumps(r.get('session_load_ms'))}; "
              f"first call ms {json.dumps(r.get('first_call_ms'))}")
        if r.get("skipped"):
            print(f"  !! {p}: {r['skipped']}")
        for e in r.get("log_events", []):
            if e.get("level") == "warning":
                print(f"  !! {p} engine warning {e.get('event')} ({e.get('role')}): {e.get('message')}")
    head = f"{'stage':<17}" + "".join(f"{p + ' ms/face':>17}{p + ' faces/s':>15}" for p in cols)
    if "cpu" in cols and "cuda" in cols:
        head += f"{'CPU/CUDA':>10}"
    print("\n" + head)
    print("-" * len(head))
    for st in STAGE_ORDER:
        line = f"{st:<17}"
        for p in cols:
            s = res[p]["stages"].get(st)
            line += f"{s['ms_per_face']:>17.2f}{s['faces_per_s']:>15.1f}" if s else f"{'-':>17}{'-':>15}"
        if st in doc.get("ratio_cpu_over_cuda", {}):
            line += f"{doc['ratio_cpu_over_cuda'][st]:>10.2f}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30, help="timed calls per stage (after warm-up) on CUDA")
    ap.add_argument("--cpu-frames", type=int, default=5, help="timed calls per stage on CPU (GFPGAN size is slow)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per stage")
    ap.add_argument("--providers", default="cpu,cuda", help="comma list of cpu, cuda, auto")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--quick", action="store_true", help="tiny widths (same I/O), 3 frames: a smoke test")
    ap.add_argument("--require-cuda", action="store_true",
                    help="exit 3 unless every session of the cuda run used CUDAExecutionProvider")
    ap.add_argument("--model-dir", help="build the packs here (kept) instead of a temporary directory")
    ap.add_argument("--preload-dlls", action="store_true",
                    help="call onnxruntime.preload_dlls() first (CUDA/cuDNN from nvidia-* pip packages, when "
                         "LD_LIBRARY_PATH does not find them; not what the worker does)")
    args = ap.parse_args(argv)
    if args.preload_dlls:
        if not hasattr(ort, "preload_dlls"):
            ap.error(f"onnxruntime {ort.__version__} has no preload_dlls()")
        ort.preload_dlls()
    providers = [p.strip().lower() for p in args.providers.split(",") if p.strip()]
    bad = [p for p in providers if p not in ("cpu", "cuda", "auto")]
    if bad:
        ap.error(f"unknown providers {bad}")
    frames, cpu_frames, warmup = args.frames, args.cpu_frames, args.warmup
    if args.quick:
        frames, cpu_frames, warmup = min(frames, 3), min(cpu_frames, 3), 1
    sizes = onnx_models.QUICK if args.quick else onnx_models.FULL
    doc: dict[str, Any] = {"machine": machine_info(),
                           "settings": {"frames": frames, "cpu_frames": cpu_frames, "warmup": warmup,
                                        "quick": args.quick, "providers": providers, "frame": f"{FRAME_W}x{FRAME_H}",
                                        "faces_per_frame": 1, "preload_dlls": args.preload_dlls}}
    print(f"onnxruntime {ort.__version__} from {doc['machine']['onnxruntime_path']}; available providers "
          f"{ort.get_available_providers()}; GPU {doc['machine']['gpu']}; {os.cpu_count()} CPUs", flush=True)
    tmp = None
    if args.model_dir:
        model_dir = Path(args.model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="onnx-providers-")
        model_dir = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        doc["models"] = onnx_models.make_packs(model_dir, sizes)
        doc["build_s"] = round(time.perf_counter() - t0, 1)
        print(f"built packs in {doc['build_s']} s: " + ", ".join(
            f"{r} {m['gflop']} GFLOP ({m['mb']} MB)" for r, m in doc["models"].items()), flush=True)
        doc["providers"] = {}
        for p in providers:
            if p == "cuda" and CUDA not in ort.get_available_providers():
                doc["providers"][p] = {"requested": p, "cuda_used": False,
                                       "skipped": f"CUDAExecutionProvider not in onnxruntime's available providers "
                                                  f"{ort.get_available_providers()} (install onnxruntime-gpu)"}
                continue
            n = cpu_frames if p == "cpu" else frames
            print(f"-- provider {p}: {n} timed calls per stage, {warmup} warm-up", flush=True)
            doc["providers"][p] = bench_provider(p, model_dir, n, warmup, doc["models"])
            gc.collect()  # this provider's sessions go before the next one opens its own
    finally:
        if tmp is not None:
            tmp.cleanup()
    res = doc["providers"]
    if "stages" in res.get("cpu", {}) and "stages" in res.get("cuda", {}):
        cpu_st, cuda_st = res["cpu"]["stages"], res["cuda"]["stages"]
        doc["ratio_cpu_over_cuda"] = {st: round(cpu_st[st]["median_ms"] / cuda_st[st]["median_ms"], 2)
                                      for st in STAGE_ORDER if cuda_st[st]["median_ms"] > 0}
    cuda_req = "cuda" in providers
    cuda_ok = cuda_req and bool(res.get("cuda", {}).get("cuda_used")) and "stages" in res.get("cuda", {})
    doc["cuda"] = {"requested": cuda_req, "used": cuda_ok}
    doc["dlib_imported"] = "dlib" in sys.modules
    doc["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print_table(doc)
    if cuda_req and not cuda_ok:
        why = res.get("cuda", {}).get("skipped", "see session_providers")
        print(f"\n!! CUDA WAS REQUESTED BUT NOT USED: {why}")
    print(f"\nwrote {out}")
    return 3 if (args.require_cuda and not cuda_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
