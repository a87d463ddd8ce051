"""API server on SQLite: one writing request at a time (root ASGI middleware).

Why (measured, docs/embedded.md): Airflow's action log (`api_fastapi/logging/decorators.py`,
`log_action`) is an async dependency that INSERTs and commits with a *sync* session on the event
loop thread. Under a burst of POSTs, request B's log insert blocked the loop waiting for SQLite's
write lock, while request A (a dag-run trigger in a worker thread) held that lock and needed the
loop to finish and commit: nothing moved until B's busy timeout ran out. With sqlite3's 5 s that
was `HTTP 500 Database error` for most of the burst; with a longer timeout it was a frozen API
and a scheduler that died waiting for the same lock. SQLite admits one writer anyway, so letting
only one non-read request into the app at a time costs little and removes the deadlock. Reads
(GET/HEAD/OPTIONS) are never held. Other databases: the middleware passes everything through.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
READS = frozenset({"GET", "HEAD", "OPTIONS"})


def metadata_db_is_sqlite() -> bool:
    from airflow.configuration import conf

    return conf.get("database", "sql_alchemy_conn", fallback="").startswith("sqlite")


class SerialWrites:
    """Pure ASGI middleware: writing requests pass one at a time (on SQLite)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 enabled: bool | None = None) -> None:
        self.app = app
        self.enabled = metadata_db_is_sqlite() if enabled is None else enabled
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope.get("type") != "http" or scope.get("method") in READS:
            await self.app(scope, receive, send)
            return
        async with self._lock:
            await self.app(scope, receive, send)


class FacefactorySqliteWritesPlugin(AirflowPlugin):
    name = "facefactory_sqlite_writes"
    fastapi_root_middlewares = [{"middleware": SerialWrites, "name": "facefactory sqlite writes"}]
