"""Atomic, content-addressed publish of a finished video (and its manifest) to S3.

Steps: hash the file -> upload to a temporary key (multipart above the threshold, SSE,
ContentType from the container, Cache-Control, metadata) -> verify size and SHA-256 ->
server-side copy into `<prefix>/<yyyy>/<mm>/<order_id>/<sha256>.<ext>` -> verify -> delete
the temporary key -> write manifest.json. A copy is atomic on S3, so an interruption at any
point leaves either nothing or the complete object under the final key; a re-run reuses a
verified temporary upload and finishes the job. An existing final object with the same
SHA-256 makes the publish a no-op (the key is immutable by construction).
"""
from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from facefactory import settings
from facefactory.operators.s3.errors import S3IntegrityError, S3NotFoundError, S3PermanentError, classify
from facefactory.operators.s3.ingest import head, sha256_object
from facefactory.operators.s3.mediatype import sniff
from facefactory.operators.s3.uris import S3Uri, parse_s3_uri
from faceworker.spec import sha256_file

log = logging.getLogger(__name__)

TEMP_DIR = ".incoming"
MANIFEST_NAME = "manifest.json"
MAX_METADATA_BYTES = 1800  # S3 allows 2 KB of user metadata in total
SSE_MODES = ("AES256", "aws:kms", "none")


@dataclass(frozen=True)
class PublishOptions:
    """How objects are written; `from_env` reads FACEFACTORY_S3_* / FACEFACTORY_PUBLISH_*."""

    sse: str = "AES256"
    kms_key_id: str | None = None
    video_cache_control: str = "public, max-age=31536000, immutable"
    manifest_cache_control: str = "public, max-age=60, must-revalidate"
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if self.sse not in SSE_MODES:
            raise ValueError(f"server-side encryption {self.sse!r}: expected one of {', '.join(SSE_MODES)}")
        if self.sse != "aws:kms" and self.kms_key_id:
            raise ValueError("a KMS key id is set but server-side encryption is not aws:kms")
        if self.multipart_chunksize < 5 * 1024 * 1024:
            raise ValueError("multipart chunk size must be at least 5 MiB (S3 minimum part size)")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PublishOptions:
        env = dict(os.environ if env is None else env)
        mib = 1024 * 1024
        return cls(
            sse=settings.text("FACEFACTORY_S3_SSE", env),
            kms_key_id=settings.raw("FACEFACTORY_S3_KMS_KEY_ID", env) or None,
            video_cache_control=settings.text("FACEFACTORY_PUBLISH_VIDEO_CACHE_CONTROL", env),
            manifest_cache_control=settings.text("FACEFACTORY_PUBLISH_MANIFEST_CACHE_CONTROL", env),
            multipart_threshold=int(settings.number("FACEFACTORY_S3_MULTIPART_THRESHOLD_MB", env) * mib),
            multipart_chunksize=int(settings.number("FACEFACTORY_S3_MULTIPART_CHUNK_MB", env) * mib),
        )

    def transfer(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )

    def encryption_args(self) -> dict[str, str]:
        if self.sse == "none":
            return {}
        args = {"ServerSideEncryption": self.sse}
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


@dataclass
class PublishResult:
    """What was published where; safe for XCom (no credentials, no signed URLs)."""

    uri: str
    bucket: str
    key: str
    size: int
    sha256: str
    content_type: str
    cache_control: str
    sse: str
    manifest_uri: str
    already_published: bool
    verified_by: str
    stages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layout(prefix: S3Uri, order_id: str, sha256: str, extension: str, when: datetime) -> tuple[S3Uri, S3Uri, S3Uri]:
    """(final, temporary, manifest) keys; see docs/storage.md."""
    folder = prefix.join(f"{when:%Y}", f"{when:%m}", order_id)
    final = folder.join(f"{sha256}{extension}")
    temp = prefix.join(TEMP_DIR, order_id, f"{sha256}{extension}")
    return final, temp, folder.join(MANIFEST_NAME)


