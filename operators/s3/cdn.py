"""CDN delivery: CloudFront invalidation (polled to completion with a timeout, or left to the
deferrable `cdn_ready` task: operators/cdn_wait.py), presigned URLs.

Presigned URLs are bearer tokens for the object until they expire: they go to XCom for the
customer link, but logs only ever see `redact_url(...)` (scheme, host and path).
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from facefactory.operators.s3.errors import CdnTimeoutError, classify
from facefactory.operators.s3.uris import S3Uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invalidation:
    """A CloudFront invalidation request and the status it reached."""

    distribution_id: str
    invalidation_id: str
    status: str
    paths: list[str]
    waited_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """The URL without its query (signature, credential scope, expiry): safe to log."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "<redacted>" if parts.query else "", ""))


def presign(client: Any, uri: S3Uri, expires_s: int) -> str:
    """A GET URL for the object valid for `expires_s` seconds (S3 caps it at 7 days with SigV4)."""
    if not 1 <= expires_s <= 7 * 24 * 3600:
        raise ValueError(f"presigned URL expiry {expires_s}s: must be between 1 s and 7 days")
    try:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": uri.bucket, "Key": uri.key}, ExpiresIn=int(expires_s)
        )
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "PRESIGN", str(uri)) from exc
    log.info("presigned GET for %s valid %ds: %s", uri, expires_s, redact_url(url))
    return str(url)


def cdn_path(key: str, origin_path: str = "") -> str:
    """Path of an object on the CDN when the distribution's origin path is `origin_path`."""
    origin = origin_path.strip("/")
    if origin and key.startswith(origin + "/"):
        key = key[len(origin) + 1 :]
    return "/" + key


def distribution_domain(client: Any, distribution_id: str) -> str:
    try:
        response = client.get_distribution(Id=distribution_id)
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "GET distribution", distribution_id) from exc
    return str(response["Distribution"]["DomainName"])


def invalidate(
    client: Any,
    distribution_id: str,
    paths: list[str],
    *,
    caller_reference: str | None = None,
    wait: bool = True,
    timeout_s: float = 600.0,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Invalidation:
    """Create an invalidation for `paths`; with `wait`, poll until Completed or time out.

    The caller reference defaults to a hash of the paths, so a retried task asks CloudFront for
    the same invalidation instead of paying for a second one.
    """
    if not paths:
        raise ValueError("no paths to invalidate")
    reference = caller_reference or "ff-" + hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:32]
    started = time.monotonic()
    try:
        response = client.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": list(paths)}, "CallerReference": reference},
        )
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "CREATE invalidation on", distribution_id) from exc
    inv_id = str(response["Invalidation"]["Id"])
    status = str(response["Invalidation"]["Status"])
    log.info("cloudfront %s: invalidation %s for %d path(s): %s", distribution_id, inv_id, len(paths), status)
    while wait and not is_completed(status):
        waited = time.monotonic() - started
        if waited >= timeout_s:
            raise CdnTimeoutError(
                f"cloudfront {distribution_id}: invalidation {inv_id} still {status} after {waited:.0f}s "
                f"(timeout {timeout_s:.0f}s); it continues server-side, the retry will find it"
            )
        sleep(min(poll_s, max(0.0, timeout_s - waited)))
        status = invalidation_status(client, distribution_id, inv_id)
    return Invalidation(distribution_id, inv_id, status, list(paths), round(time.monotonic() - started, 3))


def invalidation_status(client: Any, distribution_id: str, invalidation_id: str) -> str:
    """CloudFront's status of one invalidation ("InProgress", "Completed")."""
    try:
        response = client.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "GET invalidation", f"{distribution_id}/{invalidation_id}") from exc
    return str(response["Invalidation"]["Status"])


def is_completed(status: str) -> bool:
    return status.lower() == "completed"
