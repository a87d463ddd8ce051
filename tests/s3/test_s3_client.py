"""Clients are built from the Airflow connection: endpoint, retry mode, timeouts, overrides."""
from __future__ import annotations

import json
import os

import pytest
from s3_faults import FaultProxy
from s3_server import MotoServer
from s3_support import REGION

from facefactory.operators.s3.client import ClientSettings, s3_client
from facefactory.operators.s3.errors import S3TransientError
from facefactory.operators.s3.ingest import head


def test_retry_mode_and_timeouts_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_S3_RETRY_MODE", "adaptive")
    monkeypatch.setenv("FACEFACTORY_S3_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("FACEFACTORY_S3_CONNECT_TIMEOUT_S", "3")
    monkeypatch.setenv("FACEFACTORY_S3_READ_TIMEOUT_S", "20")
    config = s3_client().meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (3.0, 20.0)
    assert config.signature_version == "s3v4"
    monkeypatch.setenv("FACEFACTORY_S3_RETRY_MODE", "sometimes")
    with pytest.raises(ValueError, match="FACEFACTORY_S3_RETRY_MODE"):
        ClientSettings.from_env()


def test_endpoint_from_env_when_the_connection_has_none(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_NOENDPOINT", json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": REGION}}))
    monkeypatch.setenv("FACEFACTORY_S3_ENDPOINT_URL", aws_env.endpoint)
    client = s3_client(ClientSettings.from_env(conn_id="aws_noendpoint"))
    assert client.meta.endpoint_url == aws_env.endpoint
    client.list_buckets()


def test_connection_config_kwargs_override_the_defaults(aws_env: MotoServer, s3: object, bucket: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    with FaultProxy(aws_env.endpoint) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_ONESHOT", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": proxy.endpoint, "region_name": REGION,
                      "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}}}}))
        client = s3_client(ClientSettings(conn_id="aws_oneshot", max_attempts=6))
        assert client.meta.config.retries["total_max_attempts"] == 1
        proxy.fail(1)
        with pytest.raises(S3TransientError):
            head(client, f"s3://{bucket}/k")
        assert len(proxy.requests) == 1
        assert head(client, f"s3://{bucket}/k").size == 1


def test_no_credentials_anywhere_in_the_environment_but_the_connection() -> None:
    assert not any(name in os.environ for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))


def test_worker_env_lets_the_airflow_free_engine_reach_the_same_bucket(aws_env: MotoServer, s3: object,
                                                                       bucket: str) -> None:
    """A local worker subprocess gets credentials/endpoint from the connection via its env."""
    import subprocess
    import sys

    from s3_support import KEY_ID, SECRET

    from facefactory.operators.s3.client import worker_env

    env = worker_env()
    assert env["AWS_ACCESS_KEY_ID"] == KEY_ID and env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["FACEFACTORY_S3_ENDPOINT_URL"] == aws_env.endpoint
    s3.put_object(Bucket=bucket, Key="orders/o1/input/probe.json", Body=b"{}")
    child = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    child.update(env)
    code = (
        "from faceworker.workarea import open_store; import sys; "
        f"print(open_store('s3://{bucket}').read_bytes('orders/o1/input/probe.json').decode())"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=child, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "{}"
