"""Media steps of an order that run on the Airflow worker: ingest, chunk, merge.

Each step drives the engine through its CLI (`faceworker ...`, docs/contracts.md), the same
command the GPU pod runs, so the Airflow side never re-implements video handling. Exit code 2
(bad input) becomes AirflowFailException (no retry); anything else is retryable.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators import uris
from operators.config import RunConfig

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
EXIT_TRANSIENT = 75
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class BadOrder(AirflowFailException):
    """The order's inputs are unusable; retrying cannot help. The message is customer-facing."""


def faceworker_cmd() -> list[str]:
    """The engine's command: the `faceworker` next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name("faceworker")
    if local.exists():
        return [str(local)]
    found = shutil.which("faceworker")
    if found:
        return [found]
    return [sys.executable, "-m", "faceworker.cli"]


def run_worker(args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run one engine command; its result is the JSON object on the last stdout line.

    stderr (the engine's JSON-lines log) is passed through to the task log unchanged.
    """
    cmd = faceworker_cmd() + args
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AirflowException(f"faceworker {args[0]} timed out after {timeout_s:.0f}s") from exc
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    result: dict[str, Any] = {}
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = {}
    if proc.returncode == EXIT_BAD_INPUT:
        reason = result.get("error") or result.get("message") or (lines[-1] if lines else "")
        raise BadOrder(f"faceworker {args[0]}: bad input: {reason}".rstrip(": "))
    if proc.returncode != 0:
        kind = "transient failure" if proc.returncode == EXIT_TRANSIENT else "failed"
        raise AirflowException(f"faceworker {args[0]} {kind} (exit {proc.returncode})")
    if not isinstance(result, dict) or not result:
        raise AirflowException(f"faceworker {args[0]} printed no JSON result")
    return result


def order_dir(cfg: RunConfig, order_id: str) -> Path:
    """The order's work area (local work roots only in the embedded default)."""
    root = cfg.settings.work_root
    if root.startswith("s3://"):
        raise AirflowFailException(
            "an s3:// work root needs the S3 work-area support, which this deployment lacks"
        )
    return Path(root).expanduser().resolve() / "orders" / order_id


