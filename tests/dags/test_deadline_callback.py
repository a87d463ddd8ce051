"""The deadline-miss callback: importable by dotted path, logs and records the miss."""
from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _callback():
    sys.path.insert(0, str(REPO / "plugins"))  # the triggerer has the plugins folder on sys.path
    try:
        module = importlib.import_module("facefactory_deadlines")
    finally:
        sys.path.remove(str(REPO / "plugins"))
    return module


def test_miss_is_appended_as_json_line(tmp_path: Path, caplog) -> None:
    module = _callback()
    context = {
        "dag_run": {"dag_id": "face_swap_order", "dag_run_id": "order__o-7", "state": "running",
                    "queued_at": "2026-11-26T10:00:00Z", "conf": {"order_id": "o-7"}},
        "deadline": {"id": "d-1", "deadline_time": "2026-11-26T11:00:00Z"},
    }
    path = tmp_path / "misses.jsonl"
    with caplog.at_level("WARNING", logger="facefactory.deadlines"):
        out = asyncio.run(module.record_deadline_miss(context=context, log_path=str(path), interval_s=3600))
        asyncio.run(module.record_deadline_miss(context=context, log_path=str(path)))
    assert isinstance(out, str) and "order__o-7" in out  # stored in callback.output (a text column)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["run_id"] == "order__o-7" and lines[0]["order_id"] == "o-7"
    assert lines[0]["deadline_time"] == "2026-11-26T11:00:00Z" and lines[0]["interval_s"] == 3600
    assert "order deadline missed" in caplog.text and "order__o-7" in caplog.text


def test_default_path_follows_facefactory_home(tmp_path: Path, monkeypatch) -> None:
    module = _callback()
    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    asyncio.run(module.record_deadline_miss(context={}))
    assert json.loads((tmp_path / "deadline_misses.jsonl").read_text())["event"] == "deadline_missed"


def test_callback_is_awaitable_for_asynccallback() -> None:
    from airflow.sdk import AsyncCallback

    module = _callback()
    AsyncCallback.verify_callable(module.record_deadline_miss)
