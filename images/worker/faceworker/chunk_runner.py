"""Swap one chunk: mezzanine frames in, H.264 segment + per-frame metrics + done.json out.

done.json is written last and carries the spec hash: a re-run with the same spec returns the stored
result at once ("cached": true), so retries and re-triggered orders never redo finished chunks.
Metrics are measured on the *encoded* segment (decoded back), so PSNR includes the encoder's loss.
"""
from __future__ import annotations

import io
import json
import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker import ffmpeg, frameio, probe, settings
from faceworker.errors import BadInput
from faceworker.frames import FrameView
from faceworker.id_sampling import ID_SAMPLE_EVERY
from faceworker.image_header import check_pixels
from faceworker.logs import Logger, Progress, get_logger
from faceworker.masks import RegionMask
from faceworker.spec import ChunkSpec, done_matches, done_record, sha256_bytes, spec_hash
from faceworker.testhooks import pause_at
from faceworker.thumbs import Tap, fixed_picks, order_frames, write_thumbnails
from faceworker.workarea import OrderArea, WorkArea, open_store, scratch

SessionFactory = Callable[..., Any]
MeasureFn = Callable[..., dict[str, Any]]

EMBEDDING_KEYS = ("embedding", "output_embedding", "swapped_embedding")

DETECTOR_KEYS = {"detect_scale": float, "upsample": int, "redetect_every": int, "min_score": float}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(swapper options, detector settings); BadInput on unknown/out-of-range detector settings."""
    opts = dict(options)
    detector = opts.pop("detector", None) or {}
    if not isinstance(detector, dict):
        raise BadInput('options "detector" must be a JSON object')
    unknown = set(detector) - set(DETECTOR_KEYS)
    if unknown:
        raise BadInput(f"unknown detector settings {sorted(unknown)}; known: {sorted(DETECTOR_KEYS)}")
    try:
        detector = {k: DETECTOR_KEYS[k](v) for k, v in detector.items()}
    except (TypeError, ValueError) as exc:
        raise BadInput(f"bad detector settings {detector}: {exc}") from exc
    if not 0.1 <= detector.get("detect_scale", 0.5) <= 1.0:
        raise BadInput("detector detect_scale must be in [0.1, 1]")
    if not 0 <= detector.get("upsample", 0) <= 2:
        raise BadInput("detector upsample must be 0, 1 or 2")
    if detector.get("redetect_every", 1) < 1:
        raise BadInput("detector redetect_every must be >= 1")
    return opts, detector


def _detector_kwargs(detector: dict[str, Any]) -> dict[str, Any]:
    """SwapSession keywords for the detector settings (an analyzer built with them)."""
    if not detector:
        return {}
    from faceworker.faces import FaceAnalyzer

    kwargs: dict[str, Any] = {"analyzer": FaceAnalyzer(**detector)}
    for key in ("detect_scale", "redetect_every"):
        if key in detector:
            kwargs[key] = detector[key]
    return kwargs


METRICS_WORKERS_ENV = "FACEFACTORY_METRICS_WORKERS"
MIN_FRAMES_FOR_WORKERS = 24  # below this, starting worker processes costs more than it saves


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a pod's limit)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def metrics_workers(frames: int) -> int:
    """Worker processes for the metrics pass's embeddings; 0 = inline.

    FACEFACTORY_METRICS_WORKERS=N overrides. Default: 0. The pass embeds only a sample of frames
    plus the ones its cheap checks doubt (faceworker.id_sampling: ~5 of a 96-frame chunk, ~0.5
    CPU-s), while each worker costs ~0.4 CPU-s to start and ~85 MB RSS: workers would only buy
    wall time for CPU. Worth setting for chunks the checks doubt throughout (many embeddings)
    on a machine with idle cores. Short chunks (< MIN_FRAMES_FOR_WORKERS frames) always embed
    inline: start-up would dominate."""
    raw = settings.text(METRICS_WORKERS_ENV)
    try:
        workers = max(0, int(raw))
    except ValueError as exc:
        raise BadInput(f"{METRICS_WORKERS_ENV} must be an integer, got {raw!r}") from exc
    return workers if frames >= MIN_FRAMES_FOR_WORKERS else 0


def _default_session_factory(**kwargs: Any) -> Any:
    from faceworker.frame_pipeline import SwapSession

    return SwapSession(**kwargs)


def decode_image(data: bytes, what: str) -> np.ndarray:
    """Decode image bytes to BGR, BadInput when empty, over the pixel cap (read from the header,
    before decoding) or unreadable."""
    if not data:
        raise BadInput(f"{what} is empty (0 bytes)")
    check_pixels(data, what)  # before the decoder allocates width x height x 3 bytes
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise BadInput(f"{what} is not a readable image")
    return img


def load_source(area: OrderArea, selector: str | None = None) -> tuple[Any, np.ndarray, bytes]:
    """(SourceFace, stored source embedding, its raw .npy bytes) from the order's input/."""
    from faceworker.source import load_source_face

    emb_bytes = area.read_bytes("input/source_embedding.npy")
    stored = np.load(io.BytesIO(emb_bytes)).astype(np.float32)
    meta: dict[str, Any] = area.read_json("input/source_face.json") if area.exists("input/source_face.json") else {}
    rel = area.find_input("source")
    image = decode_image(area.read_bytes(rel), f"source photo {area.uri(rel)}")
    source = load_source_face(image, selector=selector or meta.get("selector", "largest"))
    # Identity metrics must compare against the embedding the order recorded (and hashed).
    source.embedding = stored
    source.warnings = list(dict.fromkeys([*source.warnings, *meta.get("warnings", [])]))
    return source, stored, emb_bytes


