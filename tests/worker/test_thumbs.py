"""Swap-task thumbnails: the right frames, original | swapped per row, written for the report."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from faceworker import frameio, thumbs
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


def test_only_candidate_frames_get_tiles_and_they_cover_every_pick() -> None:
    """Tiles are made as frames are measured, before the chunk's worst are known: every frame
    pick() may take must have one, and a frame that cannot be picked gets none."""
    rng = np.random.default_rng(3)
    rows = [{"frame": 100 + i, "faces_target": int(i % 9 != 4), "psnr_outside_db": float(rng.normal(40, 3)),
             "id_measured": i % 48 == 7 or i in (120, 121), "id_cosine_raw": None} for i in range(200)]
    for r in rows:
        if r["id_measured"]:
            r["id_cosine_raw"] = float(rng.uniform(0.8, 0.95))
    rows[150]["psnr_outside_db"] = rows[151]["psnr_outside_db"] = 10.0  # a tie among the worst
    rows[60]["psnr_outside_db"] = 60.0  # an ordinary frame: not first, spread, measured or a PSNR record
    tap = thumbs.Tap((64, 36), thumbs.fixed_picks(100, 300, 600))
    frame = np.zeros((36, 64, 3), np.uint8)
    for i, r in enumerate(rows):
        tap.offer(i, frame, frame, dict(r))
    kept = set(tap.tiles[0])
    picked = {f - 100 for f in thumbs.pick(rows, 100, 300, 600)}
    assert picked <= kept
    assert len(kept) < 60  # not every frame: ~3 ln(200) PSNR records, the id sample, first and spread
    assert 60 not in kept and {0, 50, 150, 151} <= kept


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / max(1e-9, float(np.mean((a.astype(float) - b) ** 2))))


def test_thumbnails_hold_the_picked_original_and_swapped_frames(tmp_path: Path, media: dict[str, Path]) -> None:
    area = WorkArea(tmp_path).order("o1")
    area.write_json("chunks/chunks.json", [{"chunk": 0, "start": 0, "end": 40}, {"chunk": 1, "start": 40, "end": 75}])
    full = list(frameio.read_frames(media["cfr"]))
    swapped = [np.ascontiguousarray(f[::-1]) for f in full[40:75]]  # "swapped" = upside down
    rows = [{"frame": f, "faces_target": 1, "id_cosine_raw": 1.0 - (f == 66), "psnr_outside_db": 40.0}
            for f in range(40, 75)]
    tap = thumbs.Tap((320, 180), thumbs.fixed_picks(40, 75, thumbs.order_frames(area, 75)))
    for i, (a, b) in enumerate(zip(full[40:75], swapped)):
        keep_a, keep_b = a.copy(), b.copy()
        tap.offer(i, a, b, rows[i])
        assert np.array_equal(a, keep_a) and np.array_equal(b, keep_b)  # the frames are not changed
    thumbs.write_thumbnails(area, 1, 40, 75, rows, tap, get_logger())
    index = json.loads(area.read_bytes("swapped/00001/thumbs.json"))
    frames = [item["frame"] for item in index["frames"]]
    assert {40, 66, 43, 56, 68} <= set(frames)  # first, worst identity, spread (pick_frames(75, 6))
    w, h = index["tile_width"], index["tile_height"]
    assert (w, h) == (320, 180)
    strip = cv2.imdecode(np.frombuffer(area.read_bytes("swapped/00001/thumbs.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (h * len(frames), 2 * w, 3)
    for item in index["frames"]:
        row = strip[item["row"] * h:(item["row"] + 1) * h]
        want = full[item["frame"]]
        assert _psnr(row[:, :w], want) > 20, item  # JPEG of testsrc2's sharp edges
        assert _psnr(row[:, w:], want[::-1]) > 20, item
        other = full[(item["frame"] + 7) % 75]
        assert _psnr(row[:, :w], other) < _psnr(row[:, :w], want) - 3  # really that frame


def test_tiles_of_a_720p_frame_are_a_quarter_and_close_to_an_area_resize() -> None:
    assert thumbs.tile_size(1280, 720) == (320, 180) and thumbs.tile_size(1920, 1080) == (384, 216)
    assert thumbs.tile_size(1000, 562) == (360, 202)
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur((rng.random((720, 1280, 3)) * 255).astype(np.uint8), (0, 0), 2)
    tap = thumbs.Tap((1280, 720))
    tap.offer(0, frame, frame, {})
    tile = tap.pair(0)[:, :320]
    assert _psnr(tile, cv2.resize(frame, (320, 180), interpolation=cv2.INTER_AREA)) > 30


def test_a_thumbnail_failure_is_logged_not_raised(tmp_path: Path) -> None:
    area = WorkArea(tmp_path).order("o1")
    thumbs.write_thumbnails(area, 0, 0, 10, [], thumbs.Tap((320, 180)), get_logger())  # no tiles kept
    assert not area.exists("swapped/00000/thumbs.json")
