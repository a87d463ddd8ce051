"""Assertions the cluster tests share: task instances from the REST API, pool overlap, identity
of a published video (the engine's own recognizer), objects under a publish prefix."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_server import ORDER_DAG, AirflowServer


def venv_tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)

SWAP_TASKS = ("swap", "reswap")
# Three sources (frontal faces of insightface's t1.jpg, told apart by dlib).
SOURCES = ("t1_0", "t1_2", "t1_3")
# Frame size of the test orders: 720p, as production orders (1-6 s each: 42 s of 720p video for
# the twelve; the per-task overhead of Celery workers, not the pixels, dominates their time).
SIZE = (1280, 720)
# Errors that would mean the shared services (not the media) failed a task.
SERVICE_ERRORS = ("OperationalError", "psycopg2", "asyncpg", "redis.exceptions", "kombu",
                  "ConnectionRefusedError", "could not connect to server", "database is locked")


def task_instances(server: AirflowServer, run_id: str) -> list[dict[str, Any]]:
    status, body = server.request(
        "GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}/taskInstances?limit=1000")
    assert status == 200, body
    return list(body["task_instances"])


def tries(server: AirflowServer, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every try of every map index of `task_id` (REST: the tries endpoint per mapped TI)."""
    out = []
    for ti in task_instances(server, run_id):
        if ti["task_id"] != task_id:
            continue
        path = (f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}/taskInstances/{task_id}"
                f"/{ti['map_index']}/tries" if ti["map_index"] >= 0 else
                f"/api/v2/dags/{ORDER_DAG}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        status, body = server.request("GET", path)
        assert status == 200, body
        out.extend(body["task_instances"])
    return out


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Largest number of intervals running at one instant (end before start on ties)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda ev: (ev[0], ev[1]))
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def download(s3: Any, uri: str, dest: Path) -> Path:
    bucket, _, key = uri[len("s3://"):].partition("/")
    s3.download_file(bucket, key, str(dest))
    return dest


def source_embeddings(faces: tuple[str, ...]) -> dict[str, Any]:
    """Each source photo's embedding, computed the way the engine loads a source (from the shipped
    face the sample order writes as source.png, so it needs no upload of that face first)."""
    from faceworker.sample import shipped_faces
    from faceworker.source import load_source_face

    photos = shipped_faces()
    return {face: load_source_face(photos[face], selector="largest").embedding for face in faces}


def identity_votes(video: Path, sources: dict[str, Any], samples: int = 5) -> dict[str, int]:
    """For `samples` frames spread over `video`: which source is the swapped face closest to?"""
    import numpy as np

    from faceworker import frameio
    from faceworker.errors import BadInput
    from faceworker.faces import embedding_vector
    from faceworker.source import load_source_face

    frames = list(frameio.read_frames(str(video), 0, None, strict=False))
    votes: dict[str, int] = {}
    step = max(1, len(frames) // samples)
    for frame in frames[::step][:samples]:
        try:
            face = load_source_face(frame, selector="largest")
        except BadInput:
            votes["<no face>"] = votes.get("<no face>", 0) + 1
            continue
        emb = embedding_vector(face.embedding)
        dists = {name: float(np.linalg.norm(emb - embedding_vector(ref))) for name, ref in sources.items()}
        best = min(dists, key=dists.__getitem__)
        votes[best] = votes.get(best, 0) + 1
    return votes


def faceworker_verify(video: Path) -> None:
    """The engine's probe reads the whole published file (a broken MP4 fails here)."""
    res = subprocess.run([venv_tool("faceworker"), "probe", str(video), "--exact"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="ff-cluster-check-"))