def load_reference(area: OrderArea, ref: str, tmp: Path) -> tuple[np.ndarray, bytes]:
    """A reference identity for face_selector=reference: an .npy embedding or a photo (largest face)."""
    if ref.startswith("s3://") or ref.startswith("file://"):
        parent, _, name = ref.rpartition("/")
        data = open_store(parent).read_bytes(name)
    elif Path(ref).is_absolute():
        path = Path(ref)
        if not path.exists():
            raise BadInput(f"reference not found: {ref}")
        data = path.read_bytes()
    else:
        data = area.read_bytes(ref)
    if ref.endswith(".npy"):
        return np.load(io.BytesIO(data)).astype(np.float32), data
    from faceworker.faces import FaceAnalyzer

    image = decode_image(data, f"reference photo {ref}")
    analyzer = FaceAnalyzer(detect_scale=1.0)
    faces = analyzer.detect(image)
    if not faces:
        raise BadInput(f"no face found in the reference photo {ref}")
    return np.asarray(analyzer.embed(image, faces[0]), np.float32), data


def _mezzanine_offset(area: OrderArea, spec: ChunkSpec) -> int:
    """Index of spec.start inside chunks/<i>/segment.mkv: a stream-copied piece starts at the key
    frame `mezz_start` at/before the chunk (faceworker.gops), and a reswap may cover part of a chunk."""
    if not area.exists("chunks/chunks.json"):
        return 0
    for entry in area.read_json("chunks/chunks.json"):
        if int(entry["chunk"]) == spec.chunk:
            if not (int(entry["start"]) <= spec.start and spec.end <= int(entry["end"])):
                raise BadInput(f"frames [{spec.start}, {spec.end}) are outside chunk {spec.chunk} "
                               f"[{entry['start']}, {entry['end']})")
            return spec.start - int(entry.get("mezz_start", entry["start"]))
    raise BadInput(f"chunk {spec.chunk} is not in chunks/chunks.json")


