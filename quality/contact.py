"""Before/after contact sheet for the report, composed from the target and the swapped segments.

The report is written right after the gate, before ``merge``, so the sheet cannot use the merged
output; it reads the (CFR) target and each chunk's ``swapped/<i>/segment.mp4`` with the engine's
frame-exact reader. Rows: frames spread over the video, then the worst frames by identity / PSNR.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from quality import workarea as wa

TARGET_NAMES = ("target_cfr.mkv", "target.mp4", "target.mov", "target.mkv", "target.webm", "target.avi",
                "target.m4v")


def _local_copy(uri: str, tmp: Path) -> str:
    if "://" not in uri or uri.startswith("file://"):
        return uri.removeprefix("file://")
    dst = tmp / uri.rsplit("/", 1)[-1]
    dst.write_bytes(wa.read_bytes(uri))
    return str(dst)


def target_uri(order_dir: str) -> str | None:
    for name in TARGET_NAMES:
        uri = wa.join(order_dir, "input", name)
        if wa.exists(uri):
            return uri
    return None


def choose_frames(df: pd.DataFrame, spread: int = 6, worst: int = 3) -> list[tuple[int, str]]:
    """(frame, why) for evenly spread frames and the worst identity/PSNR frames."""
    from faceworker.contact_sheet import pick_frames

    frames = sorted(df["frame"].unique().tolist())
    if not frames:
        return []
    picks = [(frames[i], "spread") for i in pick_frames(len(frames), spread)]
    seen = {f for f, _ in picks}
    faces = df[df["faces_target"] > 0]
    for col, label in (("id_cosine", "worst identity"), ("psnr_outside_db", "worst PSNR")):
        n = worst if col == "id_cosine" else max(1, worst - 1)
        for f in faces.nsmallest(n, col)["frame"].tolist() if col in faces else []:
            if f not in seen:
                picks.append((int(f), label))
                seen.add(f)
    return picks


def _grab(path: str, wanted: dict[int, int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Frames at local indices (keys) of ``path``; values are the global frame numbers."""
    from faceworker import video

    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    last = max(wanted) + 1
    for i, frame in enumerate(video.read_frames(path, 0, last, size=size)):
        if i in wanted:
            out[wanted[i]] = frame.copy()
    return out


def _label(img: np.ndarray, text: str, color=(255, 255, 255)) -> None:
    scale = max(0.4, img.shape[0] / 420.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, 0), (tw + 10, th + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def contact_sheet_png(order_dir: str, df: pd.DataFrame, chunks: list[dict], tile_width: int = 360,
                      picks: list[tuple[int, str]] | None = None) -> tuple[bytes, list[dict]] | None:
    """PNG bytes of the sheet plus the rows' descriptions; None when the media are not there."""
    from faceworker import video

    tgt = target_uri(order_dir)
    if tgt is None:
        return None
    picks = picks if picks is not None else choose_frames(df)
    if not picks:
        return None
    rows_meta = df.drop_duplicates("frame").set_index("frame")
    with tempfile.TemporaryDirectory(prefix="qa-sheet-") as td:
        tmp = Path(td)
        tpath = _local_copy(tgt, tmp)
        pr = video.probe(tpath)
        size = (pr.width, pr.height)
        before = _grab(tpath, {f: f for f, _ in picks}, size)
        after: dict[int, np.ndarray] = {}
        for c in chunks:
            local = {f - c["start"]: f for f, _ in picks if c["start"] <= f < c["end"]}
            seg = wa.join(order_dir, "swapped", f"{c['chunk']:05d}", "segment.mp4")
            if local and wa.exists(seg):
                after.update(_grab(_local_copy(seg, tmp), local, size))
    th = int(round(tile_width * size[1] / size[0]))
    blank = np.full((th, tile_width, 3), 40, np.uint8)
    out_rows, meta = [], []
    for f, why in picks:
        left = cv2.resize(before[f], (tile_width, th), interpolation=cv2.INTER_AREA) if f in before else blank.copy()
        right = cv2.resize(after[f], (tile_width, th), interpolation=cv2.INTER_AREA) if f in after else blank.copy()
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
                     "have_before": f in before, "have_after": f in after})
    ok, buf = cv2.imencode(".png", np.vstack(out_rows[:-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return (buf.tobytes(), meta) if ok else None
