"""The engine's stderr in task logs, each line at its own level.

The engine (faceworker) logs JSON lines on stderr (`{"level": "info", "event": ...}`). Passed
through unchanged, Airflow's task supervisor records all of stderr as [error], so a healthy
order's log was mostly red (issue 15: 105 of 108 error lines were info). Both ways a task runs
the engine (facefactory.operators.media.run_worker, the local swap runner in facefactory.operators.face_swap_pod) run it
through facefactory.operators.engine_client, which reads stderr through here.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import IO, Any, Protocol

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}



class LineLogger(Protocol):
    """What `relay` needs of a logger: stdlib loggers and Airflow's task logger both fit."""

    def log(self, level: int, msg: Any, /, *args: Any) -> Any: ...

def log_level(line: str) -> tuple[int, str]:
    """Python log level and a short message of one engine stderr line (non-JSON: INFO)."""
    try:
        record = json.loads(line)
    except ValueError:
        return logging.INFO, line
    if not isinstance(record, dict):
        return logging.INFO, line
    level = LEVELS.get(str(record.get("level")).lower(), logging.INFO)
    message = str(record.get("error") or record.get("message") or record.get("event") or line)
    return level, message


def relay(stream: IO[bytes], logger: LineLogger,
          seen: Callable[[int, str], None] | None = None) -> threading.Thread:
    """Start a thread that logs every line of `stream` at its level (and tells `seen` about it)."""

    def pump() -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            level, message = log_level(line)
            logger.log(level, "%s", line)
            if seen is not None:
                seen(level, message)

    thread = threading.Thread(target=pump, daemon=True, name="faceworker-stderr")
    thread.start()
    return thread
