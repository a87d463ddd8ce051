"""Synthetic order work areas for gate tests: real file layout, controlled metric values.

Embeddings are constructed in the calibrated space of the shipped dlib calibration, so the
identity score of each frame is chosen by the test (``x = mean + W^-1 u`` gives ``z = u``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facefactory.quality.identity import load_calibration

RECOGNIZER = "dlib_resnet_v1"


def raw_from_calibrated(u: np.ndarray) -> np.ndarray:
    cal = load_calibration(RECOGNIZER)
    return (cal.mean + np.linalg.solve(cal.transform, np.atleast_2d(u).T).T).astype(np.float32)


def frame_row(frame: int, chunk: int, **over) -> dict:
    row = {"frame": frame, "chunk": chunk, "faces_target": 1, "swapped": True, "face_found_after": True,
           "id_cosine_raw": 0.95, "id_dist_source": 0.3, "id_dist_target": 0.7, "psnr_outside_db": 42.0,
           "ssim_outside": 0.99, "landmark_jitter_px": 0.5, "yaw_deg": 3.0, "warnings": [],
           "t_detect_ms": 10.0, "t_swap_ms": 5.0, "t_metrics_ms": 8.0}
    row.update(over)
    return row


def make_order(root: Path, frames: int = 120, chunk_frames: int = 48, seed: int = 0,
               bad_identity: dict[int, list[int]] | None = None, psnr: dict[int, float] | None = None,
               drop: list[int] | None = None, duplicate: list[int] | None = None,
               lost: list[int] | None = None, no_face: list[int] | None = None,
               skip_chunks: list[int] | None = None, id_noise: float = 0.15,
               measured: list[int] | None = None, id_sample_every: int | None = None) -> Path:
    """Write ``root/orders/o1`` with chunks of a clean swap, then apply the requested defects.

    bad_identity: chunk -> frames whose swapped face is a stranger (calibrated cos ≈ 0);
    psnr: frame -> PSNR value; drop/duplicate: frame indices removed/written twice;
    lost: frames where no face is found after the swap; no_face: frames without a target face;
    measured: the frames carrying an identity measurement (None: every frame, like older engines;
    the others get ``id_measured`` false but keep their embedding, which the gate must ignore);
    id_sample_every: the engine's sampling stride written to metrics.json.
    """
    rng = np.random.default_rng(seed)
    order = root / "orders" / "o1"
    dim = load_calibration(RECOGNIZER).dim
    u_src = rng.normal(size=dim)
    (order / "input").mkdir(parents=True, exist_ok=True)
    np.save(order / "input" / "source_embedding.npy", raw_from_calibrated(u_src)[0])
    chunks = [{"chunk": i, "start": s, "end": min(s + chunk_frames, frames)}
              for i, s in enumerate(range(0, frames, chunk_frames))]
    (order / "chunks").mkdir(parents=True, exist_ok=True)
    (order / "chunks" / "chunks.json").write_text(json.dumps(chunks))
    bad_identity, psnr = bad_identity or {}, psnr or {}
    for c in chunks:
        i = c["chunk"]
        if i in (skip_chunks or []):
            continue
        rows, us = [], []
        for f in range(c["start"], c["end"]):
            over: dict = {}
            u = u_src + rng.normal(scale=id_noise * np.linalg.norm(u_src) / np.sqrt(dim), size=dim)
            if f in bad_identity.get(i, []):
                u = rng.normal(size=dim)
            if f in psnr:
                over["psnr_outside_db"] = psnr[f]
            if f in (lost or []):
                over.update(face_found_after=False, id_cosine_raw=None, id_dist_source=None)
                u = np.full(dim, np.nan)
            if f in (no_face or []):
                over.update(faces_target=0, swapped=False, face_found_after=False, id_cosine_raw=None,
                            landmark_jitter_px=None, warnings=["no_face_in_target"])
                u = np.full(dim, np.nan)
            us.append(u)
            if measured is not None:
                over["id_measured"] = bool(f in measured and np.isfinite(u).all())
            if f not in (drop or []):
                rows.append(frame_row(f, i, **over))
            if f in (duplicate or []):
                rows.append(frame_row(f, i, **over))
        embs = np.array([raw_from_calibrated(u)[0] if np.isfinite(u).all() else np.full(dim, np.nan, np.float32)
                         for u in us], np.float32)
        d = order / "swapped" / f"{i:05d}"
        d.mkdir(parents=True, exist_ok=True)
        doc = {"order": "o1", "chunk": i, "start": c["start"], "end": c["end"], "recognizer": RECOGNIZER,
               "swapper": "classic", "frames": rows}
        if id_sample_every is not None:
            doc["id_sample_every"] = id_sample_every
        (d / "metrics.json").write_text(json.dumps(doc))
        np.save(d / "embeddings.npy", embs)
        (d / "done.json").write_text(json.dumps({
            "spec_hash": "x", "engine_version": "test", "order": "o1", "chunk": i, "start": c["start"],
            "end": c["end"], "frames": c["end"] - c["start"],
            "timings": {"decode_s": 0.2, "detect_s": 1.0, "swap_s": 0.5, "encode_s": 0.3, "metrics_s": 0.4,
                        "total_s": 2.4}, "summary": {}, "finished_at": "2026-11-26T00:00:00Z"}))
    return order
