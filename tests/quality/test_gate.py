"""Gate on synthetic orders: clean, identity failure, PSNR failure, missing/duplicate frames."""
from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import make_order, raw_from_calibrated

from facefactory.quality.gate import evaluate
from facefactory.quality.identity import calibrated_cosine, load_calibration

ORDER = {"min_id_cosine": 0.85, "min_psnr_db": 30.0}


def test_clean_order_passes_and_stores_validation(tmp_path):
    order = make_order(tmp_path, no_face=[5, 6])
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert res.passed, res.message()
    assert res.failing_chunks == [] and res.failures == []
    assert res.summary["frames"] == 120 and res.summary["face_frames"] == 118
    assert res.summary["id_cosine_min"] > 0.85
    v = json.loads((order / "quality" / "validation.json").read_text())
    assert v["success"] is True
    names = {r["expectation_config"]["meta"]["name"] for r in v["results"]}
    assert {"identity", "psnr_outside", "ssim_outside", "face_found", "landmark_jitter", "frame_unique",
            "frame_count"} <= names
    assert all(r["expectation_config"]["meta"]["notes"] for r in v["results"])
    d = res.to_dict()
    json.dumps(d)
    assert d["reswap"] == [] and "PASSED" in d["message"]


def test_identity_failure_names_chunk_and_frames(tmp_path):
    bad = list(range(60, 80))
    order = make_order(tmp_path, bad_identity={1: bad})
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed
    assert res.failing_chunks == [1]
    assert {f["frame"] for f in res.failures} == set(bad)
    assert {f["metric"] for f in res.failures} == {"id_cosine"}
    assert all(f["value"] < 0.85 and f["threshold"] == 0.85 for f in res.failures)
    msg = res.message()
    assert "chunk 1" in msg and "frame 60" in msg and "id_cosine" in msg
    plan = res.to_dict()["reswap"]
    assert [p["chunk"] for p in plan] == [1] and plan[0]["start"] == 48 and plan[0]["end"] == 96
    assert plan[0]["options"]["identity_weight"] == 1.0


def test_identity_mostly_tolerates_one_percent(tmp_path):
    order = make_order(tmp_path, frames=200, chunk_frames=100, bad_identity={0: [10]})
    assert evaluate(str(order), ORDER, expected_frames=200).passed
    strict = evaluate(str(order), {**ORDER, "id_mostly": 1.0}, expected_frames=200)
    assert not strict.passed and strict.failing_chunks == [0]


def test_threshold_comes_from_the_order(tmp_path):
    order = make_order(tmp_path)
    res = evaluate(str(order), {**ORDER, "min_id_cosine": 0.999}, expected_frames=120)
    assert not res.passed and res.summary["thresholds"]["min_id_cosine"] == 0.999


def test_psnr_failure(tmp_path):
    order = make_order(tmp_path, psnr={10: 24.5})
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed and res.failing_chunks == [0]
    assert res.failures == [{"chunk": 0, "frame": 10, "metric": "psnr_outside_db", "value": 24.5,
                             "threshold": 30.0, "expectation": "psnr_outside"}]
    assert "psnr_outside_db" in res.message() and "frame 10" in res.message()
    assert res.reswap_plan()[0]["options"]["blend_mode"] == "alpha"


def test_missing_and_duplicate_frames(tmp_path):
    order = make_order(tmp_path, drop=[50], duplicate=[100])
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed
    got = {(f["chunk"], f["frame"], f["metric"]) for f in res.failures}
    assert (1, 50, "frame_missing") in got
    assert (2, 100, "frame_duplicate") in got
    assert res.failing_chunks == [1, 2]
    # one dropped + one duplicated frame keep the row count: uniqueness and the range still catch it
    assert "frame_unique" in res.summary["failed_expectations"]


def test_frame_count_must_match_the_input(tmp_path):
    order = make_order(tmp_path)
    res = evaluate(str(order), ORDER, expected_frames=121)
    assert not res.passed
    assert any(f["metric"] == "frame_missing" and f["frame"] == 120 for f in res.failures)


def test_face_lost_after_swap(tmp_path):
    order = make_order(tmp_path, lost=[7])
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed and res.failing_chunks == [0]
    assert [f["metric"] for f in res.failures] == ["face_found_after"]


def test_missing_chunk_outputs(tmp_path):
    order = make_order(tmp_path, skip_chunks=[2])
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed and res.failing_chunks == [2]
    assert "metrics_missing" in {f["metric"] for f in res.failures}


def test_calibrated_cosine_nan_rows_and_shape():
    cal = load_calibration("dlib_resnet_v1")
    rng = np.random.default_rng(1)
    u = rng.normal(size=cal.dim)
    src = raw_from_calibrated(u)[0]
    embs = np.vstack([raw_from_calibrated(u)[0], np.full(cal.dim, np.nan), raw_from_calibrated(-u)[0]])
    s = calibrated_cosine(src, embs, "dlib_resnet_v1")
    assert s[0] == pytest.approx(1.0, abs=1e-5) and np.isnan(s[1]) and s[2] == pytest.approx(-1.0, abs=1e-5)
    with pytest.raises(LookupError):
        calibrated_cosine(src, embs, "no_such_recognizer")


