"""s3:// URIs: parse, validate and join, refusing anything ambiguous.

S3 keys are opaque strings, so `a//b`, `a/./b` and `a/../b` are distinct objects on S3 but the
same path on a file system (and in most CDNs): accepting them would let an order read or
overwrite objects outside its prefix. Every rejection says what is wrong and where.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from facefactory.operators.s3.errors import S3UriError
from faceworker.workarea import split_s3_uri

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class S3Uri:
    """A validated bucket + key (key may be "" for a bucket-level prefix)."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def uri(self) -> str:
        return str(self)

    def join(self, *parts: str) -> S3Uri:
        """Append path segments; the result is validated like any key (no '', '.', '..')."""
        key = "/".join([self.key, *map(str, parts)] if self.key else map(str, parts))
        return S3Uri(self.bucket, validate_key(key, self.bucket))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def validate_bucket(bucket: str) -> str:
    """AWS bucket naming rules (the subset that matters for path-style and virtual hosts)."""
    if not bucket:
        raise S3UriError("s3 URI has no bucket name (expected s3://bucket/key)")
    if not _BUCKET.match(bucket):
        raise S3UriError(
            f"invalid S3 bucket name {bucket!r}: 3-63 characters, lower-case letters, digits, "
            "'.' and '-', starting and ending with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise S3UriError(f"invalid S3 bucket name {bucket!r}: adjacent '.'/'-' characters")
    if _IPV4.match(bucket):
        raise S3UriError(f"invalid S3 bucket name {bucket!r}: must not look like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise S3UriError(f"invalid S3 bucket name {bucket!r}: reserved prefix or suffix")
    return bucket


def validate_key(key: str, bucket: str = "?", *, allow_empty: bool = False, prefix: bool = False) -> str:
    """Refuse empty segments, '.'/'..' segments, control characters and over-long keys."""
    where = f"s3://{bucket}/{key}"
    if key == "":
        if allow_empty:
            return key
        raise S3UriError(f"{where}: missing object key (expected s3://bucket/key)")
    if key.startswith("/"):
        raise S3UriError(f"{where}: key starts with '/', i.e. an empty path segment")
    body = key[:-1] if prefix and key.endswith("/") else key
    segments = body.split("/")
    if any(seg == "" for seg in segments):
        raise S3UriError(f"{where}: empty path segment ('//' or trailing '/') in the key")
    if any(seg == ".." for seg in segments):
        raise S3UriError(f"{where}: '..' segment in the key; path traversal is refused")
    if any(seg == "." for seg in segments):
        raise S3UriError(f"{where}: '.' segment in the key is ambiguous; refused")
    if any(ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in key):
        raise S3UriError(f"{where}: control character or backslash in the key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3UriError(f"{where}: key longer than {MAX_KEY_BYTES} bytes")
    return key


def is_s3_uri(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith("s3://")


def parse_s3_uri(uri: str, *, require_key: bool = True, prefix: bool = False) -> S3Uri:
    """Parse `s3://bucket/key`. `prefix=True` accepts a trailing '/' (a folder-like prefix)
    and, with `require_key=False`, a bare bucket."""
    if not isinstance(uri, str):
        raise S3UriError(f"expected an s3:// URI string, got {type(uri).__name__}")
    text = uri.strip()
    if not text.startswith("s3://"):
        raise S3UriError(f"{uri!r}: not an s3:// URI")
    if any(ch in text for ch in "?#"):
        raise S3UriError(f"{uri!r}: query strings and fragments are not allowed in s3:// URIs")
    bucket, key = split_s3_uri(text)
    validate_bucket(bucket)
    if prefix and key.endswith("/"):
        validate_key(key, bucket, allow_empty=not require_key, prefix=True)
        key = key.rstrip("/")
    else:
        validate_key(key, bucket, allow_empty=not require_key)
    return S3Uri(bucket, key)
