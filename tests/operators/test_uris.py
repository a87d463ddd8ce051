"""The input allow-list: only files under FACEFACTORY_INPUT_ROOTS, no escapes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from facefactory.operators import uris


@pytest.fixture()
def roots(tmp_path: Path) -> tuple[Path, ...]:
    root = tmp_path / "inputs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "face.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    return (root,)


def test_file_uri_under_root_resolves(roots: tuple[Path, ...]) -> None:
    got = uris.parse(f"file://{roots[0]}/a/face.png", roots)
    assert got.scheme == "file" and got.path == (roots[0] / "a" / "face.png").resolve()
    assert got.suffix == ".png"
    assert uris.parse(f"{roots[0]}/a/face.png", roots).path == got.path


def test_path_outside_roots_is_refused(roots: tuple[Path, ...]) -> None:
    with pytest.raises(uris.UriError, match="outside the allowed input roots"):
        uris.parse(f"file://{roots[0].parent}/secret.txt", roots)


def test_dotdot_is_refused_even_if_it_lands_inside(roots: tuple[Path, ...]) -> None:
    with pytest.raises(uris.UriError, match=r"'\.\.'"):
        uris.parse(f"file://{roots[0]}/a/../a/face.png", roots)


def test_symlink_escape_is_refused(roots: tuple[Path, ...]) -> None:
    link = roots[0] / "a" / "link.txt"
    os.symlink(roots[0].parent / "secret.txt", link)
    with pytest.raises(uris.UriError, match="outside"):
        uris.parse(f"file://{link}", roots)


def test_symlinked_root_itself_is_allowed(tmp_path: Path, roots: tuple[Path, ...]) -> None:
    alias = tmp_path / "alias"
    os.symlink(roots[0], alias)
    assert uris.parse(f"file://{alias}/a/face.png", (alias,)).path == (roots[0] / "a" / "face.png")


def test_missing_file_and_bad_schemes(roots: tuple[Path, ...]) -> None:
    with pytest.raises(uris.UriError, match="no such file"):
        uris.parse(f"file://{roots[0]}/a/missing.png", roots)
    for bad in ("http://example.com/x.png", "relative/x.png", "file://host/x.png", "s3://B/x", "s3://bucket/../x"):
        with pytest.raises(uris.UriError):
            uris.parse(bad, roots)


def test_s3_is_accepted_syntactically(roots: tuple[Path, ...]) -> None:
    got = uris.parse("s3://my-bucket/orders/in/clip.MP4", roots)
    assert (got.scheme, got.bucket, got.key, got.suffix) == ("s3", "my-bucket", "orders/in/clip.MP4", ".mp4")
    assert got.uri == "s3://my-bucket/orders/in/clip.MP4"


def test_inputs_placeholder_expands_to_first_root() -> None:
    roots = (Path("/data/in"), Path("/other"))
    assert uris.expand_placeholders("file:///{inputs}/sample/t.mp4", roots) == "file:///data/in/sample/t.mp4"
    assert uris.expand_placeholders("/x/y.mp4", roots) == "/x/y.mp4"


@pytest.mark.parametrize("bucket", ["bucket..name", "bucket.-name", "xn--bucket", "192.168.1.10",
                                    "name-s3alias"])
def test_invalid_bucket_names_are_refused_before_a_run_and_at_ingest(bucket):
    from facefactory.operators.order_check import order_problems, refusal

    uri = f"s3://{bucket}/clip.mp4"
    with pytest.raises(uris.UriError, match="invalid S3 bucket name"):
        uris.parse(uri, ())
    order = {"order_id": "b1", "source": "file:///tmp/a.png", "target": uri}
    assert "target: invalid S3 bucket name" in refusal(order_problems(order))
    assert uris.bucket_problem("my.bucket-1") is None
