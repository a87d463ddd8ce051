"""Swap-task thumbnails: the right frames, original | swapped per row, written for the report."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from faceworker import thumbs, video
from faceworker.logs import get_logger
from faceworker.workarea import WorkArea


def test_pick_first_spread_and_worst_frames() -> None:
    rows = [{"frame": f, "faces_target": 1, "id_cosine_raw": 0.9, "psnr_outside_db": 40.0} for f in range(50, 100)]
    rows[10]["id_cosine_raw"] = 0.1  # frame 60
    rows[20]["psnr_outside_db"] = 20.0  # frame 70
    rows[30]["faces_target"] = 0  # frame 80: no face, never a "worst" candidate
    rows[30]["id_cosine_raw"] = 0.0
    picks = thumbs.pick(rows, 50, 100, total=300)
    assert picks[50] == "first" and picks[75] == "spread"  # pick_frames(300, 6) = 25, 75, 125 ...
    assert picks[60] == "worst identity" and picks[70] == "worst PSNR" and 80 not in picks
    assert len(picks) <= 1 + thumbs.SPREAD + 2 * thumbs.WORST


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / max(1e-9, float(np.mean((a.astype(float) - b) ** 2))))


def test_thumbnails_hold_the_picked_original_and_swapped_frames(tmp_path: Path, media: dict[str, Path]) -> None:
    area = WorkArea(tmp_path).order("o1")
    area.write_json("chunks/chunks.json", [{"chunk": 0, "start": 0, "end": 40}, {"chunk": 1, "start": 40, "end": 75}])
    full = list(video.read_frames(media["cfr"]))
    swapped = tmp_path / "seg.mp4"  # "swapped" = the original upside down, frames 40..74
    with video.FrameWriter(swapped, 25, 320, 180, crf=12, preset="ultrafast") as w:
        for f in full[40:75]:
            w.write(np.ascontiguousarray(f[::-1]))
    rows = [{"frame": f, "faces_target": 1, "id_cosine_raw": 1.0 - (f == 66), "psnr_outside_db": 40.0}
            for f in range(40, 75)]
    # the original piece is the whole clip: the chunk starts 40 frames in (a key frame lead-in)
    piece = tmp_path / "piece.mkv"
    video.run_ffmpeg(["-i", str(media["cfr"]), "-map", "0:v:0", "-c", "copy", str(piece)], "copy")
    thumbs.write_thumbnails(area, 1, 40, 75, str(piece), 40, str(swapped), rows, (320, 180), get_logger())
    index = json.loads(area.read_bytes("swapped/00001/thumbs.json"))
    frames = [item["frame"] for item in index["frames"]]
    assert {40, 66, 43, 56, 68} <= set(frames)  # first, worst identity, spread (pick_frames(75, 6))
    w, h = index["tile_width"], index["tile_height"]
    assert (w, h) == (360, 202)
    strip = cv2.imdecode(np.frombuffer(area.read_bytes("swapped/00001/thumbs.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (h * len(frames), 2 * w, 3)
    for item in index["frames"]:
        row = strip[item["row"] * h:(item["row"] + 1) * h]
        want = cv2.resize(full[item["frame"]], (w, h), interpolation=cv2.INTER_AREA)
        assert _psnr(row[:, :w], want) > 25, item
        assert _psnr(row[:, w:], want[::-1]) > 25, item
        other = cv2.resize(full[(item["frame"] + 7) % 75], (w, h), interpolation=cv2.INTER_AREA)
        assert _psnr(row[:, :w], other) < _psnr(row[:, :w], want) - 3  # really that frame


def test_a_thumbnail_failure_is_logged_not_raised(tmp_path: Path) -> None:
    area = WorkArea(tmp_path).order("o1")
    thumbs.write_thumbnails(area, 0, 0, 10, str(tmp_path / "missing.mkv"), 0, str(tmp_path / "missing.mp4"),
                            [], (320, 180), get_logger())
    assert not area.exists("swapped/00000/thumbs.json")
