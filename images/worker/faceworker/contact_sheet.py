"""Before/after contact sheet: original vs swapped frames spread over the video, one PNG.

Used by `faceworker contact-sheet` and the QA report, so a human sees at a glance whether the swap
holds up across the whole clip (not just the first frame).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from faceworker import frameio, probe
from faceworker.errors import BadInput


def pick_frames(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over [0, total), centred in their slots."""
    if total <= 0:
        return []
    count = max(1, min(count, total))
    return sorted({min(total - 1, int((i + 0.5) * total / count)) for i in range(count)})


def _grab(path: str, indices: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Frames at `indices` from one sequential decode (frame-exact, no seeking)."""
    wanted = set(indices)
    out: dict[int, np.ndarray] = {}
    last = max(indices) + 1
    for i, frame in enumerate(frameio.read_frames(path, 0, last, size=size)):
        if i in wanted:
            out[i] = frame.copy()
    return out


def _label(img: np.ndarray, text: str) -> None:
    scale = max(0.4, img.shape[0] / 400.0)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(img, (0, 0), (tw + 12, th + base + 10), (0, 0, 0), -1)
    cv2.putText(img, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def contact_sheet(before: str | os.PathLike[str], after: str | os.PathLike[str], out_png: str | os.PathLike[str],
                  count: int = 6, tile_width: int = 480) -> dict[str, object]:
    """Write a PNG with `count` rows: [original | swapped] at evenly spaced frames. Returns a summary."""
    pb, pa = probe.probe(before), probe.probe(after)
    total = min(pb.frames, pa.frames)
    if total == 0:
        raise BadInput("contact sheet: a video has no frames")
    idx = pick_frames(total, count)
    fb = _grab(str(before), idx, (pb.width, pb.height))
    fa = _grab(str(after), idx, (pa.width, pa.height))
    tile_h = int(round(tile_width * pb.height / pb.width))
    tile_h += tile_h % 2
    rows = []
    for i in idx:
        left = cv2.resize(fb[i], (tile_width, tile_h), interpolation=cv2.INTER_AREA)
        right = cv2.resize(fa[i], (tile_width, tile_h), interpolation=cv2.INTER_AREA)
        _label(left, f"original #{i}")
        _label(right, f"swapped #{i}")
        gap = np.full((tile_h, 6, 3), 255, np.uint8)
        rows.append(np.hstack([left, gap, right]))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.vstack(rows[:-1])
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    if not cv2.imwrite(str(out_png), sheet):
        raise BadInput(f"cannot write {out_png}")
    return {"png": str(out_png), "frames": idx, "width": int(sheet.shape[1]), "height": int(sheet.shape[0])}