class _MaskStore:
    """Keeps FrameInfo objects between swap and metrics without a frame-sized mask per frame, so a
    512-frame 1080p chunk does not hold a GB of masks in memory. A session's FrameInfo holds its
    changed pixels as a RegionMask already (its `mask` is dropped here and rebuilt on demand);
    any other full-frame mask attribute is reduced to its bounding box: a RegionMask (1 bit a
    pixel) for 0/255 masks, else a PNG of the box."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, dict[str, RegionMask | tuple[tuple[int, int, int, int], bytes]]]] = []
        self._shape: tuple[int, int] = (0, 0)

    def add(self, info: Any, shape: tuple[int, int]) -> None:
        self._shape = shape
        getattr(info, "drop_mask", lambda: None)()  # rebuilt from the RegionMask when asked for
        packed: dict[str, RegionMask | tuple[tuple[int, int, int, int], bytes]] = {}
        attrs = getattr(info, "__dict__", None)
        if attrs is not None:
            for name, value in list(attrs.items()):
                if isinstance(value, np.ndarray) and value.shape == shape and value.dtype == np.uint8:
                    x, y, w, h = cv2.boundingRect(value)  # of the non-zero pixels; w == 0 when empty
                    crop = value[y:y + h, x:x + w]
                    if not (w and h) or cv2.countNonZero(crop) == cv2.countNonZero(cv2.compare(crop, 255, cv2.CMP_EQ)):  # type: ignore[call-overload]  # stubs lack compare(array, scalar)
                        region = RegionMask(shape)  # 0/255: 1 bit a pixel, ~10x faster than PNG
                        region.add((x, y, x + w, y + h), crop)
                        packed[name] = region
                    else:
                        ok, buf = cv2.imencode(".png", crop, [cv2.IMWRITE_PNG_COMPRESSION, 1])
                        if not ok:
                            continue
                        packed[name] = ((x, y, w, h), buf.tobytes())
                    setattr(info, name, None)
        self._items.append((info, packed))

    def peek(self, i: int) -> Any:
        """Frame i's FrameInfo without rebuilding its masks (for the sampling plan)."""
        return self._items[i][0]

    def get(self, i: int) -> Any:
        info, packed = self._items[i]
        for name, item in packed.items():
            if isinstance(item, RegionMask):
                full = item.full()
            else:
                (x, y, w, h), png = item
                full = np.zeros(self._shape, np.uint8)
                full[y:y + h, x:x + w] = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            setattr(info, name, full)
        return info

    def release(self, i: int) -> None:
        """Drop frame i's frame-sized masks again (after its metrics row)."""
        info, packed = self._items[i]
        for name in packed:
            setattr(info, name, None)
        getattr(info, "drop_mask", lambda: None)()  # a mask the FrameInfo built from its RegionMask


ENCODER_THREADS_ENV = "FACEFACTORY_ENCODER_THREADS"


