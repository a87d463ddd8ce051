"""Publish a finished order: copy the merged video to the delivery prefix, atomically.

A customer (or a CDN) polling the published folder must never see a half-written file, so the
copy goes to a hidden temp name in the destination directory and is renamed into place.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from airflow.sdk.exceptions import AirflowFailException


def destination(publish_to: str, order_id: str) -> Path:
    """Where `<order_id>.mp4` goes under a local publish prefix (path or file:// URI)."""
    if publish_to.startswith("s3://"):
        raise AirflowFailException(
            "publishing to s3:// needs the S3 publisher, which this deployment lacks; "
            "use a local folder or file:// prefix"
        )
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
