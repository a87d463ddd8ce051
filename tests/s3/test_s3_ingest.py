"""Ingest from S3 against the moto server: HEAD + cap before download, clear permanent errors,
transient 503s retried on the wire, permission errors sent once."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from s3_faults import FaultProxy
from s3_server import MotoServer
from s3_support import connection_json

from facefactory.operators.s3.client import ClientSettings, make_client, s3_client
from facefactory.operators.s3.errors import (
    S3AccessDeniedError,
    S3NotFoundError,
    S3PermanentError,
    S3TooLargeError,
    S3TransientError,
    S3UriError,
)
from facefactory.operators.s3.ingest import head, ingest


def _put(s3: Any, bucket: str, key: str, data: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_download_checks_size_and_hashes(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    _put(s3, bucket, "in/o1/target.mp4", data)
    result = ingest(s3, f"s3://{bucket}/in/o1/target.mp4", tmp_path / "input" / "target.mp4", max_bytes=1_000_000)
    assert (tmp_path / "input" / "target.mp4").read_bytes() == data
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert not list(tmp_path.rglob("*.part"))


def test_s3_to_s3_copy_for_an_s3_work_area(s3: Any, bucket: str) -> None:
    data = os.urandom(50_000)
    _put(s3, bucket, "in/source.png", data)
    dest = f"s3://{bucket}/work/orders/o1/input/source.png"
    result = ingest(s3, f"s3://{bucket}/in/source.png", dest, max_bytes=10**6)
    body = s3.get_object(Bucket=bucket, Key="work/orders/o1/input/source.png")["Body"].read()
    assert body == data and result.sha256 == hashlib.sha256(data).hexdigest() and result.dest == dest


def test_over_the_cap_is_refused_before_any_body_byte(aws_env: MotoServer, s3: Any, bucket: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _put(s3, bucket, "big.mp4", b"x" * 5000)
    with FaultProxy(aws_env.endpoint) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_PROXY", connection_json(proxy.endpoint))
        client = s3_client(ClientSettings.from_env(conn_id="aws_proxy"))
        with pytest.raises(S3TooLargeError, match=r"5000 bytes, above the cap of 4999 bytes"):
            ingest(client, f"s3://{bucket}/big.mp4", tmp_path / "big.mp4", max_bytes=4999)
        assert [method for method, _, _ in proxy.requests] == ["HEAD"]
    assert not (tmp_path / "big.mp4").exists()


def test_missing_bucket_and_missing_key(s3: Any, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(S3NotFoundError, match=r"s3://ff-no-such-bucket-x: bucket does not exist"):
        ingest(s3, "s3://ff-no-such-bucket-x/a.mp4", tmp_path / "a.mp4", max_bytes=None)
    with pytest.raises(S3NotFoundError, match=rf"s3://{bucket}/nope.mp4: no such key in bucket {bucket}"):
        ingest(s3, f"s3://{bucket}/nope.mp4", tmp_path / "a.mp4", max_bytes=None)


@pytest.mark.parametrize("uri", ["s3://bucket-ok/a/../b.mp4", "s3://bucket-ok/a//b.mp4"])
def test_unsafe_uri_is_refused_before_any_request(s3: Any, uri: str, tmp_path: Path) -> None:
    with pytest.raises(S3UriError):
        ingest(s3, uri, tmp_path / "x", max_bytes=None)


def test_transient_503_is_retried_on_the_wire(aws_env: MotoServer, s3: Any, bucket: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(10_000)
    _put(s3, bucket, "t.bin", data)
    with FaultProxy(aws_env.endpoint) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_PROXY", connection_json(proxy.endpoint))
        client = s3_client(ClientSettings(conn_id="aws_proxy", max_attempts=4))
        proxy.fail(2)
        result = ingest(client, f"s3://{bucket}/t.bin", tmp_path / "t.bin", max_bytes=None)
        statuses = [status for _, _, status in proxy.requests]
        assert statuses[:3] == [503, 503, 200] and result.size == len(data)
        # More failures than attempts: a *transient* error, so the Airflow task retry applies.
        proxy.fail(10)
        with pytest.raises(S3TransientError, match="transient") as err:
            ingest(client, f"s3://{bucket}/t.bin", tmp_path / "t2.bin", max_bytes=None)
        assert not isinstance(err.value, S3PermanentError)


def _iam_user(effect: str) -> dict[str, str]:
    """An IAM user on the server whose only policy allows or denies every S3 action."""
    iam = make_client("iam")
    name = f"{effect.lower()}-{os.urandom(3).hex()}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName=f"{effect.lower()}-s3",
        PolicyDocument=json.dumps({"Version": "2012-10-17",
                                   "Statement": [{"Effect": effect, "Action": "s3:*", "Resource": "*"}]}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_access_denied_fails_at_once_without_retry(aws_env: MotoServer, s3: Any, bucket: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _put(s3, bucket, "secret.mp4", b"data")
    allowed, denied = _iam_user("Allow"), _iam_user("Deny")
    with FaultProxy(aws_env.endpoint) as proxy:
        for conn, user in (("AWS_ALLOWED", allowed), ("AWS_DENIED", denied)):
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn}", connection_json(proxy.endpoint, user["id"], user["secret"]))
        allowed_client = s3_client(ClientSettings(conn_id="aws_allowed", max_attempts=5))
        denied_client = s3_client(ClientSettings(conn_id="aws_denied", max_attempts=5))
        aws_env.set_auth(True)  # moto enforces IAM (signatures + policies) from now on
        try:
            # Control: same server, same proxy, signed the same way - the allowed user gets in.
            assert ingest(allowed_client, f"s3://{bucket}/secret.mp4", tmp_path / "ok.mp4", max_bytes=None).size == 4
            del proxy.state.requests[:]
            with pytest.raises(S3AccessDeniedError, match="access denied") as err:
                ingest(denied_client, f"s3://{bucket}/secret.mp4", tmp_path / "s.mp4", max_bytes=None)
        finally:
            aws_env.set_auth(False)
        assert isinstance(err.value, S3PermanentError)
        assert [(m, s) for m, _, s in proxy.requests] == [("HEAD", 403)]  # one request, no retry
    assert denied["secret"] not in str(err.value) and denied["id"] not in str(err.value)


def test_head_reports_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m.mp4", Body=b"abc", ContentType="video/mp4", Metadata={"k": "v"})
    info = head(s3, f"s3://{bucket}/m.mp4")
    assert (info.size, info.content_type, info.metadata) == (3, "video/mp4", {"k": "v"})
