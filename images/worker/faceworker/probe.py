"""What a video holds, read with ffprobe: the `Probe` record, exact frame counts, VFR detection
and the checks that refuse a target before any work (not a video, a still image, truncated).

Rotation metadata is applied: `Probe.width`/`height` are the displayed size (see docs/engine.md).
"""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from faceworker.errors import BadInput
from faceworker.ffmpeg import FFPROBE, check_exit
from faceworker.lifeline import die_with_parent_preexec
from faceworker.mp4boxes import mp4_video_samples

STANDARD_RATES = [
    Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
    Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(100), Fraction(120),
]


@dataclass
class Probe:
    """What the engine needs to know about a video; `frames` is exact (packets counted)."""

    path: str
    width: int  # displayed width (rotation applied)
    height: int
    fps: Fraction  # CFR rate (for VFR: the rate it will be normalised to)
    frames: int
    duration: float  # seconds, video stream
    pix_fmt: str
    codec: str
    rotation: int = 0
    is_vfr: bool = False
    avg_fps: Fraction | None = None
    audio: list[dict[str, Any]] = field(default_factory=list)
    container_frames: int | None = None  # what the container header claimed (may lie)

    @property
    def odd_size(self) -> bool:
        return self.width % 2 == 1 or self.height % 2 == 1

    @property
    def needs_normalisation(self) -> bool:
        return self.is_vfr or self.odd_size

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        data["fps_float"] = float(self.fps)
        data["avg_fps"] = f"{self.avg_fps.numerator}/{self.avg_fps.denominator}" if self.avg_fps else None
        data["odd_size"] = self.odd_size
        data["needs_normalisation"] = self.needs_normalisation
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["fps"] = Fraction(str(data["fps"]))
        kwargs["avg_fps"] = Fraction(str(data["avg_fps"])) if data.get("avg_fps") else None
        return cls(**kwargs)


def _ffmpeg_reason(stderr: bytes, path: str) -> str:
    """ffmpeg's complaint as a person reads it: its last lines without the `[demuxer @ 0x…]` tags
    (addresses differ per run) and without the path, which the caller names already."""
    lines = []
    for line in stderr.decode("utf-8", "replace").strip().splitlines()[-3:]:
        line = re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", line.strip())
        line = line.replace(f"{path}: ", "").strip()
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines) or "ffprobe failed"


def _ffprobe_json(args: Sequence[str], path: str) -> dict[str, Any]:
    cmd = [FFPROBE, "-v", "error", "-of", "json", *args, path]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    try:
        check_exit(proc.returncode, proc.stderr, f"probe {path}", bad_input=True)
    except BadInput as exc:
        raise BadInput(f"not a readable video: {path} ({_ffmpeg_reason(proc.stderr, path)})") from exc
    try:
        return json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise BadInput(f"probe {path}: ffprobe output is not JSON") from exc


def _fraction(text: str | None) -> Fraction | None:
    if not text or text in ("0/0", "0"):
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def nearest_standard_rate(rate: Fraction) -> Fraction:
    """The CFR rate a VFR clip is normalised to: the standard rate closest to its average rate."""
    return min(STANDARD_RATES, key=lambda r: abs(float(r) - float(rate)))


def _rotation(stream: dict[str, Any]) -> int:
    rot = 0
    tags = stream.get("tags") or {}
    if "rotate" in tags:
        try:
            rot = int(float(tags["rotate"]))
        except ValueError:
            rot = 0
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            rot = -int(float(side["rotation"]))  # display matrix is counter-clockwise
    return rot % 360


def packet_times(path: str) -> tuple[list[int], Fraction]:
    """pts of every video packet (demux only, no decode): exact frame count and VFR detection."""
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts:stream=time_base",
           "-of", "json", path]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    check_exit(proc.returncode, proc.stderr, f"probe {path}", bad_input=True)
    data = json.loads(proc.stdout or b"{}")
    tb = Fraction((data.get("streams") or [{}])[0].get("time_base", "1/1000"))
    pts = []
    for pkt in data.get("packets", []):
        value = pkt.get("pts", pkt.get("dts"))
        if value is not None:
            pts.append(int(value))
    return pts, tb


def _is_vfr(pts: list[int], tb: Fraction, fps: Fraction | None) -> bool:
    if len(pts) < 3:
        return False
    deltas = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    deltas = deltas[deltas > 0]
    if deltas.size == 0:
        return False
    med = float(np.median(deltas))
    # Timebase rounding (e.g. 29.97 fps in 1 ms ticks alternates 33/34) is not VFR: allow 1 tick + 2 %.
    tol = 1.0 + 0.02 * med
    if float(deltas.max()) - float(deltas.min()) > 2 * tol:
        return True
    if fps is not None:
        expected = float(1 / (fps * tb))
        return abs(med - expected) > tol
    return False


