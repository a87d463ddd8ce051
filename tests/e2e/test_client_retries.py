"""The client when the server goes away: retries with backoff, then a sentence and exit code 2.

Units drive `with_retries` with failing calls; the e2e part puts a small TCP relay in front of
the real embedded Airflow and takes it away under a running `facefactory submit --wait`."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import urllib3
from airflow_client import client as af

from facefactory.client import ClientError, ServerConfig, with_retries

CFG = ServerConfig(url="http://127.0.0.1:9", username="u", password="p", retry_s=5)


def failing(errors: list[BaseException], result: str = "ok") -> Any:
    """A call that raises `errors` one by one, then returns `result`; counts its calls."""
    def call() -> str:
        call.count += 1
        if errors:
            raise errors.pop(0)
        return result

    call.count = 0
    return call


def test_connection_errors_and_5xx_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    refused = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused")
    call = failing([refused, af.ApiException(status=503, reason="Service Unavailable"),
                    urllib3.exceptions.ProtocolError("Connection aborted."), ConnectionResetError()])
    assert with_retries(CFG, "get_dag_run", call, sleep=sleeps.append) == "ok"
    assert call.count == 5 and sleeps == [0.5, 1.0, 2.0, 4.0]


def test_refusals_are_not_retried() -> None:
    call = failing([af.ApiException(status=400, reason="Bad Request")])
    with pytest.raises(af.ApiException):
        with_retries(CFG, "trigger", call, sleep=lambda s: None)
    assert call.count == 1


def test_giving_up_is_a_sentence_not_a_traceback() -> None:
    cfg = ServerConfig(url="http://127.0.0.1:9", username="u", password="p", retry_s=0.3)
    error = urllib3.exceptions.MaxRetryError(None, "/api/v2/dags", urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"))
    with pytest.raises(ClientError) as exc:
        with_retries(cfg, "get_dag_run", failing([error] * 100))
    assert str(exc.value) == ("cannot reach Airflow at http://127.0.0.1:9 (get_dag_run): "
                              "connection refused; gave up after retrying for 0s")


class Relay:
    """TCP relay on a free loopback port to `target`; `down()` refuses connections (and cuts
    the open ones) until `up()`, as a server that goes away and comes back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self.open: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self.listener is not None:
            try:  # wakes the accept() blocked in the relay's thread (close alone does not)
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        for sock in self.open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_submit_wait_rides_out_a_server_that_goes_away(airflow_server: Any) -> None:
    from urllib.parse import urlparse

    from airflow_server import sample_order

    target = urlparse(airflow_server.url)
    relay = Relay((target.hostname, target.port))
    relay.up()
    env = {**airflow_server.cli_env(), "FACEFACTORY_AIRFLOW_URL": relay.url,
           "FACEFACTORY_CLIENT_RETRY_S": "60"}
    # An order that fails fast at ingest (its target does not exist): a short real run.
    order = sample_order(airflow_server, "e2e-retry-1")
    missing = order["target"].replace("target.mp4", "missing.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facefactory.cli", "submit", "--source", order["source"],
         "--target", missing, "--order-id", order["order_id"], "--wait", "--poll", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "submitted" in first, first
        relay.down()
        time.sleep(6)  # the client is polling into a refused port meanwhile
        relay.up()
        out, err = proc.communicate(timeout=600)
    finally:
        relay.down()
        if proc.poll() is None:
            proc.kill()
    err = first + err
    assert proc.returncode == 1, err  # the order failed, and the client saw it through
    assert "failed in task ingest" in err and "Traceback" not in err, err

    # The server stays away: a sentence and exit code 2 after the retry window, no traceback.
    env["FACEFACTORY_CLIENT_RETRY_S"] = "3"
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "facefactory.cli", "wait", "order__e2e-retry-1"],
                         env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "MaxRetryError" not in res.stderr, res.stderr
    assert f"cannot reach Airflow at {relay.url} (login): connection refused" in res.stderr
    assert took >= 3, took  # it did retry before giving up
