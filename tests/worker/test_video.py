"""Frame-exact video I/O: probe fields, range decode, encode N->N, split+concat, VFR, odd size, bad input."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from faceworker import edit, ffmpeg, frameio, mp4boxes, probe
from faceworker.errors import BadInput


def test_probe_fields(media: dict[str, Path]) -> None:
    pr = probe.probe(media["cfr"])
    assert (pr.width, pr.height) == (320, 180)
    assert pr.fps == Fraction(25) and isinstance(pr.fps, Fraction)
    assert pr.frames == 75
    assert pr.duration == pytest.approx(3.0, abs=1e-6)
    assert pr.pix_fmt == "yuv420p" and pr.codec == "h264"
    assert not pr.is_vfr and not pr.odd_size and pr.rotation == 0
    assert [a["codec"] for a in pr.audio] == ["aac"]
    d = pr.to_dict()
    assert d["fps"] == "25/1" and probe.Probe.from_dict(d).fps == Fraction(25)


def test_probe_without_the_packet_pass_reads_the_same_cfr_file(media: dict[str, Path]) -> None:
    """`count=False` (one ffprobe, for the engine's own CFR files): the same size, rate, frames
    (MP4 sample table) and audio as the full probe."""
    full, light = probe.probe(media["cfr"]), probe.probe(media["cfr"], count=False)
    assert (light.width, light.height, light.fps, light.frames, light.audio) == \
        (full.width, full.height, full.fps, full.frames, full.audio)
    assert light.duration == pytest.approx(full.duration, abs=0.05)


def test_probe_without_the_packet_pass_counts_packets_when_nothing_claims_a_count(tmp_path: Path,
                                                                                  media: dict[str, Path]) -> None:
    mkv = tmp_path / "t.mkv"  # Matroska: no sample table, no nb_frames
    ffmpeg.run_ffmpeg(["-i", str(media["cfr"]), "-c", "copy", str(mkv)], "remux")
    assert probe.probe(mkv, count=False).frames == probe.probe(mkv).frames == 75


def test_probe_rotation_swaps_display_size(media: dict[str, Path]) -> None:
    pr = probe.probe(media["rotated"])
    assert pr.rotation in (90, 270)
    assert (pr.width, pr.height) == (180, 320)
    frame = next(iter(frameio.read_frames(media["rotated"], 0, 1)))
    assert frame.shape == (320, 180, 3)  # decoded upright


@pytest.mark.parametrize("name, message", [("empty", "0 bytes"), ("text", "not a readable video"), ("image", "not a video")])
def test_probe_bad_inputs(media: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        probe.probe(media[name])


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        probe.probe(tmp_path / "nope.mp4")


def test_range_decode_equals_slice_of_full_decode(media: dict[str, Path]) -> None:
    full = list(frameio.read_frames(media["cfr"]))
    assert len(full) == 75
    for a, b in [(0, 10), (37, 61), (70, 75), (12, 13)]:
        part = list(frameio.read_frames(media["cfr"], a, b, size=(320, 180)))
        assert len(part) == b - a
        assert all(np.array_equal(x, y) for x, y in zip(part, full[a:b])), (a, b)
    # frames really differ (testsrc2 moves), so equality above means the *right* frames came back
    assert not np.array_equal(full[37], full[38])


def test_range_past_end_is_bad_input(media: dict[str, Path]) -> None:
    with pytest.raises(BadInput, match="ended after 75"):
        list(frameio.read_frames(media["cfr"], 70, 80, size=(320, 180)))


def test_encode_n_frames_gives_n_frames(tmp_path: Path, media: dict[str, Path]) -> None:
    frames = list(frameio.read_frames(media["cfr"], 0, 17))
    out = tmp_path / "seg.mp4"
    with frameio.FrameWriter(out, Fraction(25), 320, 180, crf=12, preset="ultrafast") as w:
        for f in frames:
            w.write(f)
    pr = probe.probe(out)
    assert pr.frames == 17 and pr.fps == Fraction(25) and pr.pix_fmt == "yuv420p"
    assert pr.duration == pytest.approx(17 / 25, abs=1e-6)
    back = list(frameio.read_frames(out))
    psnr = [10 * np.log10(255**2 / max(1e-9, np.mean((a.astype(float) - b) ** 2))) for a, b in zip(frames, back)]
    assert min(psnr) > 35


def test_segment_frame_count_from_the_sample_table(tmp_path: Path, media: dict[str, Path]) -> None:
    """The swap pass counts a segment's frames from the MP4 sample table (no ffprobe start-up):
    it must agree with ffprobe's packet count, moov first or last, with or without audio."""
    frames = list(frameio.read_frames(media["cfr"], 0, 13))
    out = tmp_path / "seg.mp4"  # FrameWriter: +faststart, moov before mdat
    with frameio.FrameWriter(out, Fraction(25), 320, 180, crf=30, preset="ultrafast") as w:
        for f in frames:
            w.write(f)
    assert mp4boxes.mp4_video_samples(out) == 13 == probe.count_segment_frames(out)
    # moov after mdat, an audio track first in the file, B-frames: still the video track's samples
    moov_last = tmp_path / "late.mp4"
    ffmpeg.run_ffmpeg(["-i", str(media["cfr"]), "-map", "0:a:0", "-map", "0:v:0", "-c", "copy", str(moov_last)], "remux")
    assert mp4boxes.mp4_video_samples(moov_last) == probe.probe(moov_last).frames == 75
    # not ISO-BMFF: no sample table, the count falls back to ffprobe
    assert mp4boxes.mp4_video_samples(media["vfr"]) is None
    assert probe.count_segment_frames(media["vfr"]) == probe.probe(media["vfr"]).frames
    assert mp4boxes.mp4_video_samples(media["text"]) is None


def test_writer_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="even"):
        frameio.FrameWriter(tmp_path / "x.mp4", 25, 321, 180)


