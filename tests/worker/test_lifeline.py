"""faceworker.lifeline: every process an order run starts dies with the process that started it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")

SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, threading, time, concurrent.futures, multiprocessing
    from faceworker import lifeline
    lifeline.bind_forks_to_parent()
    middle = os.fork()
    if middle == 0:
        kids = []
        g = os.fork()                                   # a forked child (a task child)
        if g == 0:
            time.sleep(120); os._exit(0)
        kids.append(g)
        p = subprocess.Popen(["sleep", "120"], preexec_fn=lifeline.die_with_parent_preexec())
        kids.append(p.pid)                              # a subprocess (ffmpeg, faceworker)
        def from_thread():                              # a fork made by a short-lived thread
            pid = os.fork()
            if pid == 0:
                time.sleep(120); os._exit(0)
            kids.append(pid)
        t = threading.Thread(target=from_thread); t.start(); t.join()
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        kids.append(pool.submit(os.getpid).result())    # a pool worker (OpenLineage's pool)
        print(" ".join(map(str, kids)), flush=True)
        time.sleep(120); os._exit(0)
    print(middle, flush=True)
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_forks_subprocesses_thread_forks_and_pool_workers_die_with_their_parent() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        middle = int(proc.stdout.readline())
        kids = [int(x) for x in proc.stdout.readline().split()]
        assert len(kids) == 4 and all(_alive(k) for k in kids)
        os.kill(middle, signal.SIGKILL)  # the process that started them all
        deadline = time.monotonic() + 5
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [k for k in kids if _alive(k)] == []
    finally:
        proc.kill()
        proc.wait()


def test_preexec_is_none_off_the_main_thread() -> None:
    """A subprocess started by a reader thread must not die when that thread ends."""
    import threading

    from faceworker import lifeline

    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(lifeline.die_with_parent_preexec()))
    t.start()
    t.join()
    assert got == [None] and lifeline.die_with_parent_preexec() is not None
