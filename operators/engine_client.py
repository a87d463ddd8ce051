"""The one way the Airflow side runs the engine's CLI (docs/contracts.md, "Engine CLI").

Ingest/split/merge (facefactory.operators.media) and the local swap runner (facefactory.operators.face_swap_pod) used
to each find the binary, run it and read its result in their own way, and only one of them
honoured FACEFACTORY_WORKER_BIN. Both come through here now, so the contract - the last stdout
line is a JSON object; exit 2 = bad input (never retried), anything else non-zero = retry - is
read in one place, with the exit codes taken from the engine's own errors module.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from facefactory import settings
from facefactory.operators.worker_log import LineLogger, relay
from faceworker.errors import EXIT_BAD_INPUT, EXIT_TRANSIENT

WORKER_BIN_ENV = "FACEFACTORY_WORKER_BIN"
ENGINE_COMMAND = "faceworker"


class EngineFailed(AirflowException):
    """The engine failed in a way a retry may fix (transient, crash, timeout, no result)."""


class EngineRejected(AirflowFailException):
    """The engine said the input is unusable (exit 2): retrying cannot help."""


def worker_command(command: str = ENGINE_COMMAND) -> list[str]:
    """argv prefix of the engine: FACEFACTORY_WORKER_BIN (tests, custom installs), else the
    command next to this interpreter (the venv that runs Airflow), else on PATH, else the
    engine module under this interpreter."""
    override = settings.raw(WORKER_BIN_ENV)
    if override:
        return [override]
    beside = Path(sys.executable).with_name(command)
    if beside.exists():
        return [str(beside)]
    found = shutil.which(command)
    if found:
        return [found]
    if command == ENGINE_COMMAND:
        return [sys.executable, "-m", "faceworker.cli"]
    raise AirflowFailException(f"worker command {command!r} not found next to {sys.executable} or on PATH")


@dataclass(frozen=True)
class Completed:
    """One finished engine process."""

    name: str  # the subcommand, for messages (`faceworker merge ...`)
    code: int
    stdout: str
    last_error: str  # the last error line of its stderr log (else its last line)
    timed_out: bool
    timeout_s: float | None


def last_json(stdout: str) -> dict[str, Any] | None:
    """The result object on the last non-empty stdout line; None when there is none."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def run(
    argv: Sequence[str],
    *,
    name: str,
    logger: LineLogger,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Completed:
    """Run one engine process to completion; its stderr log goes to `logger` line by line.

    It runs in its own process group (so a timeout or on_kill stops everything it started) and
    dies with the task process (PR_SET_PDEATHSIG), so a killed task never leaves it running while
    a retry runs the same work. `started` sees the process (for on_kill)."""
    last = {"error": "", "any": ""}

    def seen(level: int, message: str) -> None:
        last["any"] = message
        if level >= logging.ERROR:
            last["error"] = message

    expired = threading.Event()
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_parent_death_signal())
    if started is not None:
        started(proc)
    timer = None
    if timeout_s is not None:
        def expire() -> None:
            expired.set()
            kill_group(proc)

        timer = threading.Timer(timeout_s, expire)
        timer.start()
    assert proc.stderr is not None and proc.stdout is not None
    reader = relay(proc.stderr, logger, seen)
    try:
        stdout = proc.stdout.read().decode("utf-8", "replace")
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    return Completed(name, code, stdout, last["error"] or last["any"], expired.is_set(), timeout_s)


def result_of(done: Completed) -> dict[str, Any]:
    """The engine's result, or the exception its exit code calls for (docs/contracts.md)."""
    name = f"faceworker {done.name}".rstrip()
    if done.timed_out:
        raise EngineFailed(f"{name} timed out after {done.timeout_s:.0f}s")
    result = last_json(done.stdout)
    if done.code == EXIT_BAD_INPUT:
        reason = (result or {}).get("error") or (result or {}).get("message") or done.last_error
        raise EngineRejected(f"{name}: bad input (exit 2, not retried): {reason}".rstrip(": "))
    if done.code != 0:
        kind = "transient failure" if done.code == EXIT_TRANSIENT else "failure"
        raise EngineFailed(f"{name} exited {done.code} ({kind}, will retry): {done.last_error}".rstrip(": "))
    if not result:
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        tail = f": last stdout line {lines[-1][:200]!r}" if lines else ""
        raise EngineFailed(f"{name} printed no JSON result{tail}")
    return result


def call(args: Sequence[str], *, timeout_s: float, logger: LineLogger,
         env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run `faceworker <args>` and return its result (or raise as result_of says)."""
    argv = worker_command() + list(args)
    logger.log(logging.INFO, "running %s", " ".join(argv))
    return result_of(run(argv, name=args[0] if args else "", logger=logger, env=env, timeout_s=timeout_s))


def _parent_death_signal() -> Any:
    """A `preexec_fn` that makes Linux SIGKILL the engine when the task process dies (the one
    mechanism of faceworker.lifeline); None where prctl is missing."""
    from faceworker.lifeline import die_with_parent_preexec

    return die_with_parent_preexec()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the engine's process group, SIGKILL it if it has not gone within 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
