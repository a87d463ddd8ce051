"""Connection arguments of the embedded default's SQLite metadata DB.

Airflow imports these by dotted path (`[database] sql_alchemy_connect_args` and
`sql_alchemy_connect_args_async`, see airflow.cfg.template). Why: SQLite lets one writer in at
a time and Python's sqlite3 gives up after 5 s by default, so a burst of orders (scheduler,
API server, dag-processor, triggerer and every task's start/finish call writing at once) made
the scheduler die with `database is locked` and the API answer 500. Waiting longer for the
lock turns that contention into latency; WAL (set by Airflow itself) keeps readers unblocked.
Only for SQLite: PostgreSQL drivers reject a `timeout` argument (docs/embedded.md).
"""
from __future__ import annotations

# Seconds a connection waits for SQLite's write lock before `database is locked`. Longer than the
# longest write transaction measured under a 20-order burst on 2 cores, shorter than the
# execution API timeout (60 s, [workers] execution_api_timeout) so a task's call still answers.
BUSY_TIMEOUT_S = 45.0

CONNECT_ARGS: dict[str, float] = {"timeout": BUSY_TIMEOUT_S}
"""sqlite3.connect(timeout=...) for the sync engine (Airflow adds check_same_thread itself)."""

ASYNC_CONNECT_ARGS: dict[str, float] = {"timeout": BUSY_TIMEOUT_S}
"""aiosqlite passes the same keyword to sqlite3.connect (async engine of the API server)."""

SQLITE_DEFAULT_ARGS: dict[str, float] = {"timeout": 5.0}
"""sqlite3's own default, only to measure the baseline (tests/e2e/burst.py --env ...)."""