SAMPLED = [0, 20, 47, 48, 70, 95, 96, 110, 119]  # per 48-frame chunk: edges + one stratified pick


def test_unmeasured_frames_neither_fail_nor_count(tmp_path):
    """Identity is measured on a sample: a frame without a measurement cannot fail the identity
    expectation (even with a stranger's embedding on disk) and is not "missing" either."""
    order = make_order(tmp_path, bad_identity={1: [60, 61, 62]}, measured=SAMPLED, id_sample_every=32)
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert res.passed, res.message()
    assert res.summary["id_measured_frames"] == len(SAMPLED)
    assert res.summary["id_measured"] == "0, 20, 47-48, 70, 95-96, 110, 119"
    assert "9 with an identity measurement" in res.message()


def test_a_bad_measured_frame_fails_naming_it(tmp_path):
    order = make_order(tmp_path, bad_identity={1: [60, 70]}, measured=[*SAMPLED, 60], id_sample_every=32)
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed and res.failing_chunks == [1]
    assert {(f["frame"], f["metric"]) for f in res.failures} == {(60, "id_cosine"), (70, "id_cosine")}


def test_a_chunk_with_too_few_measurements_fails(tmp_path):
    """One measured frame in a 48-frame chunk sampled every 32: its identity verdict would rest on
    one frame, so the chunk fails (metric id_measured) instead of passing."""
    order = make_order(tmp_path, measured=[0, 47, 48, 96, 119], id_sample_every=32)
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert not res.passed and res.failing_chunks == [1]
    (f,) = res.failures
    assert (f["chunk"], f["frame"], f["metric"], f["value"], f["threshold"]) == (1, 48, "id_measured", 1, 2)
    assert "id_measured" in res.message()
    assert res.reswap_plan()[0]["chunk"] == 1  # re-running the chunk is the fix


def test_older_metrics_without_sampling_fields_count_every_embedded_frame(tmp_path):
    order = make_order(tmp_path, lost=[7])
    res = evaluate(str(order), ORDER, expected_frames=120)
    assert res.summary["id_measured_frames"] == 119  # every frame with an embedding
    assert {f["metric"] for f in res.failures} == {"face_found_after"}


def test_final_gate_reuses_the_validation_of_unchanged_inputs(tmp_path, monkeypatch):
    """final_gate after a quality_gate with nothing to reswap: same frames, same suite, same
    parameters -> the stored GX result is reused (no second validation); any change revalidates."""
    import facefactory.quality.gate as gate

    order = make_order(tmp_path, psnr={70: 20.0})
    first = evaluate(str(order), ORDER, expected_frames=120)
    assert not first.passed and first.failing_chunks == [1]
    calls = []
    real = gate.validate_frames
    monkeypatch.setattr(gate, "validate_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = evaluate(str(order), ORDER, expected_frames=120, stage="final_gate")
    assert calls == [] and again.failures == first.failures and again.summary["stage"] == "final_gate"
    stored = json.loads((order / "quality" / "final_gate.json").read_text())
    assert stored["meta"]["facefactory"]["stage"] == "final_gate"
    evaluate(str(order), {**ORDER, "min_psnr_db": 10.0}, expected_frames=120, stage="final_gate")
    assert calls == [1]  # another threshold
    metrics = order / "swapped" / "00001" / "metrics.json"
    doc = json.loads(metrics.read_text())
    doc["frames"] = [{**r, "psnr_outside_db": 45.0} for r in doc["frames"]]  # the reswap fixed chunk 1
    metrics.write_text(json.dumps(doc))
    fixed = evaluate(str(order), ORDER, expected_frames=120, stage="final_gate")
    assert calls == [1, 1] and fixed.passed


def test_no_face_in_any_frame_fails_at_once_naming_it(tmp_path):
    """issue 15: a target without a face used to pass (nothing to fail) and publish unchanged."""
    order = make_order(tmp_path, frames=60, no_face=list(range(60)))
    res = evaluate(str(order), ORDER, expected_frames=60)
    assert not res.passed and res.fatal == "no face found in any frame of the target"
    assert "no face found in any frame of the target" in res.message()
    assert res.reswap_plan() == [], "re-swapping cannot find a face that is not there"
    assert res.to_dict()["fatal"] == res.fatal


def test_one_face_frame_is_not_fatal(tmp_path):
    order = make_order(tmp_path, frames=60, no_face=list(range(1, 60)))
    res = evaluate(str(order), ORDER, expected_frames=60)
    assert res.fatal is None and res.summary["face_frames"] == 1
