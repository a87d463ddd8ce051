"""botocore clients built from the Airflow connection, with retries and timeouts set.

Credentials come only from the connection (`aws_default` unless told otherwise) through the
amazon provider's AwsBaseHook; this module never reads, logs or returns them. The endpoint
(moto, MinIO) comes from the connection extra `endpoint_url`, else FACEFACTORY_S3_ENDPOINT_URL.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from facefactory import settings as ff_settings

DEFAULT_CONN_ID = "aws_default"
RETRY_MODES = ("standard", "adaptive", "legacy")


@dataclass(frozen=True)
class ClientSettings:
    """botocore behaviour; env FACEFACTORY_S3_* sets the defaults, connection config_kwargs win."""

    conn_id: str = DEFAULT_CONN_ID
    retry_mode: str = "standard"
    max_attempts: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    endpoint_url: str | None = None
    region_name: str | None = None

    @classmethod
    def from_env(cls, conn_id: str = DEFAULT_CONN_ID, env: dict[str, str] | None = None) -> ClientSettings:
        env = dict(os.environ if env is None else env)
        mode = ff_settings.text("FACEFACTORY_S3_RETRY_MODE", env)
        if mode not in RETRY_MODES:
            raise ValueError(f"FACEFACTORY_S3_RETRY_MODE={mode!r}: expected one of {', '.join(RETRY_MODES)}")
        return cls(
            conn_id=conn_id,
            retry_mode=mode,
            max_attempts=ff_settings.integer("FACEFACTORY_S3_MAX_ATTEMPTS", env),
            connect_timeout_s=ff_settings.number("FACEFACTORY_S3_CONNECT_TIMEOUT_S", env),
            read_timeout_s=ff_settings.number("FACEFACTORY_S3_READ_TIMEOUT_S", env),
            endpoint_url=(ff_settings.raw("FACEFACTORY_S3_ENDPOINT_URL", env) or None),
            region_name=(ff_settings.raw("FACEFACTORY_S3_REGION", env) or None),
        )

    def botocore_config(self) -> Config:
        return Config(
            # total_max_attempts counts the first try (botocore's max_attempts counts retries only)
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )


def _hook(settings: ClientSettings, client_type: str) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=settings.conn_id, client_type=client_type, region_name=settings.region_name)
    return hook


def make_client(service: str, settings: ClientSettings | None = None) -> Any:
    """A boto3 client for `service` with the connection's session, endpoint and merged config."""
    settings = settings or ClientSettings.from_env()
    hook = _hook(settings, service)
    wrapper = hook.conn_config
    config = settings.botocore_config()
    if service == "s3":  # SigV4 presigned URLs (SigV2 is refused by newer regions and KMS objects)
        config = config.merge(Config(signature_version="s3v4"))
    if wrapper.botocore_config is not None:  # connection extra config_kwargs override ours
        config = config.merge(wrapper.botocore_config)
    endpoint = wrapper.get_service_endpoint_url(service_name=service)
    if endpoint is None and service == "s3":
        endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    session = hook.get_session(region_name=wrapper.region_name or settings.region_name)
    return session.client(service, endpoint_url=endpoint, config=config, verify=wrapper.verify)


def s3_client(settings: ClientSettings | None = None) -> Any:
    return make_client("s3", settings)


def cloudfront_client(settings: ClientSettings | None = None) -> Any:
    return make_client("cloudfront", settings)


def worker_env(settings: ClientSettings | None = None) -> dict[str, str]:
    """Environment for a *local* worker subprocess (runner=local) with an s3:// work root.

    The engine has no Airflow, so it cannot read the connection; the task resolves it here and
    hands the credentials to the child process's environment only. Never log or XCom the
    result. In Kubernetes the pod's service-account role (IRSA) replaces this.
    """
    settings = settings or ClientSettings.from_env()
    hook = _hook(settings, "s3")
    wrapper = hook.conn_config
    credentials = hook.get_credentials(region_name=wrapper.region_name or settings.region_name)
    env = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    region = wrapper.region_name or settings.region_name
    if region:
        env["AWS_DEFAULT_REGION"] = region
    endpoint = wrapper.get_service_endpoint_url(service_name="s3") or settings.endpoint_url
    if endpoint:
        env["FACEFACTORY_S3_ENDPOINT_URL"] = endpoint
    return env
