"""`facefactory up`: the embedded Airflow answers with the printed login, and Ctrl-C (SIGINT)
stops every component, including their children (task runners, log servers)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from facefactory.airflow_env import free_port
from facefactory.client import ServerConfig, fetch_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def test_up_prints_login_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, FACEFACTORY_HOME=str(tmp_path / "ff"), FACEFACTORY_BULK_SCHEDULE="none")
    env.pop("AIRFLOW_HOME", None)  # default: $FACEFACTORY_HOME/airflow
    proc = subprocess.Popen([sys.executable, "-m", "facefactory.cli", "up", "--port", str(port),
                             "--password", "up-test-pw"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        out = "".join(lines)
        assert f"Airflow UI:   http://127.0.0.1:{port}" in out, out
        assert "user 'admin', password 'up-test-pw'" in out, out
        assert (tmp_path / "ff" / "airflow" / "airflow.cfg").is_file()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/version", timeout=10) as r:
            assert json.load(r)["version"].startswith("3.")
        assert fetch_token(ServerConfig(f"http://127.0.0.1:{port}", "admin", "up-test-pw"))
        children = psutil.Process(proc.pid).children(recursive=True)
        groups = {os.getpgid(c.pid) for c in children if c.is_running()}
        assert len(groups) >= 4  # api-server, scheduler, dag-processor, triggerer
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopped." in rest
    time.sleep(1)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [c.cmdline() for c in alive]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/version", timeout=5)
