"""Just enough ISO-BMFF (MP4/MOV) box reading to take a video track's frame count from its sample
table, without starting ffprobe."""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator


def _box_header(header: bytes, remaining: int) -> tuple[bytes, int, int] | None:
    """(type, header length, box size) of the ISO-BMFF box whose first bytes are `header`, with
    `remaining` bytes left in its container (size 1 = 64-bit size, 0 = to the end); None when
    the header is cut short or the size does not fit."""
    if len(header) < 8:
        return None
    size, kind = struct.unpack_from(">I4s", header)
    head = 8
    if size == 1:
        if len(header) < 16:
            return None
        size, head = struct.unpack_from(">Q", header, 8)[0], 16
    elif size == 0:
        size = remaining
    return (kind, head, size) if head <= size <= remaining else None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    pos = start
    while (box := _box_header(data[pos:pos + 16], end - pos)) is not None:
        kind, head, size = box
        yield kind, pos + head, pos + size
        pos += size


def _child(data: bytes, span: tuple[int, int] | None, *path: bytes) -> tuple[int, int] | None:
    """Payload span of the first box along `path` (types, outermost first) inside `span`."""
    for kind in path:
        if span is None:
            return None
        span = next(((a, b) for k, a, b in _boxes(data, *span) if k == kind), None)
    return span


def mp4_video_samples(path: str | os.PathLike[str]) -> int | None:
    """Sample (= frame) count of the first video track of an MP4/MOV, read from its sample table
    (`stsz`). None when there is none (not ISO-BMFF, fragmented), so the caller can fall back to
    ffprobe.

    Why: the swap pass checks every segment's frame count; two ffprobe runs cost ~130 ms a chunk
    (most of it ffprobe's start-up), reading a few kilobytes of `stsz` costs well under 1 ms."""
    with open(path, "rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        pos = 0
        while True:  # top level: ftyp, moov, mdat ... (only box headers are read until moov)
            fh.seek(pos)
            box = _box_header(fh.read(16), total - pos)
            if box is None:
                return None
            kind, head, size = box
            if kind == b"moov":
                fh.seek(pos)
                moov = fh.read(size)
                break
            pos += size
    for kind, a, b in _boxes(moov, head, len(moov)):
        if kind != b"trak":
            continue
        mdia = _child(moov, (a, b), b"mdia")
        hdlr = _child(moov, mdia, b"hdlr")
        if hdlr is None or hdlr[1] - hdlr[0] < 12 or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
            continue
        stbl = _child(moov, mdia, b"minf", b"stbl")
        sizes = _child(moov, stbl, b"stsz") or _child(moov, stbl, b"stz2")
        return struct.unpack_from(">I", moov, sizes[0] + 8)[0] if sizes and sizes[1] - sizes[0] >= 12 else None
    return None
