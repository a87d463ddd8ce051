"""Lifecycle rules on the moto server: applied idempotently by the CLI, foreign rules kept,
intermediates tagged for expiry while published outputs are never matched."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from facefactory.cli import main
from facefactory.operators.s3.lifecycle import LifecyclePolicy, apply_lifecycle, tag_intermediates
from faceworker.workarea import intermediate_tagging


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`facefactory s3 ...` in-process (the parser and handlers are the console script's)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["s3", *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.mark.slow
def test_console_script_runs(bucket: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("facefactory")), "s3", "setup-lifecycle", "--bucket", bucket, "--dry-run"],
        env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["dry_run"] is True


def test_setup_lifecycle_cli_is_idempotent_and_keeps_foreign_rules(s3: Any, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "team-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}]})
    args = ["setup-lifecycle", "--bucket", bucket, "--intermediate-days", "5", "--publish-temp-prefix",
            "published/.incoming/"]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout.strip().splitlines()[-1])["changed"] is True
    second = _cli(*args)
    assert second.returncode == 0, second.stderr[-2000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["changed"] is False and result["kept_foreign_rules"] == ["team-logs"]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"team-logs", "facefactory-expire-intermediate", "facefactory-abort-incomplete-multipart",
                          "facefactory-expire-publish-temp"}
    inter = rules["facefactory-expire-intermediate"]
    assert inter["Expiration"]["Days"] == 5
    assert inter["Filter"]["And"]["Prefix"] == "orders/"
    assert inter["Filter"]["And"]["Tags"] == [{"Key": "facefactory-class", "Value": "intermediate"}]
    assert rules["facefactory-expire-publish-temp"]["Filter"]["Prefix"] == "published/.incoming/"
    # a changed setting is applied (and reported) again
    third = _cli("setup-lifecycle", "--bucket", bucket, "--intermediate-days", "9")
    assert json.loads(third.stdout.strip().splitlines()[-1])["changed"] is True
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["facefactory-expire-intermediate"]["Expiration"]["Days"] == 9
    assert "facefactory-expire-publish-temp" not in rules and "team-logs" in rules


def test_cli_refuses_bad_bucket_and_missing_bucket() -> None:
    bad = _cli("setup-lifecycle", "--bucket", "Bad_Bucket")
    assert bad.returncode == 2 and "invalid S3 bucket name" in bad.stderr
    missing = _cli("setup-lifecycle", "--bucket", "ff-no-such-bucket-lc")
    assert missing.returncode == 2 and "bucket does not exist" in missing.stderr


def test_only_intermediates_are_tagged(s3: Any, bucket: str) -> None:
    keys = {
        "orders/o1/chunks/00000/segment.mkv": True,
        "orders/o1/swapped/00000/segment.mp4": True,
        "orders/o1/swapped/00000/done.json": True,
        "orders/o1/input/target.mp4": False,
        "orders/o1/output/o1.mp4": False,
        "orders/o1/report/index.html": False,
    }
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="orders/o1/chunks/00000/segment.mkv",
                          Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
    assert tag_intermediates(s3, bucket) == {"scanned": 6, "tagged": 3, "already": 0}
    assert tag_intermediates(s3, bucket) == {"scanned": 6, "tagged": 0, "already": 3}
    for key, intermediate in keys.items():
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert (tags.get("facefactory-class") == "intermediate") is intermediate, key
        assert (intermediate_tagging(key) is not None) is intermediate
    assert s3.get_object_tagging(Bucket=bucket, Key="orders/o1/chunks/00000/segment.mkv")["TagSet"][0] == {
        "Key": "owner", "Value": "ops"}


def test_dry_run_changes_nothing(s3: Any, bucket: str) -> None:
    result = apply_lifecycle(s3, bucket, LifecyclePolicy(), dry_run=True)
    assert result["changed"] is True
    assert apply_lifecycle(s3, bucket, LifecyclePolicy(), dry_run=True)["changed"] is True
    from facefactory.operators.s3.lifecycle import current_rules

    assert current_rules(s3, bucket) == []
