"""Test hook: pause at a named point, so a test can SIGKILL a process exactly there.

Crash-safety tests must kill a run mid-chunk, mid-merge or mid-publish; sleeps and polling for
files make that a race. With `FACEFACTORY_TEST_PAUSE_AT=point[,point:key]` set, the process that
reaches `pause_at(point, key)` writes `<FACEFACTORY_TEST_PAUSE_DIR>/<point>-<pid>` (its pid, written
atomically) and waits there up to FACEFACTORY_TEST_PAUSE_S seconds (default 120; then it goes
on). Unset (production), `pause_at` returns at once. Documented in docs/embedded.md.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from faceworker import settings

PAUSE_AT = "FACEFACTORY_TEST_PAUSE_AT"
PAUSE_DIR = "FACEFACTORY_TEST_PAUSE_DIR"
PAUSE_S = "FACEFACTORY_TEST_PAUSE_S"


def pause_at(point: str, key: object = None) -> None:
    """Pause here when the environment names `point` (or `point:key`)."""
    wanted = settings.raw(PAUSE_AT) or ""
    if not wanted:
        return
    names = {w.strip() for w in wanted.split(",")}
    if point not in names and (key is None or f"{point}:{key}" not in names):
        return
    folder = Path(settings.raw(PAUSE_DIR) or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{point}-{os.getpid()}"
    tmp = folder / f".{marker.name}.tmp"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, marker)
    deadline = time.monotonic() + float(settings.text(PAUSE_S))
    while time.monotonic() < deadline:
        time.sleep(0.05)
