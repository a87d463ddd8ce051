"""Collect every chunk's per-frame metrics of an order into one DataFrame.

Adds the gate's calibrated identity score ``id_cosine`` (from ``embeddings.npy`` and
``input/source_embedding.npy``); the engine's ``id_cosine_raw`` is kept for reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from facefactory.quality import workarea as wa
from facefactory.quality.identity import calibrated_cosine

COLUMNS = [
    "frame", "chunk", "faces_target", "swapped", "face_found_after", "id_measured", "id_cosine_raw",
    "id_dist_source", "id_dist_target", "psnr_outside_db", "ssim_outside", "landmark_jitter_px",
    "yaw_deg", "t_detect_ms", "t_swap_ms", "t_metrics_ms",
]
DEFAULT_RECOGNIZER = "dlib_resnet_v1"


@dataclass
class OrderFrames:
    """The order's frames plus what could not be read (named per chunk)."""

    df: pd.DataFrame
    chunks: list[dict]
    recognizer: str
    problems: list[dict] = field(default_factory=list)  # {chunk, frame, metric, value, threshold}
    done: dict[int, dict] = field(default_factory=dict)  # chunk -> done.json
    id_sample_every: dict[int, int] = field(default_factory=dict)  # chunk -> the engine's sampling stride


def frame_ranges(frames) -> str:  # noqa: ANN001 - any iterable of ints
    """"3, 10-14, 96": frame numbers as a compact list for summaries and the report."""
    parts: list[str] = []
    run: list[int] = []
    for f in sorted({int(x) for x in frames}):
        if run and f == run[-1] + 1:
            run.append(f)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [f]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


def chunk_dir(order_dir: str, chunk: int) -> str:
    return wa.join(order_dir, "swapped", f"{chunk:05d}")


def load_chunks(order_dir: str) -> list[dict]:
    doc = wa.read_json(wa.join(order_dir, "chunks", "chunks.json"))
    chunks = doc["chunks"] if isinstance(doc, dict) else doc
    return sorted(({"chunk": int(c["chunk"]), "start": int(c["start"]), "end": int(c["end"])} for c in chunks),
                  key=lambda c: c["chunk"])


def chunk_of(chunks: list[dict], frame: int) -> int | None:
    for c in chunks:
        if c["start"] <= frame < c["end"]:
            return c["chunk"]
    return None


def load_order_frames(order_dir: str) -> OrderFrames:
    """Read chunks.json, each chunk's metrics/embeddings/done and the source embedding."""
    chunks = load_chunks(order_dir)
    source = wa.read_npy(wa.join(order_dir, "input", "source_embedding.npy")).astype(np.float64).ravel()
    rows: list[pd.DataFrame] = []
    problems: list[dict] = []
    done: dict[int, dict] = {}
    sample_every: dict[int, int] = {}
    recognizer = DEFAULT_RECOGNIZER
    for c in chunks:
        i, d = c["chunk"], chunk_dir(order_dir, c["chunk"])
        if not wa.exists(wa.join(d, "metrics.json")):
            problems.append({"chunk": i, "frame": c["start"], "metric": "metrics_missing",
                             "value": None, "threshold": f"swapped/{i:05d}/metrics.json"})
            continue
        metrics = wa.read_json(wa.join(d, "metrics.json"))
        recognizer = metrics.get("recognizer", recognizer)
        sample_every[i] = int(metrics.get("id_sample_every") or 1)  # older engines measured every frame
        part = pd.DataFrame(metrics.get("frames", []))
        for col in COLUMNS:
            if col not in part.columns:
                part[col] = np.nan
        part["chunk"] = i
        part["id_cosine"] = np.nan
        if wa.exists(wa.join(d, "embeddings.npy")) and len(part):
            embs = wa.read_npy(wa.join(d, "embeddings.npy"))
            idx = part["frame"].to_numpy(dtype=int) - c["start"]
            ok = (idx >= 0) & (idx < len(embs))
            scores = np.full(len(part), np.nan)
            if ok.any():
                scores[ok] = calibrated_cosine(source, embs[idx[ok]], recognizer)
            part["id_cosine"] = scores
        elif len(part):
            problems.append({"chunk": i, "frame": c["start"], "metric": "embeddings_missing",
                             "value": None, "threshold": f"swapped/{i:05d}/embeddings.npy"})
        # a frame carries an identity measurement when the engine says so (older engines: when it
        # has an embedding); unmeasured frames have no id_cosine, so they neither fail nor count
        measured = part["id_measured"].map(lambda v: bool(v) if v is not None and v == v else None)
        part["id_measured"] = measured.where(measured.notna(), part["id_cosine"].notna()).astype(bool)
        part.loc[~part["id_measured"], "id_cosine"] = np.nan
        if wa.exists(wa.join(d, "done.json")):
            done[i] = wa.read_json(wa.join(d, "done.json"))
        rows.append(part)
    df = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[*COLUMNS, "id_cosine"])
    for col in ("faces_target",):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
    for col in ("id_cosine", "id_cosine_raw", "psnr_outside_db", "ssim_outside", "landmark_jitter_px", "yaw_deg"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df = df[pd.to_numeric(df["frame"], errors="coerce").notna()].copy()
    df["frame"] = df["frame"].astype(int)
    for col in ("face_found_after", "id_measured"):
        df[col] = df[col].map(lambda v: bool(v) if v is not None and v == v else False)
    df = df.sort_values(["frame", "chunk"], kind="stable").reset_index(drop=True)
    return OrderFrames(df=df, chunks=chunks, recognizer=recognizer, problems=problems, done=done,
                       id_sample_every=sample_every)
