"""Plain helpers shared by the S3 tests (a uniquely named module: several test folders have a
conftest.py, so `from conftest import` would pick whichever was imported first)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REGION = "us-east-1"
# Distinct, recognisable test credentials, so tests can assert they never leak into logs/XCom.
KEY_ID = "AKIAFACEFACTORYTEST1"
SECRET = "ff-secret-never-logged-0123456789"


def connection_json(endpoint: str, key_id: str = KEY_ID, secret: str = SECRET, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": key_id,
            "password": secret,
            "extra": {"endpoint_url": endpoint, "region_name": REGION, **extra},
        }
    )


def make_mp4(path: Path, seconds: float = 1.0, size: str = "160x120", pad_bytes: int = 0) -> Path:
    """A real H.264 MP4 from ffmpeg's test source; `pad_bytes` appends an MP4 `free` box (valid
    ISO-BMFF that players skip) to reach multipart sizes without encoding a long video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
        check=True, timeout=120,
    )
    if pad_bytes:
        with path.open("ab") as handle:
            handle.write((pad_bytes + 8).to_bytes(4, "big") + b"free" + os.urandom(pad_bytes))
    return path
