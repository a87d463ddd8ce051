"""Real orders on the embedded default: `facefactory order run` -> a DAG run of face_swap_order.

Each test drives the installed CLI against an isolated, migrated SQLite Airflow with a 3 s
640x360 sample order (75 frames, audio) cut into 32-frame chunks.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from datetime import UTC
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHUNK = "chunk_frames=32"


_BIN: dict[str, str] = {}  # console scripts of the running venv, filled by the env fixture


def tool(name: str) -> str:
    return _BIN[name]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, order_env_factory, venv_tool) -> dict[str, str]:
    _BIN["facefactory"] = venv_tool("facefactory")
    return order_env_factory(tmp_path_factory.mktemp("orders"), seconds=3)


def _paths(env: dict[str, str]) -> dict[str, Path]:
    home = Path(env["FACEFACTORY_HOME"])
    return {
        "home": home,
        "source": home / "inputs" / "sample" / "source.png",
        "target": home / "inputs" / "sample" / "target.mp4",
        "published": home / "published",
        "work": home / "work" / "orders",
        "lineage": home / "lineage" / "openlineage.jsonl",
    }


def order_cmd(env: dict[str, str], order_id: str, *sets: str) -> list[str]:
    p = _paths(env)
    cmd = [tool("facefactory"), "order", "run", "--source", p["source"].as_uri(),
           "--target", p["target"].as_uri(), "--order-id", order_id]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def run_order(env: dict[str, str], order_id: str, *sets: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(order_cmd(env, order_id, *sets), env=env, capture_output=True, text=True,
                          timeout=timeout)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_type,nb_read_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def good_run(env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    res = run_order(env, "e2e-good", CHUNK)
    return res, time.monotonic() - started


def test_sample_order_is_published_with_all_frames_and_audio(env, good_run) -> None:
    res, seconds = good_run
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    p = _paths(env)
    published = p["published"] / "e2e-good.mp4"
    assert res.stdout.strip().splitlines()[-1] == published.as_uri()
    assert published.is_file()
    streams = ffprobe(published)["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    assert int(video[0]["nb_read_packets"]) == 75
    assert any(s["codec_type"] == "audio" for s in streams)
    validation = json.loads((p["work"] / "e2e-good" / "quality" / "validation.json").read_text())
    gate = validation["meta"]["facefactory"]
    assert validation["success"] is True and gate["passed"] is True
    assert gate["summary"]["frames"] == 75
    assert len(list((p["work"] / "e2e-good" / "swapped").glob("*/done.json"))) == 3
    assert (p["work"] / "e2e-good" / "report" / "index.html").is_file()
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    events = db.execute(
        "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE e.source_run_id = 'order__e2e-good'").fetchall()
    db.close()
    assert [(name, json.loads(extra)["uri"]) for name, extra in events] == [
        ("facefactory_published_video", published.as_uri())]
    print(f"sample order wall time {seconds:.1f}s; gate summary {json.dumps(gate['summary'])}")


def _swap_intervals(env: dict[str, str], run_id: str) -> list[tuple[float, float, int]]:
    """(start, end, map_index) of every finished swap try of a run, from the metadata DB."""
    from datetime import datetime

    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    rows = db.execute(
        "SELECT start_date, end_date, map_index FROM task_instance WHERE run_id = ? AND task_id = 'swap' "
        "UNION ALL SELECT start_date, end_date, map_index FROM task_instance_history "
        "WHERE run_id = ? AND task_id = 'swap'", (run_id, run_id)).fetchall()
    db.close()
    return [(datetime.fromisoformat(a).timestamp(), datetime.fromisoformat(b).timestamp(), i)
            for a, b, i in rows if a and b]


def _most_at_once(intervals: list[tuple[float, float, int]]) -> int:
    edges = sorted([(a, 1) for a, _, _ in intervals] + [(b, -1) for _, b, _ in intervals])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_swaps_run_in_parallel_within_the_gpu_swaps_pool(env, good_run) -> None:
    """`order run` runs ready task instances at once, as a scheduler would: the 3 chunks' swaps
    overlap, and never more of them than the pool's 2 slots (conftest creates gpu_swaps=2)."""
    assert good_run[0].returncode == 0
    intervals = _swap_intervals(env, "order__e2e-good")
    assert sorted(i for _, _, i in intervals) == [0, 1, 2]
    assert _most_at_once(intervals) == 2, intervals


