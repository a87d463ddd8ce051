"""Frame-exact video I/O through ffmpeg/ffprobe subprocess pipes.

Why subprocess pipes and not cv2.VideoCapture: ffmpeg gives us exact control over frame selection
(by index, never by a timestamp seek that can land one frame off), fps, GOP and pixel format, and it is
the same binary that later concatenates the segments, so counts agree end to end.

Policies (see docs/engine.md):
- VFR input is normalised to CFR once (``normalise_to_cfr``, the ``fps`` filter at the nearest standard
  rate); every frame index after that refers to the CFR timeline.
- Odd sizes are padded to even (yuv420p needs even dimensions) by one black row/column for the work,
  and cropped back at merge (``crop_to``: one re-encode to H.264 4:4:4, which allows odd sizes).
- Rotation metadata is applied (frames are decoded upright, detection sees the displayed picture) and
  not carried forward: the output is stored upright with the input's displayed size.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from faceworker.errors import BadInput, TransientError, WorkerError
from faceworker.frames import i420_size
from faceworker.lifeline import die_with_parent_preexec
from faceworker.testhooks import pause_at

FFMPEG = os.environ.get("FACEFACTORY_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("FACEFACTORY_FFPROBE", "ffprobe")

STANDARD_RATES = [
    Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
    Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(100), Fraction(120),
]

# Mezzanine codec for chunks/<i>/segment.mkv, chosen by measurement (docs/engine.md):
# x264 lossless (qp 0, ultrafast) is ~2x faster to write and smaller than FFV1 on our clips.
MEZZANINE_CODECS: dict[str, list[str]] = {
    "x264": ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"],
    "ffv1": ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-pix_fmt", "yuv420p"],
}
DEFAULT_MEZZANINE = "x264"


class FFmpegError(WorkerError):
    """ffmpeg/ffprobe failed for a reason that is neither the input's fault nor transient: a bug."""


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
    def from_dict(cls, data: dict[str, Any]) -> "Probe":
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["fps"] = Fraction(str(data["fps"]))
        kwargs["avg_fps"] = Fraction(str(data["avg_fps"])) if data.get("avg_fps") else None
        return cls(**kwargs)


# --------------------------------------------------------------------------- subprocess helpers


def _check(proc_rc: int, stderr: bytes | str, what: str, bad_input: bool = False) -> None:
    if proc_rc == 0:
        return
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    tail = "\n".join(text.strip().splitlines()[-6:])
    if proc_rc < 0 or proc_rc in (128 + signal.SIGKILL, 128 + signal.SIGTERM):
        raise TransientError(f"{what}: ffmpeg killed by signal ({proc_rc}); {tail}")
    if bad_input:
        raise BadInput(f"{what}: {tail or 'ffmpeg failed'}")
    raise FFmpegError(f"{what} failed (rc={proc_rc}): {tail}")


def run_ffmpeg(args: Sequence[str], what: str, bad_input: bool = False, timeout: float | None = None) -> str:
    """Run ffmpeg with `args`; map failures to BadInput/TransientError/FFmpegError. Returns stderr."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=die_with_parent_preexec())
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"{what}: ffmpeg timed out after {timeout}s") from exc
    _check(proc.returncode, proc.stderr, what, bad_input)
    return proc.stderr.decode("utf-8", "replace")


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
        _check(proc.returncode, proc.stderr, f"probe {path}", bad_input=True)
    except BadInput as exc:
        raise BadInput(f"not a readable video: {path} ({_ffmpeg_reason(proc.stderr, path)})") from exc
    try:
        return json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise BadInput(f"probe {path}: ffprobe output is not JSON") from exc


# --------------------------------------------------------------------------- probe


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


def _packet_times(path: str) -> tuple[list[int], Fraction]:
    """pts of every video packet (demux only, no decode): exact frame count and VFR detection."""
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts:stream=time_base",
           "-of", "json", path]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    _check(proc.returncode, proc.stderr, f"probe {path}", bad_input=True)
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


def probe(path: str | os.PathLike[str], exact: bool = False) -> Probe:
    """Probe a video file. Raises BadInput when it is missing, empty, not a video, or a still image.

    `exact=True` additionally decodes every frame to count them (slow; for containers whose packets
    do not map 1:1 to frames)."""
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
    pts, tb = _packet_times(str(p))
    frames = len(pts)
    if exact:
        frames = _count_decoded_frames(str(p))
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
    claimed = vs.get("nb_frames")
    declared = int(claimed) if claimed and str(claimed).isdigit() else None
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


def count_segment_frames(path: str | os.PathLike[str]) -> int:
    """Frames in an encoded segment: from the MP4 sample table when possible, else by ffprobe
    (packets, as probe() counts them)."""
    try:
        n = mp4_video_samples(path)
    except (OSError, struct.error):
        n = None
    return n if n is not None else probe(path).frames


def _count_decoded_frames(path: str) -> int:
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
           "stream=nb_read_frames", "-of", "json", path]
    proc = subprocess.run(cmd, capture_output=True, preexec_fn=die_with_parent_preexec())
    _check(proc.returncode, proc.stderr, f"count frames {path}", bad_input=True)
    streams = json.loads(proc.stdout or b"{}").get("streams") or [{}]
    return int(streams[0].get("nb_read_frames") or 0)


# --------------------------------------------------------------------------- decode


def _grow_pipe(stream: Any, size: int = 1 << 20) -> None:
    """Raise a pipe's kernel buffer from 64 KiB to 1 MiB (Linux F_SETPIPE_SZ): fewer context switches
    per multi-megabyte raw frame. Best effort: other systems keep the default."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


