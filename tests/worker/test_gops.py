"""Chunk pieces by stream copy: every chunk's frames come back exactly, whatever the GOP; inputs
that need normalising are left to the re-encode path."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from faceworker import frameio, gops, probe


@pytest.fixture(scope="module")
def bframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s with B-frames and a 1 s GOP (a phone-like file); frames differ from each other."""
    path = tmp_path_factory.mktemp("gop") / "bf.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=25:duration=3", "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "25", "-bf", "2", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def _check_pieces(src: Path, out: Path, chunks: list[dict[str, int]]) -> None:
    full = list(frameio.read_frames(src))
    assert chunks[-1]["end"] == len(full)
    for c in chunks:
        piece = out / f"{c['chunk']:05d}" / "segment.mkv"
        offset = c["start"] - c["mezz_start"]
        got = list(frameio.read_frames(piece, offset, offset + c["end"] - c["start"], size=(320, 180)))
        assert len(got) == c["end"] - c["start"]
        assert all(np.array_equal(a, b) for a, b in zip(got, full[c["start"]:c["end"]])), c
        assert probe.probe(piece).frames == c["mezz_end"] - c["mezz_start"]


@pytest.mark.parametrize("chunk_frames", [10, 20, 40])
def test_pieces_of_a_b_frame_clip_hold_each_chunks_exact_frames(tmp_path: Path, bframes: Path,
                                                                 chunk_frames: int) -> None:
    index = gops.packet_index(bframes)
    assert index.reorders and index.cuts == [0, 25, 50]
    chunks = gops.split_copy(bframes, tmp_path, chunk_frames, probe.probe(bframes))
    assert chunks is not None
    assert [(c["start"], c["end"]) for c in chunks] == [
        (s, min(s + chunk_frames, 75)) for s in range(0, 75, chunk_frames)]
    for c in chunks:  # from the key frame at/before the start to the key frame at/after the end
        assert c["mezz_start"] == max(k for k in index.cuts if k <= c["start"])
        assert c["mezz_end"] == min([k for k in index.cuts if k >= c["end"]] or [75])
    _check_pieces(bframes, tmp_path, chunks)


def test_without_reordering_a_piece_ends_at_its_chunk(tmp_path: Path, media: dict[str, Path]) -> None:
    index = gops.packet_index(media["cfr"])
    assert not index.reorders
    chunks = gops.split_copy(media["cfr"], tmp_path, 20, probe.probe(media["cfr"]))
    assert chunks is not None and [c["mezz_end"] for c in chunks] == [c["end"] for c in chunks]
    _check_pieces(media["cfr"], tmp_path, chunks)


@pytest.mark.parametrize("name", ["vfr", "odd", "rotated"])
def test_inputs_that_need_normalising_take_the_reencode_path(tmp_path: Path, media: dict[str, Path],
                                                              name: str) -> None:
    assert gops.split_copy(media[name], tmp_path, 20, probe.probe(media[name])) is None
    assert not list(tmp_path.rglob("*.mkv"))


def test_a_cut_that_does_not_verify_leaves_nothing(tmp_path: Path, bframes: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A seek that lands on another frame than planned (here: a plan that starts a piece at a
    frame that is no key frame, so the seek lands on the key frame before it) is caught."""
    real = gops.plan

    def shifted(index: gops.PacketIndex, chunk_frames: int) -> list[dict[str, int]] | None:
        chunks = real(index, chunk_frames)
        assert chunks is not None
        return [{**c, "mezz_start": 10} if c["chunk"] == 1 else c for c in chunks]

    monkeypatch.setattr(gops, "plan", shifted)
    assert gops.split_copy(bframes, tmp_path, 20, probe.probe(bframes)) is None
    assert not list(tmp_path.rglob("*.mkv"))


def test_a_reswap_of_part_of_a_chunk_reads_from_its_pieces_key_frame(tmp_path: Path, bframes: Path) -> None:
    """chunk_runner's offset into the piece: from `mezz_start` (stream copy), or from `start` for
    chunks.json written before pieces had a lead-in; a range outside the chunk is refused."""
    from faceworker.chunk_runner import _mezzanine_offset
    from faceworker.errors import BadInput
    from faceworker.spec import ChunkSpec
    from faceworker.workarea import WorkArea

    area = WorkArea(tmp_path).order("o1")
    chunks = gops.split_copy(bframes, tmp_path / "orders" / "o1" / "chunks", 20, probe.probe(bframes))
    assert chunks is not None and chunks[2]["mezz_start"] == 25  # chunk 2 = [40, 60)
    area.write_json("chunks/chunks.json", chunks)

    def spec(start: int, end: int) -> ChunkSpec:
        return ChunkSpec(work=str(tmp_path), order="o1", chunk=2, start=start, end=end)

    offset = _mezzanine_offset(area, spec(47, 55))  # a reswap of frames [47, 55) of chunk 2
    assert offset == 22
    got = list(frameio.read_frames(area.local_path(area.chunk_rel(2)), offset, offset + 8, size=(320, 180)))
    assert all(np.array_equal(a, b) for a, b in zip(got, list(frameio.read_frames(bframes))[47:55]))
    area.write_json("chunks/chunks.json", [{k: c[k] for k in ("chunk", "start", "end")} for c in chunks])
    assert _mezzanine_offset(area, spec(47, 55)) == 7  # an old listing: the piece starts at `start`
    with pytest.raises(BadInput, match="outside chunk 2"):
        _mezzanine_offset(area, spec(35, 55))
