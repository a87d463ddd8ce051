"""Chunk runner: outputs per contract, frame exactness, done.json checkpoint, offsets, S3 work roots.

The swap itself is a test-only session (conftest.CountingSession) so these tests are fast and can count
calls; the real engine runs in test_cli's end-to-end test.
"""
from __future__ import annotations

import io
import json
import os
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from worker_support import CountingSession, fake_measure, prepared_order

from faceworker import frameio, probe
from faceworker.chunk_runner import run_chunk
from faceworker.errors import BadInput
from faceworker.spec import ChunkSpec


@pytest.fixture(scope="module")
def order_root(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("work")
    prepared_order(root, "o1", sample_dir, chunk_frames=15)
    return root


def _spec(root: Path | str, chunk: int = 0, start: int = 0, end: int = 15, **kw: object) -> ChunkSpec:
    return ChunkSpec(work=str(root), order="o1", chunk=chunk, start=start, end=end, **kw)


def _run(spec: ChunkSpec, no_face: frozenset[int] = frozenset()) -> dict:
    return run_chunk(spec, session_factory=partial(CountingSession, no_face), measure=fake_measure)


def test_outputs_follow_the_contract(order_root: Path, counting_session: type[CountingSession]) -> None:
    chunks = json.loads((order_root / "orders/o1/chunks/chunks.json").read_text())
    assert [c["end"] - c["start"] for c in chunks] == [15, 15]  # 1.2 s at 25 fps = 30 frames
    res = _run(_spec(order_root, chunk=1, start=15, end=30), no_face=frozenset({20, 21}))
    assert res["cached"] is False and res["frames"] == 15 and counting_session.calls == 15
    assert set(res["timings"]) >= {"decode_s", "detect_s", "swap_s", "encode_s", "metrics_s", "total_s"}
    sw = order_root / "orders/o1/swapped/00001"
    assert res["segment"] == str(sw / "segment.mp4") and res["done"] == str(sw / "done.json")
    pr = probe.probe(sw / "segment.mp4")
    assert pr.frames == 15 and pr.codec == "h264" and pr.pix_fmt == "yuv420p" and (pr.width, pr.height) == (640, 360)
    metrics = json.loads((sw / "metrics.json").read_text())
    assert [r["frame"] for r in metrics["frames"]] == list(range(15, 30))
    assert all(r["chunk"] == 1 for r in metrics["frames"])
    assert "embedding" not in metrics["frames"][0]
    flagged = [r["frame"] for r in metrics["frames"] if "no_face_in_target" in r["warnings"]]
    assert flagged == [20, 21]
    emb = np.load(sw / "embeddings.npy")
    assert emb.shape == (15, 128) and emb.dtype == np.float32
    assert np.isnan(emb[5]).all() and np.isnan(emb[6]).all() and np.isfinite(emb[0]).all()
    done = json.loads((sw / "done.json").read_text())
    assert done["spec_hash"] == res["spec_hash"] and done["frames"] == 15 and done["engine_version"]
    assert done["summary"]["swapped_frames"] == 13 and done["summary"]["faces_frames"] == 13
    # the metrics were measured on the right frames: outside the swapped box the output matches the original
    assert done["summary"]["min_psnr_db"] > 30
    # done.json is written last
    assert (sw / "done.json").stat().st_mtime_ns >= max(
        (sw / n).stat().st_mtime_ns for n in ("segment.mp4", "metrics.json", "embeddings.npy"))


def test_second_run_is_cached_without_recomputing(order_root: Path, counting_session: type[CountingSession]) -> None:
    first = _run(_spec(order_root))
    assert counting_session.calls == 15
    done = order_root / "orders/o1/swapped/00000/done.json"
    seg = order_root / "orders/o1/swapped/00000/segment.mp4"
    stamps = (done.stat().st_mtime_ns, seg.stat().st_mtime_ns)
    second = _run(_spec(order_root))
    assert second["cached"] is True and counting_session.calls == 15  # not a single frame processed
    assert second["spec_hash"] == first["spec_hash"] and second["summary"] == first["summary"]
    assert (done.stat().st_mtime_ns, seg.stat().st_mtime_ns) == stamps


def test_changed_spec_recomputes(order_root: Path, counting_session: type[CountingSession]) -> None:
    a = _run(_spec(order_root))
    calls = counting_session.calls
    b = _run(_spec(order_root, identity_weight=0.5))
    assert b["cached"] is False and b["spec_hash"] != a["spec_hash"] and counting_session.calls == calls + 15
    c = _run(_spec(order_root, identity_weight=0.5, crf=23))
    assert c["cached"] is False and c["spec_hash"] != b["spec_hash"]


def test_stale_or_broken_checkpoint_recomputes(order_root: Path, counting_session: type[CountingSession]) -> None:
    _run(_spec(order_root))
    done = order_root / "orders/o1/swapped/00000/done.json"
    done.write_text("{not json")
    res = _run(_spec(order_root))
    assert res["cached"] is False and json.loads(done.read_text())["frames"] == 15


def test_partial_range_inside_a_chunk(order_root: Path, counting_session: type[CountingSession]) -> None:
    res = _run(_spec(order_root, chunk=1, start=18, end=27))
    assert res["frames"] == 9 and counting_session.calls == 9
    assert res["summary"]["min_psnr_db"] > 30  # frames aligned with the original at 18..26
    rows = json.loads((order_root / "orders/o1/swapped/00001/metrics.json").read_text())["frames"]
    assert [r["frame"] for r in rows] == list(range(18, 27))


@pytest.mark.parametrize("start, end, message", [(10, 20, "outside chunk"), (5, 5, "bad frame range")])
def test_bad_ranges(order_root: Path, start: int, end: int, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        _run(_spec(order_root, start=start, end=end))


def test_bad_options(order_root: Path) -> None:
    with pytest.raises(BadInput, match="enhancer"):
        _run(_spec(order_root, enhancer="sharpen"))
    with pytest.raises(BadInput, match="identity weight"):
        _run(_spec(order_root, identity_weight=1.5))


def test_s3_work_root(order_root: Path, s3_bucket: str, counting_session: type[CountingSession]) -> None:
    import os

    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["FACEFACTORY_S3_ENDPOINT_URL"], region_name="us-east-1")
    base = order_root / "orders/o1"
    for rel in ("input/source.png", "input/target.mp4", "input/source_embedding.npy", "input/source_face.json",
                "chunks/chunks.json", "chunks/00000/segment.mkv"):
        s3.upload_file(str(base / rel), s3_bucket, f"w/orders/o1/{rel}")
    res = _run(_spec(f"s3://{s3_bucket}/w"))
    assert res["cached"] is False and res["done"] == f"s3://{s3_bucket}/w/orders/o1/swapped/00000/done.json"
    body = s3.get_object(Bucket=s3_bucket, Key="w/orders/o1/swapped/00000/embeddings.npy")["Body"].read()
    assert np.load(io.BytesIO(body)).shape == (15, 128)
    local = Path(res["segment"].replace(f"s3://{s3_bucket}/", "/nonexistent/"))
    assert not local.exists()
    again = _run(_spec(f"s3://{s3_bucket}/w"))
    assert again["cached"] is True and counting_session.calls == 15


def test_vfr_odd_target_without_audio_through_split_swap_merge(
    tmp_path: Path, media: dict[str, Path], counting_session: type[CountingSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A VFR target (no audio) is normalised by split; chunks swap; merge keeps the CFR frame count."""
    import shutil

    import cv2

    from faceworker.cli import main

    inp = tmp_path / "orders/o1/input"
    inp.mkdir(parents=True)
    shutil.copy(media["vfr"], inp / "target.mkv")
    cv2.imwrite(str(inp / "source.png"), np.zeros((8, 8, 3), np.uint8))
    np.save(inp / "source_embedding.npy", np.ones(128, np.float32))
    (inp / "source_face.json").write_text("{}")
    assert main(["split", "--work", str(tmp_path), "--order", "o1", "--chunk-frames", "50"]) == 0
    chunks = json.loads((tmp_path / "orders/o1/chunks/chunks.json").read_text())
    assert chunks[-1]["end"] == 118
    import faceworker.chunk_runner as cr

    # test patterns have no face: skip the source photo, the counting session needs none
    monkeypatch.setattr(cr, "load_source", lambda area, selector=None: (None, np.ones(128, np.float32), b""))
    for c in chunks:
        _run(ChunkSpec(work=str(tmp_path), order="o1", chunk=c["chunk"], start=c["start"], end=c["end"]))
    assert counting_session.calls == 118
    assert main(["merge", "--work", str(tmp_path), "--order", "o1"]) == 0
    out = probe.probe(tmp_path / "orders/o1/output/o1.mp4")
    assert out.frames == 118 and not out.is_vfr and out.audio == []
    assert main(["contact-sheet", "--work", str(tmp_path), "--order", "o1", "--out", str(tmp_path / "s.png")]) == 0


def test_detector_options_go_to_the_session_not_the_swapper(order_root: Path,
                                                            counting_session: type[CountingSession]) -> None:
    from faceworker.chunk_runner import split_options
    from faceworker.options import RUNNER_OPTIONS

    assert "detector" in RUNNER_OPTIONS
    seen: dict = {}

    def factory(**kwargs: object) -> CountingSession:
        seen.update(kwargs)
        return CountingSession(**kwargs)

    opts = {"feather_frac": 0.05, "detector": {"detect_scale": 1.0, "upsample": 1, "redetect_every": 1}}
    run_chunk(_spec(order_root, options=opts), session_factory=factory, measure=fake_measure)
    assert seen["options"] == {"feather_frac": 0.05}
    assert seen["redetect_every"] == 1 and seen["detect_scale"] == 1.0
    assert seen["analyzer"].upsample == 1 and seen["analyzer"].detect_scale == 1.0
    with pytest.raises(BadInput, match="unknown detector"):
        split_options({"detector": {"cnn": True}})
    with pytest.raises(BadInput, match="detect_scale"):
        split_options({"detector": {"detect_scale": 3}})


def test_metrics_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import faceworker.chunk_runner as cr
    from faceworker.chunk_runner import METRICS_WORKERS_ENV, MIN_FRAMES_FOR_WORKERS, metrics_workers

    monkeypatch.delenv(METRICS_WORKERS_ENV, raising=False)
    monkeypatch.setattr(cr, "usable_cpus", lambda: 16)
    assert metrics_workers(500) == 0  # sampled identity: a few embeddings, inline costs less CPU
    monkeypatch.undo()
    assert 1 <= cr.usable_cpus() <= (os.cpu_count() or 1)  # the real one: affinity, cgroup quota
    monkeypatch.setenv(METRICS_WORKERS_ENV, "3")
    assert metrics_workers(500) == 3
    assert metrics_workers(MIN_FRAMES_FOR_WORKERS - 1) == 0  # a short chunk: start-up would dominate
    monkeypatch.setenv(METRICS_WORKERS_ENV, "-1")
    assert metrics_workers(500) == 0
    monkeypatch.setenv(METRICS_WORKERS_ENV, "many")
    with pytest.raises(BadInput):
        metrics_workers(500)


def test_keep_originals_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceworker.chunk_runner import KEEP_ORIGINALS_ENV, keep_originals

    frame_720p = 1280 * 720 * 3 // 2
    monkeypatch.delenv(KEEP_ORIGINALS_ENV, raising=False)
    frame_1080p = 1920 * 1080 * 3 // 2
    assert keep_originals(96, frame_720p) and keep_originals(96, frame_1080p) and keep_originals(375, frame_720p)
    assert keep_originals(375, frame_1080p)  # 1.17 GB: the auto chunks of a 60 s 1080p order
    assert not keep_originals(700, frame_1080p)  # 2.2 GB (a chunk grown for max_map_length): decoded again
    monkeypatch.setenv(KEEP_ORIGINALS_ENV, "0")
    assert not keep_originals(1, frame_720p)
    monkeypatch.setenv(KEEP_ORIGINALS_ENV, "lots")
    with pytest.raises(BadInput):
        keep_originals(1, frame_720p)


def test_encoder_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceworker.chunk_runner import ENCODER_THREADS_ENV, encoder_threads

    monkeypatch.delenv(ENCODER_THREADS_ENV, raising=False)
    assert encoder_threads() == max(1, len(os.sched_getaffinity(0)) // 2)  # the swap pass shares the CPUs
    monkeypatch.setenv(ENCODER_THREADS_ENV, "0")
    assert encoder_threads() == 0  # x264 decides
    monkeypatch.setenv(ENCODER_THREADS_ENV, "1")
    assert encoder_threads() == 1
    monkeypatch.setenv(ENCODER_THREADS_ENV, "many")
    with pytest.raises(BadInput, match=ENCODER_THREADS_ENV):
        encoder_threads()


def test_runner_encoder_converts_in_python_exactly_n_frames(tmp_path: Path) -> None:
    """The chunk runner hands the encoder I420 converted by cv2 (in the writer thread): frame count,
    pixel format and fidelity stay what the contract asks of a segment (no worse than ffmpeg's own
    bgr24 conversion on frames decoded from yuv420p, which is all the runner ever encodes)."""
    from fractions import Fraction

    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.integers(0, 256, (180, 320, 3), np.uint8), (9, 9), 0)
    raw = tmp_path / "raw.mp4"
    with frameio.FrameWriter(raw, Fraction(25), 320, 180, crf=0, preset="ultrafast") as w0:
        for i in range(13):
            w0.write(np.ascontiguousarray(np.roll(base, 3 * i, axis=1)))
    frames = list(frameio.read_frames(raw))  # like the runner's: decoded from yuv420p
    psnr = {}
    for convert in (False, True):
        out = tmp_path / f"seg{convert}.mp4"
        w = frameio.BackgroundWriter(frameio.FrameWriter(out, Fraction(25), 320, 180, crf=12, preset="ultrafast",
                                                     convert_in_python=convert), depth=2)
        for f in frames:
            w.write(f)
        assert w.close() == 13
        pr = probe.probe(out)
        assert pr.frames == 13 and pr.pix_fmt == "yuv420p"
        back = list(frameio.read_frames(out))
        assert len(back) == 13
        psnr[convert] = min(10 * np.log10(255**2 / max(1e-9, np.mean((a.astype(float) - b) ** 2)))
                            for a, b in zip(frames, back))
    assert psnr[True] > 30 and psnr[True] >= psnr[False] - 0.5
    with pytest.raises(ValueError):
        frameio.BackgroundWriter(frameio.FrameWriter(tmp_path / "x.mp4", 25, 320, 180)).write(frames[0][:10])


@pytest.mark.slow
def test_metrics_worker_pool_gives_the_same_rows(tmp_path: Path, sample_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Real engine, one 30-frame chunk: metrics with embeddings in two worker processes, and with the
    originals decoded again instead of kept from the swap pass, equal the inline ones (rows and
    embeddings.npy); every frame gets the cheap checks, a sample the identity."""
    from faceworker.chunk_runner import KEEP_ORIGINALS_ENV, METRICS_WORKERS_ENV

    prepared_order(tmp_path, "o1", sample_dir, chunk_frames=30)
    results = {}
    for workers in ("0", "2", "decode"):  # "decode": originals decoded again, not kept by the swap pass
        monkeypatch.setenv(METRICS_WORKERS_ENV, "0" if workers == "decode" else workers)
        monkeypatch.setenv(KEEP_ORIGINALS_ENV, "0" if workers == "decode" else "512")
        sw = tmp_path / "orders/o1/swapped/00000"
        if sw.exists():
            (sw / "done.json").unlink()
        res = run_chunk(_spec(tmp_path, start=0, end=30))
        assert res["timings"]["swap_cpu_s"] > 0 and res["timings"]["metrics_cpu_s"] > 0
        rows = json.loads((sw / "metrics.json").read_text())["frames"]
        embs = np.load(sw / "embeddings.npy")
        results[workers] = ([{k: v for k, v in r.items() if not k.startswith("t_")} for r in rows], embs)
    (rows0, embs0), (rows2, embs2), (rows_d, embs_d) = results["0"], results["2"], results["decode"]
    assert rows0 == rows2 == rows_d  # kept originals are the decoded ones: the same rows
    assert np.array_equal(embs0, embs2, equal_nan=True) and np.array_equal(embs0, embs_d, equal_nan=True)
    assert len(rows0) == 30 and all(r["face_found_after"] for r in rows0 if r["faces_target"])
    # identity on a sample: exactly the rows that say so carry a cosine and an embedding
    measured = [r["frame"] for r in rows0 if r["id_measured"]]
    assert measured == [r["frame"] for r in rows0 if r["id_cosine_raw"] is not None]
    assert measured == [i for i in range(30) if np.isfinite(embs0[i]).all()]
    assert 0 in measured and 29 in measured and 3 <= len(measured) < 15, measured
    assert all(r["id_reason"] for r in rows0 if r["id_measured"])
    assert all(r["face_change"] is not None and r["face_change"] > 3 for r in rows0)  # every frame swapped
