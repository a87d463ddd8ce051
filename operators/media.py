"""Media steps of an order that run on the Airflow worker: ingest, chunk, merge.

Each step drives the engine through its CLI (`faceworker ...`, docs/contracts.md), the same
command the GPU pod runs, so the Airflow side never re-implements video handling. Exit code 2
(bad input) becomes AirflowFailException (no retry); anything else is retryable.
"""
from __future__ import annotations

import json
import logging
import math
from datetime import UTC
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from facefactory.operators import engine_client, names, uris
from facefactory.operators.config import RunConfig
from faceworker.workarea import OrderArea, open_store

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class BadOrder(AirflowFailException):
    """The order's inputs are unusable; retrying cannot help. The message is customer-facing."""


def run_worker(args: list[str], timeout_s: float) -> dict[str, Any]:
    """One engine command (facefactory.operators.engine_client); a rejected input fails the order as BadOrder."""
    try:
        return engine_client.call(args, timeout_s=timeout_s, logger=log)
    except engine_client.EngineRejected as exc:
        raise BadOrder(str(exc)) from exc


def work_root(cfg: RunConfig) -> str:
    """The work root as the engine's `--work` wants it: an absolute local path or s3:// URI."""
    root = cfg.settings.work_root.strip()
    if root.startswith("s3://"):
        return root.rstrip("/")
    if root.startswith("file://"):
        root = root[len("file://"):]
    return str(Path(root).expanduser().resolve())


def order_dir(cfg: RunConfig, order_id: str) -> str:
    """The order's work area: `<work root>/orders/<order_id>` (local path or s3:// URI)."""
    return OrderArea(open_store(work_root(cfg)), order_id).root_uri


def area(cfg: RunConfig, order_id: str) -> Any:
    """`faceworker.workarea.OrderArea` of the order; S3 roots use the Airflow connection."""
    from facefactory.operators.s3.workarea import order_area

    return order_area(work_root(cfg), order_id)


def worker_env(cfg: RunConfig) -> Any:
    """Context manager: S3 credentials for engine subprocesses and quality readers while a
    task works on an s3:// work root (nothing for local roots)."""
    from facefactory.operators.s3.workarea import worker_environment

    return worker_environment(work_root(cfg))


def _bring_in(order_area: Any, src: uris.OrderUri, rel: str, cfg: RunConfig, digest: bool = True) -> dict[str, Any]:
    """Put one validated input into the work area (s3 sources HEAD-checked against the cap; local
    ones hard-linked when they share the work area's filesystem)."""
    from facefactory.operators.s3.errors import S3PermanentError
    from facefactory.operators.s3.workarea import bring_in

    source = src.uri if src.scheme == "s3" else str(src.path)
    try:
        return bring_in(order_area, source, rel, max_bytes=cfg.caps.max_bytes, digest=digest)
    except S3PermanentError as exc:
        raise BadOrder(f"cannot read {src.uri}: {exc}") from exc


def video_info(probe: dict[str, Any]) -> names.VideoInfo:
    """The fields the pipeline relies on, from `faceworker probe` output (faceworker.probe.Probe.to_dict)."""
    try:
        fps = probe.get("fps_float")
        if fps is None:
            num, _, den = str(probe["fps"]).partition("/")
            fps = float(num) / float(den or 1)
        return {
            "frames": int(probe["frames"]),
            "fps": float(fps),
            "width": int(probe["width"]),
            "height": int(probe["height"]),
            "duration_s": float(probe["duration"]),
            "has_audio": bool(probe.get("audio")),
            "vfr": bool(probe.get("is_vfr", False)),
        }
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise BadOrder(f"the target is not a readable video (probe: {exc!r})") from exc


def check_caps(info: names.VideoInfo, size_bytes: int, cfg: RunConfig) -> None:
    """Refuse orders over the deployment's limits before any GPU time is spent."""
    caps = cfg.caps
    if info["frames"] <= 0:
        raise BadOrder("the target video has no frames")
    if info["duration_s"] > caps.max_duration_s:
        raise BadOrder(
            f"the target is {info['duration_s']:.1f}s long; the limit is {caps.max_duration_s:.0f}s "
            "(FACEFACTORY_MAX_DURATION_S)"
        )
    if size_bytes > caps.max_bytes:
        raise BadOrder(
            f"the target is {size_bytes} bytes; the limit is {caps.max_bytes} "
            "(FACEFACTORY_MAX_INPUT_BYTES)"
        )
    if info["width"] > caps.max_width or info["height"] > caps.max_height:
        raise BadOrder(
            f"the target is {info['width']}x{info['height']}; the limit is "
            f"{caps.max_width}x{caps.max_height} (FACEFACTORY_MAX_WIDTH/HEIGHT)"
        )


