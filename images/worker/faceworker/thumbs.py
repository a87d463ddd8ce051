"""Before/after thumbnails of a swapped chunk, for the order's QA report.

Why here: the report used to decode the whole target and every swapped segment to draw a dozen
frames (as long as the ffmpeg bound itself). The swap task's metrics pass already decodes every
original and swapped frame of the chunk and measures them, so a `Tap` on those two frame streams
keeps a small tile of each, and the task writes the few the report may show:
`swapped/<i>/thumbs.jpg` (one row per frame: original | swapped, each `tile_width` wide) and
`swapped/<i>/thumbs.json` (frame, why, row). Picked: the chunk's first
frame, the order's evenly spread frames that fall in the chunk (the report's "spread" rows), and
the chunk's worst frames by its own identity cosine and PSNR (candidates for the order's worst).
"""
from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from faceworker.contact_sheet import pick_frames
from faceworker.frames import _split_i420, i420_size
from faceworker.logs import Logger
from faceworker.workarea import OrderArea

TILE_WIDTH = 360
SPREAD = 6  # the report's evenly spread rows over the whole order
WORST = 3  # per metric and chunk
JPEG_QUALITY = 90


def pick(rows: list[dict[str, Any]], start: int, end: int, total: int) -> dict[int, str]:
    """Frame -> why, for the frames of [start, end) worth a thumbnail."""
    picks: dict[int, str] = {start: "first"}
    for f in pick_frames(total, SPREAD):
        if start <= f < end:
            picks[f] = "spread"
    faces = [r for r in rows if (r.get("faces_target") or 0) > 0]
    for key, why in (("id_cosine_raw", "worst identity"), ("psnr_outside_db", "worst PSNR")):
        scored = [r for r in faces if isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
        for r in sorted(scored, key=lambda r: r[key])[:WORST]:
            picks.setdefault(int(r["frame"]), why)
    return dict(sorted(picks.items()))


def order_frames(area: OrderArea, end: int) -> int:
    """The order's frame count (the spread rows are spread over it), from the chunk plan. Never
    raises: thumbnails must not fail a swap, so an unreadable plan counts as this chunk's `end`."""
    try:
        chunks = area.read_json("chunks/chunks.json") if area.exists("chunks/chunks.json") else []
        return max([int(c["end"]) for c in chunks] or [end])
    except Exception:  # noqa: BLE001 - best effort, as write_thumbnails: the QA picture never fails a chunk
        return end


def fixed_picks(start: int, end: int, total: int) -> set[int]:
    """Chunk-relative indexes of the frames pick() takes whatever the metrics say: the first and
    the order's spread frames that fall in [start, end)."""
    return {0} | {f - start for f in pick_frames(total, SPREAD) if start <= f < end}


def tile_size(width: int, height: int, tile_width: int = TILE_WIDTH) -> tuple[int, int]:
    """An even tile near `tile_width` wide; an integer fraction of the frame when one is close
    (1280x720 -> 320x180), because cv2's area resize is ~4x cheaper for integer factors."""
    factor = max(1, round(width / tile_width))
    if width % factor == 0 and height % factor == 0 and (width // factor) % 2 == 0 and (height // factor) % 2 == 0:
        return width // factor, height // factor
    return tile_width, max(2, int(round(tile_width * height / width / 2)) * 2)


class Tap:
    """Keeps a small JPEG tile of the frames the chunk's metrics pass decodes anyway (original and
    swapped) that the report may show, so the thumbnails cost no decode of their own (a re-decode of
    the original piece measured ~0.9 CPU-s a 96-frame 720p chunk).

    Only candidates get a tile, decided as each frame is measured: the chunk's first frame, the
    order's spread frames in the chunk (`wanted`, chunk-relative), every frame with an identity
    measurement (the "worst identity" rows come from those) and every frame whose PSNR is among the
    WORST lowest so far (a frame among the chunk's final WORST lowest was among them when it
    arrived). Tiling every frame cost ~2.5 CPU-ms a 720p frame (two shrinks, two JPEGs), ~5 % of
    the whole swap task; now about 20-30 frames of a 375-frame chunk get one."""

    def __init__(self, size: tuple[int, int], wanted: Iterable[int] = (0,)) -> None:
        self.size = size
        self.tile = tile_size(*size)
        self.tiles: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        self.wanted = set(wanted)
        self._worst_psnr: list[float] = []  # the WORST lowest PSNRs so far, negated (a max-heap)

    def _small(self, frame: np.ndarray) -> np.ndarray:
        w, h = self.size
        if frame.ndim == 2 and frame.shape == i420_size(w, h):  # the metrics pass's I420 frames
            return self._small_i420(frame)
        factor = w // self.tile[0]
        if factor >= 4 and factor % 2 == 0 and (w, h) == (factor * self.tile[0], factor * self.tile[1]):
            # an exact 2x bilinear step averages 2x2 blocks: with the area step after it, 0.3 ms
            # instead of 0.9 ms for one 4x area resize of a 720p frame
            frame = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(frame, self.tile, interpolation=cv2.INTER_AREA)

    def _small_i420(self, frame: np.ndarray) -> np.ndarray:
        """Shrink each plane first and convert only the tile to BGR (a full-frame conversion would
        cost ~1.5 ms a 720p frame, twice a frame)."""
        tw, th = self.tile
        y, u, v = _split_i420(frame, *self.size)
        small = np.concatenate([cv2.resize(y, (tw, th), interpolation=cv2.INTER_AREA).ravel(),
                                cv2.resize(u, (tw // 2, th // 2), interpolation=cv2.INTER_AREA).ravel(),
                                cv2.resize(v, (tw // 2, th // 2), interpolation=cv2.INTER_AREA).ravel()])
        return cv2.cvtColor(small.reshape(i420_size(tw, th)), cv2.COLOR_YUV2BGR_I420)

    def candidate(self, i: int, row: dict[str, Any]) -> bool:
        """Whether chunk frame `i` (its metrics row so far) may be one the report shows."""
        keep = i in self.wanted or bool(row.get("id_measured")) or row.get("id_cosine_raw") is not None
        psnr = row.get("psnr_outside_db")
        if (row.get("faces_target") or 0) > 0 and isinstance(psnr, (int, float)) and np.isfinite(psnr):
            if len(self._worst_psnr) < WORST:
                heapq.heappush(self._worst_psnr, -float(psnr))
                keep = True
            elif psnr <= -self._worst_psnr[0]:  # ties too: pick() breaks them by frame order
                heapq.heapreplace(self._worst_psnr, -float(psnr))
                keep = True
        return keep

    def offer(self, i: int, original: np.ndarray, output: np.ndarray, row: dict[str, Any]) -> None:
        """Keep tiles of frame `i` (BGR or I420) if it is a candidate; the frames are not changed."""
        if not self.candidate(i, row):
            return
        for store, frame in zip(self.tiles, (original, output)):
            ok, jpg = cv2.imencode(".jpg", self._small(frame), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                store[i] = jpg.tobytes()

    def pair(self, i: int) -> np.ndarray:
        tiles = [cv2.imdecode(np.frombuffer(side[i], np.uint8), cv2.IMREAD_COLOR) for side in self.tiles]
        if any(t is None for t in tiles):
            raise ValueError(f"thumbnail {i} does not decode")
        return np.hstack([np.asarray(t) for t in tiles])


def write_thumbnails(area: OrderArea, chunk: int, start: int, end: int, rows: list[dict[str, Any]], tap: Tap,
                     log: Logger, total: int | None = None) -> None:
    """Write the chunk's thumbs.jpg/thumbs.json from the tiles the tap kept. Best effort: a failure
    is logged, never fatal (the report then shows the tiles as not available)."""
    t0 = time.perf_counter()
    try:
        total = order_frames(area, end) if total is None else total  # the order's frames, if not known yet
        picks = {f: why for f, why in pick(rows, start, end, total).items()
                 if f - start in tap.tiles[0] and f - start in tap.tiles[1]}
        if not picks:
            raise ValueError("no frame tiles were kept")
        strip = np.vstack([tap.pair(f - start) for f in picks])
        ok, jpg = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("JPEG encoding failed")
        area.write_bytes(area.swapped_rel(chunk, "thumbs.jpg"), jpg.tobytes())
        index = {"tile_width": tap.tile[0], "tile_height": tap.tile[1],
                 "frames": [{"frame": f, "why": why, "row": k} for k, (f, why) in enumerate(picks.items())]}
        area.write_bytes(area.swapped_rel(chunk, "thumbs.json"), json.dumps(index).encode())
        log.info("thumbnails", frames=len(picks), seconds=round(time.perf_counter() - t0, 3))
    except Exception as exc:  # noqa: BLE001 - the QA picture must never fail a finished swap
        log.warning("thumbnails_failed", error=str(exc), type=type(exc).__name__)