def _copy_in(src: uris.OrderUri, dest: Path) -> None:
    """Copy an input into the work area atomically (temp file + rename)."""
    if src.scheme != "file" or src.path is None:
        raise BadOrder(
            f"{src.uri}: s3:// inputs are valid order URIs but this deployment has no S3 "
            "access configured"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.copyfile(src.path, tmp)
    os.replace(tmp, dest)


@dataclass(frozen=True)
class VideoInfo:
    """The probe fields the pipeline relies on."""

    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    has_audio: bool
    vfr: bool

    @classmethod
    def from_probe(cls, probe: dict[str, Any]) -> "VideoInfo":
        """Read `faceworker probe` output (faceworker.video.Probe.to_dict)."""
        try:
            fps = probe.get("fps_float")
            if fps is None:
                num, _, den = str(probe["fps"]).partition("/")
                fps = float(num) / float(den or 1)
            return cls(
                frames=int(probe["frames"]),
                fps=float(fps),
                width=int(probe["width"]),
                height=int(probe["height"]),
                duration_s=float(probe["duration"]),
                has_audio=bool(probe.get("audio")),
                vfr=bool(probe.get("is_vfr", False)),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise BadOrder(f"the target is not a readable video (probe: {exc!r})") from exc


def check_caps(info: VideoInfo, size_bytes: int, cfg: RunConfig) -> None:
    """Refuse orders over the deployment's limits before any GPU time is spent."""
    caps = cfg.caps
    if info.frames <= 0:
        raise BadOrder("the target video has no frames")
    if info.duration_s > caps.max_duration_s:
        raise BadOrder(
            f"the target is {info.duration_s:.1f}s long; the limit is {caps.max_duration_s:.0f}s "
            "(FACEFACTORY_MAX_DURATION_S)"
        )
    if size_bytes > caps.max_bytes:
        raise BadOrder(
            f"the target is {size_bytes} bytes; the limit is {caps.max_bytes} "
            "(FACEFACTORY_MAX_INPUT_BYTES)"
        )
    if info.width > caps.max_width or info.height > caps.max_height:
        raise BadOrder(
            f"the target is {info.width}x{info.height}; the limit is "
            f"{caps.max_width}x{caps.max_height} (FACEFACTORY_MAX_WIDTH/HEIGHT)"
        )


def normalise_cfr(target: Path, out: Path) -> dict[str, Any]:
    """Re-time a variable-frame-rate target to constant fps (engine API) so that frame ranges
    are exact; returns the probe of the CFR file."""
    from faceworker import errors, video

    try:
        return video.normalise_to_cfr(target, out).to_dict()
    except errors.BadInput as exc:
        raise BadOrder(f"could not normalise the VFR target: {exc}") from exc


def ingest(order: dict[str, Any], cfg: RunConfig, timeout_s: float = 1200) -> dict[str, Any]:
    """Validate the inputs, copy them into the work area, probe, normalise, embed the source."""
    order_id = order["order_id"]
    roots = cfg.input_roots
    try:
        source = uris.parse(uris.expand_placeholders(order["source"], roots), roots)
        target = uris.parse(uris.expand_placeholders(order["target"], roots), roots)
        reference = None
        if order.get("face_selector") == "reference":
            if not order.get("reference"):
                raise uris.UriError("face_selector=reference needs a reference photo URI")
            reference = uris.parse(uris.expand_placeholders(order["reference"], roots), roots)
    except uris.UriError as exc:
        raise BadOrder(str(exc)) from exc
    if source.suffix not in IMAGE_SUFFIXES:
        raise BadOrder(f"source {source.uri}: expected a photo ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if target.suffix not in VIDEO_SUFFIXES:
        raise BadOrder(f"target {target.uri}: expected a video ({', '.join(sorted(VIDEO_SUFFIXES))})")

    odir = order_dir(cfg, order_id)
    inp = odir / "input"
    src_local = inp / f"source{source.suffix}"
    tgt_local = inp / f"target{target.suffix}"
    _copy_in(source, src_local)
    _copy_in(target, tgt_local)
    ref_local = None
    if reference is not None:
        ref_local = inp / f"reference{reference.suffix}"
        _copy_in(reference, ref_local)

    probe = run_worker(["probe", str(tgt_local)], timeout_s=120)
    info = VideoInfo.from_probe(probe)
    check_caps(info, tgt_local.stat().st_size, cfg)
    video = tgt_local
    if info.vfr:
        video = inp / "target_cfr.mkv"
        probe = normalise_cfr(tgt_local, video)
        info = VideoInfo.from_probe(probe)
    (inp / "probe.json").write_text(json.dumps(probe, indent=2))

    embed_args = ["embed", "--work", str(odir.parent.parent), "--order", order_id]
    if ref_local is not None:
        embed_args += ["--reference", str(ref_local)]
    if order.get("face_selector") == "many":
        embed_args += ["--selector", "largest"]
    face = run_worker(embed_args, timeout_s=300)
    return {
        "order_id": order_id,
        "order_dir": str(odir),
        "source_uri": source.uri,
        "target_uri": target.uri,
        "video": str(video),
        "source_local": str(src_local),
        "target_local": str(tgt_local),
        "frames": info.frames,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "duration_s": info.duration_s,
        "has_audio": info.has_audio,
        "vfr": info.vfr,
        "source_face": {k: face[k] for k in ("bbox", "yaw_deg", "warnings") if k in face},
    }


def effective_chunk_frames(frames: int, chunk_frames: int, max_chunks: int) -> int:
    """Grow chunks when needed so one order never maps more tasks than Airflow allows."""
    if frames <= 0 or chunk_frames <= 0 or max_chunks <= 0:
        raise ValueError("frames, chunk_frames and max_chunks must be positive")
    return max(chunk_frames, math.ceil(frames / max_chunks))


def chunk_ranges(frames: int, chunk_frames: int) -> list[dict[str, int]]:
    """[start, end) ranges of `chunk_frames` covering [0, frames), the last one shorter."""
    return [
        {"chunk": i, "start": start, "end": min(start + chunk_frames, frames)}
        for i, start in enumerate(range(0, frames, chunk_frames))
    ]


def split(
    order: dict[str, Any], ingested: dict[str, Any], cfg: RunConfig, max_chunks: int,
    timeout_s: float = 1800,
) -> list[dict[str, int]]:
    """Cut the mezzanine pieces and return the chunk specs the swap tasks map over."""
    frames = int(ingested["frames"])
    size = effective_chunk_frames(frames, int(order["chunk_frames"]), max_chunks)
    odir = order_dir(cfg, order["order_id"])
    result = run_worker(
        ["split", "--work", str(odir.parent.parent), "--order", order["order_id"],
         "--chunk-frames", str(size)],
        timeout_s=timeout_s,
    )
    chunks = [
        {"chunk": int(c["chunk"]), "start": int(c["start"]), "end": int(c["end"])}
        for c in result["chunks"]
    ]
    expected = chunk_ranges(frames, size)
    if chunks != expected:
        raise AirflowException(
            f"split returned {len(chunks)} chunks that do not tile [0, {frames}) in steps of {size}"
        )
    return chunks


def merge(order: dict[str, Any], ingested: dict[str, Any], cfg: RunConfig,
          timeout_s: float = 1800) -> dict[str, Any]:
    """Concat the swapped segments, mux the original audio, check frames and duration."""
    order_id = order["order_id"]
    odir = order_dir(cfg, order_id)
    result = run_worker(
        ["merge", "--work", str(odir.parent.parent), "--order", order_id], timeout_s=timeout_s
    )
    output = Path(result.get("output") or odir / "output" / f"{order_id}.mp4")
    out_info = VideoInfo.from_probe(run_worker(["probe", str(output)], timeout_s=120))
    frames, fps = int(ingested["frames"]), float(ingested["fps"])
    if out_info.frames != frames:
        raise AirflowException(f"merged video has {out_info.frames} frames, the input {frames}")
    if abs(out_info.duration_s - float(ingested["duration_s"])) > 2.0 / fps:
        raise AirflowException(
            f"merged video lasts {out_info.duration_s:.3f}s, the input {ingested['duration_s']:.3f}s"
        )
    if ingested.get("has_audio") and not out_info.has_audio:
        raise AirflowException("the target has audio but the merged video has none")
    return {
        "output": str(output),
        "output_uri": output.as_uri(),
        "frames": out_info.frames,
        "duration_s": out_info.duration_s,
        "has_audio": out_info.has_audio,
        "bytes": output.stat().st_size,
    }


def record_failure(context: Any) -> None:
    """on_failure_callback: append the failing task and its reason to
    `<order>/failures.jsonl`, so `facefactory order run` (and people) can say why an order
    failed without digging through task logs."""
    try:
        from datetime import datetime, timezone

        from operators.config import run_time

        params = context.get("params") or {}
        ti = context.get("ti") or context.get("task_instance")
        order_id = params.get("order_id")
        if not order_id:
            return
        odir = order_dir(run_time(), str(order_id))
        odir.mkdir(parents=True, exist_ok=True)
        record = {
            "at": datetime.now(timezone.utc).isoformat(),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "map_index": getattr(ti, "map_index", None),
            "try_number": getattr(ti, "try_number", None),
            "error": str(context.get("exception") or "unknown error"),
        }
        with open(odir / "failures.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    except Exception:  # noqa: BLE001 - a callback must never mask the real failure
        log.warning("could not record the task failure", exc_info=True)


def qa_report(odir: Path, order: dict[str, Any]) -> dict[str, Any] | None:
    """Build the order's QA report (quality.report); a broken report never fails an order."""
    try:
        from quality.report import build_report

        return build_report(str(odir), order)
    except Exception:  # noqa: BLE001
        log.warning("could not build the QA report for %s", odir, exc_info=True)
        return None
