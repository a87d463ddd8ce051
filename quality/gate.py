"""The order's quality gate: per-frame metrics -> GX suite -> pass/fail naming chunk, frame, metric.

Called twice by the DAG: ``quality_gate`` (failures feed ``reswap``) and ``final_gate`` (hard
fail). Both write the GX result to ``<order>/quality/validation.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from facefactory.operators.names import FINAL_GATE, QUALITY_GATE, GateResultDict, GateStage
from facefactory.quality import workarea as wa
from facefactory.quality.fallback import fallback_options
from facefactory.quality.frames import OrderFrames, chunk_of, frame_ranges, load_order_frames
from facefactory.quality.identity import load_calibration
from facefactory.quality.suite import DEFAULT_SUITE, load_suite_doc, resolve_parameters, validate_frames

log = logging.getLogger(__name__)

#: order keys (DAG Params) that override suite parameters of the same name
ORDER_KEYS = ("min_id_cosine", "id_mostly", "min_psnr_db", "psnr_mostly", "min_ssim", "ssim_mostly",
              "max_landmark_jitter_px", "jitter_mostly")
TABLE_METRICS = {"frame_count", "frame_first", "frame_last"}
XCOM_FAILURES = 200  # failures listed in to_dict(); counts cover all of them
XCOM_FAILURES_PER_CHUNK = 25
#: the gate's verdict when the detector found no face anywhere: nothing was swapped, and passing
#: the order would publish the customer's target unchanged
NO_FACE = "no face found in any frame of the target"


def _num(v: Any) -> Any:
    """JSON-safe scalar (NaN -> None, numpy -> python)."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class GateResult:
    """Outcome of one gate evaluation."""

    passed: bool
    failing_chunks: list[int]
    failures: list[dict]
    summary: dict
    chunks: list[dict] = field(default_factory=list)
    validation_uri: str | None = None
    stage: GateStage = QUALITY_GATE
    #: set when the order cannot pass whatever is re-swapped (NO_FACE); the DAG fails at once
    fatal: str | None = None

    def failures_for(self, chunk: int) -> list[dict]:
        return [f for f in self.failures if f.get("chunk") == chunk]

    def failure_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for f in self.failures:
            per = out.setdefault(str(f.get("chunk")), {})
            per[f["metric"]] = per.get(f["metric"], 0) + 1
        return out

    def reswap_plan(self) -> list[dict]:
        """One entry per failing chunk: its frame range and the fallback ``--options``."""
        by_id = {c["chunk"]: c for c in self.chunks}
        return [
            {"chunk": i, "start": by_id[i]["start"], "end": by_id[i]["end"],
             "options": fallback_options(self.failures_for(i))}
            for i in self.failing_chunks if i in by_id
        ]

    def message(self, max_items: int = 8) -> str:
        """One paragraph a person can act on: which chunks, frames and metrics failed."""
        s = self.summary
        head = (f"{self.stage}: {'PASSED' if self.passed else 'FAILED'} — {s.get('frames')} frames, "
                f"{s.get('face_frames')} with a face, {s.get('id_measured_frames')} with an identity "
                f"measurement, calibrated id cosine mean {s.get('id_cosine_mean')} "
                f"min {s.get('id_cosine_min')}, min PSNR outside face {s.get('psnr_min_db')} dB")
        if self.passed:
            return head
        if self.fatal:
            return f"{self.stage}: FAILED — {self.fatal} ({s.get('frames')} frames checked)"
        parts = []
        for chunk, counts in self.failure_counts().items():
            worst = [f for f in self.failures if str(f.get("chunk")) == chunk][:max_items]
            details = "; ".join(
                f"frame {f['frame']}: {f['metric']}={_fmt(f['value'])} (needs {_cmp(f)})" for f in worst)
            more = sum(counts.values()) - len(worst)
            parts.append(f"chunk {chunk} [{', '.join(f'{m}×{n}' for m, n in counts.items())}]: {details}"
                         + (f" … and {more} more" if more > 0 else ""))
        failed = ", ".join(s.get("failed_expectations", []))
        return f"{head}. Failed expectations: {failed}. " + " | ".join(parts)

    def to_dict(self) -> GateResultDict:
        """JSON-able, size-capped form for XCom."""
        by_chunk = {str(i): self.failures_for(i)[:XCOM_FAILURES_PER_CHUNK] for i in self.failing_chunks}
        return {
            "stage": self.stage, "passed": self.passed, "failing_chunks": list(self.failing_chunks),
            "failures": self.failures[:XCOM_FAILURES], "failures_total": len(self.failures),
            "failures_by_chunk": by_chunk, "failure_counts": self.failure_counts(),
            "reswap": self.reswap_plan(), "summary": self.summary,
            "validation_uri": self.validation_uri, "message": self.message(), "fatal": self.fatal,
        }


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _cmp(f: dict) -> str:
    m = f["metric"]
    if m == "landmark_jitter_px":
        return f"≤ {f['threshold']}"
    if m == "id_measured":
        return f"≥ {f['threshold']} measured frames"
    if isinstance(f["threshold"], (int, float)) and not isinstance(f["threshold"], bool) and m not in TABLE_METRICS:
        return f"≥ {f['threshold']}"
    return str(f["threshold"])