def probe(path: str | os.PathLike[str], exact: bool = False, count: bool = True) -> Probe:
    """Probe a video file. Raises BadInput when it is missing, empty, not a video, or a still image.

    `exact=True` additionally decodes every frame to count them (slow; for containers whose packets
    do not map 1:1 to frames). `count=False` skips the packet pass (one ffprobe process instead of
    two, ~0.1 s): the frame count is then the MP4 sample table's or the container's claim (packets
    are counted anyway when neither exists, e.g. Matroska), and VFR is not detected, so only for
    the engine's own CFR files and for reading a file's size and audio."""
    p = Path(path)
    if not p.exists():
        raise BadInput(f"target video not found: {p}")
    if p.stat().st_size == 0:
        raise BadInput(f"target video is empty (0 bytes): {p}")
    info = _ffprobe_json(["-show_streams", "-show_format"], str(p))
    streams = info.get("streams") or []
    video = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    if not video:
        raise BadInput(f"not a video (no video stream): {p}")
    vs = video[0]
    fmt = info.get("format") or {}
    fmt_name = fmt.get("format_name", "")
    if fmt_name in ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe") or vs.get(
        "codec_name"
    ) in ("png", "mjpeg", "bmp", "webp", "tiff") and fmt_name.endswith("_pipe"):
        raise BadInput(f"not a video (a still image, format {fmt_name}): {p}")
    claimed = vs.get("nb_frames")
    declared = int(claimed) if claimed and str(claimed).isdigit() else None
    sampled = None if count else _mp4_samples(p)
    claimed_frames = 0 if count else sampled if sampled is not None else declared or 0
    count = count or claimed_frames == 0  # nothing claims a count (e.g. Matroska): count packets after all
    if count:
        pts, tb = packet_times(str(p))
    else:
        pts, tb = [], Fraction(1, 1000)
    frames = len(pts) if count else claimed_frames
    if exact:
        frames = count_decoded_frames(str(p))
    if frames <= 1 and vs.get("codec_name") in ("png", "mjpeg", "bmp", "webp", "tiff", "gif"):
        raise BadInput(f"not a video (a single image): {p}")
    if frames == 0:
        raise BadInput(f"video has no frames: {p}")
    r_rate = _fraction(vs.get("r_frame_rate"))
    avg_rate = _fraction(vs.get("avg_frame_rate"))
    vfr = _is_vfr(pts, tb, r_rate)
    if vfr:
        fps = nearest_standard_rate(avg_rate or r_rate or Fraction(25))
    else:
        fps = r_rate or avg_rate or Fraction(25)
        if fps > 240 and avg_rate:  # e.g. 90000/1 from a timebase: use the average instead
            fps = avg_rate
    rot = _rotation(vs)
    w, h = int(vs["width"]), int(vs["height"])
    if rot in (90, 270):
        w, h = h, w
    dur = vs.get("duration") or fmt.get("duration")
    if pts and len(pts) > 1:
        sorted_pts = sorted(pts)
        step = Fraction(1) / fps
        duration = float((sorted_pts[-1] - sorted_pts[0]) * tb + step)
    else:
        duration = float(dur or 0.0)
    audio = [
        {
            "index": s.get("index"),
            "codec": s.get("codec_name"),
            "channels": s.get("channels"),
            "sample_rate": int(s["sample_rate"]) if s.get("sample_rate") else None,
            "duration": float(s["duration"]) if s.get("duration") else None,
        }
        for s in streams
        if s.get("codec_type") == "audio"
    ]
    if count:
        _refuse_truncated(p, frames, declared, None if vfr else _seconds(vs.get("duration")), duration, fps)
    return Probe(
        path=str(p),
        width=w,
        height=h,
        fps=fps,
        frames=frames,
        duration=round(duration, 6),
        pix_fmt=vs.get("pix_fmt", "unknown"),
        codec=vs.get("codec_name", "unknown"),
        rotation=rot,
        is_vfr=vfr,
        avg_fps=avg_rate,
        audio=audio,
        container_frames=declared,
    )


def _mp4_samples(path: str | os.PathLike[str]) -> int | None:
    """Video samples in an MP4's sample table (None: not an MP4 this parser reads)."""
    try:
        return mp4_video_samples(path)
    except (OSError, struct.error):
        return None


def _seconds(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _refuse_truncated(p: Path, frames: int, declared: int | None, declared_s: float | None,
                      readable_s: float, fps: Fraction) -> None:
    """BadInput when the header promises more video than the file holds.

    A cut-off MP4 whose moov box comes first still declares every frame (its sample table) and the
    full duration, but only the packets that survived can be read; without this check the order
    would publish the surviving frames as if they were the whole video. Packets are counted by
    demuxing (no decode). The declared duration is the fallback for containers without a frame
    count, with one frame plus 1 % of slack for rounding (VFR clips pass None: their last frame may
    last longer than one frame at the normalised rate)."""
    if declared is not None and frames < declared:
        raise BadInput(f"the target is truncated: its header declares {declared} frames, only {frames} "
                       f"can be read ({p.name}); upload the complete file")
    step = 1.0 / float(fps)
    if declared is None and declared_s is not None and readable_s + step + 0.01 * declared_s < declared_s:
        raise BadInput(f"the target is truncated: its header declares {declared_s:.2f}s of video, only "
                       f"{readable_s:.2f}s can be read ({p.name}); upload the complete file")


def count_segment_frames(path: str | os.PathLike[str]) -> int:
    """Frames in an encoded segment: from the MP4 sample table when possible, else by ffprobe
    (packets, as probe() counts them)."""
    n = _mp4_samples(path)
    return n if n is not None else probe(path).frames


def count_decoded_frames(path: str) -> int:
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
           "stream=nb_read_frames", "-of", "json", path]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    check_exit(proc.returncode, proc.stderr, f"count frames {path}", bad_input=True)
    streams = json.loads(proc.stdout or b"{}").get("streams") or [{}]
    return int(streams[0].get("nb_read_frames") or 0)
