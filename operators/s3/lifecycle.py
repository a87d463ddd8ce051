"""Bucket lifecycle: expire an order's intermediate objects, never its published output.

S3 lifecycle filters match a key *prefix* (no wildcards), and intermediates live at
`orders/<order_id>/chunks/…` and `…/swapped/…`, below a per-order folder. So the rule matches
objects under the work prefix that carry the tag `facefactory-class=intermediate`; writers set
that tag on upload (`intermediate_tagging`), and `tag_intermediates` back-fills it on objects
written without it. Rules are identified by the `facefactory-` id prefix and merged into the
bucket's existing configuration, so applying twice changes nothing and foreign rules survive.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from facefactory.operators.s3.errors import classify
from faceworker.workarea import (
    INTERMEDIATE_KEY,
    INTERMEDIATE_TAG_KEY,
    INTERMEDIATE_TAG_VALUE,
)

RULE_PREFIX = "facefactory-"
# The tag is the engine's: its S3 work area sets it on every chunks/ and swapped/ upload.
TAG_KEY = INTERMEDIATE_TAG_KEY
TAG_VALUE = INTERMEDIATE_TAG_VALUE
_FIELDS = ("ID", "Status", "Filter", "Expiration", "AbortIncompleteMultipartUpload")


@dataclass(frozen=True)
class LifecyclePolicy:
    """Days before each class of object expires."""

    work_prefix: str = "orders/"
    intermediate_days: int = 7
    publish_temp_prefix: str | None = None
    publish_temp_days: int = 1
    abort_multipart_days: int = 2

    def rules(self) -> list[dict[str, Any]]:
        if min(self.intermediate_days, self.publish_temp_days, self.abort_multipart_days) < 1:
            raise ValueError("lifecycle days must be >= 1")
        work = self.work_prefix.lstrip("/")
        rules: list[dict[str, Any]] = [
            {
                "ID": RULE_PREFIX + "expire-intermediate",
                "Status": "Enabled",
                "Filter": {"And": {"Prefix": work, "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}]}},
                "Expiration": {"Days": self.intermediate_days},
            },
            {
                "ID": RULE_PREFIX + "abort-incomplete-multipart",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": self.abort_multipart_days},
            },
        ]
        if self.publish_temp_prefix:
            rules.append(
                {
                    "ID": RULE_PREFIX + "expire-publish-temp",
                    "Status": "Enabled",
                    "Filter": {"Prefix": self.publish_temp_prefix.lstrip("/")},
                    "Expiration": {"Days": self.publish_temp_days},
                }
            )
        return rules


def is_intermediate(key: str) -> bool:
    return bool(INTERMEDIATE_KEY.search(key))


def _canonical(rule: dict[str, Any]) -> str:
    return json.dumps({k: rule[k] for k in _FIELDS if k in rule}, sort_keys=True)


def current_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        return list(client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", []))
    except Exception as exc:  # noqa: BLE001 - no lifecycle yet reads as no rules; the rest is re-raised, classified
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code == "NoSuchLifecycleConfiguration":
            return []
        raise classify(exc, "GET lifecycle of", f"s3://{bucket}") from exc


def apply_lifecycle(client: Any, bucket: str, policy: LifecyclePolicy, *, dry_run: bool = False) -> dict[str, Any]:
    """Merge our rules into the bucket's lifecycle; put only when something differs."""
    existing = current_rules(client, bucket)
    ours = policy.rules()
    mine_now = sorted(_canonical(r) for r in existing if str(r.get("ID", "")).startswith(RULE_PREFIX))
    changed = mine_now != sorted(_canonical(r) for r in ours)
    if changed and not dry_run:
        foreign = [r for r in existing if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
        try:
            client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": foreign + ours})
        except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
            raise classify(exc, "PUT lifecycle of", f"s3://{bucket}") from exc
    return {
        "bucket": bucket,
        "changed": changed,
        "dry_run": dry_run,
        "rules": [r["ID"] for r in ours],
        "kept_foreign_rules": [r.get("ID") for r in existing if not str(r.get("ID", "")).startswith(RULE_PREFIX)],
    }


def tag_intermediates(client: Any, bucket: str, prefix: str = "orders/", *, dry_run: bool = False) -> dict[str, int]:
    """Back-fill the intermediate tag on chunk/swapped objects written without it."""
    counts = {"scanned": 0, "tagged": 0, "already": 0}
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix.lstrip("/")):
            for item in page.get("Contents", []):
                counts["scanned"] += 1
                key = item["Key"]
                if not is_intermediate(key):
                    continue
                tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
                if any(t["Key"] == TAG_KEY and t["Value"] == TAG_VALUE for t in tags):
                    counts["already"] += 1
                    continue
                if not dry_run:
                    merged = [t for t in tags if t["Key"] != TAG_KEY] + [{"Key": TAG_KEY, "Value": TAG_VALUE}]
                    client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": merged})
                counts["tagged"] += 1
    except Exception as exc:  # noqa: BLE001 - classify() turns any boto error into a typed S3Error, re-raised
        raise classify(exc, "TAG intermediates in", f"s3://{bucket}/{prefix}") from exc
    return counts
