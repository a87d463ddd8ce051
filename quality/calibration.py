"""Build and measure the identity calibration (``python -m facefactory.quality.calibration``).

Model: ``z = W (x - alpha * mu)`` with ``mu`` the mean of per-identity mean embeddings and
``W = S^-1/2`` for the within-identity covariance shrunk toward a scaled identity
(``S = (1-lam) Sw + lam tr(Sw)/D I``, i.e. within-class covariance normalisation). Centring
removes the component every dlib embedding shares (why raw cosines of strangers sit at 0.8-0.9);
``alpha`` and ``lam`` are chosen on a small grid by leave-identities-out scores so that the
gate's default threshold 0.85 sits midway between the hardest different-person pairs and the
weakest same-person pairs. All numbers are measured with held-out identities: same-person
pairs of identity i use a calibration fitted without i; different-person pairs (i, j) one
fitted without i and j.
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from facefactory.quality.calibration_data import FaceSet, build_faceset
from facefactory.quality.identity import DATA_DIR, Calibration

THRESHOLD = 0.85
ALPHAS = (1.0, 0.9, 0.8, 0.75, 0.7, 0.65, 0.6)
LAMBDAS = (0.3, 1.0)
VIEWS_PER_IDENTITY = 40
SEED = 0


def fit(embs: np.ndarray, labels: np.ndarray, alpha: float, lam: float, recognizer: str = "",
        version: str = "") -> Calibration:
    """Calibration from labelled embeddings (identities weighted equally)."""
    ids = np.unique(labels)
    mus = np.array([embs[labels == i].mean(0) for i in ids])
    dev = np.concatenate([embs[labels == i] - mus[k] for k, i in enumerate(ids)])
    sw = dev.T @ dev / len(dev)
    s = (1 - lam) * sw + lam * np.trace(sw) / len(sw) * np.eye(len(sw))
    w, v = np.linalg.eigh(s)
    transform = (v / np.sqrt(np.maximum(w, 1e-12))).T
    return Calibration(recognizer, version, alpha * mus.mean(0), transform, "fit")


def _pair_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return an @ bn.T


@dataclass
class HeldOutScores:
    same: np.ndarray  # cosines of same-person pairs, identity held out of the fit
    diff: np.ndarray  # cosines of different-person pairs, both identities held out


def _held_out_sets(labels: np.ndarray) -> list[tuple[np.ndarray, tuple]]:
    """(training mask, identities held out) for every same-person and different-person test."""
    ids = np.unique(labels)
    sets: list[tuple[np.ndarray, tuple[int, ...]]] = [(labels != i, (i,)) for i in ids]
    sets += [((labels != i) & (labels != j), (i, j)) for i, j in itertools.combinations(ids, 2)]
    return sets


def held_out_scores_grid(fs: FaceSet, alphas: tuple[float, ...], lam: float) -> dict[float, HeldOutScores]:
    """Held-out scores for several alphas at once: W depends on lam only, alpha shifts the mean."""
    e, lab = fs.embeddings, fs.labels
    same: dict[float, list] = {a: [] for a in alphas}
    diff: dict[float, list] = {a: [] for a in alphas}
    for keep, held in _held_out_sets(lab):
        base = fit(e[keep], lab[keep], 1.0, lam)
        for a in alphas:
            cal = Calibration("", "", a * base.mean, base.transform, "fit")
            if len(held) == 1:
                z = cal.apply(e[lab == held[0]])
                c = _pair_cos(z, z)
                same[a].append(c[np.triu_indices(len(c), 1)])
            else:
                diff[a].append(_pair_cos(cal.apply(e[lab == held[0]]), cal.apply(e[lab == held[1]])).ravel())
    return {a: HeldOutScores(np.concatenate(same[a]), np.concatenate(diff[a])) for a in alphas}


def held_out_scores(fs: FaceSet, alpha: float, lam: float) -> HeldOutScores:
    """Same-person pairs of identity i scored by a fit without i; pairs (i, j) by a fit without both."""
    return held_out_scores_grid(fs, (alpha,), lam)[alpha]


def raw_scores(fs: FaceSet) -> HeldOutScores:
    """Uncalibrated cosines of the same pairs, for comparison."""
    e, lab = fs.embeddings, fs.labels
    ids = np.unique(lab)
    same = [(_pair_cos(e[lab == i], e[lab == i]))[np.triu_indices(int((lab == i).sum()), 1)] for i in ids]
    diff = [_pair_cos(e[lab == i], e[lab == j]).ravel() for i, j in itertools.combinations(ids, 2)]
    return HeldOutScores(np.concatenate(same), np.concatenate(diff))


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a same-person pair > score of a different-person pair), ties counted half."""
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def measure(scores: HeldOutScores, threshold: float = THRESHOLD) -> dict:
    """The numbers the docs and the test report."""
    return {
        "threshold": threshold,
        "same_pairs": int(len(scores.same)), "diff_pairs": int(len(scores.diff)),
        "same_pass_rate": round(float(np.mean(scores.same >= threshold)), 4),
        "diff_below_rate": round(float(np.mean(scores.diff < threshold)), 4),
        "false_accept_rate": round(float(np.mean(scores.diff >= threshold)), 5),
        "roc_auc": round(roc_auc(scores.same, scores.diff), 5),
        "same_p01": round(float(np.percentile(scores.same, 1)), 4),
        "same_p05": round(float(np.percentile(scores.same, 5)), 4),
        "diff_p99": round(float(np.percentile(scores.diff, 99)), 4),
        "diff_max": round(float(scores.diff.max()), 4),
    }