def probe_target(order_area: Any, target: uris.OrderUri, target_rel: str) -> dict[str, Any]:
    """Probe the target in this process (engine API: two ffprobe demux passes, no decode), not in
    a `faceworker probe` process that pays the engine's Python start-up for it. A local target is
    probed where it lies; an s3 one is staged from the work area as the CLI would."""
    import tempfile

    from faceworker import errors
    from faceworker.probe import probe as probe_video

    with tempfile.TemporaryDirectory(prefix="ff-probe-") as tmp:
        local = target.path if target.scheme != "s3" else order_area.stage(target_rel, tmp)
        try:
            probe = probe_video(local).to_dict()
        except errors.BadInput as exc:
            raise BadOrder(f"faceworker probe: bad input: {exc}") from exc
        except errors.WorkerError as exc:  # transient or an ffprobe failure: retryable
            raise AirflowException(f"probe of the target failed: {exc}") from exc
    probe["path"] = order_area.uri(target_rel)
    return probe


def normalise_cfr(cfg: RunConfig, order_id: str) -> dict[str, Any]:
    """Re-time a variable-frame-rate target to constant fps (`faceworker normalise`) into
    `input/target_cfr.mkv`, so frame ranges are exact; returns the probe of the CFR file."""
    return run_worker(["normalise", "--work", work_root(cfg), "--order", order_id], timeout_s=1800)


def claim_order(order_area: Any, order_id: str, run_id: str | None) -> None:
    """One order, one run: the first run to ingest an order owns its work area.

    The API and the bulk inbox already use the deterministic run id `order__<id>`; a run
    started under another id (e.g. from the UI form with Airflow's `manual__…` id) for an
    order that another run owns fails here, before any work, instead of sharing its files.
    """
    if not run_id:
        return
    claim = "input/claim.json"
    # create-if-absent (a hard link locally, If-None-Match on S3): of two runs ingesting at once,
    # exactly one creates the claim; the other reads it below
    if order_area.create_json(claim, {"run_id": run_id, "order_id": order_id}):
        return
    owner = order_area.read_json(claim).get("run_id")
    if owner and owner != run_id:
        raise BadOrder(
            f"order {order_id} already belongs to DAG run {owner!r}; not starting it again "
            f"as {run_id!r} (clear or re-run {owner!r} instead, or delete {claim} in the "
            "order's work area to hand the order over)"
        )