def read_frames(
    path: str | os.PathLike[str],
    start: int = 0,
    end: int | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = True,
    pix_fmt: str = "bgr24",
    decoder_threads: int = 1,
) -> Generator[np.ndarray, None, None]:
    """Yield BGR uint8 frames with index in [start, end), selected by frame number (not timestamp).

    With pix_fmt="yuv420p" each frame is an I420 buffer of shape (height * 3 / 2, width) instead:
    half the bytes, no colour conversion (faceworker.frames.FrameView works on it).

    `size` is (width, height) of the decoded frames; probed when omitted. With `strict`, fewer frames
    than requested raise BadInput (the range runs past the end of the video)."""
    if size is None:
        pr = probe(path)
        size = (pr.width, pr.height)
        if end is None:
            end = pr.frames
    if end is None:
        raise ValueError("end is required when size is given")
    if start < 0 or end < start:
        raise BadInput(f"bad frame range [{start}, {end})")
    want = end - start
    if want == 0:
        return
    width, height = size
    if pix_fmt not in ("bgr24", "yuv420p"):
        raise ValueError(f"read_frames: pix_fmt must be bgr24 or yuv420p, not {pix_fmt!r}")
    shape = (height, width, 3) if pix_fmt == "bgr24" else i420_size(width, height)
    frame_bytes = int(np.prod(shape))
    # One decoder thread: the Python consumer is always slower than a single-threaded decode, and
    # frame threading costs ~1.5 CPU-ms per 720p frame that the swap pass needs (benchmarks/engine_fps.py).
    args = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", str(decoder_threads),
            "-i", str(path), "-map", "0:v:0"]
    if start > 0:
        args += ["-vf", f"select=gte(n\\,{start})"]
    args += ["-fps_mode", "passthrough", "-frames:v", str(want), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes,
                            preexec_fn=die_with_parent_preexec())
    _grow_pipe(proc.stdout)
    got = 0
    try:
        assert proc.stdout is not None
        while got < want:
            buf = bytearray(frame_bytes)
            view = memoryview(buf)
            n = 0
            while n < frame_bytes:
                r = cast(io.BufferedIOBase, proc.stdout).readinto(view[n:])
                if not r:
                    break
                n += r
            if n == 0:
                break
            if n != frame_bytes:
                raise FFmpegError(f"decode {path}: truncated frame ({n} of {frame_bytes} bytes)")
            yield np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            got += 1
        proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else b""
        rc = proc.wait()
        _check(rc, err, f"decode {path}", bad_input=True)
        if strict and got != want:
            raise BadInput(f"decode {path}: asked for frames [{start}, {end}) but the video ended after {start + got}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def prefetch(frames: Iterator[np.ndarray], depth: int = 4) -> Generator[np.ndarray, None, None]:
    """Read ahead `depth` frames in a thread, so ffmpeg's decode overlaps the caller's per-frame work
    (the pipe read releases the GIL). Errors from the decoder surface at the same position."""
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def pump() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        q.put(("frame", frame), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(("error", exc))

    thread = threading.Thread(target=pump, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "frame":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        thread.join(timeout=5)
        close = getattr(frames, "close", None)
        if close is not None and not thread.is_alive():
            close()


# --------------------------------------------------------------------------- encode


class FrameWriter:
    """Encode BGR frames to H.264 (libx264, yuv420p): frames in == frames out, GOP starts at frame 0."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | float | str,
        width: int,
        height: int,
        pix_fmt: str = "yuv420p",
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 0,
        convert_in_python: bool = False,
    ) -> None:
        if width % 2 or height % 2:
            raise BadInput(f"yuv420p needs even frame sizes, got {width}x{height} (normalise at ingest)")
        self.path = str(path)
        self.fps = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
        self.width, self.height = width, height
        self.frames = 0
        # With convert_in_python, BGR -> I420 happens here (cv2, SIMD, GIL released: in a
        # BackgroundWriter it overlaps the caller) instead of in ffmpeg's swscale, whose bgr24 input
        # path costs ~3 CPU-ms more per 720p frame; half the bytes cross the pipe. Both point-sample
        # chroma with BT.601 limited-range coefficients; luma may differ by one level of rounding.
        self._to_i420 = convert_in_python and pix_fmt == "yuv420p"
        self._in_fmt = "yuv420p" if self._to_i420 else "bgr24"
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        cmd = [
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", self._in_fmt, "-s", f"{width}x{height}", "-framerate", rate, "-i", "-",
            "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", pix_fmt,
            # No B-frames: mp4 edit lists from B-frame delay make concat durations drift by a frame.
            "-bf", "0", "-fps_mode", "passthrough", "-video_track_timescale", str(_timescale(self.fps)),
        ]
        if threads:
            cmd += ["-threads", str(threads)]
        if self.path.endswith(".mp4"):
            cmd += ["-movflags", "+faststart"]
        cmd.append(self.path)
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._err,
                                      preexec_fn=die_with_parent_preexec())
        _grow_pipe(self._proc.stdin)

    def check(self, frame: np.ndarray) -> None:
        """A BGR frame of this size, or (with convert_in_python) an I420 buffer of it."""
        if frame.dtype == np.uint8 and (frame.shape == (self.height, self.width, 3) or (
                self._to_i420 and frame.shape == i420_size(self.width, self.height))):
            return
        raise ValueError(f"frame {frame.shape} {frame.dtype} != ({self.height}, {self.width}, 3) uint8")

    def write(self, frame: np.ndarray) -> None:
        self.check(frame)
        assert self._proc.stdin is not None
        try:
            if frame.ndim == 2:  # already I420 (the swap pass keeps frames as decoded)
                self._proc.stdin.write(np.ascontiguousarray(frame).reshape(-1).data)
            elif self._to_i420:
                import cv2

                self._proc.stdin.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).reshape(-1).data)
            else:
                self._proc.stdin.write(np.ascontiguousarray(frame).reshape(-1).data)  # no copy
        except BrokenPipeError as exc:
            self._finish()
            raise FFmpegError(f"encode {self.path}: ffmpeg exited early") from exc
        self.frames += 1

    def _finish(self) -> int:
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        rc = self._proc.wait()
        self._err.seek(0)
        err = self._err.read()
        self._err.close()
        _check(rc, err, f"encode {self.path}")
        return rc

    def close(self) -> int:
        """Finish the file and return the number of frames written."""
        self._finish()
        return self.frames

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class BackgroundWriter:
    """Hands frames to a FrameWriter from a thread, so the caller's next frame overlaps ffmpeg's
    encode (pipe writes release the GIL; a full pipe otherwise stalls the swap loop). At most
    `depth` frames wait in memory; an encoder error surfaces on the next write or on close."""

    def __init__(self, writer: FrameWriter, depth: int = 4) -> None:
        import queue
        import threading

        self.writer = writer
        self._q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="frame-writer", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            frame = self._q.get()
            if frame is None:
                return
            if self._error is not None:
                continue  # drain so the producer never blocks on a dead encoder
            try:
                self.writer.write(frame)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self.writer.check(frame)
        self._q.put(frame)

    def close(self) -> int:
        """Wait for the queued frames, finish the file, return the number of frames written."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            self.writer.abort()
            raise self._error
        return self.writer.close()

    def abort(self) -> None:
        self._error = self._error or FFmpegError("aborted")
        self.writer.abort()  # kills ffmpeg first, so a blocked pipe write returns
        try:
            while True:
                self._q.get_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty
            pass
        self._q.put(None)
        self._thread.join(timeout=5)


def _timescale(fps: Fraction) -> int:
    """A timescale in which every frame duration is an integer number of ticks (so concat is exact)."""
    return int(fps.numerator * (1000 if fps.denominator == 1 else 1))


# --------------------------------------------------------------------------- normalise / split


def normalise_filters(pr: Probe) -> list[str]:
    """ffmpeg -vf steps that make a probe's video CFR and even-sized (rotation is applied by ffmpeg)."""
    steps = []
    if pr.is_vfr:
        steps.append(f"fps={pr.fps.numerator}/{pr.fps.denominator}")
    if pr.odd_size:
        steps.append("pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0:black")
    return steps


def normalise_to_cfr(src: str | os.PathLike[str], dst: str | os.PathLike[str], pr: Probe | None = None) -> Probe:
    """Re-time a VFR (and/or odd-sized) video to CFR at `pr.fps` into a lossless mezzanine `dst` (.mkv).

    Frames are duplicated/dropped by the fps filter to follow the source's timestamps, so A/V sync is
    kept and every later frame index refers to this CFR timeline. Audio is not copied (merge muxes the
    original target's audio)."""
    pr = pr or probe(src)
    steps = normalise_filters(pr) or ["null"]
    rate = f"{pr.fps.numerator}/{pr.fps.denominator}"
    tmp = f"{dst}.tmp.mkv"
    run_ffmpeg(
        ["-i", str(src), "-map", "0:v:0", "-an", "-vf", ",".join(steps), "-r", rate, "-fps_mode", "cfr",
         *MEZZANINE_CODECS[DEFAULT_MEZZANINE], tmp],
        f"normalise {src}",
        bad_input=True,
    )
    os.replace(tmp, dst)
    return probe(dst)


def split(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chunk_frames: int,
    pr: Probe | None = None,
    codec: str = DEFAULT_MEZZANINE,
) -> tuple[list[dict[str, int]], Probe]:
    """Cut `src` into mezzanine pieces `out_dir/<i:05d>/segment.mkv` of `chunk_frames` frames, in ONE
    decode+encode pass (segment muxer at forced key frames). Normalises VFR/odd sizes on the way.

    Returns (chunks [{"chunk","start","end"}], probe of the normalised timeline). Every piece's frame
    count is verified."""
    if chunk_frames < 1:
        raise BadInput(f"chunk_frames must be >= 1, got {chunk_frames}")
    pr = pr or probe(src)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rate = f"{pr.fps.numerator}/{pr.fps.denominator}"
    steps = normalise_filters(pr)
    with tempfile.TemporaryDirectory(prefix="split-", dir=out) as tmpd:
        pattern = os.path.join(tmpd, "%05d.mkv")
        args = ["-i", str(src), "-map", "0:v:0", "-an", "-sn", "-dn"]
        if steps:
            args += ["-vf", ",".join(steps)]
        args += ["-r", rate, "-fps_mode", "cfr" if pr.is_vfr else "passthrough"]
        args += MEZZANINE_CODECS[codec]
        if codec == "x264":
            args += ["-force_key_frames", f"expr:eq(mod(n,{chunk_frames}),0)", "-bf", "0"]
        args += ["-f", "segment", "-segment_format", "matroska", "-reset_timestamps", "1"]
        # Boundaries by frame number; the segment muxer cuts at the (forced) key frame at each of them.
        est = pr.frames if not pr.is_vfr else int(pr.duration * float(pr.fps)) + 2
        bounds = list(range(chunk_frames, max(est, chunk_frames) + chunk_frames, chunk_frames))
        args += ["-segment_frames", ",".join(str(b) for b in bounds), pattern]
        run_ffmpeg(args, f"split {src}", bad_input=True)
        pieces = sorted(Path(tmpd).glob("*.mkv"))
        chunks: list[dict[str, int]] = []
        start = 0
        for i, piece in enumerate(pieces):
            n = len(_packet_times(str(piece))[0])
            if n == 0:
                continue
            chunks.append({"chunk": i, "start": start, "end": start + n})
            start += n
        for c in chunks[:-1]:
            if c["end"] - c["start"] != chunk_frames:
                raise FFmpegError(f"split {src}: chunk {c['chunk']} has {c['end'] - c['start']} frames, "
                                  f"expected {chunk_frames}")
        for c, piece in zip(chunks, pieces):
            dest = out / f"{c['chunk']:05d}"
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(piece, dest / "segment.mkv")
    total = chunks[-1]["end"] if chunks else 0
    if not pr.is_vfr and total != pr.frames:
        # Packets and decoded frames can differ (edit lists, broken tails): trust a full decode count.
        decoded = _count_decoded_frames(str(src))
        if total != decoded:
            raise FFmpegError(f"split {src}: pieces hold {total} frames, the target decodes to {decoded}")
    norm = Probe(**{**pr.__dict__})
    norm.frames = total
    norm.is_vfr = False
    norm.width += norm.width % 2
    norm.height += norm.height % 2
    norm.duration = float(Fraction(total) / pr.fps)
    norm.rotation = 0
    return chunks, norm


# --------------------------------------------------------------------------- concat / mux


_MP4_AUDIO_COPY = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def concat_segments(segments: Sequence[str | os.PathLike[str]], dst: str | os.PathLike[str]) -> None:
    """Concatenate H.264 segments without re-encoding (concat demuxer, -c copy)."""
    if not segments:
        raise BadInput("nothing to concatenate: no segments")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        for seg in segments:
            path = os.path.abspath(str(seg)).replace("'", "'\\''")
            fh.write(f"file '{path}'\n")
        listing = fh.name
    try:
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", listing, "-map", "0:v:0", "-c", "copy",
                    "-movflags", "+faststart", str(dst)], "concat segments")
    finally:
        os.unlink(listing)


def mux_audio(video: str | os.PathLike[str], audio_src: str | os.PathLike[str], dst: str | os.PathLike[str],
              audio: list[dict[str, Any]] | None = None) -> None:
    """Put `video`'s video stream and `audio_src`'s audio streams into `dst` (video copied, audio copied
    when MP4 can hold it, else AAC). Without audio streams the video is copied as is."""
    if audio is None:
        audio = probe(audio_src).audio
    if not audio:
        shutil.copyfile(video, dst)
        return
    codec_args = ["-c:a", "copy"] if all(a.get("codec") in _MP4_AUDIO_COPY for a in audio) else ["-c:a", "aac",
                                                                                                    "-b:a", "192k"]
    run_ffmpeg(["-i", str(video), "-i", str(audio_src), "-map", "0:v:0", "-map", "1:a", "-c:v", "copy",
                *codec_args, "-movflags", "+faststart", str(dst)], "mux audio")


def crop_to(src: str | os.PathLike[str], dst: str | os.PathLike[str], size: tuple[int, int], crf: int = 18,
            preset: str = "veryfast") -> None:
    """Crop the padding added for the work off a video (top-left `size` kept), video only.

    Why 4:4:4: yuv420p (and so every 4:2:0 H.264 stream) needs even sizes and H.264's own cropping
    works in 2-pixel steps for 4:2:0, so an odd-sized input can only come back at its own size in a
    format without chroma subsampling. Only odd-sized orders pay this one extra encode."""
    width, height = size
    run_ffmpeg(["-i", str(src), "-map", "0:v:0", "-vf", f"format=yuv444p,crop={width}:{height}:0:0",
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv444p", "-bf", "0",
                "-fps_mode", "passthrough", "-movflags", "+faststart", str(dst)], f"crop to {width}x{height}")


def merge(
    segments: Sequence[str | os.PathLike[str]],
    audio_src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    expect_frames: int,
    fps: Fraction,
    size: tuple[int, int] | None = None,
    audio: list[dict[str, Any]] | None = None,
) -> Probe:
    """concat + mux the original audio, then verify frame count and video duration equal the input's.

    `size` is the input's displayed (width, height): when the work ran padded to even sizes, the
    output is cropped back to it, so an order comes back at the size it came in. `audio` is the
    input's probed audio streams (probed here when omitted)."""
    dst = str(dst)
    with tempfile.TemporaryDirectory(prefix="merge-", dir=os.path.dirname(os.path.abspath(dst))) as tmpd:
        video_only = os.path.join(tmpd, "video.mp4")
        concat_segments(segments, video_only)
        pause_at("merge_mid")  # test hook (faceworker.testhooks); no-op unless a test sets it
        joined = probe(video_only) if size is not None else None
        if joined is not None and size is not None and size != (joined.width, joined.height):
            cropped = os.path.join(tmpd, "cropped.mp4")
            crop_to(video_only, cropped, size)
            video_only = cropped
        muxed = os.path.join(tmpd, "out.mp4")
        mux_audio(video_only, audio_src, muxed, audio)
        out = probe(muxed)
        want_dur = float(Fraction(expect_frames) / fps)
        if out.frames != expect_frames:
            raise FFmpegError(f"merge: output has {out.frames} frames, input has {expect_frames}")
        if abs(out.duration - want_dur) > 0.5 / float(fps):
            raise FFmpegError(f"merge: output video lasts {out.duration:.3f}s, input {want_dur:.3f}s")
        os.replace(muxed, dst)
    return probe(dst)
