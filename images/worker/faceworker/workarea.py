"""The order work area (docs/contracts.md layout) on a local disk or in S3.

Why not fsspec/s3fs: boto3 is already a dependency, is what the Airflow amazon provider uses, and its
standard retry mode plus a plain endpoint override (moto, MinIO) is all the worker needs. Workers stage
S3 objects into a local temp dir, run ffmpeg on local files, and upload results (done.json last).
Local writes are atomic (temp file + rename) so a killed worker never leaves a half file that looks done.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from faceworker import settings
from faceworker.errors import BadInput, TransientError

# S3 lifecycle filters cannot wildcard the order id, so the rule that expires intermediates
# (chunks/, swapped/) matches this object tag, set on every such upload.
INTERMEDIATE_TAG_KEY = "facefactory-class"
INTERMEDIATE_TAG_VALUE = "intermediate"
INTERMEDIATE_KEY = re.compile(r"(^|/)orders/[^/]+/(chunks|swapped)/")


def intermediate_tagging(key: str) -> str | None:
    """The S3 `Tagging` value for an object at `key` (None for keys to keep)."""
    if INTERMEDIATE_KEY.search(key):
        return f"{INTERMEDIATE_TAG_KEY}={INTERMEDIATE_TAG_VALUE}"
    return None


# The one order-id rule (docs/triggering.md promises 128 characters); the order schema uses it too.
ORDER_ID_MAX = 128
ORDER_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{ORDER_ID_MAX - 1}}}$"
_ORDER_ID = re.compile(ORDER_ID_PATTERN)


# Files of the layout (docs/contracts.md, "Work area") that more than one side names.
SOURCE_EMBEDDING = "input/source_embedding.npy"
REFERENCE_EMBEDDING = "input/reference_embedding.npy"
VALIDATION = "quality/validation.json"


def check_rel(rel: str) -> str:
    """Validate a relative key: no empty, '.' or '..' segments, no leading slash."""
    if not isinstance(rel, str) or not rel:
        raise BadInput("empty path in the work area")
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadInput(f"bad path in the work area: {rel!r} (empty, '.' or '..' segment)")
    return rel


def check_order_id(order_id: str) -> str:
    if not isinstance(order_id, str) or not _ORDER_ID.match(order_id) or ".." in order_id:
        raise BadInput(f"bad order id {order_id!r}: use letters, digits, '.', '_' or '-' (max {ORDER_ID_MAX})")
    return order_id


class Store(Protocol):
    """Key/value view of a root (local dir or S3 prefix); keys are '/'-separated and pre-validated."""

    def uri(self, key: str) -> str: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def create_bytes(self, key: str, data: bytes) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def download_to(self, key: str, local: Path) -> Path: ...
    def upload_from(self, local: Path, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def local_path(self, key: str) -> Path | None: ...


class LocalStore:
    """A directory on the local disk (also `file://`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BadInput(f"missing in the work area: {self.uri(key)}") from exc

    @staticmethod
    def _complete_temp(dest: Path, data: bytes) -> str:
        """A synced temp file holding `data` beside `dest` (hidden: list() skips dot files), so
        `dest` only ever appears whole."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Atomic replace (`content_type` only matters to object stores)."""
        dest = self._path(key)
        tmp = self._complete_temp(dest, data)
        try:
            os.replace(tmp, dest)
        except BaseException:
            _unlink(tmp)
            raise

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist yet, atomically (a hard link of a complete temp
        file): True when this call created it, False when someone else's was there first."""
        dest = self._path(key)
        tmp = self._complete_temp(dest, data)
        try:
            os.link(tmp, dest)
            return True
        except FileExistsError:
            return False
        finally:
            _unlink(tmp)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def download_to(self, key: str, local: Path) -> Path:
        src = self._path(key)
        if not src.exists():
            raise BadInput(f"missing in the work area: {src}")
        local = Path(local)
        if local.exists() and os.path.samefile(src, local):
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local)
        return local

    def upload_from(self, local: Path, key: str) -> None:
        dest = self._path(key)
        if dest.exists() and os.path.samefile(local, dest):
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
        except BaseException:
            _unlink(tmp)
            raise

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)).replace(os.sep, "/")
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class S3Store:
    """`s3://bucket/prefix` through boto3 (standard retry mode; endpoint from the environment)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise BadInput("s3 URI without a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def local_path(self, key: str) -> Path | None:
        return None

    def read_bytes(self, key: str) -> bytes:
        with _s3_errors(self.uri(key)):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def _put(self, key: str, data: bytes, content_type: str | None = None, **conditions: str) -> None:
        """PutObject with the lifecycle tag of intermediate objects (and any conditional headers)."""
        extra = {"Tagging": tag} if (tag := intermediate_tagging(self._key(key))) else {}
        if content_type:
            extra["ContentType"] = content_type
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra, **conditions)

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """PutObject; `content_type` is what a browser gets through a presigned URL (reports)."""
        with _s3_errors(self.uri(key)):
            self._put(key, data, content_type)

    def create_bytes(self, key: str, data: bytes) -> bool:
        """PutObject with `If-None-Match: *` (S3 conditional writes): True when this call created
        the object, False when it already existed (412). A 409 (another conditional write to the
        same key in flight) is transient: the retry then sees the winner's object."""
        from botocore.exceptions import ClientError

        uri = self.uri(key)
        try:
            with _s3_errors(uri, passthrough=True):
                self._put(key, data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "PreconditionFailed" or status == 412:
                return False
            if code == "ConditionalRequestConflict" or status == 409:
                raise TransientError(f"S3 conditional write conflict on {uri}; retry") from exc
            raise _translate_client_error(exc, uri) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            with _s3_errors(self.uri(key), passthrough=True):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _translate_client_error(exc, self.uri(key)) from exc

    def download_to(self, key: str, local: Path) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        with _s3_errors(self.uri(key)):
            self.client.download_file(self.bucket, self._key(key), str(local))
        return local

    def upload_from(self, local: Path, key: str) -> None:
        with _s3_errors(self.uri(key)):
            extra = {"Tagging": tag} if (tag := intermediate_tagging(self._key(key))) else None
            self.client.upload_file(str(local), self.bucket, self._key(key), ExtraArgs=extra)

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[str] = []
        with _s3_errors(self.uri(prefix)):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(out)


def make_s3_client() -> Any:
    """boto3 S3 client honouring FACEFACTORY_S3_ENDPOINT_URL / AWS_ENDPOINT_URL, standard retries."""
    import boto3
    from botocore.config import Config

    endpoint = settings.raw("FACEFACTORY_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
    cfg = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def _translate_client_error(exc: Exception, uri: str) -> Exception:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    status = int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in ("404", "NoSuchKey", "NotFound"):
        return BadInput(f"missing in the work area: {uri}")
    if code in ("NoSuchBucket",):
        return BadInput(f"bucket does not exist: {uri}")
    if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError", "ServiceUnavailable"):
        return TransientError(f"S3 {code or status} on {uri}")
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return BadInput(f"S3 access denied ({code}) on {uri}")
    return exc


@contextmanager
def _s3_errors(uri: str, passthrough: bool = False) -> Iterator[None]:
    """Map botocore errors: connection problems -> TransientError, 404 -> BadInput."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        if passthrough:
            raise
        raise _translate_client_error(exc, uri) from exc
    except (EndpointConnectionError, BotoConnectionError, ReadTimeoutError) as exc:
        raise TransientError(f"S3 connection problem on {uri}: {exc}") from exc
    except BotoCoreError as exc:
        if "Could not connect" in str(exc) or "timed out" in str(exc).lower():
            raise TransientError(f"S3 connection problem on {uri}: {exc}") from exc
        raise


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`: the one place an s3:// URI is taken apart (the Airflow
    side's `facefactory.operators.s3.uris.parse_s3_uri` validates the parts on top of this)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BadInput(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def open_store(root: str) -> Store:
    """Parse a work root: local path, `file://` URI or `s3://bucket/prefix`."""
    if not root:
        raise BadInput("empty work area root")
    if root.startswith("s3://"):
        return S3Store(*split_s3_uri(root))
    parsed = urlparse(root)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise BadInput(f"file:// URI with a host is not supported: {root}")
        return LocalStore(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise BadInput(f"unsupported work area URI scheme {parsed.scheme!r}: {root}")
    return LocalStore(root)


def open_object(uri: str) -> tuple[Store, str]:
    """The store holding the single object at `uri` (local path, `file://` or `s3://` URI) and its
    key there: for readers that get whole-object URIs (quality's gate and report)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        return S3Store(bucket), key
    parent, _, name = uri.rstrip("/").rpartition("/")
    return open_store(parent or ("/" if uri.startswith("/") else ".")), name


class OrderArea:
    """One order's prefix `<root>/orders/<order_id>/` with the contract's file names as helpers."""

    def __init__(self, store: Store, order_id: str) -> None:
        self.store = store
        self.order_id = check_order_id(order_id)
        self.prefix = f"orders/{self.order_id}"

    # keys -------------------------------------------------------------------
    def key(self, rel: str) -> str:
        return f"{self.prefix}/{check_rel(rel)}"

    @property
    def root_uri(self) -> str:
        """The order's own prefix, `<work root>/orders/<order_id>` (what quality's readers take)."""
        return self.store.uri(self.prefix)

    def uri(self, rel: str) -> str:
        return self.store.uri(self.key(rel))

    @staticmethod
    def chunk_rel(chunk: int, name: str = "segment.mkv") -> str:
        return f"chunks/{int(chunk):05d}/{name}"

    @staticmethod
    def swapped_rel(chunk: int, name: str) -> str:
        return f"swapped/{int(chunk):05d}/{name}"

    # I/O --------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes:
        return self.store.read_bytes(self.key(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.store.write_bytes(self.key(rel), data)

    def read_json(self, rel: str) -> Any:
        try:
            return json.loads(self.read_bytes(rel))
        except json.JSONDecodeError as exc:
            raise BadInput(f"not valid JSON: {self.uri(rel)}") from exc

    def write_json(self, rel: str, data: Any) -> None:
        self.write_bytes(rel, (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode())

    def create_json(self, rel: str, data: Any) -> bool:
        """Write `rel` only if absent (atomic on both stores); True when this call created it."""
        return self.store.create_bytes(self.key(rel), (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode())

    def exists(self, rel: str) -> bool:
        return self.store.exists(self.key(rel))

    def download_to(self, rel: str, local: str | os.PathLike[str]) -> Path:
        return self.store.download_to(self.key(rel), Path(local))

    def upload_from(self, local: str | os.PathLike[str], rel: str) -> None:
        self.store.upload_from(Path(local), self.key(rel))

    def list(self, rel_prefix: str) -> list[str]:
        """Relative names (to the order prefix) of the files under `rel_prefix`."""
        strip = len(self.prefix) + 1
        return [k[strip:] for k in self.store.list(self.key(rel_prefix))]

    def find_input(self, stem: str) -> str:
        """The rel path of `input/<stem>.<ext>` (e.g. source.png); BadInput when absent or ambiguous."""
        hits = [r for r in self.list("input") if r.rsplit("/", 1)[-1].rsplit(".", 1)[0] == stem]
        if not hits:
            raise BadInput(f"no input/{stem}.* in {self.uri('input')}")
        if len(hits) > 1:
            raise BadInput(f"several input/{stem}.* in {self.uri('input')}: {hits}")
        return hits[0]

    def local_path(self, rel: str) -> Path | None:
        return self.store.local_path(self.key(rel))

    def stage(self, rel: str, tmpdir: str | os.PathLike[str]) -> Path:
        """A local file with the content of `rel`: the file itself for a local root, else a download."""
        direct = self.local_path(rel)
        if direct is not None:
            if not direct.exists():
                raise BadInput(f"missing in the work area: {direct}")
            return direct
        return self.download_to(rel, Path(tmpdir) / rel)

    def output_path(self, rel: str, tmpdir: str | os.PathLike[str]) -> Path:
        """Where to write `rel` locally before `publish`: a temp file (atomically renamed/uploaded later)."""
        path = Path(tmpdir) / "out" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, local: str | os.PathLike[str], rel: str) -> str:
        self.upload_from(local, rel)
        return self.uri(rel)


class WorkArea:
    """The work root (FACEFACTORY_WORK_ROOT): `WorkArea(root).order(order_id)`."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        root = str(root) if root else settings.raw("FACEFACTORY_WORK_ROOT") or ""
        if not root:
            home = settings.raw("FACEFACTORY_HOME")
            if not home:
                raise BadInput("no work area: pass --work or set FACEFACTORY_WORK_ROOT")
            root = os.path.join(home, "work")
        self.root = root
        self.store = open_store(root)

    def order(self, order_id: str) -> OrderArea:
        return OrderArea(self.store, order_id)


@contextmanager
def scratch(prefix: str = "faceworker-") -> Iterator[Path]:
    """A local temp dir for staged inputs and outputs; removed afterwards."""
    base = settings.raw("FACEFACTORY_SCRATCH") or None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as d:
        yield Path(d)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