def test_lineage_links_source_to_published_output(env, good_run) -> None:
    assert good_run[0].returncode == 0
    p = _paths(env)
    events = [json.loads(line) for line in p["lineage"].read_text().splitlines() if line.strip()]
    mine = [e for e in events if e.get("eventType") == "COMPLETE"
            and "e2e-good" in json.dumps(e.get("run", {}).get("facets", {}))]
    assert mine, "no OpenLineage COMPLETE events for the run"
    edges: dict[str, set[str]] = {}
    jobs = set()
    for event in mine:
        jobs.add(event["job"]["name"])
        for src in event.get("inputs", []):
            for dst in event.get("outputs", []):
                edges.setdefault(src["name"], set()).add(dst["name"])
    assert {"face_swap_order.ingest", "face_swap_order.swap", "face_swap_order.publish"} <= jobs
    start, goal = str(p["source"]), str(p["published"] / "e2e-good.mp4")
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert goal in seen, f"no lineage path {start} -> {goal}; reached {sorted(seen)}"
    assert str(p["work"] / "e2e-good" / "output" / "e2e-good.mp4") in seen


def test_failed_gate_publishes_nothing(env) -> None:
    res = run_order(env, "e2e-strict", "chunk_frames=64", "min_id_cosine=0.999")
    assert res.returncode != 0
    assert "final_gate" in res.stderr and "id_cosine" in res.stderr, res.stderr[-4000:]
    p = _paths(env)
    assert not (p["published"] / "e2e-strict.mp4").exists()
    assert not list(p["published"].glob(".e2e-strict*"))
    failures = "".join(f.read_text() for f in (p["work"] / "e2e-strict" / "failures").glob("*.json"))
    assert '"task_id": "final_gate"' in failures


