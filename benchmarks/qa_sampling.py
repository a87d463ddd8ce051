"""Miss rate of the metrics pass's identity sampling (faceworker.id_sampling), measured.

One 720p chunk of the sample order (t1_2 onto the astronaut, moving) is swapped three ways by
the real engine and each output encoded and decoded back as the chunk runner does:
  - normal:   the default classic swap (what every non-injected frame shows);
  - own_face: the frame as it came in (a skipped swap, or the target's own face back);
  - texture:  a texture-only swap (identity_weight 0, no forehead, small region): the face
              changed, but it is still the target's person (calibrated id cosine ~0.6).
For every frame of every variant the pass's per-frame quantities are computed once (face patch
change vs the original, the output patch, the window re-detection, the calibrated identity of
the output face). Then N random injections per (variant, run length) splice the variant's frames
into the normal chunk, and the pass's own rule (`plan` + `Doubt`, with a per-trial seed) decides
which frames it would measure. An injection is *caught* when at least one of its frames is
measured and fails the gate's identity bar (the chunk fails, naming it); *frames named* is the
share of injected frames the gate names. `sample_only` repeats it without the cheap-check doubts:
what the stratified sample and the tracker's flags catch by themselves.

    .venv/bin/python benchmarks/qa_sampling.py [--trials 300] [--frames 96] [--size 1280x720]
Writes benchmarks/results/qa_sampling.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from facefactory.quality.identity import calibrated_cosine
from faceworker import frameio
from faceworker.faces import DlibRecognizer
from faceworker.frame_pipeline import SwapSession
from faceworker.frames import FrameView
from faceworker.id_sampling import ID_SAMPLE_EVERY, Doubt, plan
from faceworker.metrics import face_patches
from faceworker.metrics_pass import output_face_box
from faceworker.sample import DEFAULT_SOURCE, DEFAULT_TARGET, iter_target_frames, shipped_faces
from faceworker.source import load_source_face
from faceworker.types import Face

RESULTS = Path(__file__).resolve().parent / "results" / "qa_sampling.json"
MIN_ID = 0.85  # the gate's default min_id_cosine
TEXTURE = {"identity_weight": 0.0, "forehead": 0.0, "grow": 0.9}
RUNS = (1, 3, 5, 10)


def _encode_roundtrip(frames: list[np.ndarray], size: tuple[int, int], tmp: Path, name: str) -> list[np.ndarray]:
    """I420 frames -> H.264 (the runner's settings) -> I420 frames, as the metrics pass sees them."""
    path = tmp / f"{name}.mp4"
    w = frameio.FrameWriter(path, 25, size[0], size[1], crf=18, preset="veryfast", convert_in_python=True)
    with w:
        for f in frames:
            w.write(f)
    return list(frameio.read_frames(path, 0, len(frames), size=size, pix_fmt="yuv420p"))


def _swap(source: Any, originals: list[np.ndarray], size: tuple[int, int], options: dict | None) -> tuple[list, list]:
    session = SwapSession(source, "classic", options=options)
    outs, infos = [], []
    for i, f in enumerate(originals):
        view = FrameView(i420=f.copy(), width=size[0], height=size[1])
        out, info = session.process(view, i)
        outs.append(out.i420)
        infos.append(info)
    return outs, infos


def _per_frame(originals: list, outputs: list, infos: list, size: tuple[int, int], analyzer: Any,
               source_emb: np.ndarray) -> list[dict]:
    """What the pass computes per frame, plus the calibrated identity the gate would score."""
    rec = DlibRecognizer()
    w, h = size
    rows = []
    for orig, out, info in zip(originals, outputs, infos):
        if not info.faces:
            rows.append({"change": None, "patch": None, "found": False, "id": None})
            continue
        change, patch = face_patches(orig[:h], out[:h], info.faces[0].landmarks)
        view = FrameView(i420=out, width=w, height=h)
        box = output_face_box(view, info.faces[0], analyzer)
        ident = None
        if box is not None:
            lm = analyzer.landmarks(view.gray, box)
            emb = rec.embed(view.bgr(), Face(bbox=box, landmarks=lm))
            ident = float(calibrated_cosine(source_emb, emb[None, :])[0])
        rows.append({"change": change, "patch": patch, "found": box is not None, "id": ident})
    return rows


def _measured(infos: list, rows: list[dict], seed: int, doubts: bool = True) -> set[int]:
    """The frames the pass would embed for this (spliced) chunk: the plan plus in-pass doubts
    (without `doubts`: the plan alone, i.e. what the sample catches by itself)."""
    planned = plan(infos, ID_SAMPLE_EVERY, seed)
    doubt = Doubt()
    out = set()
    for i, (info, r) in enumerate(zip(infos, rows)):
        why = doubt.check(r["change"], r["patch"], bool(info.swapped)) if info.faces and doubts else None
        if info.faces and r["found"] and (planned.get(i) or why):
            out.add(i)
    return out


def simulate(infos: list, normal: list[dict], variant: list[dict], run: int, trials: int,
             rng: np.random.Generator, doubts: bool = True) -> dict[str, Any]:
    n = len(infos)
    caught = named = injected = 0
    for _ in range(trials):
        start = int(rng.integers(0, n - run + 1))
        frames = set(range(start, start + run))
        rows = [variant[i] if i in frames else normal[i] for i in range(n)]
        measured = _measured(infos, rows, seed=int(rng.integers(0, 1 << 30)), doubts=doubts)
        failing = {i for i in frames & measured if rows[i]["id"] is not None and rows[i]["id"] < MIN_ID}
        caught += bool(failing)
        named += len(failing)
        injected += len(frames)
    return {"run": run, "trials": trials, "caught": round(caught / trials, 4), "miss_rate": round(1 - caught / trials, 4),
            "frames_named": round(named / injected, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    faces = shipped_faces()
    source = load_source_face(faces[DEFAULT_SOURCE])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bgr = list(iter_target_frames(faces[DEFAULT_TARGET], args.frames, size, 25, 0))
        import cv2

        originals = [cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420) for f in bgr]
        originals = _encode_roundtrip(originals, size, tmp, "target")  # the target as decoded
        normal_out, infos = _swap(source, originals, size, None)
        texture_out, _ = _swap(source, originals, size, TEXTURE)
        session = SwapSession(source, "classic")
        variants = {"normal": _encode_roundtrip(normal_out, size, tmp, "normal"),
                    "own_face": _encode_roundtrip(originals, size, tmp, "own"),
                    "texture": _encode_roundtrip(texture_out, size, tmp, "texture")}
        per = {k: _per_frame(originals, v, infos, size, session.analyzer, source.embedding) for k, v in variants.items()}
    clean = _measured(infos, per["normal"], seed=0)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {
        "size": args.size, "frames": args.frames, "id_sample_every": ID_SAMPLE_EVERY, "min_id_cosine": MIN_ID,
        "clean_chunk_measured": len(clean),
        "clean_chunk_failing": sum(1 for i in clean if (per["normal"][i]["id"] or 0) < MIN_ID),
        "variant_id_mean": {k: round(float(np.mean([r["id"] for r in v if r["id"] is not None])), 3)
                            for k, v in per.items()},
        "results": {k: [simulate(infos, per["normal"], per[k], run, args.trials, rng) for run in RUNS]
                    for k in ("own_face", "texture")},
        "sample_only": {k: [simulate(infos, per["normal"], per[k], run, args.trials, rng, doubts=False)
                            for run in RUNS] for k in ("own_face", "texture")},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
