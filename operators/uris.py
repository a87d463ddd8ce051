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


# -- publish roots --------------------------------------------------------------------------------
# An order's `publish_to` names where the finished video is written. Without a limit any order
# could make the workers write wherever they may (another customer's folder, /etc, a bucket of
# someone else): so it must lie under one of the deployment's publish roots
# (FACEFACTORY_PUBLISH_ROOTS, facefactory.settings.publish_roots).

PUBLISH_RULE = ("use a file:// path under a publish root or s3://bucket/prefix in a publish bucket "
                "(FACEFACTORY_PUBLISH_ROOTS)")


def _is_internal_host(host: str) -> str | None:
    """'loopback' / 'link-local' / 'private' when `host` names such an address, else None."""
    import ipaddress

    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private or ip.is_unspecified:
        return "private"
    return None


def _web_url_problem(value: str) -> str:
    host = urlparse(value).hostname or ""
    kind = _is_internal_host(host)
    where = f"; {host} is a {kind} address" if kind else ""
    return f"web URLs are not publish targets{where}; {PUBLISH_RULE}; got {value!r}"


def _s3_publish_problem(value: str, roots: tuple[str, ...] | None) -> str | None:
    from facefactory.operators.s3.errors import S3UriError
    from facefactory.operators.s3.uris import parse_s3_uri

    try:
        target = parse_s3_uri(value, require_key=False, prefix=True)
    except S3UriError as exc:
        return str(exc)
    if roots is None:
        return None
    allowed: list[str] = []
    for root in roots:
        if not root.startswith("s3://"):
            continue
        bucket, _, prefix = root[len("s3://"):].partition("/")
        prefix = prefix.strip("/")
        allowed.append(f"s3://{bucket}/{prefix}".rstrip("/"))
        if target.bucket == bucket and (not prefix or target.key == prefix
                                         or target.key.startswith(prefix + "/")):
            return None
    shown = ", ".join(allowed) or "none configured"
    return (f"{value!r} is outside the publish buckets ({shown}); set FACEFACTORY_PUBLISH_ROOTS "
            "to allow it")


def _local_publish_problem(value: str, roots: tuple[str, ...] | None) -> str | None:
    try:
        raw = _local_path(value)
    except UriError:
        return f"{PUBLISH_RULE}; got {value!r}"
    if ".." in PurePosixPath(raw).parts:
        return f"'..' is not allowed in a publish path; got {value!r}"
    if roots is None:
        return None
    real = Path(os.path.realpath(raw))  # follows every symlink that exists on the way
    local_roots = [Path(os.path.realpath(os.path.expanduser(_local_path(r) if r.startswith("file://") else r)))
                   for r in roots if not r.startswith("s3://")]
    if any(real == r or real.is_relative_to(r) for r in local_roots):
        return None
    shown = ", ".join(str(r) for r in local_roots) or "none configured"
    return (f"{value!r} resolves to {real}, outside the publish roots ({shown}); set "
            "FACEFACTORY_PUBLISH_ROOTS to allow it")


def publish_problem(value: str, roots: tuple[str, ...] | None) -> str | None:
    """Why `value` may not be an order's publish prefix (None = it lies under a publish root).
    `roots=None` checks the form only (a client that does not know the server's roots).

    Local paths are resolved with symlinks followed, so a link inside a root that points out of
    it is refused like the path it points to; '..' is refused outright."""
    text = value.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https", "ftp", "ws", "wss"):
        return _web_url_problem(text)
    if scheme == "s3":
        return _s3_publish_problem(text, roots)
    if scheme not in ("", "file"):
        return f"{PUBLISH_RULE}; got {text!r}"
    return _local_publish_problem(text, roots)


def check_publish_to(value: str, roots: tuple[str, ...]) -> str:
    """`value` when it may be published to; UriError with the reason otherwise."""
    problem = publish_problem(value, roots)
    if problem:
        raise UriError(problem)
    return value.strip()
