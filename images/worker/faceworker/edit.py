"""Whole-file edits with ffmpeg: normalise to CFR, split into mezzanine chunks, concatenate the
swapped segments, crop the work padding off, mux the original audio back, and merge (all of these).

Policies (see docs/engine.md):
- VFR input is normalised to CFR once (``normalise_to_cfr``, the ``fps`` filter at the nearest standard
  rate); every frame index after that refers to the CFR timeline.
- Odd sizes are padded to even (yuv420p needs even dimensions) by one black row/column for the work,
  and cropped back at merge (``crop_to``: one re-encode to H.264 4:4:4, which allows odd sizes).
- Rotation metadata is applied (frames are decoded upright, detection sees the displayed picture) and
  not carried forward: the output is stored upright with the input's displayed size.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from faceworker.errors import BadInput
from faceworker.ffmpeg import FFmpegError, run_ffmpeg
from faceworker.probe import Probe, count_decoded_frames, packet_times, probe
from faceworker.testhooks import pause_at

# Mezzanine codec for chunks/<i>/segment.mkv, chosen by measurement (docs/engine.md):
# x264 lossless (qp 0, ultrafast) is ~2x faster to write and smaller than FFV1 on our clips.
MEZZANINE_CODECS: dict[str, list[str]] = {
    "x264": ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"],
    "ffv1": ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-pix_fmt", "yuv420p"],
}
DEFAULT_MEZZANINE = "x264"


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
            n = len(packet_times(str(piece))[0])
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
        decoded = count_decoded_frames(str(src))
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
        joined = probe(video_only, count=False) if size is not None else None  # only its size
        if joined is not None and size is not None and size != (joined.width, joined.height):
            cropped = os.path.join(tmpd, "cropped.mp4")
            crop_to(video_only, cropped, size)
            video_only = cropped
        muxed = os.path.join(tmpd, "out.mp4")
        mux_audio(video_only, audio_src, muxed, audio)
        out = probe(muxed, count=False)  # frames from the MP4 sample table: exact for our own mux
        want_dur = float(Fraction(expect_frames) / fps)
        if out.frames != expect_frames:
            raise FFmpegError(f"merge: output has {out.frames} frames, input has {expect_frames}")
        if abs(out.duration - want_dur) > 0.5 / float(fps):
            raise FFmpegError(f"merge: output video lasts {out.duration:.3f}s, input {want_dur:.3f}s")
        os.replace(muxed, dst)
    return replace(out, path=dst)
