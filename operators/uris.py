"""Order URIs: which inputs an order may name, and where they really live.

Local inputs are accepted only under allow-listed roots so that an order (from the UI, the API
or a bulk manifest) can never make the workers read arbitrary files of the host.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>\S+)$")


class UriError(ValueError):
    """The URI is malformed or points somewhere the order may not read."""


@dataclass(frozen=True)
class OrderUri:
    """A parsed order URI: a resolved local file, or an S3 bucket/key."""

    scheme: str  # "file" or "s3"
    path: Path | None = None
    bucket: str | None = None
    key: str | None = None

    @property
    def uri(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return self.path.as_uri() if self.path else ""

    @property
    def suffix(self) -> str:
        name = self.key if self.scheme == "s3" else str(self.path)
        return PurePosixPath(name or "").suffix.lower()


def expand_placeholders(value: str, input_roots: tuple[Path, ...]) -> str:
    """Replace `{inputs}` (used by the form defaults) with the first input root."""
    root = str(input_roots[0]).lstrip("/")
    return value.replace("/{inputs}", "/" + root).replace("{inputs}", root)


def _local_path(uri: str) -> str:
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise UriError(f"{uri!r}: file:// URIs must not name a host")
        return unquote(parsed.path)
    if uri.startswith("/"):
        return uri
    raise UriError(f"{uri!r}: expected file:///absolute/path, /absolute/path or s3://bucket/key")


def bucket_problem(bucket: str) -> str | None:
    """What is wrong with an S3 bucket name the URI pattern lets through (AWS naming rules: no
    `..`, `.-` or `-.`, not an IP address, no reserved prefix or suffix), or None. Refused up
    front: S3 would answer such a name with errors that look transient and burn retries."""
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return f"invalid S3 bucket name {bucket!r} (no '..', '.-' or '-.')"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
        return f"invalid S3 bucket name {bucket!r} (not an IP address)"
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return f"invalid S3 bucket name {bucket!r} (reserved prefix or suffix)"
    return None


def parse(uri: str, input_roots: tuple[Path, ...]) -> OrderUri:
    """Validate `uri` against the allow-list; local paths are resolved (symlinks followed)."""
    uri = uri.strip()
    if uri.startswith("s3://"):
        match = S3_URI.match(uri)
        if not match or ".." in PurePosixPath(match["key"]).parts:
            raise UriError(f"{uri!r}: not a valid s3://bucket/key URI")
        if problem := bucket_problem(match["bucket"]):
            raise UriError(f"{uri!r}: {problem}")
        return OrderUri("s3", bucket=match["bucket"], key=match["key"])
    raw = _local_path(uri)
    if ".." in PurePosixPath(raw).parts:
        raise UriError(f"{uri!r}: '..' is not allowed in input paths")
    real = Path(os.path.realpath(raw))
    roots = [Path(os.path.realpath(r)) for r in input_roots]
    if not any(real == r or real.is_relative_to(r) for r in roots):
        allowed = ":".join(str(r) for r in roots)
        raise UriError(
            f"{uri!r} resolves to {real}, outside the allowed input roots ({allowed}); "
            "set FACEFACTORY_INPUT_ROOTS to allow it"
        )
    if not real.is_file():
        raise UriError(f"{uri!r}: no such file")
    return OrderUri("file", path=real)
