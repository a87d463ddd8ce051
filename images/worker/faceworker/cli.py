"""`faceworker` — the worker container's command (and the local runner's).

Contract (docs/contracts.md): JSON-lines logs on stderr, the result as one JSON object on the last
line of stdout (also written to --xcom-file), exit 0 ok / 2 bad input / 75 transient / 1 bug.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from faceworker import settings
from faceworker.errors import EXIT_BAD_INPUT, EXIT_BUG, EXIT_OK, EXIT_TRANSIENT, BadInput, TransientError
from faceworker.logs import Logger, get_logger
from faceworker.spec import FACE_SELECTORS
from faceworker.workarea import OrderArea, WorkArea, open_store, scratch

# --------------------------------------------------------------------------- helpers


def _stage_uri(uri: str, tmp: Path) -> Path:
    """A local file for a local path, file:// or s3:// URI."""
    if uri.startswith("s3://") or uri.startswith("file://"):
        parent, _, name = uri.rstrip("/").rpartition("/")
        if not name:
            raise BadInput(f"not a file URI: {uri}")
        store = open_store(parent)
        local = store.local_path(name)
        if local is not None:
            if not local.exists():
                raise BadInput(f"file not found: {uri}")
            return local
        return store.download_to(name, tmp / name)
    path = Path(uri)
    if not path.exists():
        raise BadInput(f"file not found: {uri}")
    if path.is_dir():
        raise BadInput(f"is a directory, not a file: {uri}")
    return path


def _area(args: argparse.Namespace) -> OrderArea:
    return WorkArea(args.work).order(args.order)


def _target_rel(area: OrderArea) -> str:
    """The target the engine works on: the CFR-normalised copy when ingest made one."""
    if area.exists("input/target_cfr.mkv"):
        return "input/target_cfr.mkv"
    hits = [r for r in area.list("input") if r.rsplit("/", 1)[-1].rsplit(".", 1)[0] == "target"]
    if not hits:
        raise BadInput(f"no input/target.* in {area.uri('input')}")
    if len(hits) > 1:
        raise BadInput(f"several input/target.* in {area.uri('input')}: {hits}")
    return hits[0]


def _original_target_rel(area: OrderArea) -> str:
    hits = [r for r in area.list("input") if r.rsplit("/", 1)[-1].rsplit(".", 1)[0] == "target"
            and not r.endswith("target_cfr.mkv")]
    if len(hits) != 1:
        raise BadInput(f"expected one input/target.* in {area.uri('input')}, found {hits}")
    return hits[0]


# --------------------------------------------------------------------------- commands


