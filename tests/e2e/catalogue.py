"""The hostile-input catalogue (issue 15): what each bad (or merely unusual) order must do.

One `Case` per input, declared in catalogue.toml next to this file (a table of data, not code):
the order's changes to a valid tiny order, and the expected outcome — the task that fails (or
`REFUSED` when the order is refused before a run exists, or `PUBLISHED`), a fragment of the
message the customer sees, and whether anything is published. The cases run as
orders of ONE embedded Airflow (the e2e session's) in tests/e2e/test_hostile_catalogue.py, which also writes
docs/reliability.md's table from what it observed (FACEFACTORY_UPDATE_DOCS=1); the table is checked
against these specs by a fast test, so it cannot silently go stale.

Media are made here, tiny (320x180, 1 s), from the faces shipped in wheels (faceworker.sample);
the 8K and 2-hour targets are a single 8K frame and a 64x64 clip at one frame per five seconds,
so the caps, not the file size, refuse them.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFUSED = "(refused before a run)"
PUBLISHED = "(none: published)"
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
SPECS = Path(__file__).with_name("catalogue.toml")  # the cases, as data
TABLE_START, TABLE_END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


@dataclass(frozen=True)
class Case:
    """One hostile input and what must happen to it."""

    id: str
    input: str  # what the input is, for the table
    task: str  # failing task, REFUSED or PUBLISHED
    message: str  # fragment of the refusal/failure message ("" for published orders)
    conf: dict[str, Any] = field(default_factory=dict)  # changes to the valid order ({file} placeholders)
    xfail: str | None = None  # the reason when another branch fixes it
    checks: tuple[str, ...] = ()  # extra checks on a published video: "size", "identity", "audio2"

    @property
    def published(self) -> bool:
        return self.task == PUBLISHED

    @property
    def needs_run(self) -> bool:
        return self.task != REFUSED


#: the markers catalogue.toml writes for the two outcomes that are not a failing task
_TASKS = {"REFUSED": REFUSED, "PUBLISHED": PUBLISHED}


def load_cases(path: Path = SPECS) -> list[Case]:
    """The cases of the data file, in its order. An unknown key fails here (Case() refuses it)
    rather than being ignored, so a typo cannot quietly drop a check."""
    with path.open("rb") as f:
        rows = tomllib.load(f)["case"]
    return [Case(**{**row, "task": _TASKS.get(row["task"], row["task"]), "checks": tuple(row.get("checks", ()))})
            for row in rows]


CASES: list[Case] = load_cases()
BY_ID = {c.id: c for c in CASES}


def order_conf(case: Case, base: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """The order of a case: the valid base order with the case's changes ({inputs} etc. filled)."""
    conf = {**base, "order_id": f"cat-{case.id}"}
    for key, value in case.conf.items():
        conf[key] = value.format(**paths) if isinstance(value, str) else value
    return conf


