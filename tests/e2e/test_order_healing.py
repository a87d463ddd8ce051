"""Self-healing in real runs of face_swap_order (`facefactory order run`, embedded SQLite Airflow).

- a clean order skips `reswap` entirely and publishes;
- an order whose face-bearing chunks fail identity (texture-only swap, identity_weight 0) while
  its face-free first chunk passes is healed: `reswap` maps over exactly the failing chunks,
  `final_gate` passes and the video is published with every input frame.
The unhealable case (min_id_cosine 0.999) is covered by test_order_run.py.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from healing_media import build_faceless_start_order

pytestmark = pytest.mark.slow

CHUNK_FRAMES = 32


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, airflow_env_factory) -> dict[str, str]:
    return airflow_env_factory(tmp_path_factory.mktemp("healing"))


def _run_order(env: dict[str, str], venv_tool, media: dict, order_id: str,
               *sets: str) -> subprocess.CompletedProcess:
    cmd = [venv_tool("facefactory"), "order", "run", "--source", Path(media["source"]).as_uri(),
           "--target", Path(media["target"]).as_uri(), "--order-id", order_id,
           "--set", f"chunk_frames={CHUNK_FRAMES}"]
    for item in sets:
        cmd += ["--set", item]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _task_states(env: dict[str, str], order_id: str, task_id: str) -> dict[int, str | None]:
    """map_index -> state of one task's instances in the run (an unexpanded task has -1)."""
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        rows = db.execute(
            "SELECT map_index, state FROM task_instance WHERE dag_id = 'face_swap_order' "
            "AND run_id = ? AND task_id = ?", (f"order__{order_id}", task_id)).fetchall()
    finally:
        db.close()
    return dict(rows)


def _xcom(env: dict[str, str], order_id: str, task_id: str, key: str):
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = 'face_swap_order' AND run_id = ? "
            "AND task_id = ? AND key = ?", (f"order__{order_id}", task_id, key)).fetchone()
    finally:
        db.close()
    assert row is not None, f"no XCom {task_id}/{key}"
    value = json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]
    return json.loads(value) if isinstance(value, str) else value


def _frame_count(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _published(env: dict[str, str], order_id: str) -> Path:
    return Path(env["FACEFACTORY_HOME"]) / "published" / f"{order_id}.mp4"


def test_clean_order_skips_reswap_and_publishes(env, venv_tool) -> None:
    media = build_faceless_start_order(Path(env["FACEFACTORY_HOME"]) / "inputs" / "clean",
                                       blank_frames=0, seconds=2.0)
    res = _run_order(env, venv_tool, media, "heal-clean")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    gate = _xcom(env, "heal-clean", "quality_gate", "gate")
    assert gate["passed"] is True and gate["failing_chunks"] == [] and gate["summary"]["chunks"] == 2
    assert _xcom(env, "heal-clean", "quality_gate", "return_value") == []
    reswap = _task_states(env, "heal-clean", "reswap")
    assert reswap and set(reswap.values()) == {"skipped"}, reswap
    assert _task_states(env, "heal-clean", "final_gate") == {-1: "success"}
    assert _frame_count(_published(env, "heal-clean")) == media["frames"]
    print(f"clean run: reswap instances {reswap}")


def test_failing_chunks_are_reswapped_and_healed(env, venv_tool) -> None:
    media = build_faceless_start_order(Path(env["FACEFACTORY_HOME"]) / "inputs" / "healing",
                                       blank_frames=CHUNK_FRAMES, seconds=2.5)
    res = _run_order(env, venv_tool, media, "heal-one", "identity_weight=0.0")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    face_chunks = list(range(1, -(-media["frames"] // CHUNK_FRAMES)))  # every chunk after the blank one
    gate = _xcom(env, "heal-one", "quality_gate", "gate")
    assert gate["passed"] is False
    assert gate["failing_chunks"] == face_chunks, gate
    assert set(gate["failure_counts"]) == {str(c) for c in face_chunks}
    assert all("id_cosine" in counts for counts in gate["failure_counts"].values()), gate["failure_counts"]
    # identity is measured on a sample of frames; the gate says which, and names failing ones among them
    summary = gate["summary"]
    assert 0 < summary["id_measured_frames"] < summary["face_frames"], summary
    named = {f["frame"] for f in gate["failures"] if f["metric"] == "id_cosine"}
    assert named and all(f >= CHUNK_FRAMES for f in named), named  # only face chunks' frames
    plan = _xcom(env, "heal-one", "quality_gate", "return_value")
    assert [p["chunk"] for p in plan] == face_chunks
    assert all(p["options"].get("identity_weight") == 1.0 for p in plan), plan
    reswap = _task_states(env, "heal-one", "reswap")
    assert sorted(reswap) == list(range(len(face_chunks))), reswap
    assert set(reswap.values()) == {"success"}, reswap
    final = _xcom(env, "heal-one", "final_gate", "return_value")
    assert final["passed"] is True and final["stage"] == "final_gate", final
    assert final["summary"]["id_measured_frames"] > 0 and final["summary"]["id_measured"], final["summary"]
    assert _frame_count(_published(env, "heal-one")) == media["frames"]
    print(f"healed: first gate failing {gate['failing_chunks']} {gate['failure_counts']}; "
          f"reswap {reswap}; final summary {json.dumps(final.get('summary'))}")