def choose(fs: FaceSet, threshold: float = THRESHOLD) -> tuple[float, float, dict]:
    """Grid point maximising min(threshold - diff_p99.9, same_p01 - threshold)."""
    best: tuple[float, float, float, dict] | None = None
    for lam in LAMBDAS:
        for alpha, sc in held_out_scores_grid(fs, ALPHAS, lam).items():
            margin = min(threshold - float(np.percentile(sc.diff, 99.9)),
                         float(np.percentile(sc.same, 1)) - threshold)
            if best is None or margin > best[2]:
                best = (alpha, lam, margin, measure(sc, threshold))
    assert best is not None
    return best[0], best[1], {**best[3], "margin": round(best[2], 4)}


def build(fs: FaceSet, version: str, threshold: float = THRESHOLD) -> dict:
    """The calibration document: parameters fitted on all identities + held-out measurements."""
    alpha, lam, held_out = choose(fs, threshold)
    cal = fit(fs.embeddings, fs.labels, alpha, lam, fs.recognizer, version)
    doc = cal.to_json()
    doc["built"] = {
        "date": date.today().isoformat(), "procedure": "python -m facefactory.quality.calibration",
        "identities": fs.names, "views_per_identity": int(np.bincount(fs.labels).min()),
        "embeddings": int(len(fs.embeddings)), "seed": SEED, "alpha": alpha, "lam": lam,
        "held_out": held_out, "raw": measure(raw_scores(fs), threshold),
    }
    return doc


def _load_analyzer(spec: str | None, pack: str | None, model_dir: str | None):
    """dlib detection + the recognizer to calibrate: an ONNX pack's ArcFace (``--pack``), a
    ``module:callable`` factory (``--recognizer``), or dlib's ResNet (default)."""
    from faceworker.faces import FaceAnalyzer

    recognizer = None
    if pack:
        from faceworker.recognizers import load_pack_recognizer

        recognizer = load_pack_recognizer(pack, model_dir)
    elif spec:
        mod, _, attr = spec.partition(":")
        recognizer = getattr(importlib.import_module(mod), attr)()
    return FaceAnalyzer(detect_scale=1.0, upsample=1, recognizer=recognizer)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facefactory.quality.calibration", description=__doc__.split("\n")[0])
    ap.add_argument("--pack", help="ONNX model pack whose ArcFace recognizer to calibrate")
    ap.add_argument("--model-dir", help="model dir of --pack (default FACEFACTORY_MODEL_DIR)")
    ap.add_argument("--recognizer", help="module:callable building the recognizer (default: dlib ResNet)")
    ap.add_argument("--version", help="calibration version (default dlib_calibration_v1 / <pack>_calibration_v1)")
    ap.add_argument("--out", type=Path, help="output JSON (default quality/data/<version>.json; "
                                             "for --pack: <model-dir>/<pack>/calibration.json)")
    ap.add_argument("--views", type=int, default=VIEWS_PER_IDENTITY)
    args = ap.parse_args(argv)
    fs = build_faceset(args.views, SEED, _load_analyzer(args.recognizer, args.pack, args.model_dir))
    version = args.version or (f"{args.pack}_calibration_v1" if args.pack else "dlib_calibration_v1")
    doc = build(fs, version)
    out = args.out
    if out is None and args.pack:
        from faceworker.packs import default_model_dir

        out = Path(args.model_dir or default_model_dir()) / args.pack / "calibration.json"
    out = out or DATA_DIR / f"{version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    print(json.dumps({"out": str(out), **doc["built"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
