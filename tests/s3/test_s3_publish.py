"""Atomic, content-addressed publish against the moto server: headers, SSE, metadata,
multipart, kill between temporary upload and copy, idempotent re-publish, refusals."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from s3_server import MotoServer
from s3_support import SECRET, make_mp4

from facefactory.operators.s3.client import make_client
from facefactory.operators.s3.delivery import CdnOptions, publish_and_deliver
from facefactory.operators.s3.errors import S3NotFoundError, S3PermanentError, S3UriError
from facefactory.operators.s3.publish import PublishOptions, publish_video

WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
QUALITY = {"passed": True, "mean_id_cosine": 0.912, "min_psnr_db": 38.4, "frames": 50}


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_publish_headers_sse_metadata_and_presigned_download(
    s3: Any, bucket: str, small_mp4: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    digest = hashlib.sha256(small_mp4.read_bytes()).hexdigest()
    out = publish_and_deliver(
        small_mp4, f"s3://{bucket}/published", "order-7", source_sha256="ab" * 32, quality=QUALITY, when=WHEN,
        options=PublishOptions(sse="AES256"), cdn_options=CdnOptions(presign_expiry_s=600),
    )
    key = f"published/2026/11/order-7/{digest}.mp4"
    assert out["key"] == key and out["uri"] == f"s3://{bucket}/{key}"
    assert _keys(s3, bucket) == [key, "published/2026/11/order-7/manifest.json"]  # temp key gone
    obj = s3.head_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == "video/mp4"
    assert obj["CacheControl"] == "public, max-age=31536000, immutable"
    assert obj["ServerSideEncryption"] == "AES256"
    assert obj["Metadata"]["order-id"] == "order-7"
    assert obj["Metadata"]["source-sha256"] == "ab" * 32
    assert obj["Metadata"]["content-sha256"] == digest
    assert json.loads(obj["Metadata"]["quality"]) == QUALITY
    manifest = s3.get_object(Bucket=bucket, Key="published/2026/11/order-7/manifest.json")
    assert manifest["CacheControl"] == "public, max-age=60, must-revalidate"
    assert manifest["ContentType"] == "application/json"
    assert json.loads(manifest["Body"].read())["video"]["sha256"] == digest
    with urllib.request.urlopen(out["presigned_url"], timeout=30) as response:
        assert response.read() == small_mp4.read_bytes()
    assert "X-Amz-Signature" in out["presigned_url"] and out["presigned_expires_s"] == 600
    assert "X-Amz-Signature" not in caplog.text and SECRET not in caplog.text
    assert out["invalidation"] is None and out["cdn_url"] is None
    assert SECRET not in json.dumps(out)  # XCom-serialisable, no secret in it


def test_multipart_upload_with_kms(s3: Any, bucket: str, tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "big.mp4", pad_bytes=11 * 1024 * 1024)
    key_id = make_client("kms").create_key(Description="facefactory test")["KeyMetadata"]["KeyId"]
    options = PublishOptions(sse="aws:kms", kms_key_id=key_id, multipart_threshold=5 * 1024 * 1024,
                             multipart_chunksize=5 * 1024 * 1024)
    result = publish_video(s3, video, f"s3://{bucket}/pub", "big-1", options=options, when=WHEN)
    obj = s3.head_object(Bucket=bucket, Key=result.key)
    assert obj["ServerSideEncryption"] == "aws:kms" and key_id in obj["SSEKMSKeyId"]
    assert obj["ContentLength"] == video.stat().st_size == result.size
    assert obj["ContentType"] == "video/mp4"
    assert "temp_uploaded" in result.stages and "final_verified" in result.stages
    body = s3.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timezone
    from pathlib import Path
    from facefactory.operators.s3.client import s3_client
    from facefactory.operators.s3.publish import publish_video

    def on_stage(name):
        if name == sys.argv[4]:
            os.kill(os.getpid(), signal.SIGKILL)   # the worker dies here, no cleanup runs

    publish_video(s3_client(), Path(sys.argv[1]), sys.argv[2], sys.argv[3], on_stage=on_stage,
                  when=datetime(2026, 11, 26, tzinfo=timezone.utc))
    """
)


@pytest.mark.parametrize("kill_at", ["temp_uploaded", "temp_verified"])
def test_killed_between_temp_upload_and_copy_then_rerun_completes(
    s3: Any, bucket: str, small_mp4: Path, kill_at: str
) -> None:
    digest = hashlib.sha256(small_mp4.read_bytes()).hexdigest()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(small_mp4), f"s3://{bucket}/published", "order-k", kill_at],
        env=dict(os.environ), capture_output=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    final = f"published/2026/11/order-k/{digest}.mp4"
    assert _keys(s3, bucket) == [f"published/.incoming/order-k/{digest}.mp4"]  # nothing under the final key
    result = publish_video(s3, small_mp4, f"s3://{bucket}/published", "order-k",
                           when=datetime(2026, 11, 26, tzinfo=UTC))
    assert "temp_reused" in result.stages and "temp_uploaded" not in result.stages
    assert _keys(s3, bucket) == [final, "published/2026/11/order-k/manifest.json"]
    assert s3.get_object(Bucket=bucket, Key=final)["Body"].read() == small_mp4.read_bytes()


