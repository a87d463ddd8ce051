"""Start and stop moto's standalone S3/IAM/CloudFront/KMS server for tests.

A real HTTP server speaking the AWS protocols, so the code under test goes through botocore's
signing, retries and parsing exactly as against AWS; nothing in boto3 is patched.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facefactory.airflow_env import free_port


@dataclass
class MotoServer:
    """A running moto_server process and its endpoint."""

    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    def set_auth(self, enabled: bool) -> None:
        """Switch IAM enforcement on or off (moto's reset-auth API: count of unauthenticated calls)."""
        count = "0" if enabled else "inf"
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"},  # form-encoded bodies never reach moto
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def reset(self) -> None:
        """Forget every bucket, user and distribution (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def moto_server_binary() -> Path:
    candidate = Path(sys.executable).with_name("moto_server")
    if not candidate.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable}; install moto[server]")
    return candidate


def start_moto_server(log_dir: Path, timeout_s: float = 30.0) -> MotoServer:
    """Start moto_server on a free loopback port and wait until it answers."""
    port = free_port()
    log_path = log_dir / f"moto_server_{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(moto_server_binary()), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    server = MotoServer(process=process, endpoint=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited early ({process.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2) as response:
                response.read()
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto_server did not answer within {timeout_s}s") from None
            time.sleep(0.2)
