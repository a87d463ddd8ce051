"""SIGKILL in the middle of a multipart upload of a publish (moto server): nothing is ever visible
under the final key, and publishing again completes with the whole object."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from s3_support import make_mp4

from facefactory.operators.s3.publish import PublishOptions, publish_video

WHEN = datetime(2026, 11, 26, tzinfo=UTC)
MIB = 1024 * 1024
SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    from facefactory.operators.s3.client import s3_client
    from facefactory.operators.s3.publish import PublishOptions, publish_video

    options = PublishOptions(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    publish_video(s3_client(), Path(sys.argv[1]), sys.argv[2], "order-mp", options=options,
                  when=datetime(2026, 11, 26, tzinfo=timezone.utc))
    """
)


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_killed_mid_multipart_upload_leaves_no_object_then_rerun_completes(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "big.mp4", pad_bytes=12 * MIB)
    markers = tmp_path / "pause"
    env = {**os.environ, "FACEFACTORY_TEST_PAUSE_AT": "s3_publish_mid_upload",
           "FACEFACTORY_TEST_PAUSE_DIR": str(markers), "FACEFACTORY_TEST_PAUSE_S": "120"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(video), f"s3://{bucket}/published"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (markers.exists() and any(markers.glob("s3_publish_mid_upload-*"))):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the upload never paused"
            time.sleep(0.05)
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        digest = hashlib.sha256(video.read_bytes()).hexdigest()
        assert [u["Key"] for u in uploads] == [f"published/.incoming/order-mp/{digest}.mp4"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _keys(s3, bucket) == []  # an unfinished multipart upload is no object at all
    options = PublishOptions(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    result = publish_video(s3, video, f"s3://{bucket}/published", "order-mp", options=options, when=WHEN)
    assert _keys(s3, bucket) == [result.key, "published/2026/11/order-mp/manifest.json"]
    body = s3.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert body == video.read_bytes()
