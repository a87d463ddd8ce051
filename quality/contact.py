"""Before/after contact sheet for the report, composed from the thumbnails the swap tasks wrote.

Each swap task writes ``swapped/<i>/thumbs.jpg`` + ``thumbs.json`` (faceworker.thumbs): its
first frame, the order's evenly spread frames in its range and its own worst frames by identity
and PSNR, each as an original | swapped pair. The sheet only reads those (a few small JPEGs, no
video decode): rows are the spread frames, then the order's worst frames by the gate's calibrated
identity and by PSNR among the thumbnailed frames (every chunk's worst few by its own metrics).
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from facefactory.quality import workarea as wa


def _thumbs(order_dir: str, chunks: list[dict]) -> dict[int, tuple[int, int]]:
    """frame -> (chunk, row) of every thumbnail the chunks listed."""
    out: dict[int, tuple[int, int]] = {}
    for c in chunks:
        uri = wa.join(order_dir, "swapped", f"{c['chunk']:05d}", "thumbs.json")
        if wa.exists(uri):
            for item in wa.read_json(uri).get("frames", []):
                out[int(item["frame"])] = (int(c["chunk"]), int(item["row"]))
    return out


def choose_frames(df: pd.DataFrame, available: set[int] | None = None, spread: int = 6,
                  worst: int = 3) -> list[tuple[int, str]]:
    """(frame, why) for evenly spread frames and the worst identity/PSNR frames; with
    ``available``, only those frames (a spread frame without one: the nearest that has one)."""
    from faceworker.contact_sheet import pick_frames

    frames = sorted(df["frame"].unique().tolist())
    if not frames:
        return []
    have = sorted(available) if available is not None else frames
    if not have:
        return []
    picks: list[tuple[int, str]] = []
    seen: set[int] = set()
    for i in pick_frames(len(frames), spread):
        f = min(have, key=lambda a: (abs(a - frames[i]), a))
        if f not in seen:
            picks.append((int(f), "spread"))
            seen.add(f)
    faces = df[(df["faces_target"] > 0) & df["frame"].isin(have)]
    for col, label in (("id_cosine", "worst identity"), ("psnr_outside_db", "worst PSNR")):
        n = worst if col == "id_cosine" else max(1, worst - 1)
        for f in faces.nsmallest(n, col)["frame"].tolist() if col in faces else []:
            if f not in seen:
                picks.append((int(f), label))
                seen.add(f)
    return picks


def _label(img: np.ndarray, text: str, color=(255, 255, 255)) -> None:
    scale = max(0.4, img.shape[0] / 420.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, 0), (tw + 10, th + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def contact_sheet_png(order_dir: str, df: pd.DataFrame, chunks: list[dict], tile_width: int = 360,
                      picks: list[tuple[int, str]] | None = None) -> tuple[bytes, list[dict]] | None:
    """PNG bytes of the sheet plus the rows' descriptions; None when no chunk wrote thumbnails."""
    thumbs = _thumbs(order_dir, chunks)
    if not thumbs:
        return None
    picks = picks if picks is not None else choose_frames(df, set(thumbs))
    if not picks:
        return None
    strips: dict[int, tuple[np.ndarray, int, int]] = {}  # chunk -> (image, tile width, tile height)
    for chunk in sorted({thumbs[f][0] for f, _ in picks if f in thumbs}):
        d = wa.join(order_dir, "swapped", f"{chunk:05d}")
        index = wa.read_json(wa.join(d, "thumbs.json"))
        img = cv2.imdecode(np.frombuffer(wa.read_bytes(wa.join(d, "thumbs.jpg")), np.uint8), cv2.IMREAD_COLOR)
        if img is not None:
            strips[chunk] = (img, int(index["tile_width"]), int(index["tile_height"]))
    if not strips:
        return None
    any_w, any_h = next(iter(strips.values()))[1:]
    th = int(round(tile_width * any_h / any_w))
    blank = np.full((th, tile_width, 3), 40, np.uint8)
    rows_meta = df.drop_duplicates("frame").set_index("frame")

    def tiles(frame: int) -> tuple[np.ndarray, np.ndarray] | None:
        if frame not in thumbs or thumbs[frame][0] not in strips:
            return None
        img, w, h = strips[thumbs[frame][0]]
        row = img[thumbs[frame][1] * h:(thumbs[frame][1] + 1) * h]
        if row.shape[0] != h or row.shape[1] != 2 * w:
            return None
        return tuple(cv2.resize(half, (tile_width, th), interpolation=cv2.INTER_AREA)  # type: ignore[return-value]  # a 2-tuple: mypy sees tuple[...]
                     for half in (row[:, :w], row[:, w:]))

    out_rows, meta = [], []
    for f, why in picks:
        pair = tiles(f)
        left, right = (pair[0].copy(), pair[1].copy()) if pair else (blank.copy(), blank.copy())
        r = rows_meta.loc[f] if f in rows_meta.index else None
        idc = float(r["id_cosine"]) if r is not None and pd.notna(r["id_cosine"]) else None
        ps = float(r["psnr_outside_db"]) if r is not None and pd.notna(r["psnr_outside_db"]) else None
        _label(left, f"original #{f} ({why})")
        txt = f"swapped #{f} id {idc:.2f}" if idc is not None else f"swapped #{f} no face"
        txt += f" psnr {ps:.1f}" if ps is not None else ""
        _label(right, txt, (255, 255, 255) if why == "spread" else (80, 160, 255))
        out_rows.append(np.hstack([left, np.full((th, 6, 3), 255, np.uint8), right]))
        out_rows.append(np.full((6, out_rows[-1].shape[1], 3), 255, np.uint8))
        meta.append({"frame": int(f), "why": why, "id_cosine": idc, "psnr_outside_db": ps,
                     "have_before": pair is not None, "have_after": pair is not None})
    # level 1: a 720p order's sheet in ~0.12 s instead of ~0.4 s at 6 (the report waits for it), 7 % bigger
    ok, buf = cv2.imencode(".png", np.vstack(out_rows[:-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return (buf.tobytes(), meta) if ok else None
