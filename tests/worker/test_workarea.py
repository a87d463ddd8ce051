"""Work area: path validation, local atomic writes, file:// roots, S3 against a real moto server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from faceworker.errors import BadInput, TransientError
from faceworker.workarea import LocalStore, S3Store, WorkArea, open_store


@pytest.mark.parametrize("rel", ["", "a//b", "../x", "input/../../etc/passwd", "./a", "a/."])
def test_bad_relative_paths_are_rejected(tmp_path: Path, rel: str) -> None:
    area = WorkArea(tmp_path).order("o1")
    with pytest.raises(BadInput):
        area.write_bytes(rel, b"x")


@pytest.mark.parametrize("order", ["", "..", "a/b", "../o", "o 1", "-x"])
def test_bad_order_ids_are_rejected(tmp_path: Path, order: str) -> None:
    with pytest.raises(BadInput, match="order id"):
        WorkArea(tmp_path).order(order)


def test_local_layout_and_atomic_write(tmp_path: Path) -> None:
    area = WorkArea(tmp_path).order("o-1")
    area.write_json("swapped/00003/done.json", {"a": 1})
    assert (tmp_path / "orders/o-1/swapped/00003/done.json").exists()
    assert area.read_json("swapped/00003/done.json") == {"a": 1}
    assert area.uri(area.swapped_rel(3, "segment.mp4")) == str(tmp_path / "orders/o-1/swapped/00003/segment.mp4")
    assert area.chunk_rel(12) == "chunks/00012/segment.mkv"
    # no temp files left beside the target
    assert os.listdir(tmp_path / "orders/o-1/swapped/00003") == ["done.json"]
    assert area.list("swapped") == ["swapped/00003/done.json"]


def test_local_write_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    area = WorkArea(tmp_path).order("o1")
    area.write_bytes("input/x.bin", b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        area.write_bytes("input/x.bin", b"new")
    monkeypatch.undo()
    assert area.read_bytes("input/x.bin") == b"old"
    assert sorted(os.listdir(tmp_path / "orders/o1/input")) == ["x.bin"]


def test_file_uri_root_and_missing(tmp_path: Path) -> None:
    area = WorkArea(f"file://{tmp_path}").order("o1")
    area.write_bytes("input/source.png", b"png")
    assert area.find_input("source") == "input/source.png"
    assert area.exists("input/source.png") and not area.exists("input/target.mp4")
    with pytest.raises(BadInput, match="missing"):
        area.read_bytes("input/target.mp4")
    with pytest.raises(BadInput, match="no input/target"):
        area.find_input("target")
    staged = area.stage("input/source.png", tmp_path / "tmp")
    assert staged == tmp_path / "orders/o1/input/source.png"  # local roots are used in place


def test_open_store_schemes(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket" and s3.prefix == "some/prefix"
    assert s3.uri("orders/o1/x") == "s3://bucket/some/prefix/orders/o1/x"
    with pytest.raises(BadInput, match="scheme"):
        open_store("gs://bucket/x")
    with pytest.raises(BadInput, match="host"):
        open_store("file://otherhost/x")


def test_s3_roundtrip(s3_bucket: str, tmp_path: Path) -> None:
    area = WorkArea(f"s3://{s3_bucket}/prefix").order("o1")
    assert not area.exists("input/source.png")
    area.write_bytes("input/source.png", b"\x89PNG fake")
    area.write_json("chunks/chunks.json", [{"chunk": 0, "start": 0, "end": 5}])
    assert area.exists("input/source.png")
    assert area.read_bytes("input/source.png") == b"\x89PNG fake"
    assert area.read_json("chunks/chunks.json")[0]["end"] == 5
    assert area.list("input") == ["input/source.png"]
    assert area.find_input("source") == "input/source.png"
    assert area.uri("input/source.png") == f"s3://{s3_bucket}/prefix/orders/o1/input/source.png"
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(300_000))
    area.upload_from(local, "swapped/00000/segment.mp4")
    staged = area.stage("swapped/00000/segment.mp4", tmp_path / "stage")
    assert staged.read_bytes() == local.read_bytes() and staged.parent != local.parent
    with pytest.raises(BadInput, match="missing"):
        area.read_bytes("input/nope.png")


def _race(area: object, rel: str, n: int = 8) -> list[bool]:
    """n threads creating `rel` at once, each with its own content; which of them created it."""
    import threading

    start = threading.Barrier(n)
    won: list[bool] = [False] * n

    def go(i: int) -> None:
        start.wait()
        won[i] = area.create_json(rel, {"run_id": f"run-{i}"})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


@pytest.mark.parametrize("where", ["local", "s3"])
def test_create_if_absent_has_exactly_one_winner(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = str(tmp_path) if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/p"
    area = WorkArea(root).order("o-race")
    for attempt in range(3):
        rel = f"input/claim{attempt}.json"
        won = _race(area, rel)
        assert won.count(True) == 1, won
        # the file holds the winner's complete content, and a later create does not replace it
        assert area.read_json(rel) == {"run_id": f"run-{won.index(True)}"}
        assert not area.create_json(rel, {"run_id": "late"})
        assert area.read_json(rel)["run_id"] != "late"
    if where == "local":
        assert not [p for p in (tmp_path / "orders/o-race/input").iterdir() if p.name.startswith(".")]


def test_s3_intermediates_carry_the_lifecycle_tag(s3_bucket: str, tmp_path: Path) -> None:
    from faceworker.workarea import make_s3_client

    area = WorkArea(f"s3://{s3_bucket}/p").order("o2")
    area.write_json("chunks/chunks.json", [])
    local = tmp_path / "seg.mp4"
    local.write_bytes(b"x" * 1000)
    area.upload_from(local, "swapped/00000/segment.mp4")
    area.write_json("input/probe.json", {})
    client = make_s3_client()

    def tags(key: str) -> dict[str, str]:
        got = client.get_object_tagging(Bucket=s3_bucket, Key=f"p/orders/o2/{key}")["TagSet"]
        return {t["Key"]: t["Value"] for t in got}

    assert tags("chunks/chunks.json") == {"facefactory-class": "intermediate"}
    assert tags("swapped/00000/segment.mp4") == {"facefactory-class": "intermediate"}
    assert tags("input/probe.json") == {}


def test_s3_missing_bucket_is_bad_input(s3_bucket: str) -> None:
    area = WorkArea("s3://no-such-bucket-here/x").order("o1")
    with pytest.raises(BadInput, match="bucket"):
        area.read_bytes("input/source.png")


def test_s3_unreachable_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FACEFACTORY_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    area = WorkArea("s3://bucket/x").order("o1")
    from botocore.config import Config

    import faceworker.workarea as wa

    def quick_client():  # one attempt, short timeouts: the test is about the mapping, not the waiting
        import boto3

        return boto3.client("s3", endpoint_url=os.environ["FACEFACTORY_S3_ENDPOINT_URL"],
                            config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1))

    monkeypatch.setattr(wa, "make_s3_client", quick_client)
    with pytest.raises(TransientError, match="connection"):
        area.read_bytes("input/source.png")