def _frame_failures(of: OrderFrames, expected_frames: int) -> list[dict]:
    """Missing and extra frames, attributed to the chunk whose range should hold them."""
    seen = set(of.df["frame"].tolist())
    out = []
    for fr in sorted(set(range(expected_frames)) - seen):
        out.append({"chunk": chunk_of(of.chunks, fr), "frame": fr, "metric": "frame_missing",
                    "value": None, "threshold": f"0..{expected_frames - 1}"})
    for _, row in of.df[of.df["frame"] >= expected_frames].iterrows():
        out.append({"chunk": int(row["chunk"]), "frame": int(row["frame"]), "metric": "frame_extra",
                    "value": int(row["frame"]), "threshold": f"0..{expected_frames - 1}"})
    return out


def _sampling_failures(of: OrderFrames) -> list[dict]:
    """Chunks whose identity rests on too few measurements fail instead of passing.

    The engine embeds a sample of frames (one per ``id_sample_every`` at least, metrics.json) plus
    every frame its cheap checks doubt; a chunk with fewer measured face frames than one per stride
    of frames where the face was found was not checked as the rule promises (a crash, an older or
    broken engine), and its identity verdict would be empty."""
    df = of.df
    if df.empty:
        return []
    out = []
    faces = df[(df["faces_target"] > 0) & df["face_found_after"]]
    for chunk, part in faces.groupby("chunk"):
        every = max(1, int(of.id_sample_every.get(int(chunk), 1)))
        need = math.ceil(len(part) / every)
        have = int((part["id_measured"] & part["id_cosine"].notna()).sum())
        if have < need:
            out.append({"chunk": int(chunk), "frame": int(part["frame"].min()), "metric": "id_measured",
                        "value": have, "threshold": need})
    return out


def _failures_from_validation(validation: dict) -> list[dict]:
    out = []
    for r in validation["results"]:
        if r["success"]:
            continue
        meta = r["expectation_config"].get("meta", {})
        metric, name = meta.get("metric"), meta.get("name")
        if name in TABLE_METRICS:
            continue  # attributed frame by frame in _frame_failures
        for row in r.get("result", {}).get("unexpected_index_list") or []:
            value = row.get(metric) if metric in row else None
            if metric == "frame":
                metric_name, value = "frame_duplicate", row.get("frame")
            else:
                metric_name = metric
            out.append({"chunk": int(row["chunk"]), "frame": int(row["frame"]), "metric": metric_name,
                        "value": _num(value), "threshold": meta.get("threshold"), "expectation": name})
    return out


def _summary(of: OrderFrames, validation: dict, params: dict, expected_frames: int) -> dict:
    df = of.df
    faces = df[df["faces_target"] > 0]

    def stat(series: pd.Series, fn: str) -> float | None:
        s = series.dropna()
        if s.empty:
            return None
        return round(float(getattr(np, fn)(s.to_numpy())), 4)

    failed = [r["expectation_config"].get("meta", {}).get("name") for r in validation["results"]
              if not r["success"]]
    try:
        cal_version = load_calibration(of.recognizer).version
    except LookupError:
        cal_version = None
    return {
        "frames": int(len(df)), "expected_frames": int(expected_frames), "chunks": len(of.chunks),
        "face_frames": int(len(faces)), "swapped_frames": int(df["swapped"].fillna(False).astype(bool).sum()),
        "face_found_frames": int(faces["face_found_after"].sum()),
        "id_measured_frames": int(faces["id_measured"].sum()),
        "id_measured": frame_ranges(faces.loc[faces["id_measured"], "frame"]),
        "id_cosine_mean": stat(faces["id_cosine"], "mean"), "id_cosine_min": stat(faces["id_cosine"], "min"),
        "id_cosine_p01": (round(float(np.nanpercentile(faces["id_cosine"], 1)), 4)
                          if faces["id_cosine"].notna().any() else None),
        "id_cosine_raw_mean": stat(faces["id_cosine_raw"], "mean"),
        "psnr_min_db": stat(df["psnr_outside_db"], "min"), "psnr_mean_db": stat(df["psnr_outside_db"], "mean"),
        "ssim_min": stat(df["ssim_outside"], "min"),
        "jitter_max_px": stat(df["landmark_jitter_px"], "max"),
        "recognizer": of.recognizer, "calibration": cal_version,
        "thresholds": {k: params.get(k) for k in ("min_id_cosine", "id_mostly", "min_psnr_db", "min_ssim",
                                                   "max_landmark_jitter_px")},
        "expectations": len(validation["results"]),
        "expectations_passed": sum(1 for r in validation["results"] if r["success"]),
        "failed_expectations": failed,
    }


