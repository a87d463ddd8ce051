"""Exit codes that tell the orchestrator whether a retry can help."""
from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2  # never retried: the same input fails the same way
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: storage hiccup, OOM-killed child, ... retry


class WorkerError(Exception):
    exit_code = EXIT_BUG


class BadInput(WorkerError):
    """The order's media or arguments are unusable; the message is shown to the customer."""

    exit_code = EXIT_BAD_INPUT


class TransientError(WorkerError):
    """Worth retrying as is."""

    exit_code = EXIT_TRANSIENT
