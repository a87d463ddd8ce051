"""Chunk pieces cut from the target by stream copy at its key frames (no decode, no encode).

Why: re-encoding the whole clip into lossless pieces cost as much as the ffmpeg bound itself
(docs/engine.md "Speed"). A piece for chunk [start, end) is instead the target's own packets from
the key frame at or before `start` (`mezz_start`) up to `end` (or, when frames are reordered
(B-frames), up to the next key frame), so it decodes on its own; the swap task decodes and
discards the `start - mezz_start` lead-in frames. The lead-in is at most one GOP.

Only plain inputs take this path: CFR, even-sized, unrotated yuv420p, no discarded or corrupt
packets, and every piece is checked after the cut (packet count and first timestamp). Anything
else returns None and the caller re-encodes (edit.split), which also normalises.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from faceworker import ffmpeg, probe
from faceworker.errors import BadInput
from faceworker.lifeline import die_with_parent_preexec

BATCH = 32  # inputs per ffmpeg process (each is the same file, seeked to its piece's key frame)


@dataclass(frozen=True)
class PacketIndex:
    """The video packets of a file: display-order timestamps, cut points and reordering."""

    pts: list[int]  # sorted (display order), in `tb` units
    tb: Fraction
    start_time: float  # the container's start (ffmpeg's -ss is relative to it)
    cuts: list[int]  # display indices of key frames that start a closed GOP
    reorders: bool  # decode order != display order somewhere (B-frames)
    clean: bool  # no packet flagged discard/corrupt, every packet timed

    @property
    def frames(self) -> int:
        return len(self.pts)

    def seconds(self, frame: int) -> float:
        return float(self.pts[frame] * self.tb)


def packet_index(path: str | os.PathLike[str]) -> PacketIndex:
    """One ffprobe demux pass (no decode) over the video packets."""
    cmd = [ffmpeg.FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries",
           "packet=pts,flags:stream=time_base:format=start_time", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    ffmpeg.check_exit(proc.returncode, proc.stderr, f"probe {path}", bad_input=True)
    data = json.loads(proc.stdout or b"{}")
    tb = Fraction((data.get("streams") or [{}])[0].get("time_base", "1/1000"))
    start = float((data.get("format") or {}).get("start_time") or 0.0)
    packets = data.get("packets", [])
    clean = all(p.get("pts") is not None and not set(p.get("flags", "")) & {"D", "C"} for p in packets)
    decode_pts = [int(p["pts"]) for p in packets if p.get("pts") is not None]
    order = sorted(range(len(decode_pts)), key=decode_pts.__getitem__)
    rank = [0] * len(order)
    for display, decode in enumerate(order):
        rank[decode] = display
    cuts, seen_max = [], -1
    for d, p in enumerate(packets[:len(rank)]):
        # a key frame is a clean cut when everything decoded before it is displayed before it
        if "K" in p.get("flags", "") and rank[d] == d and seen_max == d - 1:
            cuts.append(d)
        seen_max = max(seen_max, rank[d])
    return PacketIndex(pts=sorted(decode_pts), tb=tb, start_time=start, cuts=cuts,
                       reorders=any(r != i for i, r in enumerate(rank)), clean=clean)


def plan(index: PacketIndex, chunk_frames: int) -> list[dict[str, int]] | None:
    """Chunks with the frame span [mezz_start, mezz_end) of the piece each one reads."""
    if not index.clean or not index.cuts or index.cuts[0] != 0:
        return None
    total, out = index.frames, []
    for i, start in enumerate(range(0, total, chunk_frames)):
        end = min(start + chunk_frames, total)
        lead = max(k for k in index.cuts if k <= start)
        tail = end if not index.reorders else min([k for k in index.cuts if k >= end] or [total])
        out.append({"chunk": i, "start": start, "end": end, "mezz_start": lead, "mezz_end": tail})
    return out


def _cut(src: str, index: PacketIndex, chunks: list[dict[str, int]], out: Path, logs: Path) -> None:
    """Stream-copy each chunk's piece, one ffmpeg process per BATCH pieces. Beside every piece the
    same packets go to a framecrc listing (timestamps, sizes), so the cut is checked without an
    ffprobe start-up per piece."""
    half = (index.seconds(1) - index.seconds(0)) / 2 if index.frames > 1 else 0.0
    for first in range(0, len(chunks), BATCH):
        batch = chunks[first:first + BATCH]
        args: list[str] = ["-copyts"]
        for c in batch:  # an input seek lands on the key frame at/before the time: the piece's first
            args += ["-ss", f"{index.seconds(c['mezz_start']) - index.start_time + half:.6f}", "-i", src]
        for n, c in enumerate(batch):
            dest = out / f"{c['chunk']:05d}" / "segment.mkv"
            dest.parent.mkdir(parents=True, exist_ok=True)
            count = str(c["mezz_end"] - c["mezz_start"])
            args += ["-map", f"{n}:v:0", "-c", "copy", "-frames:v", count, "-f", "matroska", str(dest),
                     "-map", f"{n}:v:0", "-c", "copy", "-frames:v", count, "-f", "framecrc",
                     str(logs / f"{c['chunk']:05d}.crc")]
        ffmpeg.run_ffmpeg(args, f"cut pieces of {src}", bad_input=True)


def _piece_ok(listing: Path, index: PacketIndex, c: dict[str, int]) -> bool:
    """The piece holds exactly frames [mezz_start, mezz_end): count and first timestamp agree."""
    tb, pts = None, []
    for line in listing.read_text().splitlines():
        if line.startswith("#tb 0:"):
            tb = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            pts.append(int(line.split(",")[2]))
    if tb is None or not pts:
        return False
    step = index.seconds(1) - index.seconds(0) if index.frames > 1 else 1.0
    return (len(pts) == c["mezz_end"] - c["mezz_start"]
            and abs(float(min(pts) * tb) - index.seconds(c["mezz_start"])) < step / 2)


def split_copy(src: str | os.PathLike[str], out_dir: str | os.PathLike[str], chunk_frames: int,
               pr: probe.Probe) -> list[dict[str, int]] | None:
    """Write `out_dir/<i:05d>/segment.mkv` by stream copy; None when the input needs the re-encode
    path (then nothing is left behind)."""
    if pr.needs_normalisation or pr.rotation or pr.pix_fmt != "yuv420p" or chunk_frames < 1:
        return None
    index = packet_index(src)
    chunks = plan(index, chunk_frames)
    if chunks is None or index.frames != pr.frames:
        return None
    out = Path(out_dir)
    pieces = [out / f"{c['chunk']:05d}" / "segment.mkv" for c in chunks]
    with tempfile.TemporaryDirectory(prefix="cut-") as logs:
        try:
            _cut(str(src), index, chunks, out, Path(logs))
            ok = all(_piece_ok(Path(logs) / f"{c['chunk']:05d}.crc", index, c) for c in chunks)
        except BadInput:
            ok = False
    if not ok:
        for p in pieces:
            p.unlink(missing_ok=True)
        return None
    return chunks
