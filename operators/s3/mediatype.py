"""The published file's real media type, read from its container header (not its name).

A file renamed to .mp4 is not an MP4; CDNs and browsers trust Content-Type, so it is taken
from the ISO-BMFF `ftyp` box or the Matroska/EBML header, and anything else is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facefactory.operators.s3.errors import S3PermanentError

AUDIO_ONLY_BRANDS = {b"M4A ", b"M4B ", b"M4P "}


@dataclass(frozen=True)
class MediaType:
    content_type: str
    extension: str


def sniff(path: Path) -> MediaType:
    """Media type of a video file from its first bytes; raises for non-video content."""
    with Path(path).open("rb") as handle:
        head = handle.read(4096)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return MediaType("video/quicktime", ".mov")
        if brand in AUDIO_ONLY_BRANDS:
            raise S3PermanentError(f"{path}: audio-only MP4 (brand {brand!r}), not a video to publish")
        return MediaType("video/mp4", ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        if b"webm" in head[:64]:
            return MediaType("video/webm", ".webm")
        return MediaType("video/x-matroska", ".mkv")
    raise S3PermanentError(f"{path}: not an MP4/QuickTime/Matroska video (first bytes {head[:12]!r})")
