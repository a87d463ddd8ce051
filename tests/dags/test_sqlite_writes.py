"""The API server's SQLite write gate: writing requests never overlap, reads are never held."""
from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _module():
    sys.path.insert(0, str(REPO / "plugins"))  # the API server has the plugins folder on sys.path
    try:
        return importlib.import_module("facefactory_sqlite_writes")
    finally:
        sys.path.remove(str(REPO / "plugins"))


def _run(enabled: bool, methods: list[str]) -> int:
    """Most requests inside the app at the same time."""
    inside, most = 0, 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.02)  # a request that yields to the loop mid-way
        inside -= 1

    gate = _module().SerialWrites(app, enabled=enabled)

    async def burst() -> None:
        await asyncio.gather(*(gate({"type": "http", "method": m, "path": "/x"}, None, None)
                               for m in methods))

    asyncio.run(burst())
    return most


def test_writes_pass_one_at_a_time_on_sqlite() -> None:
    assert _run(True, ["POST"] * 8 + ["PATCH", "PUT", "DELETE"]) == 1


def test_reads_and_other_databases_are_not_held() -> None:
    assert _run(True, ["GET"] * 6) == 6
    assert _run(False, ["POST"] * 6) == 6


def test_the_gate_follows_the_configured_database(monkeypatch) -> None:
    module = _module()
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u@h/db")
    assert module.SerialWrites(lambda *a: None).enabled is False
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////tmp/x.db")
    assert module.SerialWrites(lambda *a: None).enabled is True