def encoder_threads() -> int:
    """x264 threads of the segment encoder; 0 = x264's own choice (about 1.5 per CPU).

    Unset: half the CPUs this process may use. Why not x264's choice: a swap task shares the CPUs
    with its own Python pass and, in an order, with the other swap slots' tasks, so x264's frame
    threads only add their overhead (~10 % more encoder CPU at 720p, ~5 % of a whole order on 2
    cores, measured); alone, one thread still encodes 720p faster than the swap pass feeds it."""
    raw = settings.text(ENCODER_THREADS_ENV)
    if not raw:
        return max(1, len(os.sched_getaffinity(0)) // 2)
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise BadInput(f"{ENCODER_THREADS_ENV} must be a whole number, got {raw!r}") from exc


KEEP_ORIGINALS_ENV = "FACEFACTORY_METRICS_KEEP_MB"


def keep_originals(frames: int, frame_bytes: int) -> bool:
    """Whether the swap pass keeps a copy of every original frame for the metrics pass.

    Decoding the mezzanine a second time costs the metrics pass ~5-7 CPU-ms a 720p frame; a copy
    ~0.2 ms, and 1.4 MB a 720p (3.1 MB a 1080p) frame until the pass ends: a 96-frame chunk holds
    133 MB (300 MB), the 375-frame chunks of a 60 s order on two swap slots 518 MB at 720p. Above
    FACEFACTORY_METRICS_KEEP_MB (default 2048; 0 = never) the metrics pass decodes the originals
    again instead; 2048 keeps a 375-frame 1080p chunk (1.17 GB): decoding its originals again made
    its QA dearer than its swap (1.03x, benchmarks/order_throughput.py)."""
    raw = settings.text(KEEP_ORIGINALS_ENV)
    try:
        budget_mb = float(raw)
    except ValueError as exc:
        raise BadInput(f"{KEEP_ORIGINALS_ENV} must be a number (MB), got {raw!r}") from exc
    return budget_mb > 0 and frames * frame_bytes <= budget_mb * 1e6


def _drain(kept: list[Any]) -> Any:
    """Yield the kept frames in order, dropping each list slot as it goes (memory frees as the pass runs)."""
    for i in range(len(kept)):
        frame, kept[i] = kept[i], None
        yield frame


def _original_frames(mezz: Path, offset: int, frames: int, size: tuple[int, int], pix_fmt: str,
                     kept: list[Any] | None = None) -> Any:
    """The chunk's original frames for the metrics pass (one place to change where they come from):
    the swap pass's copies when it kept them, else decoded again."""
    if kept is not None:
        if len(kept) != frames:
            raise ffmpeg.FFmpegError(f"kept {len(kept)} original frames, expected {frames}")
        return _drain(kept)
    return frameio.prefetch(frameio.read_frames(mezz, offset, offset + frames, size=size, pix_fmt=pix_fmt))


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) and its waited-for children (the ffmpeg pipes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _stage_times(info: Any) -> tuple[float, float]:
    """(detect seconds, swap seconds) from a FrameInfo's per-stage timings, whatever their spelling."""
    timings = getattr(info, "timings", None) or {}
    detect = swap = 0.0
    for key, value in timings.items():
        try:
            sec = float(value) / (1000.0 if key.endswith("_ms") else 1.0)
        except (TypeError, ValueError):
            continue
        if "detect" in key or "landmark" in key or "track" in key:
            detect += sec
        elif "total" not in key:
            swap += sec
    return detect, swap


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cos = [r["id_cosine_raw"] for r in rows if r.get("id_cosine_raw") is not None]
    psnr = [r["psnr_outside_db"] for r in rows if r.get("psnr_outside_db") is not None]
    return {
        "faces_frames": sum(1 for r in rows if (r.get("faces_target") or 0) > 0),
        "swapped_frames": sum(1 for r in rows if r.get("swapped")),
        "face_found_after_frames": sum(1 for r in rows if r.get("face_found_after")),
        "id_measured_frames": sum(1 for r in rows if r.get("id_measured", r.get("id_cosine_raw") is not None)),
        "mean_id_cosine_raw": round(float(np.mean(cos)), 4) if cos else None,
        "min_psnr_db": round(float(np.min(psnr)), 2) if psnr else None,
        "warnings": sorted({w for r in rows for w in (r.get("warnings") or [])}),
    }


def _result(spec: ChunkSpec, area: OrderArea, done: dict[str, Any], cached: bool) -> dict[str, Any]:
    return {
        "order": spec.order,
        "chunk": spec.chunk,
        "start": spec.start,
        "end": spec.end,
        "frames": int(done["frames"]),
        "spec_hash": done["spec_hash"],
        "cached": cached,
        "segment": area.uri(area.swapped_rel(spec.chunk, "segment.mp4")),
        "metrics": area.uri(area.swapped_rel(spec.chunk, "metrics.json")),
        "embeddings": area.uri(area.swapped_rel(spec.chunk, "embeddings.npy")),
        "done": area.uri(area.swapped_rel(spec.chunk, "done.json")),
        "timings": done.get("timings", {}),
        "summary": done.get("summary", {}),
        "fps": done.get("fps"),
    }


def run_chunk(
    spec: ChunkSpec,
    session_factory: SessionFactory | None = None,
    measure: MeasureFn | None = None,
    log: Logger | None = None,
) -> dict[str, Any]:
    """Run (or find already done) one swap chunk; returns the contract's swap-chunk result dict."""
    spec.validate()
    log = (log or get_logger()).bind(order=spec.order, chunk=spec.chunk)
    area = WorkArea(spec.work).order(spec.order)
    t_total = time.perf_counter()

    emb_bytes = area.read_bytes("input/source_embedding.npy")
    done_rel = area.swapped_rel(spec.chunk, "done.json")
    with scratch("faceworker-chunk-") as tmp:
        ref_emb: np.ndarray | None = None
        ref_sha: str | None = None
        if spec.face_selector == "reference":
            ref_emb, ref_raw = load_reference(area, str(spec.reference), tmp)
            ref_sha = sha256_bytes(ref_raw)
        h = spec_hash(spec, sha256_bytes(emb_bytes), ref_sha)
        if area.exists(done_rel):
            try:
                done = area.read_json(done_rel)
            except BadInput:
                done = None
            if done_matches(done, h, spec.frames):
                log.info("chunk_cached", spec_hash=h, frames=spec.frames)
                return _result(spec, area, done, cached=True)
            log.info("chunk_stale_checkpoint", spec_hash=h, old=(done or {}).get("spec_hash"))
        return _run(spec, area, h, tmp, ref_emb, session_factory or _default_session_factory,
                    measure, log, t_total)


def _run(spec: ChunkSpec, area: OrderArea, h: str, tmp: Path, ref_emb: np.ndarray | None,
         session_factory: SessionFactory, measure: MeasureFn | None, log: Logger, t_total: float) -> dict[str, Any]:
    log.info("chunk_start", start=spec.start, end=spec.end, frames=spec.frames, swapper=spec.swapper,
             enhancer=spec.enhancer, spec_hash=h)
    offset = _mezzanine_offset(area, spec)
    mezz = area.stage(area.chunk_rel(spec.chunk), tmp)
    mp = probe.probe(mezz)
    if mp.frames < offset + spec.frames:
        raise BadInput(f"chunk {spec.chunk} mezzanine has {mp.frames} frames, need {offset + spec.frames}")
    swapper_opts, detector = split_options(spec.swapper_options())
    source, source_emb, _ = load_source(area)
    session = session_factory(
        source=source, swapper=spec.swapper, options=swapper_opts, model_dir=spec.model_dir,
        face_selector=spec.face_selector, reference_embedding=ref_emb, enhancer=spec.enhancer,
        fps=float(mp.fps), **_detector_kwargs(detector),
    )
    seg_local = tmp / "segment.mp4"
    t = {"decode_s": 0.0, "detect_s": 0.0, "swap_s": 0.0, "encode_s": 0.0, "metrics_s": 0.0}
    infos = _MaskStore()
    progress = Progress(log, spec.frames, event="swap_progress")
    shape = (mp.height, mp.width)
    t_swap, c_swap = time.perf_counter(), _cpu_s()
    writer = frameio.BackgroundWriter(
        frameio.FrameWriter(seg_local, mp.fps, mp.width, mp.height, crf=spec.crf, preset=spec.preset,
                          convert_in_python=True, threads=encoder_threads()))
    try:
        # Frames stay I420 from decoder to encoder; only face regions are converted (faceworker.frames).
        i420 = mp.width % 2 == 0 and mp.height % 2 == 0 and getattr(session, "accepts_frame_view", False)
        # the metrics pass compares I420 frames unless given its own `measure` (BGR): copies of the
        # originals it can use are kept (the swap changes FrameViews in place), within a memory budget
        reuse = measure is None and i420
        kept: list[np.ndarray] | None = [] if reuse and keep_originals(
            spec.frames, mp.width * mp.height * 3 // 2) else None
        frames = frameio.prefetch(frameio.read_frames(mezz, offset, offset + spec.frames, size=(mp.width, mp.height),
                                                  pix_fmt="yuv420p" if i420 else "bgr24"))
        for i in range(spec.frames):
            t0 = time.perf_counter()
            frame = next(frames)
            if kept is not None:
                kept.append(frame.copy())
            view = FrameView(i420=frame, width=mp.width, height=mp.height) if i420 else frame
            t1 = time.perf_counter()
            out, info = session.process(view, spec.start + i)
            t2 = time.perf_counter()
            written = out.i420 if isinstance(out, FrameView) else out
            assert written is not None  # the view was built from an I420 buffer
            writer.write(written)
            t3 = time.perf_counter()
            d, s = _stage_times(info)
            if d == 0.0 and s == 0.0:
                s = t2 - t1
            t["decode_s"] += t1 - t0
            t["detect_s"] += d
            t["swap_s"] += s
            t["encode_s"] += t3 - t2
            infos.add(info, shape)
            progress.step(spec.start + i)
            if i + 1 == max(1, spec.frames // 2):
                pause_at("swap_mid_chunk", spec.chunk)  # test hook (faceworker.testhooks); no-op unset
        frames.close()
        t0 = time.perf_counter()
        written = writer.close()
        t["encode_s"] += time.perf_counter() - t0
    except BaseException:
        writer.abort()
        raise
    out_frames = probe.count_segment_frames(seg_local)
    if written != spec.frames or out_frames != spec.frames:
        raise ffmpeg.FFmpegError(f"segment has {out_frames} frames, expected {spec.frames}")
    t["swap_pass_s"] = time.perf_counter() - t_swap
    t["swap_cpu_s"] = _cpu_s() - c_swap

    # Metrics on the encoded output, against the original (mezzanine) frames.
    t0, c0 = time.perf_counter(), _cpu_s()
    analyzer = getattr(session, "analyzer", None)
    rows: list[dict[str, Any]] = []
    embs = np.full((spec.frames, source_emb.shape[0]), np.nan, np.float32)
    # QA thumbnails of the frames the report may show, from the frames this pass decodes anyway
    order_total = order_frames(area, spec.end)  # read once: the tap and write_thumbnails both need it
    tap = Tap((mp.width, mp.height), fixed_picks(spec.start, spec.end, order_total))
    mprog = Progress(log, spec.frames, event="metrics_progress")

    def finish(i: int, row: dict[str, Any]) -> None:
        for key in EMBEDDING_KEYS:
            if key in row:
                vec = row.pop(key)
                if vec is not None:
                    embs[i] = np.asarray(vec, np.float32).reshape(-1)[: embs.shape[1]]
        row.setdefault("frame", spec.start + i)
        row.setdefault("chunk", spec.chunk)
        rows.append(row)
        mprog.step(spec.start + i)

    # I420 (no conversions) unless the size is odd or a caller-supplied `measure` (BGR frames) is given.
    i420 = measure is None and mp.width % 2 == 0 and mp.height % 2 == 0
    fmt = "yuv420p" if i420 else "bgr24"
    originals = _original_frames(mezz, offset, spec.frames, (mp.width, mp.height), fmt, kept if i420 else None)
    kept = None
    outputs = frameio.prefetch(frameio.read_frames(seg_local, 0, spec.frames, size=(mp.width, mp.height),
                                                   pix_fmt=fmt))
    embedder = None
    try:
        if measure is None:
            from faceworker.faces import ChipEmbedder
            from faceworker.metrics_pass import ChunkMeasurer, measure_chunk

            embedder = ChipEmbedder(metrics_workers(spec.frames))
            assert analyzer is not None, "the swap session carries the analyzer the QA pass reuses"
            measurer = ChunkMeasurer([infos.peek(i) for i in range(spec.frames)], mp.width, mp.height,
                                     source_emb, analyzer, embedder, seed=spec.start, i420=i420)
            measure_chunk(zip(originals, outputs), infos, spec.frames, measurer, finish, tap.offer)
        else:
            for i, (orig, outf) in enumerate(zip(originals, outputs)):
                row = dict(measure(orig, outf, infos.get(i), source_emb, analyzer))
                tap.offer(i, orig, outf, row)
                finish(i, row)
                infos.release(i)
    finally:
        originals.close()
        outputs.close()
        if embedder is not None:
            embedder.close()
    if len(rows) != spec.frames:
        raise ffmpeg.FFmpegError(f"metrics covered {len(rows)} frames, expected {spec.frames}")
    t["metrics_s"] = time.perf_counter() - t0
    t["metrics_cpu_s"] = _cpu_s() - c0

    write_thumbnails(area, spec.chunk, spec.start, spec.end, rows, tap, log, order_total)
    recognizer = getattr(getattr(analyzer, "recognizer", None), "name", "dlib_resnet_v1")
    metrics_doc = {"order": spec.order, "chunk": spec.chunk, "start": spec.start, "end": spec.end,
                   "recognizer": recognizer, "id_sample_every": ID_SAMPLE_EVERY if measure is None else 1,
                   "swapper": spec.swapper, "enhancer": spec.enhancer,
                   "source_warnings": list(getattr(source, "warnings", []) or []), "frames": rows}
    summary = _summary(rows)
    t["total_s"] = time.perf_counter() - t_total
    timings = {k: round(v, 3) for k, v in t.items()}

    # Upload: payload first, done.json LAST (the checkpoint).
    area.publish(seg_local, area.swapped_rel(spec.chunk, "segment.mp4"))
    area.write_bytes(area.swapped_rel(spec.chunk, "metrics.json"),
                     json.dumps(_clean(metrics_doc), default=_json_default, allow_nan=False).encode())
    buf = io.BytesIO()
    np.save(buf, embs)
    area.write_bytes(area.swapped_rel(spec.chunk, "embeddings.npy"), buf.getvalue())
    done = done_record(spec, h, spec.frames, timings, summary)
    done["fps"] = round(spec.frames / t["total_s"], 2) if t["total_s"] > 0 else None
    area.write_json(area.swapped_rel(spec.chunk, "done.json"), done)
    log.info("chunk_done", frames=spec.frames, timings=timings, summary=summary)
    return _result(spec, area, done, cached=False)


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: they become null (the schema's "no value")."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and not np.isfinite(value) else value
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
