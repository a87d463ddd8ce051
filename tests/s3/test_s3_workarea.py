"""The Airflow side's view of an S3 work area: the engine's store with the connection's client."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from s3_support import SECRET

from facefactory.operators.s3.errors import S3NotFoundError, S3TooLargeError
from facefactory.operators.s3.workarea import bring_in, order_area, size_of, worker_environment


def test_inputs_are_brought_into_an_s3_area(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    s3.put_object(Bucket=bucket, Key="in/target.mp4", Body=data)
    area = order_area(f"s3://{bucket}/work", "o-1")
    out = bring_in(area, f"s3://{bucket}/in/target.mp4", "input/target.mp4", max_bytes=10**6)
    assert out["uri"] == f"s3://{bucket}/work/orders/o-1/input/target.mp4"
    assert out["sha256"] == hashlib.sha256(data).hexdigest()
    local = tmp_path / "source.png"
    local.write_bytes(b"png-bytes")
    bring_in(area, local, "input/source.png", max_bytes=10**6)
    assert area.list("input") == ["input/source.png", "input/target.mp4"]
    assert size_of(area, "input/target.mp4") == len(data)
    # an intermediate copied in carries the lifecycle tag
    bring_in(area, f"s3://{bucket}/in/target.mp4", "chunks/00000/segment.mkv", max_bytes=None)
    tags = s3.get_object_tagging(Bucket=bucket, Key="work/orders/o-1/chunks/00000/segment.mkv")["TagSet"]
    assert tags == [{"Key": "facefactory-class", "Value": "intermediate"}]
    with pytest.raises(S3TooLargeError):
        bring_in(area, f"s3://{bucket}/in/target.mp4", "input/t2.mp4", max_bytes=100)
    with pytest.raises(S3NotFoundError, match="no such key"):
        bring_in(area, f"s3://{bucket}/in/missing.mp4", "input/t3.mp4", max_bytes=None)


def test_s3_source_into_a_local_area(s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="in/source.png", Body=b"abc")
    area = order_area(str(tmp_path / "work"), "o-2")
    bring_in(area, f"s3://{bucket}/in/source.png", "input/source.png", max_bytes=None)
    assert (tmp_path / "work" / "orders" / "o-2" / "input" / "source.png").read_bytes() == b"abc"


def test_worker_environment_is_scoped(bucket: str) -> None:
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ
    with worker_environment(f"s3://{bucket}/work") as env:
        assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET == env["AWS_SECRET_ACCESS_KEY"]
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ
    with worker_environment("/tmp/local-work") as env:
        assert env == {}


def test_large_input_is_copied_server_side_in_parts(s3: Any, bucket: str, tmp_path: Path) -> None:
    """Above the managed-copy threshold (8 MiB) the copy is multipart, still pinned to the ETag."""
    data = os.urandom(9 * 1024 * 1024 + 123)
    s3.put_object(Bucket=bucket, Key="in/big.mp4", Body=data)
    area = order_area(f"s3://{bucket}/work", "o-big")
    out = bring_in(area, f"s3://{bucket}/in/big.mp4", "input/target.mp4", max_bytes=None)
    assert out["size"] == len(data) and out["sha256"] == hashlib.sha256(data).hexdigest()
    out = bring_in(area, f"s3://{bucket}/in/big.mp4", "chunks/00001/segment.mkv", max_bytes=None)
    tags = s3.get_object_tagging(Bucket=bucket, Key="work/orders/o-big/chunks/00001/segment.mkv")["TagSet"]
    assert tags == [{"Key": "facefactory-class", "Value": "intermediate"}]
