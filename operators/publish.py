"""Publish a finished order: deliver the merged video to the publish prefix, atomically.

Local prefixes (the embedded default) are handled here; s3:// prefixes go through
operators.s3.delivery (content-addressed keys, checksums, SSE, CDN, presigned URL).

A customer (or a CDN) polling the published folder must never see a half-written file, so the
copy goes to a hidden temp name in the destination directory and is renamed into place.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from airflow.sdk.exceptions import AirflowFailException


def check_root(publish_to: str, roots: tuple[str, ...] | None = None) -> None:
    """Refuse a prefix outside the publish roots here too, not only at ingest: a symlink made
    in between would otherwise still lead the copy out of its root."""
    from operators import uris

    if roots is None:
        from operators.config import run_time

        roots = run_time().settings.publish_roots
    problem = uris.publish_problem(publish_to, roots)
    if problem:
        raise AirflowFailException(f"refusing to publish: publish_to: {problem}")


def destination(publish_to: str, order_id: str) -> Path:
    """Where `<order_id>.mp4` goes under a local publish prefix (path or file:// URI)."""
    if publish_to.startswith("s3://"):
        raise AirflowFailException("s3:// prefixes are published by operators.s3.delivery")
    if publish_to.startswith("file://"):
        parsed = urlparse(publish_to)
        if parsed.netloc not in ("", "localhost"):
            raise AirflowFailException(f"{publish_to!r}: file:// URIs must not name a host")
        publish_to = unquote(parsed.path)
    if not publish_to.startswith("/"):
        raise AirflowFailException(f"publish_to {publish_to!r} must be an absolute path or URI")
    return Path(publish_to).resolve() / f"{order_id}.mp4"


def publish_local(output: Path, publish_to: str, order_id: str) -> str:
    """Copy `output` to the publish prefix via temp file + fsync + rename; returns its URI."""
    dest = destination(publish_to, order_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with open(output, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest.as_uri()


@contextmanager
def _local_copy(output: str) -> Iterator[Path]:
    """The merged video as a local file (downloaded when the work area is on S3)."""
    if not output.startswith("s3://"):
        yield Path(output[len("file://"):] if output.startswith("file://") else output)
        return
    import tempfile

    from operators.s3.client import s3_client
    from operators.s3.ingest import download

    with tempfile.TemporaryDirectory(prefix="ff-publish-") as tmp:
        local = Path(tmp) / Path(output).name
        download(s3_client(), output, local, max_bytes=None)
        yield local


def publish(
    output: str,
    publish_to: str,
    order_id: str,
    *,
    quality: dict[str, Any] | None = None,
    source_sha256: str | None = None,
    when: datetime | None = None,
    publish_roots: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Deliver the merged video: s3:// prefixes through operators.s3.delivery (checksummed,
    encrypted, CDN invalidation, presigned URL), local prefixes by atomic copy. Returns the
    XCom payload; its `uri` is the published URI. The CDN invalidation is only created here:
    the DAG waits for it in the deferrable `cdn_ready` task (operators/cdn_wait.py).
    `publish_roots` default: the run-time ones (Variable `facefactory_publish_roots` > env)."""
    check_root(publish_to, publish_roots)
    with _local_copy(output) as local:
        if publish_to.startswith("s3://"):
            from dataclasses import replace

            from operators.s3.delivery import CdnOptions, publish_and_deliver

            return publish_and_deliver(
                local, publish_to, order_id, source_sha256=source_sha256, quality=quality, when=when,
                cdn_options=replace(CdnOptions.from_env(), wait=False),
            )
        uri = publish_local(local, publish_to, order_id)
        return {"uri": uri, "size": local.stat().st_size}
