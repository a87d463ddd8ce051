"""A burst of orders against a real embedded Airflow: N through REST at the same moment and M
manifests dropped into the bulk inbox at once (issue 15). Used by tests/e2e/test_burst.py (small
N, CI budget) and as a script for the full measurement in docs/embedded.md:

    python tests/e2e/burst.py --rest 20 --bulk 20 [--env KEY=VALUE ...]

What counts as surviving: every REST POST answered without a 5xx, every order published with no
failed task instance, no component exited, and each published video carries its own order's
source identity (three sources rotate through the orders, so a mix-up between concurrent
orders would show).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from airflow_server import BULK_DAG, LENIENT, ORDER_DAG, AirflowServer, running_airflow, server_env

SOURCES = ("t1_0", "t1_2", "astronaut")
TARGET = "t1_3"
SIZE = (320, 180)


def build_media(inputs: Path) -> dict[str, dict[str, str]]:
    """One tiny order folder per source face (1 s at 320x180, the same target person)."""
    from faceworker.sample import build_sample_order

    media = {}
    for name in SOURCES:
        r = build_sample_order(inputs / name, source=name, target=TARGET, seconds=1, size=SIZE, fps=25)
        media[name] = {"source": Path(r["source"]).as_uri(), "target": Path(r["target"]).as_uri()}
    return media


def order(order_id: str, files: dict[str, str]) -> dict[str, Any]:
    return {"order_id": order_id, **files, "chunk_frames": 32, **LENIENT}


def submit_at_once(server: AirflowServer, orders: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """POST every order from its own thread, released together by a barrier."""
    token = server.token()
    gate = threading.Barrier(len(orders))

    def post(o: dict[str, Any]) -> tuple[int, Any]:
        gate.wait()
        try:
            return server.request("POST", f"/api/v2/dags/{ORDER_DAG}/dagRuns",
                                  {"dag_run_id": f"order__{o['order_id']}", "logical_date": None,
                                   "conf": o}, auth=token)
        except OSError as exc:  # no answer within the request timeout (60 s), reset, refused
            return 0, f"no answer: {exc!r}"

    with ThreadPoolExecutor(len(orders)) as pool:
        return list(pool.map(post, orders))


def drop_manifests(inbox: Path, orders: list[dict[str, Any]]) -> None:
    """One manifest per order, each written elsewhere and renamed in, all within a moment."""
    inbox.mkdir(parents=True, exist_ok=True)
    staging = inbox.parent / "staging"
    staging.mkdir(exist_ok=True)
    for o in orders:
        (staging / f"{o['order_id']}.json").write_text(json.dumps(o))
    for o in orders:
        (staging / f"{o['order_id']}.json").rename(inbox / f"{o['order_id']}.json")


def wait_all(server: AirflowServer, run_ids: list[str], timeout: float) -> dict[str, str]:
    """Poll until every run finished (or the timeout); {run_id: state}."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            token = server.token()
            for run_id in run_ids:
                if states.get(run_id) in ("success", "failed"):
                    continue
                status, run = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}",
                                             auth=token)
                states[run_id] = run.get("state") if status == 200 else f"http {status}"
        except (OSError, AssertionError) as exc:  # the API did not answer: try again
            states.setdefault("_api_errors", "")
            states["_api_errors"] += f"{exc!r}; "
        if all(states.get(r) in ("success", "failed") for r in run_ids):
            break
        if server.env.dead():
            break
        time.sleep(3)
    return states


def failed_tasks(server: AirflowServer, run_ids: list[str]) -> dict[str, dict[str, str | None]]:
    """Task instances that are not success/skipped, per run (tries that failed and were retried
    show up in the log, not here: see retried_tasks)."""
    bad = {}
    for run_id in run_ids:
        states = server.task_states(ORDER_DAG, run_id)
        wrong = {t: s for t, s in states.items() if s not in ("success", "skipped")}
        if wrong:
            bad[run_id] = wrong
    return bad


def retried_tasks(server: AirflowServer, run_ids: list[str]) -> dict[str, int]:
    """{run_id: task instances that needed more than one try} (a failed try is a task failure)."""
    out = {}
    for run_id in run_ids:
        _, body = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}/taskInstances?limit=1000")
        n = sum(1 for t in body["task_instances"] if (t.get("try_number") or 0) > 1)
        if n:
            out[run_id] = n
    return out


