"""`facefactory up`: the embedded Airflow answers with the printed login, says the deadline in
force, restarts a component that dies (an order still publishes afterwards), and Ctrl-C
(SIGINT) stops every component, including their children (task runners, log servers) and
what the killed component's process group left behind."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from facefactory.airflow_env import free_port
from facefactory.client import OrderClient, ServerConfig, fetch_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def _reader(proc: subprocess.Popen) -> queue.Queue[str]:
    """Every line `up` prints, read in the background (a full pipe would block it)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], seen: list[str], needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not printed within {timeout}s:\n{''.join(seen)[-4000:]}")


def _component(up: psutil.Process, name: str, not_pid: int = 0, timeout: float = 30) -> psutil.Process:
    """The process-group leader of one component (`airflow <name>`, a direct child of up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in up.children():
            try:
                if name in child.cmdline() and child.pid != not_pid:
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.5)
    raise AssertionError(f"no {name} under up: {[c.cmdline() for c in up.children()]}")


def _wait_for_order_dag(url: str, timeout: float = 180) -> None:
    """The dag-processor parses DAG files every 30 s under `up`: wait for face_swap_order."""
    token = fetch_token(ServerConfig(url, "admin", "up-test-pw"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{url}/api/v2/dags/face_swap_order",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"face_swap_order not parsed within {timeout}s")


def test_up_restarts_a_dead_component_and_ctrl_c_stops_everything(tmp_path: Path, sample_media) -> None:
    port = free_port()
    ff_home = tmp_path / "ff"
    sample = sample_media(ff_home / "inputs" / "sample", seconds=1, size=(320, 180))
    env = dict(os.environ, FACEFACTORY_HOME=str(ff_home), FACEFACTORY_BULK_SCHEDULE="none")
    for name in ("AIRFLOW_HOME", "FACEFACTORY_DEADLINE_ENABLED"):
        env.pop(name, None)  # defaults: $FACEFACTORY_HOME/airflow, deadlines on
    proc = subprocess.Popen([sys.executable, "-m", "facefactory.cli", "up", "--port", str(port),
                             "--password", "up-test-pw"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, seen = _reader(proc), []
    url = f"http://127.0.0.1:{port}"
    everything: list[psutil.Process] = []
    try:
        _until(lines, seen, "Press Ctrl-C", 300)
        out = "".join(seen)
        assert f"Airflow UI:   {url}" in out, out
        assert "user 'admin', password 'up-test-pw'" in out, out
        assert f"deadlines:    60 min per order from queue time; misses -> {ff_home}" in out, out
        assert (ff_home / "airflow" / "airflow.cfg").is_file()
        with urllib.request.urlopen(f"{url}/api/v2/version", timeout=10) as r:
            assert json.load(r)["version"].startswith("3.")
        assert fetch_token(ServerConfig(url, "admin", "up-test-pw"))
        up = psutil.Process(proc.pid)
        assert len({os.getpgid(c.pid) for c in up.children(recursive=True)}) >= 4

        scheduler = _component(up, "scheduler")
        everything += up.children(recursive=True)
        os.killpg(scheduler.pid, signal.SIGKILL)  # the whole group, as a crash or OOM would
        line = _until(lines, seen, "component scheduler exited with code", 60)
        assert "restarting it (restart 1 of at most 5 in 10 min)" in line, line
        assert proc.poll() is None  # the others kept running
        _component(up, "scheduler", not_pid=scheduler.pid)

        _wait_for_order_dag(url)
        client = OrderClient(ServerConfig(url, "admin", "up-test-pw"))
        order = {"order_id": "up-after-restart", "source": (sample / "source.png").as_uri(),
                 "target": (sample / "target.mp4").as_uri(), "min_id_cosine": 0.0, "min_psnr_db": 10}
        status = client.wait(client.submit(order).run_id, timeout_s=600, poll_s=3)
        assert status.state == "success", status
        assert (ff_home / "published" / "up-after-restart.mp4").is_file()
        assert proc.poll() is None
        everything += up.children(recursive=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    time.sleep(1)  # the reader thread gets the last lines
    while not lines.empty():
        seen.append(lines.get())
    rest = "".join(seen)
    assert proc.returncode == 0, rest[-4000:]
    assert "stopped." in rest
    alive = [c for c in everything if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [c.cmdline() for c in alive]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/api/v2/version", timeout=5)