# --------------------------------------------------------------------------- media


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *args], check=True, timeout=300,
                   capture_output=True)


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A real decompression bomb: ~0.4 MB of zlib that inflates to side x side grey pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    block = row * 256
    for _ in range(side // 256):
        parts.append(comp.compress(block))
    parts += [comp.compress(row * (side % 256)), comp.flush()]
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


def build_media(inputs: Path, outside: Path) -> dict[str, Path]:
    """Write every case's files under `inputs/cat` (and a file outside the root for the symlink to
    point at);
    returns the valid order's source and target."""
    import cv2
    import numpy as np

    from faceworker.sample import build_sample_order, insightface_images_dir

    cat = inputs / "cat"
    base = build_sample_order(cat / "base", source="t1_2", target="t1_3", seconds=1, size=(320, 180))
    src, tgt = Path(base["source"]), Path(base["target"])
    cat.mkdir(parents=True, exist_ok=True)
    (cat / "empty.mp4").write_bytes(b"")
    (cat / "empty.png").write_bytes(b"")
    data = tgt.read_bytes()
    (cat / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (cat / "random.mp4").write_bytes(np.random.default_rng(15).bytes(40_000))
    shutil.copy(src, cat / "photo.mp4")
    (cat / "text.mp4").write_text("this is not a video\n" * 50)
    (cat / "text.png").write_text("this is not a photo\n" * 50)
    (cat / "notes.txt").write_text("a clip, honest\n")
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac", str(cat / "audio_only.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=7680x4320:r=25:d=0.04", "-frames:v", "1", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(cat / "8k.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:r=0.2:d=7300", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", str(cat / "2h.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=1", "-f", "lavfi", "-i", "sine=d=1",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(cat / "noface.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240", "-frames:v", "1", str(cat / "noface.png"))
    cv2.imwrite(str(cat / "tiny.png"), cv2.resize(cv2.imread(str(src)), (16, 16), interpolation=cv2.INTER_AREA))
    shutil.copy(insightface_images_dir() / "t1.jpg", cat / "group.jpg")
    png_bomb(cat / "bomb.png")
    _ffmpeg("-i", str(tgt), "-vf", "format=yuv444p10le,crop=319:179:0:0", "-c:v", "libx264", "-pix_fmt",
            "yuv444p10le", "-c:a", "copy", str(cat / "odd_10bit444.mp4"))
    # VFR: every third frame dropped, timestamps kept (gaps of two frame durations); a second
    # audio stream next to the original one
    _ffmpeg("-i", str(tgt), "-f", "lavfi", "-i", "sine=f=880:d=1", "-map", "0:v", "-map", "0:a", "-map", "1:a",
            "-vf", "select='not(eq(mod(n\\,3)\\,1))'", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt",
            "yuv420p", "-c:a", "aac", str(cat / "vfr_two_audio.mp4"))
    # rotated: the picture stored sideways, a display matrix turning it upright again
    _ffmpeg("-i", str(tgt), "-vf", "transpose=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy",
            str(cat / "sideways.mp4"))
    _ffmpeg("-i", str(cat / "sideways.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=270",
            str(cat / "rotated.mp4"))
    (cat / "sideways.mp4").unlink()
    outside.mkdir(parents=True, exist_ok=True)
    shutil.copy(tgt, outside / "clip.mp4")
    os.symlink(outside / "clip.mp4", cat / "escape.mp4")
    return {"source": src, "target": tgt}


# --------------------------------------------------------------------------- the table


def normalise_message(text: str, roots: dict[str, str]) -> str:
    """A message as the table shows it: temp paths replaced by their role, one line, bounded."""
    for name, path in sorted(roots.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(path, f"<{name}>")
    text = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    return text if len(text) <= 220 else text[:217] + "..."


def render_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: case, input, failing task, message, published?"""
    out = ["| case | input | failing task | message | published? |", "|---|---|---|---|---|"]
    for r in rows:
        note = f" *(xfail: {r['xfail']})*" if r.get("xfail") else ""
        out.append(f"| `{r['id']}` | {r['input']}{note} | {r['task']} | {r['message'] or '—'} | "
                   f"{'yes' if r['published'] else 'no'} |")
    return "\n".join(out)


def write_doc(rows: list[dict[str, Any]], doc: Path = DOC) -> None:
    """Replace the table between the markers of docs/reliability.md."""
    text = doc.read_text()
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    doc.write_text(f"{head}{TABLE_START}\n{render_table(rows)}\n{TABLE_END}{tail}")


def doc_rows(doc: Path = DOC) -> dict[str, dict[str, str]]:
    """The committed table, parsed back: {case id: {input, task, message, published}}."""
    text = doc.read_text().partition(TABLE_START)[2].partition(TABLE_END)[0]
    rows = {}
    for line in text.strip().splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows[cells[0].strip("`")] = {"input": cells[1], "task": cells[2], "message": cells[3],
                                     "published": cells[4]}
    return rows
