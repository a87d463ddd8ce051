"""Whole-object reads and writes of the order work area for the quality side (the gate and the
report get object URIs: a local path, ``file://`` or ``s3://``).

A thin layer over the engine's work area (``faceworker.workarea``, a contract module): the same
stores, the same ``s3://`` parsing and the same boto3 client set-up as the engine and the
operators, so there is one implementation of the work area, not three.
"""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from faceworker.workarea import make_s3_client, open_object, split_s3_uri


def join(base: str, *parts: str) -> str:
    """Join work-area path parts with ``/`` (works for local paths and URIs)."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def s3_client() -> Any:
    """boto3 S3 client (``FACEFACTORY_S3_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL``), as the engine builds it."""
    return make_s3_client()


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` URI."""
    return split_s3_uri(uri)


def read_bytes(uri: str) -> bytes:
    store, key = open_object(uri)
    return store.read_bytes(key)


def exists(uri: str) -> bool:
    store, key = open_object(uri)
    try:
        return store.exists(key)
    except Exception:  # noqa: BLE001 - unreadable counts as absent here: the gate reports what it lacks
        return False


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    store, key = open_object(uri)
    store.write_bytes(key, data, content_type)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, doc: Any) -> None:
    write_bytes(uri, json.dumps(doc, indent=1, default=str).encode(), "application/json")


def read_npy(uri: str) -> np.ndarray:
    return np.load(io.BytesIO(read_bytes(uri)), allow_pickle=False)