def identity_of(video: Path, sources: dict[str, Any], analyzer: Any, frames: int = 5) -> str | None:
    """Which source face the published video's face is closest to (majority over a few frames)."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(video))
    votes: dict[str, int] = {}
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        found = analyzer.detect(frame)
        if not found:
            continue
        emb = analyzer.embed(frame, found[0])
        best = min(sources, key=lambda n: float(np.linalg.norm(emb - sources[n])))
        votes[best] = votes.get(best, 0) + 1
    cap.release()
    return max(votes, key=votes.get) if votes else None


def source_embeddings() -> tuple[dict[str, Any], Any]:
    from faceworker.faces import FaceAnalyzer
    from faceworker.sample import shipped_faces
    from faceworker.source import load_source_face

    faces = shipped_faces()
    analyzer = FaceAnalyzer(detect_scale=1.0)
    return {n: load_source_face(faces[n], selector="largest", analyzer=analyzer).embedding
            for n in SOURCES}, analyzer


def run_burst(root: Path, rest_n: int, bulk_n: int, extra_env: dict[str, str] | None = None,
              timeout: float = 1500) -> dict[str, Any]:
    """Start an embedded Airflow under root, fire the burst, wait, and measure; never raises on a
    bad outcome (the caller asserts), so the script can report a baseline that falls over."""
    ff_home = root / "ffhome"
    media = build_media(ff_home / "inputs" / "burst")
    inbox = root / "inbox"
    env = server_env(root, **(extra_env or {}))
    rest = [order(f"rest-{i}", media[SOURCES[i % 3]]) for i in range(rest_n)]
    bulk = [order(f"bulk-{i}", media[SOURCES[i % 3]]) for i in range(bulk_n)]
    expected = {o["order_id"]: SOURCES[i % 3] for group in (rest, bulk) for i, o in enumerate(group)}
    out: dict[str, Any] = {"rest": rest_n, "bulk": bulk_n, "env": extra_env or {}}
    with running_airflow(root, env) as server:
        for dag_id in (ORDER_DAG, BULK_DAG):
            server.wait_for_dag(dag_id)
            server.unpause(dag_id)
        t0 = time.monotonic()
        if bulk:
            drop_manifests(inbox, bulk)
            status, _ = server.request("POST", f"/api/v2/dags/{BULK_DAG}/dagRuns",
                                       {"dag_run_id": "burst-scan", "logical_date": None, "conf": {}})
            out["scan_status"] = status
        answers = submit_at_once(server, rest) if rest else []
        out["submit_s"] = round(time.monotonic() - t0, 1)
        out["http_statuses"] = sorted({s for s, _ in answers})
        out["http_5xx_or_none"] = [(o["order_id"], s, str(b)[:200])
                                   for o, (s, b) in zip(rest, answers) if s >= 500 or s == 0]
        if bulk:
            try:
                out["scan_state"] = server.wait_run(BULK_DAG, "burst-scan", timeout=300)["state"]
            except (AssertionError, TimeoutError, OSError) as exc:
                out["scan_state"] = f"unfinished: {str(exc)[:300]}"
        run_ids = [f"order__{oid}" for oid in expected]
        states = wait_all(server, run_ids, timeout)
        out["wall_s"] = round(time.monotonic() - t0, 1)
        out["dead_components"] = server.env.dead()
        out["not_success"] = {r: s for r, s in states.items() if s != "success"}
        alive = not out["dead_components"]
        out["failed_tasks"] = failed_tasks(server, run_ids) if alive else {}
        out["retried_tasks"] = retried_tasks(server, run_ids) if alive else {}
        out["locked_lines"] = {
            p.stem: p.read_text(errors="replace").count("database is locked")
            for p in server.env.log_dir.glob("*.log")}
    published = ff_home / "published"
    embs, analyzer = source_embeddings()
    wrong = {}
    for oid, src in expected.items():
        videos = sorted(published.rglob(f"{oid}.mp4")) if published.exists() else []
        got = identity_of(videos[0], embs, analyzer) if videos else "not published"
        if got != src:
            wrong[oid] = {"expected": src, "got": got}
    out["wrong_identity"] = wrong
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rest", type=int, default=20)
    ap.add_argument("--bulk", type=int, default=20)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the Airflow components")
    ap.add_argument("--timeout", type=float, default=1500)
    args = ap.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory(prefix="ff-burst-") as tmp:
        result = run_burst(Path(tmp), args.rest, args.bulk, extra, args.timeout)
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