def test_republish_is_a_noop_and_a_corrupt_temp_is_replaced(s3: Any, bucket: str, small_mp4: Path) -> None:
    first = publish_video(s3, small_mp4, f"s3://{bucket}/p", "o-2", when=WHEN)
    again = publish_video(s3, small_mp4, f"s3://{bucket}/p", "o-2", when=WHEN)
    assert not first.already_published and again.already_published and again.key == first.key
    # A temporary object that claims the right hash but holds other bytes is not trusted.
    other = "o-3"
    temp_key = f"p/.incoming/{other}/{first.sha256}.mp4"
    s3.put_object(Bucket=bucket, Key=temp_key, Body=b"garbage", Metadata={"content-sha256": first.sha256})
    third = publish_video(s3, small_mp4, f"s3://{bucket}/p", other, when=WHEN)
    assert "temp_uploaded" in third.stages and "temp_reused" not in third.stages
    assert s3.get_object(Bucket=bucket, Key=third.key)["Body"].read() == small_mp4.read_bytes()


def test_refusals(s3: Any, bucket: str, small_mp4: Path, tmp_path: Path) -> None:
    not_video = tmp_path / "x.mp4"
    not_video.write_bytes(b"<html>not a video</html>")
    with pytest.raises(S3PermanentError, match="not an MP4/QuickTime/Matroska video"):
        publish_video(s3, not_video, f"s3://{bucket}/p", "o-1", when=WHEN)
    with pytest.raises(S3NotFoundError, match="bucket does not exist|no such"):
        publish_video(s3, small_mp4, "s3://ff-missing-bucket-zz/p", "o-1", when=WHEN)
    with pytest.raises(S3UriError, match="'..' segment"):
        publish_video(s3, small_mp4, f"s3://{bucket}/p/../q", "o-1", when=WHEN)
    with pytest.raises(S3UriError):
        publish_video(s3, small_mp4, f"s3://{bucket}/p", "../o-1", when=WHEN)
    with pytest.raises(ValueError, match="KMS key id is set"):
        PublishOptions(sse="AES256", kms_key_id="k")
    assert _keys(s3, bucket) == []


def _distribution(bucket: str) -> tuple[str, str]:
    cf = make_client("cloudfront")
    response = cf.create_distribution(DistributionConfig={
        "CallerReference": bucket, "Comment": "facefactory test", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{bucket}.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https",
                                 "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })
    return response["Distribution"]["Id"], response["Distribution"]["DomainName"]


def test_cloudfront_invalidation_created_and_recorded(aws_env: MotoServer, s3: Any, bucket: str, small_mp4: Path) -> None:
    dist_id, domain = _distribution(bucket)
    out = publish_and_deliver(
        small_mp4, f"s3://{bucket}/published", "order-cdn", when=WHEN,
        cdn_options=CdnOptions(distribution_id=dist_id, timeout_s=30, poll_s=0.2),
    )
    inv = out["invalidation"]
    assert inv["distribution_id"] == dist_id and inv["invalidation_id"]
    assert inv["status"].lower() == "completed"
    assert inv["paths"] == [f"/{out['key']}", "/published/2026/11/order-cdn/manifest.json"]
    assert out["cdn_url"] == f"https://{domain}/{out['key']}"
    listed = make_client("cloudfront").list_invalidations(DistributionId=dist_id)["InvalidationList"]
    assert inv["invalidation_id"] in [item["Id"] for item in listed.get("Items", [])]
    with pytest.raises(S3NotFoundError):
        publish_and_deliver(small_mp4, f"s3://{bucket}/published", "order-cdn", when=WHEN,
                            cdn_options=CdnOptions(distribution_id="ENOSUCHDIST", timeout_s=5))


def test_large_quality_summary_is_reduced_to_valid_json() -> None:
    from facefactory.operators.s3.publish import MAX_METADATA_BYTES, metadata

    quality = {"passed": True, "mean_id_cosine": 0.91, "failures": [{"chunk": i, "frame": i} for i in range(500)],
               "note": "x" * 5000}
    meta = metadata("o-1", "a" * 64, "b" * 64, quality)
    summary = json.loads(meta["quality"])
    assert summary == {"passed": True, "mean_id_cosine": 0.91, "truncated": True}
    assert sum(len(k) + len(v) for k, v in meta.items()) <= MAX_METADATA_BYTES
    assert json.loads(metadata("o-1", None, "b" * 64, {"frames": 3})["quality"]) == {"frames": 3}
