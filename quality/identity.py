"""Calibrated identity score for the quality gate.

Raw recognizer cosines are not comparable to a fixed threshold: dlib embeddings of *different*
people share a large common component (raw cosine 0.80-0.92 between strangers).  The gate
therefore compares embeddings after an affine calibration per recognizer,
``z = W @ (x - mean)``, whose parameters are built offline by :mod:`facefactory.quality.calibration`
and shipped as a small versioned JSON file in ``quality/data/``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facefactory import settings

DATA_DIR = Path(__file__).resolve().parent / "data"
CALIBRATION_FORMAT = "facefactory.identity_calibration/1"
#: extra directories (colon-separated) searched before quality/data, e.g. an ONNX pack's dir
CALIBRATION_PATH_ENV = "FACEFACTORY_CALIBRATION_PATH"


@dataclass(frozen=True)
class Calibration:
    """Affine map applied to raw embeddings before the cosine."""

    recognizer: str
    version: str
    mean: np.ndarray  # float64 [D]
    transform: np.ndarray  # float64 [K, D]
    source: str

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def apply(self, embs: np.ndarray) -> np.ndarray:
        """Calibrated embeddings of raw ``embs`` [N, D] (NaN rows stay NaN)."""
        x = np.asarray(embs, dtype=np.float64)
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"embedding dim {x.shape[-1]} does not match calibration {self.version} ({self.dim})"
            )
        return (x - self.mean) @ self.transform.T

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "recognizer": self.recognizer,
            "version": self.version,
            "dim": self.dim,
            "mean": [float(f"{v:.7g}") for v in self.mean],
            "transform": [[float(f"{v:.7g}") for v in row] for row in self.transform],
        }


def _search_dirs(recognizer: str = "") -> list[Path]:
    """FACEFACTORY_CALIBRATION_PATH, then an ONNX pack's own dir (``arcface:<pack>``), then quality/data."""
    extra = [Path(p) for p in (settings.raw(CALIBRATION_PATH_ENV) or "").split(os.pathsep) if p]
    if recognizer.startswith("arcface:"):
        home = settings.raw("FACEFACTORY_HOME")
        model_dir = settings.raw("FACEFACTORY_MODEL_DIR") or (str(Path(home) / "models") if home else "")
        if model_dir:
            extra.append(Path(model_dir) / recognizer.split(":", 1)[1])
    return [*extra, DATA_DIR]


def parse_calibration(doc: dict, source: str = "<dict>") -> Calibration:
    """Validate and convert a calibration JSON document."""
    if doc.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"{source}: not a {CALIBRATION_FORMAT} file")
    mean = np.asarray(doc["mean"], dtype=np.float64)
    transform = np.asarray(doc["transform"], dtype=np.float64)
    if transform.ndim != 2 or transform.shape[1] != mean.shape[0]:
        raise ValueError(f"{source}: transform shape {transform.shape} vs mean {mean.shape}")
    return Calibration(doc["recognizer"], doc["version"], mean, transform, source)


@lru_cache(maxsize=16)
def load_calibration(recognizer: str) -> Calibration:
    """The newest calibration for ``recognizer`` (by version name) from the search dirs."""
    found: list[Calibration] = []
    for d in _search_dirs(recognizer):
        for path in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                doc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if doc.get("format") == CALIBRATION_FORMAT and doc.get("recognizer") == recognizer:
                found.append(parse_calibration(doc, str(path)))
        if found:  # the first directory that has one wins (packs override the shipped data)
            break
    if not found:
        raise LookupError(
            f"no identity calibration for recognizer {recognizer!r} in "
            f"{[str(d) for d in _search_dirs(recognizer)]}; build one with `python -m facefactory.quality.calibration`"
        )
    return max(found, key=lambda c: c.version)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of a [D] or [N, D] against b [N, D]; NaN where either row is NaN/zero."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sum(a * b, axis=1) / (na * nb)
    out[~np.isfinite(out)] = np.nan
    return out


def calibrated_cosine(
    source_emb: np.ndarray, embs: np.ndarray, recognizer: str = "dlib_resnet_v1",
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Gate identity score per row of ``embs`` [N, D] against ``source_emb`` [D].

    NaN rows (no face found after the swap) give NaN.
    """
    cal = calibration or load_calibration(recognizer)
    src = cal.apply(np.asarray(source_emb, dtype=np.float64).reshape(1, -1))
    zs = cal.apply(np.atleast_2d(embs))
    return cosine_rows(np.repeat(src, len(zs), axis=0), zs)
