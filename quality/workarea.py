"""Minimal reader/writer for the order work area (a local path, ``file://`` URI or ``s3://`` URI).

The quality side only needs whole-object reads and writes; local paths go through pathlib,
``s3://`` through boto3 (honouring ``FACEFACTORY_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``).
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def join(base: str, *parts: str) -> str:
    """Join work-area path parts with ``/`` (works for local paths and URIs)."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def _local(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" not in uri:
        return Path(uri)
    return None


def s3_client():
    import boto3

    endpoint = os.environ.get("FACEFACTORY_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"unsupported work-area URI {uri!r} (local path, file:// or s3://)")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def read_bytes(uri: str) -> bytes:
    p = _local(uri)
    if p is not None:
        return p.read_bytes()
    bucket, key = split_s3(uri)
    return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def exists(uri: str) -> bool:
    p = _local(uri)
    if p is not None:
        return p.exists()
    bucket, key = split_s3(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except Exception:  # noqa: BLE001 - botocore raises ClientError(404) for absent keys
        return False


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    p = _local(uri)
    if p is not None:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
        return
    bucket, key = split_s3(uri)
    s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, doc: Any) -> None:
    write_bytes(uri, json.dumps(doc, indent=1, default=str).encode(), "application/json")


def read_npy(uri: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(uri)), allow_pickle=False)