def cmd_probe(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from faceworker import probe

    with scratch() as tmp:
        pr = probe.probe(_stage_uri(args.uri, tmp), exact=args.exact)
    result = pr.to_dict()
    result["path"] = args.uri
    if args.work and args.order:
        _area(args).write_json("input/probe.json", result)
    log.info("probed", frames=pr.frames, fps=result["fps"], vfr=pr.is_vfr)
    return result


def cmd_normalise(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    """Re-time the order's original target to constant fps (even size, rotation applied) into
    input/target_cfr.mkv, so frame ranges are exact; the result is the probe of that file."""
    from faceworker import edit

    area = _area(args)
    rel = _original_target_rel(area)
    with scratch() as tmp:
        out = tmp / "target_cfr.mkv"
        pr = edit.normalise_to_cfr(area.stage(rel, tmp), out)
        uri = area.publish(out, "input/target_cfr.mkv")
    result = pr.to_dict()
    result["path"] = uri
    log.info("normalised", frames=pr.frames, fps=result["fps"], source=area.uri(rel))
    return result


def cmd_embed(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    import cv2
    import numpy as np

    from faceworker.align import align_crop, ffhq_template
    from faceworker.chunk_runner import decode_image, load_reference
    from faceworker.faces import FaceAnalyzer
    from faceworker.source import load_source_face

    area = _area(args)
    rel = area.find_input("source")
    image = decode_image(area.read_bytes(rel), f"source photo {area.uri(rel)}")
    source = load_source_face(image, selector=args.selector)
    emb = np.asarray(source.embedding, np.float32)
    face = source.face
    buf = io.BytesIO()
    np.save(buf, emb)
    area.write_bytes("input/source_embedding.npy", buf.getvalue())
    crop = align_crop(image, face.landmarks, ffhq_template(256), 256).image
    ok, png = cv2.imencode(".png", crop)
    if ok:
        area.write_bytes("input/source_face.png", png.tobytes())
    meta: dict[str, Any] = {
        "recognizer": "dlib_resnet_v1",
        "dim": int(emb.shape[0]),
        "selector": args.selector,
        "bbox": [int(v) for v in face.bbox],
        "landmarks68": np.asarray(face.landmarks, float).round(2).tolist(),
        "yaw_deg": round(float(FaceAnalyzer.yaw_deg(face)), 2),
        "warnings": list(source.warnings),
        "image_size": [int(image.shape[1]), int(image.shape[0])],
        "source": area.uri(rel),
    }
    if args.reference:
        with scratch() as tmp:
            ref, _ = load_reference(area, args.reference, tmp)
        rbuf = io.BytesIO()
        np.save(rbuf, ref)
        area.write_bytes("input/reference_embedding.npy", rbuf.getvalue())
        meta["reference"] = args.reference
    area.write_json("input/source_face.json", meta)
    for w in source.warnings:
        log.warning("source_warning", warning=w, yaw_deg=meta["yaw_deg"])
    log.info("embedded", dim=meta["dim"], yaw_deg=meta["yaw_deg"])
    return {"order": args.order, "embedding": area.uri("input/source_embedding.npy"),
            "face": area.uri("input/source_face.json"), "crop": area.uri("input/source_face.png"),
            "bbox": meta["bbox"], "yaw_deg": meta["yaw_deg"], "warnings": meta["warnings"]}


def cmd_split(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from faceworker import edit, gops, probe

    area = _area(args)
    rel = _target_rel(area)
    with scratch() as tmp:
        src = area.stage(rel, tmp)
        pr = probe.probe(src)
        local_chunks = area.local_path("chunks")
        out_dir = local_chunks if local_chunks is not None else tmp / "chunks"
        chunks = gops.split_copy(src, out_dir, args.chunk_frames, pr)
        if chunks is not None:
            norm, mode = pr, "copy"
        else:  # VFR, odd size, rotation, other pixel formats, unusual GOPs: re-encode losslessly
            (chunks, norm), mode = edit.split(src, out_dir, args.chunk_frames, pr), "reencode"
        if local_chunks is None:
            for c in chunks:
                area.publish(out_dir / f"{c['chunk']:05d}" / "segment.mkv", area.chunk_rel(c["chunk"]))
        else:  # drop pieces left over from an earlier split with a different chunk size
            for stale in sorted(local_chunks.glob("[0-9]" * 5)):
                if int(stale.name) >= len(chunks):
                    shutil.rmtree(stale)
        area.write_json("chunks/chunks.json", chunks)
    log.info("split", chunks=len(chunks), frames=norm.frames, normalised=pr.needs_normalisation, mode=mode,
             lead_in_frames=sum(c["start"] - c.get("mezz_start", c["start"]) for c in chunks))
    return {"order": args.order, "chunks": chunks, "frames": norm.frames, "mode": mode,
            "fps": f"{norm.fps.numerator}/{norm.fps.denominator}", "width": norm.width, "height": norm.height,
            "normalised": pr.needs_normalisation, "source": area.uri(rel)}


def cmd_swap_chunk(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from faceworker.chunk_runner import run_chunk
    from faceworker.spec import ChunkSpec

    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as exc:
        raise BadInput(f"--options is not valid JSON: {exc}") from exc
    spec = ChunkSpec(
        work=args.work or WorkArea(None).root, order=args.order, chunk=args.chunk, start=args.start, end=args.end,
        swapper=args.swapper, enhancer=args.enhancer, face_selector=args.face_selector,
        identity_weight=args.identity_weight, options=options,
        model_dir=args.model_dir or settings.raw("FACEFACTORY_MODEL_DIR"), reference=args.reference,
        crf=args.crf, preset=args.preset,
    )
    return run_chunk(spec, log=log)


def cmd_merge(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from fractions import Fraction

    from faceworker import edit, probe

    area = _area(args)
    chunks = area.read_json("chunks/chunks.json")
    if not chunks:
        raise BadInput("chunks/chunks.json lists no chunks")
    expect = int(chunks[-1]["end"]) - int(chunks[0]["start"])
    with scratch() as tmp:
        segs = []
        for c in chunks:
            i = int(c["chunk"])
            done_rel = area.swapped_rel(i, "done.json")
            if not area.exists(done_rel):
                raise BadInput(f"chunk {i} is not done (no {area.uri(done_rel)})")
            done = area.read_json(done_rel)
            if int(done.get("frames", -1)) != int(c["end"]) - int(c["start"]):
                raise BadInput(f"chunk {i}: done.json has {done.get('frames')} frames, chunks.json says "
                               f"{int(c['end']) - int(c['start'])}")
            segs.append(area.stage(area.swapped_rel(i, "segment.mp4"), tmp))
        fps = probe.probe(segs[0], count=False).fps  # our own CFR encode: its stream says the rate
        audio_src = area.stage(_original_target_rel(area), tmp)
        original = probe.probe(audio_src, count=False)  # displayed size and audio of the order's own target
        out_local = tmp / f"{args.order}.mp4"
        out = edit.merge(segs, audio_src, out_local, expect, Fraction(fps),
                          size=(original.width, original.height), audio=original.audio)
        uri = area.publish(out_local, f"output/{args.order}.mp4")
    log.info("merged", frames=out.frames, duration=out.duration, audio=bool(out.audio))
    return {"order": args.order, "output": uri, "frames": out.frames, "duration": out.duration,
            "fps": f"{out.fps.numerator}/{out.fps.denominator}", "width": out.width, "height": out.height,
            "audio_streams": len(out.audio)}


def cmd_sample(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from faceworker.sample import DEFAULT_SOURCE, DEFAULT_TARGET, build_sample_order, parse_size

    result = build_sample_order(args.out, source=args.source or DEFAULT_SOURCE, target=args.target or DEFAULT_TARGET,
                                seconds=args.seconds, size=parse_size(args.size), fps=args.fps, seed=args.seed)
    log.info("sample_written", **{k: result[k] for k in ("source", "target", "frames")})
    return result


def cmd_contact_sheet(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    from faceworker import edit, probe
    from faceworker.contact_sheet import contact_sheet

    area = _area(args)
    with scratch() as tmp:
        before = area.stage(_target_rel(area), tmp)
        if probe.probe(before).needs_normalisation:  # compare on the CFR/even timeline the swap used
            before = Path(edit.normalise_to_cfr(before, tmp / "before_cfr.mkv").path)
        out_rel = f"output/{args.order}.mp4"
        if area.exists(out_rel):
            after = area.stage(out_rel, tmp)
        else:  # not merged yet: concatenate the swapped segments that exist
            segs = [area.stage(r, tmp) for r in area.list("swapped") if r.endswith("/segment.mp4")]
            if not segs:
                raise BadInput(f"nothing swapped yet in {area.uri('swapped')}")
            after = tmp / "swapped.mp4"
            edit.concat_segments(segs, after)
        result = contact_sheet(before, after, args.out, count=args.frames)
    log.info("contact_sheet", png=result["png"])
    return result


# --------------------------------------------------------------------------- parser / main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceworker", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def work_order(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("--work", default=None, help="work root: path, file:// or s3:// (FACEFACTORY_WORK_ROOT)")
        sp.add_argument("--order", required=required, help="order id")
        sp.add_argument("--xcom-file", default=None, help="also write the result JSON here")

    sp = sub.add_parser("probe", help="probe a video -> JSON")
    sp.add_argument("uri")
    sp.add_argument("--exact", action="store_true", help="count frames by decoding (slow)")
    work_order(sp, required=False)
    sp.set_defaults(func=cmd_probe)

    sp = sub.add_parser("normalise", help="VFR/odd-sized/rotated target -> input/target_cfr.mkv, its probe JSON")
    work_order(sp)
    sp.set_defaults(func=cmd_normalise)

    sp = sub.add_parser("embed", help="source photo -> embedding, face JSON, aligned crop")
    work_order(sp)
    sp.add_argument("--selector", choices=["only", "largest"], default="only")
    sp.add_argument("--reference", default=None, help="photo or .npy of the person to track (face selector reference)")
    sp.set_defaults(func=cmd_embed)

    sp = sub.add_parser("split", help="target -> mezzanine chunks + chunks.json")
    work_order(sp)
    sp.add_argument("--chunk-frames", type=int, default=96)
    sp.set_defaults(func=cmd_split)

    sp = sub.add_parser("swap-chunk", help="swap one chunk (checkpointed by done.json)")
    work_order(sp)
    sp.add_argument("--chunk", type=int, required=True)
    sp.add_argument("--start", type=int, required=True)
    sp.add_argument("--end", type=int, required=True)
    sp.add_argument("--swapper", default="classic")
    sp.add_argument("--enhancer", default="none")
    sp.add_argument("--face-selector", default="one", choices=FACE_SELECTORS)
    sp.add_argument("--reference", default=None)
    sp.add_argument("--identity-weight", type=float, default=None)
    sp.add_argument("--options", default=None, help="swapper options as a JSON object")
    sp.add_argument("--model-dir", default=None)
    sp.add_argument("--crf", type=int, default=18)
    sp.add_argument("--preset", default="veryfast")
    sp.set_defaults(func=cmd_swap_chunk)

    sp = sub.add_parser("merge", help="concat swapped segments + original audio -> output/<order>.mp4")
    work_order(sp)
    sp.set_defaults(func=cmd_merge)

    sp = sub.add_parser("sample", help="write a sample order (source.png, target.mp4) from shipped faces")
    sp.add_argument("--out", required=True)
    sp.add_argument("--seconds", type=float, default=4)
    sp.add_argument("--size", default="1280x720")
    sp.add_argument("--fps", type=float, default=25)
    sp.add_argument("--source", default=None, help="sample face name (default: the most frontal t1 face)")
    sp.add_argument("--target", default=None, help="sample face name for the target video (default astronaut)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--xcom-file", default=None)
    sp.set_defaults(func=cmd_sample)

    sp = sub.add_parser("contact-sheet", help="before/after PNG of frames spread over the video")
    work_order(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--frames", type=int, default=6)
    sp.set_defaults(func=cmd_contact_sheet)
    return p


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TransientError, MemoryError)):
        return True
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (BotoConnectionError, EndpointConnectionError, ReadTimeoutError, ConnectionError))


def _emit(result: dict[str, Any], xcom_file: str | None) -> None:
    line = json.dumps(result, default=str, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if xcom_file:
        path = Path(xcom_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(line + "\n")
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = get_logger(cmd=args.command, order=getattr(args, "order", None), chunk=getattr(args, "chunk", None))
    xcom = getattr(args, "xcom_file", None)
    try:
        result = args.func(args, log)
    except BadInput as exc:
        log.error("bad_input", error=str(exc), exit_code=EXIT_BAD_INPUT)
        _emit({"error": str(exc), "kind": "bad_input", "exit_code": EXIT_BAD_INPUT}, None)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        log.error("interrupted", exit_code=EXIT_TRANSIENT)
        return EXIT_TRANSIENT
    except Exception as exc:  # noqa: BLE001 - the exit code is the whole point here
        if _is_transient(exc):
            log.error("transient_error", error=str(exc), type=type(exc).__name__, exit_code=EXIT_TRANSIENT)
            _emit({"error": str(exc), "kind": "transient", "exit_code": EXIT_TRANSIENT}, None)
            return EXIT_TRANSIENT
        log.error("bug", error=str(exc), type=type(exc).__name__, traceback=traceback.format_exc(),
                  exit_code=EXIT_BUG)
        _emit({"error": f"{type(exc).__name__}: {exc}", "kind": "bug", "exit_code": EXIT_BUG}, None)
        return EXIT_BUG
    _emit(result, xcom)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
