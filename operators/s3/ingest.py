"""Bring an order's input in from S3: HEAD first (exists? size under the cap?), then transfer.

The size cap is checked before a single body byte moves, so an oversized upload costs one
HEAD. The transfer is pinned to the ETag seen by HEAD (IfMatch), so an object replaced in
between is not half-old/half-new; local downloads land in a `.part` file renamed at the end.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from facefactory.operators.s3.errors import S3IntegrityError, S3NotFoundError, S3TooLargeError, classify
from facefactory.operators.s3.uris import S3Uri, is_s3_uri, parse_s3_uri

log = logging.getLogger(__name__)

HASH_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD says about an object (no body read)."""

    uri: str
    size: int
    etag: str
    content_type: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class IngestResult:
    """Where the input now is, and what it is (sha256 over the bytes actually stored)."""

    source: str
    dest: str
    size: int
    sha256: str
    etag: str
    content_type: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_s3(uri: str | S3Uri) -> S3Uri:
    return uri if isinstance(uri, S3Uri) else parse_s3_uri(uri)


def head(client: Any, uri: str | S3Uri) -> ObjectInfo:
    """HEAD the object; missing bucket/key and access denied become clear permanent errors."""
    target = as_s3(uri)
    try:
        response = client.head_object(Bucket=target.bucket, Key=target.key)
    except Exception as exc:  # noqa: BLE001 - classified below
        error: Exception = classify(exc, "HEAD", str(target))
        if isinstance(error, S3NotFoundError):
            error = _bucket_or_key_missing(client, target)
        raise error from exc
    return ObjectInfo(
        uri=str(target),
        size=int(response["ContentLength"]),
        etag=str(response.get("ETag", "")),
        content_type=response.get("ContentType"),
        metadata=dict(response.get("Metadata") or {}),
    )


def _bucket_or_key_missing(client: Any, target: S3Uri) -> Exception:
    """HEAD answers a bare 404 for both; ask the bucket to tell the two apart."""
    try:
        client.head_bucket(Bucket=target.bucket)
    except Exception as exc:  # noqa: BLE001 - returned as the classified S3 error, never swallowed
        bucket_error = classify(exc, "HEAD bucket", f"s3://{target.bucket}")
        if isinstance(bucket_error, S3NotFoundError):
            return S3NotFoundError(f"s3://{target.bucket}: bucket does not exist (reading {target})")
        return bucket_error
    return S3NotFoundError(f"{target}: no such key in bucket {target.bucket}")


def check_size(info: ObjectInfo, max_bytes: int | None) -> None:
    if max_bytes is not None and info.size > max_bytes:
        raise S3TooLargeError(
            f"{info.uri} is {info.size} bytes, above the cap of {max_bytes} bytes "
            "(FACEFACTORY_MAX_INPUT_BYTES); refused before download"
        )


def sha256_object(client: Any, uri: str | S3Uri) -> tuple[str, int]:
    """Stream an object and hash it; returns (hex digest, bytes read)."""
    target = as_s3(uri)
    try:
        body = client.get_object(Bucket=target.bucket, Key=target.key)["Body"]
        digest, total = hashlib.sha256(), 0
        for block in iter(lambda: body.read(HASH_BLOCK), b""):
            digest.update(block)
            total += len(block)
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "GET", str(target)) from exc
    return digest.hexdigest(), total


def download(
    client: Any,
    uri: str | S3Uri,
    dest: Path,
    *,
    max_bytes: int | None,
    transfer: TransferConfig | None = None,
) -> IngestResult:
    """HEAD, refuse above the cap, stream the body (pinned to HEAD's ETag) into `dest`
    through a `.part` file while hashing it, verify the size."""
    source = as_s3(uri)
    info = head(client, source)
    check_size(info, max_bytes)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("ingest: downloading %s (%d bytes) to %s", source, info.size, dest)
    digest, size = hashlib.sha256(), 0
    try:
        args = {"IfMatch": info.etag} if info.etag else {}
        body = client.get_object(Bucket=source.bucket, Key=source.key, **args)["Body"]
        with part.open("wb") as handle:
            for block in iter(lambda: body.read(HASH_BLOCK), b""):
                handle.write(block)
                digest.update(block)
                size += len(block)
    except Exception as exc:  # noqa: BLE001 - the partial file is removed, then the error re-raised, classified
        part.unlink(missing_ok=True)
        raise classify(exc, "GET", str(source)) from exc
    if size != info.size:
        part.unlink(missing_ok=True)
        raise S3IntegrityError(f"{source}: downloaded {size} bytes, HEAD said {info.size}")
    os.replace(part, dest)
    return IngestResult(str(source), str(dest), size, digest.hexdigest(), info.etag, info.content_type)


def copy_object(
    client: Any,
    uri: str | S3Uri,
    dest: str | S3Uri,
    *,
    max_bytes: int | None,
    transfer: TransferConfig | None = None,
    extra_args: dict[str, Any] | None = None,
) -> IngestResult:
    """S3 to S3 (work area on S3): HEAD + cap, server-side managed copy, verify size."""
    source, target = as_s3(uri), as_s3(dest)
    info = head(client, source)
    check_size(info, max_bytes)
    log.info("ingest: copying %s (%d bytes) to %s", source, info.size, target)
    args = {"CopySourceIfMatch": info.etag} if info.etag else {}
    args.update(extra_args or {})
    try:
        client.copy(
            {"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key,
            ExtraArgs=args, Config=transfer or TransferConfig(),
        )
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "COPY", f"{source} -> {target}") from exc
    copied = head(client, target)
    if copied.size != info.size:
        raise S3IntegrityError(f"{target}: copied {copied.size} bytes, source has {info.size}")
    digest, _ = sha256_object(client, target)
    return IngestResult(str(source), str(target), copied.size, digest, copied.etag, info.content_type)


def ingest(
    client: Any,
    uri: str,
    dest: str | Path,
    *,
    max_bytes: int | None,
    transfer: TransferConfig | None = None,
) -> IngestResult:
    """One entry point for the order's ingest task: s3:// source to a local path or s3:// dest."""
    if is_s3_uri(str(dest)):
        return copy_object(client, uri, str(dest), max_bytes=max_bytes, transfer=transfer)
    return download(client, uri, Path(dest), max_bytes=max_bytes, transfer=transfer)
