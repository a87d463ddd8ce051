"""S3 test fixtures: a real moto server per session, the Airflow connection pointing at it.

The server is an actual HTTP process (`moto_server`) on a free loopback port; it is stopped in
a finaliser, so a failing or interrupted test run does not leave it behind. Credentials reach
the code only through AIRFLOW_CONN_AWS_DEFAULT (JSON, endpoint_url in extra), like production.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_server import MotoServer, start_moto_server
from s3_support import connection_json, make_mp4


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Every S3 test: connection aws_default -> the moto server, no ambient AWS credentials."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("FACEFACTORY_S3_") or name.startswith("FACEFACTORY_CDN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection_json(moto_server.endpoint))
    monkeypatch.setenv("FACEFACTORY_S3_MAX_ATTEMPTS", "3")
    return moto_server


@pytest.fixture
def s3(aws_env: MotoServer) -> Any:
    """An S3 client built the production way (facefactory.operators.s3.client, from the connection)."""
    from facefactory.operators.s3.client import s3_client

    return s3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"ff-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("media") / "out.mp4")
