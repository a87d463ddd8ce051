"""Local publish errors carry the retry decision, like operators/s3/errors.py does for S3:
a missing, read-only, full or forbidden destination fails the task at once (AirflowFailException,
never retried); an I/O hiccup stays retryable. Nothing partial is left at the published path."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from facefactory.operators import publish


@pytest.fixture()
def merged(tmp_path: Path) -> Path:
    out = tmp_path / "work" / "o.mp4"
    out.parent.mkdir()
    out.write_bytes(b"video" * 1000)
    return out


def test_a_file_in_the_way_fails_at_once(tmp_path: Path, merged: Path) -> None:
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "acme").write_text("a file, not a directory")
    for prefix in (tmp_path / "pub" / "acme", tmp_path / "pub" / "acme" / "deeper"):
        with pytest.raises(publish.PublishError, match="a part of the path is a file, not a directory") as info:
            publish.publish_local(merged, str(prefix), "o-1")
        assert isinstance(info.value, AirflowFailException) and "retrying will not help" in str(info.value)


@pytest.mark.parametrize("code,words", [
    (errno.EROFS, "the file system is read-only (EROFS"),
    (errno.ENOSPC, "no space left on the device (disk full) (ENOSPC"),
    (errno.EACCES, "permission denied (EACCES"),
    (errno.EDQUOT, "disk quota exceeded"),
])
def test_permanent_os_errors_fail_at_once_and_leave_nothing(
        tmp_path: Path, merged: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> None:
    """The OS refuses the write (as a read-only mount, a full disk or a forbidden directory do;
    the tests run as root, so the refusal is injected at fsync, after the bytes were written)."""
    def refuse(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(publish.os, "fsync", refuse)
    with pytest.raises(publish.PublishError) as info:
        publish.publish_local(merged, str(tmp_path / "pub"), "o-1")
    assert words in str(info.value) and isinstance(info.value, AirflowFailException)
    assert list((tmp_path / "pub").iterdir()) == []  # no temp file, nothing at the published path


def test_transient_os_errors_are_retried(tmp_path: Path, merged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def flaky(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(publish.os, "fsync", flaky)
    with pytest.raises(publish.PublishRetry, match="EIO") as info:
        publish.publish_local(merged, str(tmp_path / "pub"), "o-1")
    assert isinstance(info.value, AirflowException) and not isinstance(info.value, AirflowFailException)
    monkeypatch.undo()
    assert publish.publish_local(merged, str(tmp_path / "pub"), "o-1").endswith("/pub/o-1.mp4")


def test_missing_merged_video_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(publish.PublishError, match="merged video .* is missing"):
        publish.publish_local(tmp_path / "gone.mp4", str(tmp_path / "pub"), "o-1")


def test_missing_directories_under_a_root_are_created(tmp_path: Path, merged: Path) -> None:
    uri = publish.publish_local(merged, str(tmp_path / "pub" / "a" / "b"), "o-1")
    assert Path(uri[len("file://"):]).read_bytes() == merged.read_bytes()


def test_stale_temp_files_of_a_killed_publish_are_removed(tmp_path: Path, merged: Path) -> None:
    (tmp_path / "pub").mkdir()
    stale = tmp_path / "pub" / ".o-1.mp4.tmp-999999"
    stale.write_bytes(b"half")
    other = tmp_path / "pub" / ".o-2.mp4.tmp-999999"  # another order's: not ours to touch
    other.write_bytes(b"half")
    publish.publish_local(merged, str(tmp_path / "pub"), "o-1")
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == [".o-2.mp4.tmp-999999", "o-1.mp4"]


def test_s3_access_denied_fails_at_once_after_one_request(tmp_path: Path) -> None:
    """S3 side (operators/s3/errors.py): AccessDenied is permanent, sent once, never retried."""
    import boto3
    from botocore.config import Config
    from botocore.stub import Stubber

    from facefactory.operators.s3.errors import S3AccessDeniedError
    from facefactory.operators.s3.publish import publish_video

    video = tmp_path / "o.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64)
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
                          config=Config(retries={"max_attempts": 1}))
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(S3AccessDeniedError, match="access denied") as info:
            publish_video(client, video, "s3://ff-delivery/videos", "o-1")
        stub.assert_no_pending_responses()
    assert isinstance(info.value, AirflowFailException) and "retrying will not help" in str(info.value)