def inputs_fingerprint(of: OrderFrames, params: dict, suite_doc: dict) -> str:
    """sha256 of everything the suite sees: the per-frame table (calibrated identity included),
    the chunk list and read problems, the resolved parameters and the suite document."""
    h = hashlib.sha256()
    h.update(of.df.to_csv(index=False).encode())
    h.update(json.dumps([of.chunks, of.problems, params, suite_doc], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _same_validation(order_dir: str, fingerprint: str) -> dict | None:
    """The stored GX result when it was computed from exactly these inputs (final_gate after a
    quality_gate that sent nothing to reswap): the same suite over the same frames gives the same
    result, without paying for Great Expectations' import and validation again."""
    uri = wa.join(order_dir, "quality", "validation.json")
    if not wa.exists(uri):
        return None
    try:
        stored = wa.read_json(uri)
    except ValueError:
        return None
    if stored.get("meta", {}).get("facefactory", {}).get("inputs_sha256") != fingerprint:
        return None
    log.info("gate inputs unchanged since the stored validation (%s): reusing its result", fingerprint[:12])
    return stored


def evaluate(order_dir: str, order: dict, expected_frames: int, *, stage: GateStage = QUALITY_GATE,
             suite_path: str = str(DEFAULT_SUITE)) -> GateResult:
    """Validate every frame of the order in ``order_dir`` against the suite.

    ``order`` supplies thresholds (``min_id_cosine``, ``min_psnr_db``, …; suite defaults
    otherwise); ``expected_frames`` is the input video's frame count from the probe. Writes
    ``quality/validation.json`` (and ``quality/<stage>.json``) into the order dir.
    """
    of = load_order_frames(order_dir)
    doc = load_suite_doc(suite_path)
    params = resolve_parameters(doc, {k: order.get(k) for k in ORDER_KEYS})
    params.update(expected_frames=int(expected_frames), last_frame=int(expected_frames) - 1)
    fingerprint = inputs_fingerprint(of, params, doc)
    validation = _same_validation(order_dir, fingerprint) or validate_frames(of.df, params, suite_path)
    failures = [*of.problems, *_frame_failures(of, expected_frames), *_sampling_failures(of),
                *_failures_from_validation(validation)]
    failures.sort(key=lambda f: (f["chunk"] if f["chunk"] is not None else 1 << 30, f["frame"] or 0))
    summary = _summary(of, validation, params, expected_frames)
    summary["stage"] = stage
    fatal = NO_FACE if summary["frames"] > 0 and summary["face_frames"] == 0 else None
    passed = bool(validation["success"]) and not failures and fatal is None
    failing = [] if fatal else sorted({f["chunk"] for f in failures if f["chunk"] is not None})
    validation["meta"]["facefactory"] = {"stage": stage, "passed": passed, "failing_chunks": failing, "fatal": fatal,
                                         "summary": summary, "failures": failures[:500],
                                         "failures_total": len(failures), "inputs_sha256": fingerprint}
    uri = wa.join(order_dir, "quality", "validation.json")
    wa.write_json(uri, validation)
    wa.write_json(wa.join(order_dir, "quality", f"{stage}.json"), validation)
    result = GateResult(passed=passed, failing_chunks=failing, failures=failures, summary=summary,
                        chunks=of.chunks, validation_uri=uri, stage=stage, fatal=fatal)
    log.info("%s", result.message())
    return result


def final_result(order_dir: str, order: dict, expected_frames: int, first: GateResultDict | dict,
                 reswapped: bool) -> GateResultDict | dict:
    """The final gate's result: the first gate's stands when it passed and nothing was re-swapped
    (the frames it judged are the ones that will be merged); otherwise every frame is judged again."""
    if first.get("passed") and not reswapped:
        return first
    return evaluate(order_dir, order, expected_frames, stage=FINAL_GATE).to_dict()
