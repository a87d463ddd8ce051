"""Width and height of a photo read from its header, before anything decodes it.

Why: a decoder allocates width x height x 3 bytes before it can say anything, so a small PNG that
declares 20000x20000 pixels (a decompression bomb) took over a minute and gigabytes of memory to be
called "no face found". Reading the few header bytes first lets the engine refuse it at once.
Only the formats the order form accepts are parsed (PNG, JPEG, WebP, BMP); anything else is left to
the decoder, which refuses what it cannot read.
"""
from __future__ import annotations

import struct

from faceworker import settings
from faceworker.errors import BadInput

#: default cap on a photo's pixels (FACEFACTORY_MAX_IMAGE_PIXELS): 50 MP is above any phone camera
DEFAULT_MAX_PIXELS = int(settings.declared("FACEFACTORY_MAX_IMAGE_PIXELS").default)


def max_pixels() -> int:
    """The deployment's cap (FACEFACTORY_MAX_IMAGE_PIXELS), default DEFAULT_MAX_PIXELS."""
    raw = settings.text("FACEFACTORY_MAX_IMAGE_PIXELS")
    try:
        value = int(raw) if raw else DEFAULT_MAX_PIXELS
    except ValueError:
        value = DEFAULT_MAX_PIXELS
    return value if value > 0 else DEFAULT_MAX_PIXELS


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    kind = data[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"BM" or len(data) < 26:
        return None
    w, h = struct.unpack("<ii", data[18:26])
    return abs(w), abs(h)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by the header, or None for a format not parsed here."""
    for parse in (_png, _jpeg, _webp, _bmp):
        size = parse(data)
        if size is not None:
            return size
    return None


def check_pixels(data: bytes, what: str, limit: int | None = None) -> tuple[int, int] | None:
    """Refuse (BadInput) a photo whose header declares more pixels than the cap; returns its size."""
    size = image_size(data)
    cap = limit if limit is not None else max_pixels()
    if size is not None and size[0] * size[1] > cap:
        raise BadInput(
            f"{what} is {size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} MP); the limit is "
            f"{cap / 1e6:.0f} MP (FACEFACTORY_MAX_IMAGE_PIXELS): send a smaller photo")
    return size