def test_split_then_concat_keeps_every_frame(tmp_path: Path, media: dict[str, Path]) -> None:
    chunks, norm = edit.split(media["cfr"], tmp_path / "chunks", 20)
    assert [(c["start"], c["end"]) for c in chunks] == [(0, 20), (20, 40), (40, 60), (60, 75)]
    full = list(frameio.read_frames(media["cfr"]))
    segs = []
    for c in chunks:
        piece = tmp_path / "chunks" / f"{c['chunk']:05d}" / "segment.mkv"
        frames = list(frameio.read_frames(piece))
        assert len(frames) == c["end"] - c["start"]
        # mezzanine is lossless: exactly the target's frames
        assert all(np.array_equal(x, y) for x, y in zip(frames, full[c["start"]: c["end"]]))
        seg = tmp_path / f"sw{c['chunk']}.mp4"
        with frameio.FrameWriter(seg, norm.fps, norm.width, norm.height, preset="ultrafast") as w:
            for f in frames:
                w.write(f)
        segs.append(seg)
    out = edit.merge(segs, media["cfr"], tmp_path / "out.mp4", 75, norm.fps)
    assert out.frames == 75
    assert out.duration == pytest.approx(3.0, abs=1e-6)
    assert [a["codec"] for a in out.audio] == ["aac"]


def test_merge_detects_missing_frames(tmp_path: Path, media: dict[str, Path]) -> None:
    seg = tmp_path / "s.mp4"
    with frameio.FrameWriter(seg, 25, 320, 180, preset="ultrafast") as w:
        for f in frameio.read_frames(media["cfr"], 0, 10):
            w.write(f)
    with pytest.raises(ffmpeg.FFmpegError, match="frames"):
        edit.merge([seg], media["cfr"], tmp_path / "out.mp4", 11, Fraction(25))


def test_vfr_is_detected_and_normalised(tmp_path: Path, media: dict[str, Path]) -> None:
    pr = probe.probe(media["vfr"])
    assert pr.is_vfr and pr.frames == 80 and pr.fps == Fraction(30)
    cfr = edit.normalise_to_cfr(media["vfr"], tmp_path / "target_cfr.mkv")
    assert not cfr.is_vfr and cfr.fps == Fraction(30)
    # 61 frames at 30 fps + 19 frames lasting 0.1 s each -> 61 + 19*3 = 118 CFR frames over 3.93 s
    assert cfr.frames == 118
    assert cfr.duration == pytest.approx(pr.duration, abs=1 / 30)
    chunks, norm = edit.split(media["vfr"], tmp_path / "chunks", 50)
    assert norm.frames == 118 and chunks[-1]["end"] == 118


def test_odd_size_is_padded_to_even(tmp_path: Path, media: dict[str, Path]) -> None:
    pr = probe.probe(media["odd"])
    assert pr.odd_size and (pr.width, pr.height) == (321, 241)
    chunks, norm = edit.split(media["odd"], tmp_path / "chunks", 30)
    assert (norm.width, norm.height) == (322, 242) and norm.frames == 50
    piece = probe.probe(tmp_path / "chunks" / "00000" / "segment.mkv")
    assert (piece.width, piece.height) == (322, 242) and piece.pix_fmt == "yuv420p"
    first = next(iter(frameio.read_frames(tmp_path / "chunks" / "00000" / "segment.mkv", 0, 1)))
    # the pad is black (up to chroma bleed from 4:2:0), the content stays anchored at (0, 0)
    assert first[:, -1].mean() < 40 and first[-1, :].mean() < 40
    assert first[:, -3].mean() > 60 and first[-3, :].mean() > 60


def test_prefetch_keeps_order_and_surfaces_decoder_errors(media: dict[str, Path]) -> None:
    direct = list(frameio.read_frames(media["cfr"], 5, 25, size=(320, 180)))
    ahead = list(frameio.prefetch(frameio.read_frames(media["cfr"], 5, 25, size=(320, 180)), depth=3))
    assert len(ahead) == 20 and all(np.array_equal(a, b) for a, b in zip(direct, ahead))
    with pytest.raises(BadInput, match="ended after 75"):
        list(frameio.prefetch(frameio.read_frames(media["cfr"], 70, 80, size=(320, 180))))


def test_killed_ffmpeg_is_transient_and_failures_are_classified() -> None:
    from faceworker.errors import TransientError

    with pytest.raises(TransientError, match="signal"):
        ffmpeg.check_exit(-9, b"", "encode x")
    with pytest.raises(BadInput):
        ffmpeg.check_exit(1, b"Invalid data", "probe x", bad_input=True)
    with pytest.raises(ffmpeg.FFmpegError):
        ffmpeg.check_exit(1, b"Conversion failed", "encode x")
