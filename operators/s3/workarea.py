"""The Airflow side's handle on an order work area that may live in S3.

The engine's `faceworker.workarea` already reads and writes `s3://` work roots (the worker
pods use it); the Airflow tasks use the *same* classes, but with a boto3 client built from the
Airflow connection (`facefactory.operators.s3.client`) instead of the engine's ambient credentials, and
bring order inputs in through `facefactory.operators.s3.ingest` (HEAD + cap first).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facefactory.operators.s3.client import ClientSettings, s3_client, worker_env
from facefactory.operators.s3.errors import S3PermanentError
from facefactory.operators.s3.ingest import copy_object, download, head
from facefactory.operators.s3.uris import is_s3_uri, parse_s3_uri
from faceworker.spec import sha256_file
from faceworker.workarea import LocalStore, OrderArea, S3Store, Store, intermediate_tagging, open_store


def open_work_store(work_root: str, settings: ClientSettings | None = None, client: Any = None) -> Store:
    """`faceworker.workarea` store for `work_root`; S3 roots get the connection's client."""
    if is_s3_uri(work_root):
        root = parse_s3_uri(work_root, require_key=False, prefix=True)
        return S3Store(root.bucket, root.key, client=client or s3_client(settings))
    return open_store(work_root)


def order_area(work_root: str, order_id: str, settings: ClientSettings | None = None, client: Any = None) -> OrderArea:
    return OrderArea(open_work_store(work_root, settings, client), order_id)


def bring_in(
    area: OrderArea, source: str | Path, rel: str, *, max_bytes: int | None, client: Any = None,
    digest: bool = True,
) -> dict[str, Any]:
    """Put one order input (s3:// URI or an already-validated local path) at `rel` in the area.

    s3 -> S3 area: server-side copy; s3 -> local area: download; local -> S3 area: upload;
    local -> local area: a hard link when both are on one filesystem (no bytes copied), else a copy.
    Every s3:// source is HEAD-checked against `max_bytes` first. Returns size and sha256 (None for
    a local source with `digest=False`: hashing a multi-GB video costs seconds nobody reads).
    """
    store = area.store
    dest_uri = area.uri(rel)
    if is_s3_uri(str(source)):
        client = client or (store.client if isinstance(store, S3Store) else s3_client())
        if isinstance(store, S3Store):
            result = copy_object(client, str(source), dest_uri, max_bytes=max_bytes,
                                 extra_args=_tagging(area.key(rel)))
        else:
            result = download(client, str(source), Path(dest_uri), max_bytes=max_bytes)
        return {"uri": dest_uri, "size": result.size, "sha256": result.sha256, "source": str(source)}
    local = Path(source)
    if not local.is_file():
        raise S3PermanentError(f"input {local} does not exist")
    if max_bytes is not None and local.stat().st_size > max_bytes:
        raise S3PermanentError(f"{local} is {local.stat().st_size} bytes, above the cap of {max_bytes}")
    if not (isinstance(store, LocalStore) and _link_in(local, Path(dest_uri))):
        area.upload_from(local, rel)
    return {"uri": dest_uri, "size": local.stat().st_size, "sha256": sha256_file(local) if digest else None,
            "source": str(local)}


def _link_in(local: Path, dest: Path) -> bool:
    """Hard-link `local` to `dest` (atomically replacing it); False when the filesystem cannot
    (another device, no link support) so the caller copies instead."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(local, tmp)
        os.replace(tmp, dest)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def _tagging(key: str) -> dict[str, str]:
    tagging = intermediate_tagging(key)
    return {"Tagging": tagging, "TaggingDirective": "REPLACE"} if tagging else {}


def size_of(area: OrderArea, rel: str) -> int:
    """Bytes of `rel` (HEAD on S3, stat locally) without downloading it."""
    store = area.store
    if isinstance(store, LocalStore):
        return Path(area.uri(rel)).stat().st_size
    return head(store.client, area.uri(rel)).size


@contextmanager
def worker_environment(work_root: str, settings: ClientSettings | None = None) -> Iterator[dict[str, str]]:
    """Env additions for a local `faceworker` subprocess (and env-driven S3 readers such as
    `facefactory.quality.workarea`) while a task runs against an s3:// work root; nothing for local roots.
    The credentials go to the child environment only: never log or XCom the yielded dict."""
    if not is_s3_uri(work_root):
        yield {}
        return
    env = worker_env(settings)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
