"""Crash safety of `facefactory order run` on the embedded default, with tiny media (1 s, 320x180).

A run is SIGKILLed at a named point (the test hook faceworker.testhooks.pause_at: the process
that reaches the point writes a marker and waits, so the kill lands exactly there, no sleeps):
mid-chunk, mid-merge, mid-publish. Then:
- no process the run started survives (pids collected from /proc before the kill);
- nothing partial sits at the published path;
- running the same order again publishes frames identical (per-frame md5 of the decoded video)
  to an uninterrupted run of the same inputs, and redoes only unfinished chunks (done.json mtimes);
- the same order id with another target is refused instead of served the old checkpoints.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHUNK = "chunk_frames=16"  # 25 frames -> chunks [0, 16) and [16, 25)
CHUNKS = ("00000", "00001")
_BIN: dict[str, str] = {}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, order_env_factory, venv_tool) -> dict[str, str]:
    _BIN["facefactory"] = venv_tool("facefactory")
    env = order_env_factory(tmp_path_factory.mktemp("crash"), seconds=1, size=(320, 180))
    sample = _home(env) / "inputs" / "sample"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(sample / "target.mp4"), "-vf", "hflip",
                    "-c:a", "copy", str(sample / "other.mp4")], check=True, timeout=120)
    return env


def _home(env: dict[str, str]) -> Path:
    return Path(env["FACEFACTORY_HOME"])


def _cmd(env: dict[str, str], order_id: str, target: str = "target.mp4") -> list[str]:
    sample = _home(env) / "inputs" / "sample"
    return [_BIN["facefactory"], "order", "run", "--order-id", order_id, "--source",
            (sample / "source.png").as_uri(), "--target", (sample / target).as_uri(), "--set", CHUNK]


def _run(env: dict[str, str], order_id: str, target: str = "target.mp4") -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(env, order_id, target), env=env, capture_output=True, text=True, timeout=600)


def _framemd5(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def _done_mtimes(env: dict[str, str], order_id: str) -> dict[str, int]:
    swapped = _home(env) / "work" / "orders" / order_id / "swapped"
    return {c: (swapped / c / "done.json").stat().st_mtime_ns
            for c in CHUNKS if (swapped / c / "done.json").exists()}


def _state(pid: int) -> str | None:
    """The /proc state letter of `pid` (None: gone). A zombie counts as gone: it runs nothing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if state in ("Z", "X") else state


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live descendant of `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(children.get(pid, []))
    return found


class PausedRun:
    """An `order run` started with the pause hook at `point`, in its own process group."""

    def __init__(self, env: dict[str, str], order_id: str, point: str, tmp: Path) -> None:
        self.markers = tmp / f"pause-{order_id}"
        self.point = point.split(":")[0]
        hook = {"FACEFACTORY_TEST_PAUSE_AT": point, "FACEFACTORY_TEST_PAUSE_DIR": str(self.markers),
                "FACEFACTORY_TEST_PAUSE_S": "300"}
        self.proc = subprocess.Popen(_cmd(env, order_id), env={**env, **hook}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_paused(self, until: object = None, timeout: float = 300) -> int:
        """pid of the paused process, once it pauses (and `until()` holds, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the order ended (exit {self.proc.returncode}) before {self.point}"
            assert time.monotonic() < deadline, f"the run never paused at {self.point}"
            marks = sorted(self.markers.glob(f"{self.point}-*")) if self.markers.exists() else []
            if marks and (until is None or until()):
                return int(marks[0].read_text())
            time.sleep(0.05)

    def kill(self, group: bool = True) -> dict[int, str]:
        """SIGKILL the run (its whole process group, or only the `order run` process); returns
        every process it had started (collected before the kill)."""
        before = descendants(self.proc.pid)
        if group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return before

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def assert_all_gone(pids: dict[int, str], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while any(_state(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = {p: cmd for p, cmd in pids.items() if _state(p)}
    if alive:  # do not leave them to the next test either
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not alive, f"survived the kill: {alive}"


@pytest.fixture(scope="module")
def reference(env: dict[str, str]) -> list[str]:
    """Per-frame md5s of an uninterrupted run of the same inputs."""
    res = _run(env, "crash-ref")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    published = _home(env) / "published" / "crash-ref.mp4"
    frames = _framemd5(published)
    assert len(frames) == 25
    return frames


def _run_state(env: dict[str, str], order_id: str) -> str | None:
    import sqlite3

    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        row = db.execute("SELECT state FROM dag_run WHERE run_id = ?", (f"order__{order_id}",)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def test_same_id_other_target_after_success_is_refused(env, reference) -> None:
    assert _run_state(env, "crash-ref") == "success"
    res = _run(env, "crash-ref", target="other.mp4")
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert "order crash-ref was already started with other inputs (target content changed" in res.stderr
    assert _run_state(env, "crash-ref") == "success"  # the refusal touched nothing
    again = _run(env, "crash-ref")  # the same inputs: still "already published", exit 0
    assert again.returncode == 0 and "already published" in again.stdout, again.stdout[-2000:]
    assert json.loads((_home(env) / "work" / "orders" / "crash-ref" / "input" / "inputs.json")
                      .read_text())["inputs"]["target"]["uri"].endswith("/target.mp4")


def test_sigkill_of_the_order_run_process_mid_chunk_then_rerun_redoes_only_that_chunk(env, reference, tmp_path) -> None:
    """Only the `order run` command is SIGKILLed (not its group), with chunk 1 half swapped and
    chunk 0 checkpointed: everything it started (the run's child, forked task children,
    faceworker, ffmpeg, pool workers) goes with it; the re-run redoes chunk 1 only."""
    order = "crash-chunk"
    run = PausedRun(env, order, "swap_mid_chunk:1", tmp_path)
    try:
        worker = run.wait_paused(until=lambda: "00000" in _done_mtimes(env, order))
        pids = run.kill(group=False)
        assert worker in pids and any("swap-chunk" in cmd for cmd in pids.values()), pids
        assert len(pids) >= 4, pids  # the run, a task child, faceworker, its ffmpeg at least
        assert_all_gone(pids)
    finally:
        run.cleanup()
    killed_at = time.time()
    before = _done_mtimes(env, order)
    assert list(before) == ["00000"], before  # chunk 1 was interrupted: no checkpoint
    assert not (_home(env) / "published" / f"{order}.mp4").exists()

    other = _run(env, order, target="other.mp4")  # same id, other target: refused, not resumed
    assert other.returncode == 2, other.stdout[-2000:] + other.stderr[-2000:]
    assert f"order {order} was already started with other inputs (target content changed" in other.stderr
    assert "Use a new order id" in other.stderr

    res = _run(env, order)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    after = _done_mtimes(env, order)
    assert after["00000"] == before["00000"]  # finished chunk not redone
    assert after["00001"] / 1e9 > killed_at  # the interrupted one was
    assert _framemd5(_home(env) / "published" / f"{order}.mp4") == reference


def test_sigkill_of_the_group_mid_merge_then_mid_publish_then_rerun(env, reference, tmp_path) -> None:
    """The whole process group is SIGKILLed mid-merge; the re-run is SIGKILLed again mid-publish
    (the copy complete, the rename not done); the third run publishes. No chunk is redone, no
    process survives a kill, nothing partial is ever at the published path."""
    order = "crash-late"
    published = _home(env) / "published"
    run = PausedRun(env, order, "merge_mid", tmp_path)
    try:
        run.wait_paused()
        before = _done_mtimes(env, order)
        assert_all_gone(run.kill(group=True))
    finally:
        run.cleanup()
    assert sorted(before) == list(CHUNKS)
    out = _home(env) / "work" / "orders" / order / "output" / f"{order}.mp4"
    assert not out.exists()  # the merge writes its output in one atomic step
    assert not (published / f"{order}.mp4").exists()

    run = PausedRun(env, order, "publish_before_rename", tmp_path / "second")
    try:
        run.wait_paused()
        temps = list(published.glob(f".{order}.mp4.tmp-*"))
        assert temps and temps[0].stat().st_size > 0  # the copy is complete, only the rename is left
        assert_all_gone(run.kill(group=True))
    finally:
        run.cleanup()
    assert not (published / f"{order}.mp4").exists()  # never a partial file under the published name

    res = _run(env, order)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == (published / f"{order}.mp4").as_uri()
    assert _done_mtimes(env, order) == before
    assert list(published.glob(f".{order}.mp4.tmp-*")) == []  # the killed publish's temp is gone
    assert _framemd5(published / f"{order}.mp4") == reference