def metadata(order_id: str, source_sha256: str | None, content_sha256: str, quality: dict[str, Any] | None) -> dict[str, str]:
    """User metadata (ASCII, < 2 KB): order id, hashes and a compact quality summary."""
    meta = {
        "order-id": order_id,
        "content-sha256": content_sha256,
        "source-sha256": source_sha256 or "",
        "published-by": "facefactory",
    }
    if quality:
        room = MAX_METADATA_BYTES - sum(len(k) + len(v) for k, v in meta.items()) - len("quality")
        meta["quality"] = _compact_summary(quality, room)
    return meta


def _compact_summary(quality: dict[str, Any], room: int) -> str:
    """The summary as compact ASCII JSON within `room` bytes: whole if it fits, else its scalar
    fields, dropping the longest ones until it fits (always valid JSON, marked truncated)."""
    def dump(value: dict[str, Any]) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)

    text = dump(quality)
    if len(text) <= room:
        return text
    kept = {k: v for k, v in quality.items() if isinstance(v, (int, float, str, bool)) or v is None}
    kept["truncated"] = True
    while len(dump(kept)) > room and len(kept) > 1:
        longest = max((k for k in kept if k != "truncated"), key=lambda k: len(dump({k: kept[k]})))
        del kept[longest]
    return dump(kept) if len(dump(kept)) <= room else '{"truncated":true}'


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def verify_object(client: Any, uri: S3Uri, size: int, sha256_hex: str, *, single_part: bool) -> str:
    """Size from HEAD; checksum from the server's SHA-256 when it is a full-object one (a
    single-part upload, or ChecksumType FULL_OBJECT), else by reading the object back: a
    multipart checksum is per-part (composite) and servers differ in how they report it.
    Returns how the checksum was verified."""
    try:
        response = client.head_object(Bucket=uri.bucket, Key=uri.key, ChecksumMode="ENABLED")
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "HEAD", str(uri)) from exc
    if int(response["ContentLength"]) != size:
        raise S3IntegrityError(f"{uri}: {response['ContentLength']} bytes on S3, {size} expected")
    server = response.get("ChecksumSHA256")
    full_object = bool(server) and "-" not in server and (
        single_part or response.get("ChecksumType") == "FULL_OBJECT"
    )
    if full_object:
        if server != _b64_sha256(sha256_hex):
            raise S3IntegrityError(f"{uri}: server SHA-256 {server} differs from the local file's")
        return "server-checksum"
    digest, read = sha256_object(client, uri)
    if digest != sha256_hex or read != size:
        raise S3IntegrityError(f"{uri}: read back sha256 {digest[:12]}… ({read} B), expected {sha256_hex[:12]}…")
    return "readback"


def _exists(client: Any, uri: S3Uri) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=uri.bucket, Key=uri.key)
    except Exception as exc:  # noqa: BLE001 - a 404 means absent; any other error is re-raised, classified
        error = classify(exc, "HEAD", str(uri))
        if isinstance(error, S3NotFoundError):
            return None
        raise error from exc