def _bind_inputs(order_area: Any, order: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse other inputs under an id already started (facefactory.operators.order_inputs), before any
    input of the work area is replaced."""
    from facefactory.operators.order_inputs import InputsChanged, bind

    try:
        bind(order_area, order, inputs)
    except InputsChanged as exc:
        raise BadOrder(str(exc)) from exc


def ingest(order: dict[str, Any], cfg: RunConfig, timeout_s: float = 1200,
           run_id: str | None = None) -> names.IngestResult:
    """Validate the inputs, copy them into the work area, probe, normalise, embed the source."""
    from facefactory.operators.s3.workarea import size_of

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

    oa = area(cfg, order_id)
    with worker_env(cfg):
        claim_order(oa, order_id, run_id)
        _bind_inputs(oa, order, {"source": source, "target": target, "reference": reference})
    src_rel, tgt_rel = f"input/source{source.suffix}", f"input/target{target.suffix}"
    with worker_env(cfg):
        src_in = _bring_in(oa, source, src_rel, cfg)
        tgt_in = _bring_in(oa, target, tgt_rel, cfg, digest=False)
        ref_uri = None
        if reference is not None:
            ref_uri = _bring_in(oa, reference, f"input/reference{reference.suffix}", cfg)["uri"]

        probe = probe_target(oa, target, tgt_rel)
        info = video_info(probe)
        check_caps(info, size_of(oa, tgt_rel), cfg)
        video = oa.uri(tgt_rel)
        if info["vfr"]:
            probe = normalise_cfr(cfg, order_id)
            video = oa.uri("input/target_cfr.mkv")
            info = video_info(probe)
        oa.write_json("input/probe.json", probe)

        embed_args = ["embed", "--work", work_root(cfg), "--order", order_id]
        if ref_uri is not None:
            embed_args += ["--reference", ref_uri]
        if order.get("face_selector") == "many":
            embed_args += ["--selector", "largest"]
        face = run_worker(embed_args, timeout_s=300)
    return {
        "order_id": order_id,
        "order_dir": order_dir(cfg, order_id),
        "source_uri": source.uri,
        "target_uri": target.uri,
        "source_sha256": src_in.get("sha256"),
        "video": video,
        "source_local": src_in["uri"],
        "target_local": tgt_in["uri"],
        **info,
        "source_face": {k: face[k] for k in ("bbox", "yaw_deg", "warnings") if k in face},
    }


#: `chunk_frames` left empty ("auto"): one chunk per swap slot, within these bounds
AUTO_MIN_FRAMES, AUTO_MAX_FRAMES = 96, 1024
#: ... and no bigger than this many MB of I420 frames, so the engine's QA pass can reuse the swap
#: pass's frames instead of decoding them again (within its FACEFACTORY_METRICS_KEEP_MB, 2048 by default)
AUTO_CHUNK_MB = 1536


def effective_chunk_frames(frames: int, chunk_frames: int | None, max_chunks: int, swap_slots: int = 2,
                           frame_size: tuple[int, int] | None = None) -> int:
    """Frames per swap task.

    An order may name its chunk size; by default ("auto") the frames are shared evenly over the
    swap slots (FACEFACTORY_SWAP_SLOTS, the size of the gpu_swaps pool), one chunk each, or the
    fewest equal rounds of chunks that keep each under AUTO_MAX_FRAMES and, when the frame size
    (width, height) is known, under AUTO_CHUNK_MB. Why so few: every chunk pays a process start,
    its model loads and Airflow's task start (~2 s of a 2-core machine), and equal chunks, a whole
    number of them per slot, finish together. A 60 s 25 fps order on 2 slots runs as 2 chunks of
    750 frames at 720p (4 of 375 at 1080p, where 750 frames would not fit the QA pass's memory),
    8 GPU slots get chunks of 188. Either way chunks grow when needed so one order never maps more
    tasks than Airflow allows."""
    if frames <= 0 or max_chunks <= 0 or swap_slots <= 0 or (chunk_frames is not None and chunk_frames <= 0):
        raise ValueError("frames, chunk_frames, max_chunks and swap_slots must be positive")
    if chunk_frames is None:
        cap = AUTO_MAX_FRAMES
        if frame_size is not None:
            frame_mb = frame_size[0] * frame_size[1] * 1.5 / 1e6
            cap = max(AUTO_MIN_FRAMES, min(cap, int(AUTO_CHUNK_MB / frame_mb)))
        rounds = math.ceil(math.ceil(frames / swap_slots) / cap)  # chunks per slot
        chunk_frames = max(AUTO_MIN_FRAMES, math.ceil(frames / (swap_slots * rounds)))
    return max(chunk_frames, math.ceil(frames / max_chunks))


def chunk_ranges(frames: int, chunk_frames: int) -> list[names.ChunkSpec]:
    """[start, end) ranges of `chunk_frames` covering [0, frames), the last one shorter."""
    return [
        {"chunk": i, "start": start, "end": min(start + chunk_frames, frames)}
        for i, start in enumerate(range(0, frames, chunk_frames))
    ]


def split(
    order: dict[str, Any], ingested: dict[str, Any], cfg: RunConfig, max_chunks: int,
    timeout_s: float = 1800,
) -> list[names.ChunkSpec]:
    """Cut the mezzanine pieces and return the chunk specs the swap tasks map over."""
    frames = int(ingested["frames"])
    requested = order.get("chunk_frames")
    frame_size = (int(ingested["width"]), int(ingested["height"])) if "width" in ingested and "height" in ingested else None
    size = effective_chunk_frames(frames, None if requested is None else int(requested), max_chunks,
                                  cfg.settings.swap_slots, frame_size)
    with worker_env(cfg):
        result = run_worker(
            ["split", "--work", work_root(cfg), "--order", order["order_id"],
             "--chunk-frames", str(size)],
            timeout_s=timeout_s,
        )
    chunks = [
        names.ChunkSpec(chunk=int(c["chunk"]), start=int(c["start"]), end=int(c["end"]))
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
    from facefactory.operators.s3.workarea import size_of

    order_id = order["order_id"]
    oa = area(cfg, order_id)
    rel = f"output/{order_id}.mp4"
    with worker_env(cfg):
        merged = run_worker(["merge", "--work", work_root(cfg), "--order", order_id], timeout_s=timeout_s)
        # the merge command's result is its own probe of the file it wrote: no second engine
        # process (and, on S3, no download of the output) just to probe it again
        out_info = video_info({**merged, "audio": merged.get("audio_streams")})
        size = size_of(oa, rel)
    frames, fps = int(ingested["frames"]), float(ingested["fps"])
    if out_info["frames"] != frames:
        raise AirflowException(f"merged video has {out_info['frames']} frames, the input {frames}")
    if abs(out_info["duration_s"] - float(ingested["duration_s"])) > 2.0 / fps:
        raise AirflowException(
            f"merged video lasts {out_info['duration_s']:.3f}s, the input {ingested['duration_s']:.3f}s"
        )
    if ingested.get("has_audio") and not out_info["has_audio"]:
        raise AirflowException("the target has audio but the merged video has none")
    return {
        "output": oa.uri(rel),
        "output_uri": oa.uri(rel) if "://" in oa.uri(rel) else Path(oa.uri(rel)).as_uri(),
        "frames": out_info["frames"],
        "duration_s": out_info["duration_s"],
        "has_audio": out_info["has_audio"],
        "bytes": size,
    }


def swapped_files(cfg: RunConfig, order_id: str, name: str) -> list[str]:
    """URIs of `swapped/<i>/<name>` for every chunk that has one (lineage, reports)."""
    oa = area(cfg, order_id)
    with worker_env(cfg):
        rels = oa.list("swapped")
    return [oa.uri(r) for r in sorted(rels) if r.endswith(f"/{name}")]


FAILURES_DIR = "failures"


def record_failure(context: Any) -> None:
    """on_failure/on_retry callback: one JSON file per failed try under `<order>/failures/`, so
    `facefactory order run` (and people) can say why an order failed without digging through
    task logs. One file per try, not one shared file: mapped swaps fail concurrently, and a
    read-modify-write of a shared file would lose records."""
    try:
        from datetime import datetime

        from facefactory.operators.config import run_time

        params = context.get("params") or {}
        ti = context.get("ti") or context.get("task_instance")
        order_id = params.get("order_id")
        if not order_id:
            return
        cfg = run_time()
        oa = area(cfg, str(order_id))
        now = datetime.now(UTC)
        record = {
            "at": now.isoformat(),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "map_index": getattr(ti, "map_index", None),
            "try_number": getattr(ti, "try_number", None),
            "error": str(context.get("exception") or "unknown error"),
        }
        name = "{}-{}-{}-{}.json".format(now.strftime("%Y%m%dT%H%M%S%fZ"), record["task_id"],
                                         record["map_index"], record["try_number"])
        with worker_env(cfg):
            oa.write_bytes(f"{FAILURES_DIR}/{name}", json.dumps(record, default=str).encode())
    except Exception:  # noqa: BLE001 - a callback must never mask the real failure
        log.warning("could not record the task failure", exc_info=True)


def failure_records(order_area: Any) -> list[dict[str, Any]]:
    """Every recorded failed try of the order, oldest first (unreadable files are skipped)."""
    records = []
    for rel in order_area.list(FAILURES_DIR):
        try:
            records.append(json.loads(order_area.read_bytes(rel)))
        except ValueError:
            continue
    return sorted(records, key=lambda r: str(r.get("at", "")))


def swap_retries(order_area: Any) -> dict[int, int]:
    """chunk -> failed tries of its `swap` task (a mapped swap's map index is its chunk number)."""
    counts: dict[int, int] = {}
    for rec in failure_records(order_area):
        if rec.get("task_id") == names.SWAP and isinstance(rec.get("map_index"), int) and rec["map_index"] >= 0:
            counts[rec["map_index"]] = counts.get(rec["map_index"], 0) + 1
    return counts


def qa_report(cfg: RunConfig, order: dict[str, Any]) -> dict[str, Any] | None:
    """Build the order's QA report (facefactory.quality.report); a broken report never fails an order."""
    odir = order_dir(cfg, order["order_id"])
    try:
        from facefactory.quality.report import build_report

        with worker_env(cfg):
            return build_report(odir, order, retries=swap_retries(area(cfg, order["order_id"])))
    except Exception:  # noqa: BLE001 - a broken QA report is logged and never fails the order
        log.warning("could not build the QA report for %s", odir, exc_info=True)
        return None
