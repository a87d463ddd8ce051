"""Publish a finished order: deliver the merged video to the publish prefix, atomically.

Local prefixes (the embedded default) are handled here; s3:// prefixes go through
facefactory.operators.s3.delivery (content-addressed keys, checksums, SSE, CDN, presigned URL).

A customer (or a CDN) polling the published folder must never see a half-written file, so the
copy goes to a hidden temp name in the destination directory and is renamed into place.
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from faceworker.testhooks import pause_at

#: errno -> why retrying a local publish cannot help (the task fails at once with this reason)
PERMANENT_ERRNOS: dict[int, str] = {
    errno.ENOENT: "a directory on the way does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a part of the path is a file, not a directory",
    errno.EISDIR: "the destination is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "the file is too large for the file system",
    errno.ENAMETOOLONG: "the path is too long",
    errno.ELOOP: "too many levels of symbolic links",
}


class PublishError(AirflowFailException):
    """A local publish that cannot succeed on a retry (the operator must fix the target)."""


class PublishRetry(AirflowException):
    """A local publish that failed for a reason that may be gone on the next try (an I/O error,
    an NFS hiccup): Airflow's task retries apply."""


def classify_os_error(exc: OSError, dest: Path) -> AirflowException:
    """Permanent (missing/read-only/full/forbidden) -> PublishError, anything else -> PublishRetry,
    like operators/s3/errors.py does for S3. The message names the path and the errno."""
    name = errno.errorcode.get(exc.errno or 0, "?")
    reason = PERMANENT_ERRNOS.get(exc.errno or 0)
    where = exc.filename or dest
    if reason:
        return PublishError(f"cannot publish to {dest}: {reason} ({name} at {where}); fix the "
                            "publish directory, retrying will not help")
    return PublishRetry(f"publishing to {dest} failed: {exc.strerror or exc} ({name} at {where}); "
                        "will retry")


def check_root(publish_to: str, roots: tuple[str, ...] | None = None) -> None:
    """Refuse a prefix outside the publish roots here too, not only at ingest: a symlink made
    in between would otherwise still lead the copy out of its root."""
    from facefactory.operators import uris

    if roots is None:
        from facefactory.operators.config import run_time

        roots = run_time().settings.publish_roots
    problem = uris.publish_problem(publish_to, roots)
    if problem:
        raise AirflowFailException(f"refusing to publish: publish_to: {problem}")


def destination(publish_to: str, order_id: str) -> Path:
    """Where `<order_id>.mp4` goes under a local publish prefix (path or file:// URI)."""
    if publish_to.startswith("s3://"):
        raise AirflowFailException("s3:// prefixes are published by facefactory.operators.s3.delivery")
    if publish_to.startswith("file://"):
        parsed = urlparse(publish_to)
        if parsed.netloc not in ("", "localhost"):
            raise AirflowFailException(f"{publish_to!r}: file:// URIs must not name a host")
        publish_to = unquote(parsed.path)
    if not publish_to.startswith("/"):
        raise AirflowFailException(f"publish_to {publish_to!r} must be an absolute path or URI")
    return Path(publish_to).resolve() / f"{order_id}.mp4"


def publish_local(output: Path, publish_to: str, order_id: str) -> str:
    """Copy `output` to the publish prefix via temp file + fsync + rename; returns its URI.
    OS errors carry the retry decision (classify_os_error)."""
    dest = destination(publish_to, order_id)
    if not Path(output).is_file():
        raise PublishError(f"the merged video {output} is missing from the work area; run the "
                           "order again (merge writes it again)")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(dest)
        with open(output, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        pause_at("publish_before_rename")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        raise classify_os_error(exc, dest) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return dest.as_uri()


def _remove_stale_temps(dest: Path) -> None:
    """Temp files of an earlier, killed publish of this order (one order = one run, so no live
    publisher owns them): never visible under the published name, but not left to pile up."""
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (a crash right after it must not undo it). Best effort:
    the video is already in place, so a file system that cannot fsync a directory must not fail
    (or retry) a publish that happened."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


@contextmanager
def _local_copy(output: str) -> Iterator[Path]:
    """The merged video as a local file (downloaded when the work area is on S3)."""
    if not output.startswith("s3://"):
        yield Path(output[len("file://"):] if output.startswith("file://") else output)
        return
    import tempfile

    from facefactory.operators.s3.client import s3_client
    from facefactory.operators.s3.ingest import download

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
    """Deliver the merged video: s3:// prefixes through facefactory.operators.s3.delivery (checksummed,
    encrypted, CDN invalidation, presigned URL), local prefixes by atomic copy. Returns the
    XCom payload; its `uri` is the published URI. The CDN invalidation is only created here:
    the DAG waits for it in the deferrable `cdn_ready` task (operators/cdn_wait.py).
    `publish_roots` default: the run-time ones (Variable `facefactory_publish_roots` > env)."""
    check_root(publish_to, publish_roots)
    with _local_copy(output) as local:
        if publish_to.startswith("s3://"):
            from dataclasses import replace

            from facefactory.operators.s3.delivery import CdnOptions, publish_and_deliver

            return publish_and_deliver(
                local, publish_to, order_id, source_sha256=source_sha256, quality=quality, when=when,
                cdn_options=replace(CdnOptions.from_env(), wait=False),
            )
        uri = publish_local(local, publish_to, order_id)
        return {"uri": uri, "size": local.stat().st_size}


def publish_order(merged: dict[str, Any], order: dict[str, Any], default_publish_to: str, *,
                  source_sha256: str | None = None, when: datetime | None = None) -> dict[str, Any]:
    """The order's publish rules: nothing is published unless the quality gate passed, and the
    order's own `publish_to` wins over the deployment's. Returns publish()'s delivery record."""
    if not merged.get("gate_passed"):
        raise AirflowFailException("refusing to publish: the quality gate did not pass")
    return publish(
        merged["output"], order.get("publish_to") or default_publish_to, order["order_id"],
        quality=merged.get("summary"), source_sha256=source_sha256, when=when,
    )  # creates the CDN invalidation; cdn_ready waits for it, deferred, holding no worker slot