def publish_video(
    client: Any,
    path: Path,
    publish_to: str,
    order_id: str,
    *,
    source_sha256: str | None = None,
    quality: dict[str, Any] | None = None,
    options: PublishOptions | None = None,
    when: datetime | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PublishResult:
    """Publish `path` for `order_id` under the `publish_to` prefix (s3://bucket/prefix)."""
    options = options or PublishOptions.from_env()
    when = (when or datetime.now(UTC)).astimezone(UTC)
    prefix = parse_s3_uri(publish_to, require_key=False, prefix=True)
    path = Path(path)
    if not path.is_file():
        raise S3PermanentError(f"publish {order_id}: {path} does not exist")
    media = sniff(path)
    size = path.stat().st_size
    digest = sha256_file(path)
    final, temp, manifest = layout(prefix, order_id, digest, media.extension, when)
    stages: list[str] = []

    def stage(name: str) -> None:
        stages.append(name)
        log.info("publish %s: %s", order_id, name)
        if on_stage is not None:
            on_stage(name)

    stage("hashed")
    meta = metadata(order_id, source_sha256, digest, quality)
    object_args = {"ContentType": media.content_type, "CacheControl": options.video_cache_control, "Metadata": meta}
    object_args.update(options.encryption_args())

    existing = _exists(client, final)
    if existing is not None and existing.get("Metadata", {}).get("content-sha256") == digest:
        verified_by = "existing"
        stage("already_published")
        already = True
    else:
        already = False
        verified_by = _upload_temp(client, path, temp, size, digest, object_args, options, stage)
        try:
            client.copy(
                {"Bucket": temp.bucket, "Key": temp.key}, final.bucket, final.key,
                ExtraArgs={**object_args, "MetadataDirective": "REPLACE"}, Config=options.transfer(),
            )
        except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
            raise classify(exc, "COPY", f"{temp} -> {final}") from exc
        stage("copied")
        placed = head(client, final)
        if placed.size != size or placed.metadata.get("content-sha256") != digest:
            raise S3IntegrityError(f"{final}: after copy {placed.size} B / {placed.metadata}, expected {size} B")
        stage("final_verified")
    _delete_quietly(client, temp)
    stage("temp_deleted")
    result = PublishResult(
        uri=str(final), bucket=final.bucket, key=final.key, size=size, sha256=digest,
        content_type=media.content_type, cache_control=options.video_cache_control, sse=options.sse,
        manifest_uri=str(manifest), already_published=already, verified_by=verified_by, stages=stages,
    )
    write_manifest(client, manifest, result, order_id, source_sha256, quality, when, options)
    stage("manifest_written")
    return result


def _upload_temp(
    client: Any, path: Path, temp: S3Uri, size: int, digest: str, args: dict[str, Any],
    options: PublishOptions, stage: Callable[[str], None],
) -> str:
    """Upload to the temporary key, unless a complete verified copy is already there."""
    previous = _exists(client, temp)
    if previous is not None and previous.get("Metadata", {}).get("content-sha256") == digest:
        try:
            verified = verify_object(client, temp, size, digest, single_part=size < options.multipart_threshold)
            stage("temp_reused")
            return verified
        except S3IntegrityError:
            log.warning("publish: stale temporary object %s does not verify; uploading again", temp)
    try:
        client.upload_file(
            str(path), temp.bucket, temp.key, ExtraArgs={**args, "ChecksumAlgorithm": "SHA256"},
            Config=options.transfer(), Callback=_mid_upload_hook(size),
        )
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "PUT", str(temp)) from exc
    stage("temp_uploaded")
    verified = verify_object(client, temp, size, digest, single_part=size < options.multipart_threshold)
    stage("temp_verified")
    return verified


def _mid_upload_hook(size: int) -> Callable[[int], None] | None:
    """boto3 progress callback for the crash tests' pause point `s3_publish_mid_upload` (once
    some but not all bytes are sent: a multipart upload in flight). None unless a test asks."""
    from faceworker.testhooks import PAUSE_AT, pause_at

    if "s3_publish_mid_upload" not in (settings.raw(PAUSE_AT) or ""):
        return None
    sent = [0]

    def progress(amount: int) -> None:
        sent[0] += amount
        if 0 < sent[0] < size:
            pause_at("s3_publish_mid_upload")

    return progress


def _delete_quietly(client: Any, uri: S3Uri) -> None:
    try:
        client.delete_object(Bucket=uri.bucket, Key=uri.key)
    except Exception as exc:  # noqa: BLE001 - the lifecycle rule expires leftovers
        log.warning("publish: could not delete temporary %s (%s); lifecycle will expire it", uri, type(exc).__name__)


def write_manifest(
    client: Any, manifest: S3Uri, result: PublishResult, order_id: str, source_sha256: str | None,
    quality: dict[str, Any] | None, when: datetime, options: PublishOptions,
) -> None:
    """manifest.json next to the video: short TTL, so clients see a re-publish quickly."""
    body = {
        "order_id": order_id,
        "video": {"uri": result.uri, "key": result.key, "size": result.size, "sha256": result.sha256,
                  "content_type": result.content_type},
        "source_sha256": source_sha256,
        "quality": quality or {},
        "published_at": when.isoformat(),
    }
    data = json.dumps(body, indent=2, sort_keys=True, default=str).encode()
    try:
        client.put_object(
            Bucket=manifest.bucket, Key=manifest.key, Body=data, ContentType="application/json",
            CacheControl=options.manifest_cache_control, Metadata={"order-id": order_id},
            **options.encryption_args(),
        )
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "PUT", str(manifest)) from exc
