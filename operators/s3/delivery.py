"""The publish task's S3 body: atomic publish, CDN invalidation, links - one XCom-safe dict.

This is what `operators/publish.py` calls when `publish_to` is an s3:// URI. Credentials never
enter the result; the presigned URL does (it is the customer link) but is logged redacted.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from facefactory import settings as ff_settings
from facefactory.operators.s3 import cdn
from facefactory.operators.s3.client import ClientSettings, cloudfront_client, s3_client
from facefactory.operators.s3.publish import PublishOptions, publish_video
from facefactory.operators.s3.uris import parse_s3_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CdnOptions:
    """CloudFront settings; no distribution id means no invalidation and no CDN URL."""

    distribution_id: str | None = None
    domain: str | None = None
    origin_path: str = ""
    wait: bool = True
    timeout_s: float = 600.0
    poll_s: float = 10.0
    presign_expiry_s: int = 24 * 3600

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CdnOptions:
        env = dict(os.environ if env is None else env)
        return cls(
            distribution_id=ff_settings.raw("FACEFACTORY_CDN_DISTRIBUTION_ID", env) or None,
            domain=ff_settings.raw("FACEFACTORY_CDN_DOMAIN", env) or None,
            origin_path=ff_settings.raw("FACEFACTORY_CDN_ORIGIN_PATH", env) or "",
            # anything but an explicit no waits (the safe side: a published URL that serves)
            wait=ff_settings.text("FACEFACTORY_CDN_WAIT", env).lower() not in ("0", "false", "no"),
            timeout_s=ff_settings.number("FACEFACTORY_CDN_WAIT_TIMEOUT_S", env),
            poll_s=ff_settings.number("FACEFACTORY_CDN_POLL_S", env),
            presign_expiry_s=int(ff_settings.number("FACEFACTORY_PRESIGN_EXPIRY_S", env)),
        )


def publish_and_deliver(
    path: Path,
    publish_to: str,
    order_id: str,
    *,
    source_sha256: str | None = None,
    quality: dict[str, Any] | None = None,
    when: datetime | None = None,
    options: PublishOptions | None = None,
    cdn_options: CdnOptions | None = None,
    settings: ClientSettings | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Publish, invalidate the CDN paths when configured, and return the XCom payload:
    uri, key, sha256, size, content_type, cache_control, sse, manifest_uri, presigned_url,
    presigned_expires_s, cdn_url, invalidation (id/status/paths) or None."""
    settings = settings or ClientSettings.from_env()
    cdn_options = cdn_options or CdnOptions.from_env()
    client = s3_client(settings)
    result = publish_video(
        client, path, publish_to, order_id, source_sha256=source_sha256, quality=quality,
        options=options, when=when, on_stage=on_stage,
    )
    final = result.uri
    target = parse_s3_uri(final)
    payload: dict[str, Any] = result.to_dict()
    payload["presigned_url"] = cdn.presign(client, target, cdn_options.presign_expiry_s)
    payload["presigned_expires_s"] = cdn_options.presign_expiry_s
    payload["cdn_url"] = None
    payload["invalidation"] = None
    if cdn_options.distribution_id:
        cf = cloudfront_client(settings)
        paths = [
            cdn.cdn_path(result.key, cdn_options.origin_path),
            cdn.cdn_path(parse_s3_uri(result.manifest_uri).key, cdn_options.origin_path),
        ]
        invalidation = cdn.invalidate(
            cf, cdn_options.distribution_id, paths, caller_reference=f"ff-{order_id}-{result.sha256[:32]}",
            wait=cdn_options.wait, timeout_s=cdn_options.timeout_s, poll_s=cdn_options.poll_s,
        )
        domain = cdn_options.domain or cdn.distribution_domain(cf, cdn_options.distribution_id)
        payload["cdn_url"] = f"https://{domain}{paths[0]}"
        payload["invalidation"] = invalidation.to_dict()
    log.info(
        "published order %s to %s (%d B, %s); cdn=%s presigned=%s",
        order_id, final, result.size, result.verified_by, payload["cdn_url"],
        cdn.redact_url(payload["presigned_url"]),
    )
    return payload
