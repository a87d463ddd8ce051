"""Before/after thumbnails of a swapped chunk, for the order's QA report.

Why here: the report used to decode the whole target and every swapped segment to draw a dozen
frames (as long as the ffmpeg bound itself). The swap task already holds the chunk's original
piece and its encoded segment, and knows its own worst frames, so it writes the few tiles the
report may show: `swapped/<i>/thumbs.jpg` (one row per frame: original | swapped, each
`tile_width` wide) and `swapped/<i>/thumbs.json` (frame, why, row). Picked: the chunk's first
frame, the order's evenly spread frames that fall in the chunk (the report's "spread" rows), and
the chunk's worst frames by its own identity cosine and PSNR (candidates for the order's worst).
"""
from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import cv2
import numpy as np

from faceworker import video
from faceworker.contact_sheet import pick_frames
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


def tile_size(width: int, height: int, tile_width: int = TILE_WIDTH) -> tuple[int, int]:
    return tile_width, max(2, int(round(tile_width * height / width / 2)) * 2)


def grab(path: str, indices: list[int], tile: tuple[int, int]) -> list[np.ndarray]:
    """Frames at `indices` (decode order = frame number) scaled to `tile`: one ffmpeg process that
    decodes up to the last index and converts only the picked frames."""
    want = sorted(set(indices))
    expr = "+".join(f"eq(n\\,{i})" for i in want)
    w, h = tile
    cmd = [video.FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", path,
           "-map", "0:v:0", "-vf", f"select='{expr}',scale={w}:{h}:flags=area", "-fps_mode", "passthrough",
           "-frames:v", str(len(want)), "-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    video._check(proc.returncode, proc.stderr, f"thumbnails of {path}")
    n = w * h * 3
    if len(proc.stdout) != n * len(want):
        raise video.FFmpegError(f"thumbnails of {path}: got {len(proc.stdout) // n} of {len(want)} frames")
    frames = {i: np.frombuffer(proc.stdout[k * n:(k + 1) * n], np.uint8).reshape(h, w, 3)
              for k, i in enumerate(want)}
    return [frames[i] for i in indices]


def write_thumbnails(area: OrderArea, chunk: int, start: int, end: int, original: str, offset: int,
                     segment: str, rows: list[dict[str, Any]], size: tuple[int, int], log: Logger) -> None:
    """Write the chunk's thumbs.jpg/thumbs.json. Best effort: a failure is logged, never fatal
    (the report then shows the tiles as not available)."""
    t0 = time.perf_counter()
    try:
        chunks = area.read_json("chunks/chunks.json") if area.exists("chunks/chunks.json") else []
        total = max([int(c["end"]) for c in chunks] or [end])
        picks = pick(rows, start, end, total)
        tile = tile_size(*size)
        before = grab(original, [offset + f - start for f in picks], tile)
        after = grab(segment, [f - start for f in picks], tile)
        strip = np.vstack([np.hstack([b, a]) for b, a in zip(before, after)])
        ok, jpg = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise video.FFmpegError("JPEG encoding failed")
        area.write_bytes(area.swapped_rel(chunk, "thumbs.jpg"), jpg.tobytes())
        index = {"tile_width": tile[0], "tile_height": tile[1],
                 "frames": [{"frame": f, "why": why, "row": k} for k, (f, why) in enumerate(picks.items())]}
        area.write_bytes(area.swapped_rel(chunk, "thumbs.json"), json.dumps(index).encode())
        log.info("thumbnails", frames=len(picks), seconds=round(time.perf_counter() - t0, 3))
    except Exception as exc:  # noqa: BLE001 - the QA picture must never fail a finished swap
        log.warning("thumbnails_failed", error=str(exc), type=type(exc).__name__)
