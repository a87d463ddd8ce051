"""s3:// URI validation: every unsafe or malformed form is refused with a message naming it."""
from __future__ import annotations

import pytest

from facefactory.operators.s3.errors import S3PermanentError, S3UriError
from facefactory.operators.s3.uris import S3Uri, parse_s3_uri


def test_parses_bucket_and_key() -> None:
    uri = parse_s3_uri("s3://orders-bucket/in/o1/target.mp4")
    assert uri == S3Uri("orders-bucket", "in/o1/target.mp4")
    assert str(uri) == "s3://orders-bucket/in/o1/target.mp4"
    assert uri.join("a", "b.txt").key == "in/o1/target.mp4/a/b.txt"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("s3://bucket-a/a/../b.mp4", "'..' segment"),
        ("s3://bucket-a/../etc/passwd", "'..' segment"),
        ("s3://bucket-a/a//b.mp4", "empty path segment"),
        ("s3://bucket-a//b.mp4", "empty path segment"),
        ("s3://bucket-a/a/b/", "empty path segment"),
        ("s3://bucket-a/a/./b.mp4", "'.' segment"),
        ("s3://bucket-a/", "missing object key"),
        ("s3://bucket-a", "missing object key"),
        ("s3:///key.mp4", "no bucket name"),
        ("s3://Bucket_Upper/key", "invalid S3 bucket name"),
        ("s3://ab/key", "invalid S3 bucket name"),
        ("s3://a..b/key", "adjacent"),
        ("s3://192.168.1.1/key", "IP address"),
        ("s3://xn--bucket/key", "reserved"),
        ("s3://bucket-a/key?x=1", "query strings"),
        ("s3://bucket-a/a\tb", "control character"),
        ("s3://bucket-a/" + "k" * 1025, "longer than 1024"),
        ("http://bucket-a/key", "not an s3:// URI"),
    ],
)
def test_bad_uris_are_refused_clearly(uri: str, fragment: str) -> None:
    with pytest.raises(S3UriError) as err:
        parse_s3_uri(uri)
    assert fragment in str(err.value)
    assert isinstance(err.value, S3PermanentError)  # a bad URI never deserves a retry


def test_prefix_forms() -> None:
    assert parse_s3_uri("s3://bucket-a/published/", prefix=True, require_key=False).key == "published"
    assert parse_s3_uri("s3://bucket-a", prefix=True, require_key=False).key == ""
    with pytest.raises(S3UriError, match="empty path segment"):
        parse_s3_uri("s3://bucket-a/pub//x/", prefix=True, require_key=False)


def test_join_refuses_traversal() -> None:
    base = parse_s3_uri("s3://bucket-a/orders")
    with pytest.raises(S3UriError, match=r"'\.\.'"):
        base.join("..", "other")
    with pytest.raises(S3UriError, match="empty path segment"):
        base.join("", "x")
