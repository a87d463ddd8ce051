"""Deadline-miss callback of the face_swap_order DAG (runs in the triggerer).

Airflow 3 replaced SLAs with DeadlineAlert; the triggerer imports the callback by dotted path
(`facefactory_deadlines.record_deadline_miss`, this module sits in the plugins folder, which
Airflow puts on sys.path), so it must live outside the DAG file. A miss is logged and appended
as one JSON line to `$FACEFACTORY_HOME/deadline_misses.jsonl`, which on-call tooling (and the
e2e test) can read without access to the metadata DB.
"""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facefactory import settings

log = logging.getLogger("facefactory.deadlines")

CALLBACK_PATH = "facefactory_deadlines.record_deadline_miss"


def default_log_path() -> Path:
    """`$FACEFACTORY_HOME/deadline_misses.jsonl` (same default as facefactory.settings)."""
    home = settings.text("FACEFACTORY_HOME")
    if not home:
        home = str(Path(__file__).resolve().parent.parent / "var")
    return Path(home) / "deadline_misses.jsonl"


def miss_record(context: dict[str, Any] | None, interval_s: float | None = None) -> dict[str, Any]:
    """The JSON line for one miss, from the simple context the scheduler sends."""
    context = context or {}
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    conf = dag_run.get("conf") or {}
    return {
        "event": "deadline_missed",
        "recorded_at": datetime.now(UTC).isoformat(),
        "dag_id": dag_run.get("dag_id"),
        "run_id": dag_run.get("dag_run_id") or dag_run.get("run_id"),
        "order_id": conf.get("order_id"),
        "state": dag_run.get("state"),
        "queued_at": dag_run.get("queued_at"),
        "deadline_time": str(deadline.get("deadline_time")) if deadline.get("deadline_time") else None,
        "deadline_id": deadline.get("id"),
        "interval_s": interval_s,
    }


def append_record(record: dict[str, Any], path: Path) -> None:
    """One JSON object per line; a single write() so concurrent misses do not interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


async def record_deadline_miss(
    context: dict[str, Any] | None = None,
    log_path: str | None = None,
    interval_s: float | None = None,
    **_: Any,
) -> str:
    """AsyncCallback target: log the miss and append it to the misses file.

    Returns a one-line summary: the triggerer stores the return value in the callback row's
    `output` column, which takes text (a dict there crashes the triggerer on SQLite)."""
    record = miss_record(context, interval_s)
    path = Path(log_path) if log_path else default_log_path()
    append_record(record, path)
    log.warning(
        "order deadline missed: dag=%s run=%s order=%s deadline=%s (recorded in %s)",
        record["dag_id"], record["run_id"], record["order_id"], record["deadline_time"], path,
    )
    return f"deadline missed: run {record['run_id']} (order {record['order_id']}) recorded in {path}"
