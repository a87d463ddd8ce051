"""JSON-lines logging to stderr: the orchestrator (and humans via FACEFACTORY_LOG_FORMAT=text) reads these."""
from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from faceworker import settings

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    """Structured logger; `bind` returns a child that adds fixed fields (order, chunk) to every line."""

    def __init__(self, fields: dict[str, Any] | None = None, stream: TextIO | None = None) -> None:
        self._fields = dict(fields or {})
        self._stream = stream

    def bind(self, **fields: Any) -> Logger:
        merged = {**self._fields, **{k: v for k, v in fields.items() if v is not None}}
        return Logger(merged, self._stream)

    def log(self, level: str, event: str, **fields: Any) -> None:
        minimum = _LEVELS.get(settings.text("FACEFACTORY_LOG_LEVEL").lower(), 20)
        if _LEVELS.get(level, 20) < minimum:
            return
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
        }
        record.update(self._fields)
        record.update(fields)
        stream = self._stream or sys.stderr
        if settings.text("FACEFACTORY_LOG_FORMAT").lower() == "text":
            extra = " ".join(f"{k}={v}" for k, v in record.items() if k not in ("ts", "level", "event"))
            line = f"{record['ts']} {level.upper():7s} {event} {extra}".rstrip()
        else:
            line = json.dumps(record, default=_jsonable, separators=(",", ":"))
        stream.write(line + "\n")
        stream.flush()

    def debug(self, event: str, **fields: Any) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)


class Progress:
    """Emits a `progress` line every `every` frames with the running fps, so long chunks show life."""

    def __init__(self, log: Logger, total: int, every: int = 25, event: str = "progress") -> None:
        self.log = log
        self.total = total
        self.every = max(1, every)
        self.event = event
        self.done = 0
        self._t0 = time.perf_counter()

    def step(self, frame: int | None = None) -> None:
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            elapsed = time.perf_counter() - self._t0
            fps = self.done / elapsed if elapsed > 0 else 0.0
            self.log.info(self.event, frame=frame, frames=self.done, total=self.total, fps=round(fps, 2))


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    return str(value)


def get_logger(**fields: Any) -> Logger:
    return Logger().bind(**fields)
