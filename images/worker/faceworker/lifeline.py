"""Make every process an order starts die with the process that started it.

A killed `order run` (SIGKILL, OOM, a closed terminal) must not leave a chunk swapping, an ffmpeg
encoding or a pool worker waiting behind it: they would burn the CPU a re-run needs, and a chunk
still running next to its retry writes the same files twice. Linux's PR_SET_PDEATHSIG asks the
kernel to signal a process when its parent dies; it survives exec, so it covers ffmpeg and the
engine's own CLI too. It is tied to the parent *thread*, so a fork from a short-lived thread gets a
watchdog instead (it polls the parent). Elsewhere (no prctl) these are no-ops.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
WATCHDOG_POLL_S = 0.25


def _prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A subprocess `preexec_fn`: SIGKILL this child when its parent dies. Built before the fork
    (nothing is imported or allocated after it). None where prctl is missing, and when called
    from a thread other than the main one: the kernel would signal the child when that *thread*
    ends (a reader thread ending before its ffmpeg has flushed); such children are tied to us by
    their pipes (EOF/EPIPE when we die) instead."""
    prctl = _PRCTL
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above: follow it now
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


_forker: dict[str, int | bool] = {}


def _before_fork() -> None:
    _forker["parent"] = os.getpid()
    _forker["main"] = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    parent = int(_forker.get("parent") or 0)
    if _PRCTL is not None and _forker.get("main"):
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
    elif parent:
        _watch_parent(parent)  # forked by a thread that may end before this child does


_bound = False


def bind_forks_to_parent() -> None:
    """From now on every `os.fork()` of this process (and of its forks: the hook is inherited) —
    task children, multiprocessing/concurrent.futures pool workers — dies with its parent.
    Subprocesses started with `subprocess` do not run fork hooks: give them
    `die_with_parent_preexec()`. Idempotent."""
    global _bound
    if _bound or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _bound = True


def watch_parent() -> None:
    """For a process that cannot be given a preexec_fn (a pool worker's initializer): from here
    on it dies within WATCHDOG_POLL_S of its parent, whichever parent thread started it."""
    _watch_parent(os.getppid())
