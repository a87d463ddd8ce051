"""A loopback HTTP front for the moto server: 503 SlowDown or rewritten answers on demand.

Transient-error handling has to be shown on the wire (botocore's retry handler sees a real
503 with an S3 error body), not by patching boto3. It also counts requests, which is how the
tests prove that permission errors are sent once and never retried.
"""
from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class FaultState:
    upstream: str
    fail_next: int = 0
    rewrite_next: int = 0  # responses still to rewrite with `rewrite`
    rewrite: tuple[bytes, bytes] = (b"", b"")
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: FaultState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet server
        return

    def _handle(self) -> None:
        with self.state.lock:
            failing = self.state.fail_next > 0
            if failing:
                self.state.fail_next -= 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if failing:
            self.state.requests.append((self.command, self.path, 503))
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOW_DOWN)
            return
        target = urlsplit(self.state.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        with self.state.lock:
            old, new = self.state.rewrite
            if self.state.rewrite_next > 0 and old and old in payload:
                self.state.rewrite_next -= 1
                payload = payload.replace(old, new)
        self.state.requests.append((self.command, self.path, response.status))
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultProxy:
    """Context manager: a proxy on a free loopback port in a background thread."""

    def __init__(self, upstream: str) -> None:
        self.state = FaultState(upstream=upstream)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, count: int) -> None:
        with self.state.lock:
            self.state.fail_next = count

    def rewrite_responses(self, old: bytes, new: bytes, count: int) -> None:
        """Replace `old` by `new` in the next `count` upstream responses that contain it
        (e.g. keep a CloudFront invalidation "InProgress" for a while)."""
        with self.state.lock:
            self.state.rewrite, self.state.rewrite_next = (old, new), count

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self.state.requests)