def test_invalid_order_is_refused_before_any_work(env) -> None:
    p = _paths(env)
    res = run_order(env, "e2e-bad", "chunk_frames=4")
    assert res.returncode == 2 and "chunk_frames" in res.stderr
    outside = p["home"] / "outside.png"
    outside.write_bytes(p["source"].read_bytes())
    res = subprocess.run(
        [tool("facefactory"), "order", "run", "--source", outside.as_uri(), "--target",
         p["target"].as_uri(), "--order-id", "e2e-outside", "--set", CHUNK],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 1
    assert "ingest" in res.stderr and "outside the allowed input roots" in res.stderr
    assert not (p["work"] / "e2e-outside" / "chunks").exists()


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_resume_redoes_only_chunks_without_done_json(env) -> None:
    p = _paths(env)
    swapped = p["work"] / "e2e-resume" / "swapped"
    chunks = ("00000", "00001", "00002")
    proc = subprocess.Popen(order_cmd(env, "e2e-resume", CHUNK), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    try:  # kill the whole run as soon as the first chunk (whichever runs first) is checkpointed
        while not any((swapped / c / "done.json").exists() for c in chunks):
            assert proc.poll() is None, "the order finished before it could be interrupted"
            assert time.monotonic() < deadline, "no chunk ever finished"
            time.sleep(0.1)
    finally:
        for pid in [*_descendants(proc.pid), proc.pid]:  # the run and every process it started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
    killed_at = time.time()
    done = {c: (swapped / c / "done.json").stat().st_mtime_ns for c in chunks if (swapped / c / "done.json").exists()}
    missing = [c for c in chunks if c not in done]
    assert done and missing, f"need both finished and unfinished chunks at the kill: done={sorted(done)}"
    hashes = {c: json.loads((swapped / c / "done.json").read_text())["spec_hash"] for c in done}

    res = run_order(env, "e2e-resume", CHUNK)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "resuming order e2e-resume" in res.stdout
    for c, mtime in done.items():  # checkpointed chunks were not recomputed
        assert (swapped / c / "done.json").stat().st_mtime_ns == mtime, c
        assert json.loads((swapped / c / "done.json").read_text())["spec_hash"] == hashes[c]
    for c in missing:  # the others were computed by the resumed run
        assert (swapped / c / "done.json").stat().st_mtime > killed_at, c
    assert (p["published"] / "e2e-resume.mp4").is_file()


def test_order_run_refuses_while_a_scheduler_shares_the_database(env) -> None:
    """`order run` executes tasks from its own process (facefactory.parallel_run); a live scheduler on the same DB
    would run them too. With a scheduler heartbeating, the command refuses and says what to do."""
    import threading
    from datetime import datetime

    db_path = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    stop = threading.Event()

    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    db = sqlite3.connect(db_path)
    cur = db.execute(
        "INSERT INTO job (state, job_type, start_date, latest_heartbeat, hostname, unixname) "
        "VALUES ('running', 'SchedulerJob', ?, ?, 'other-host', 'someone')", (now(), now()))
    job_id = cur.lastrowid
    db.commit()

    def heartbeat() -> None:  # as a real scheduler does, every few seconds
        conn = sqlite3.connect(db_path)
        while not stop.wait(2.0):
            conn.execute("UPDATE job SET latest_heartbeat = ? WHERE id = ?", (now(), job_id))
            conn.commit()
        conn.close()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        res = run_order(env, "e2e-sched", CHUNK, timeout=300)
    finally:
        stop.set()
        beat.join()
        db.execute("UPDATE job SET state = 'success', end_date = ? WHERE id = ?", (now(), job_id))
        db.commit()
    runs = db.execute("SELECT count(*) FROM dag_run WHERE run_id = 'order__e2e-sched'").fetchone()[0]
    db.close()
    assert res.returncode == 2, res.stderr[-2000:]
    assert "a scheduler is running on this Airflow database" in res.stderr
    assert "other-host" in res.stderr and "facefactory submit" in res.stderr and "--order-id e2e-sched" in res.stderr
    assert runs == 0 and not (_paths(env)["work"] / "e2e-sched").exists()  # refused before any work


def test_a_killed_task_process_is_retried_and_its_worker_dies_with_it(env) -> None:
    """SIGKILL the process running one swap task: its faceworker goes with it (no chunk keeps
    running behind the retry), Airflow fails that try, the retry redoes the chunk, the order publishes."""
    import psutil

    p = _paths(env)
    proc = subprocess.Popen(order_cmd(env, "e2e-killtask", CHUNK), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    worker = None
    try:
        while worker is None:
            assert proc.poll() is None, "the order finished before a swap could be interrupted"
            assert time.monotonic() < deadline, "no swap worker ever started"
            for pid in _descendants(proc.pid):
                try:
                    cmd = psutil.Process(pid).cmdline()
                except psutil.NoSuchProcess:
                    continue
                if any(part.endswith("faceworker") for part in cmd[:2]) and "swap-chunk" in cmd:
                    worker = psutil.Process(pid)
                    break
            time.sleep(0.05)
        chunk = int(worker.cmdline()[worker.cmdline().index("--chunk") + 1])
        task_process = worker.parent()
        os.kill(task_process.pid, signal.SIGKILL)
        worker.wait(timeout=15)  # died with its task process (would raise TimeoutExpired otherwise)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert (p["published"] / "e2e-killtask.mp4").is_file()
    tries = [i for _, _, i in _swap_intervals(env, "order__e2e-killtask") if i == chunk]
    assert len(tries) == 2, f"chunk {chunk} ran {len(tries)} times"
    failures = "".join(f.read_text() for f in (p["work"] / "e2e-killtask" / "failures").glob("*.json"))
    assert "killed by signal 9" in failures or "killed by signal 9" in err + out
