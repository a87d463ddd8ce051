"""Pure parts of the media steps: chunk ranges, map-length cap, probe reading, caps."""
from __future__ import annotations

from typing import Any

import pytest

from facefactory.operators import config, media


def test_chunk_ranges_tile_the_video() -> None:
    ranges = media.chunk_ranges(75, 32)
    assert ranges == [
        {"chunk": 0, "start": 0, "end": 32},
        {"chunk": 1, "start": 32, "end": 64},
        {"chunk": 2, "start": 64, "end": 75},
    ]
    assert media.chunk_ranges(64, 32)[-1] == {"chunk": 1, "start": 32, "end": 64}
    assert media.chunk_ranges(5, 96) == [{"chunk": 0, "start": 0, "end": 5}]


def test_chunks_grow_to_respect_max_map_length() -> None:
    assert media.effective_chunk_frames(1000, 96, 1024) == 96
    size = media.effective_chunk_frames(250_000, 96, 1024)
    assert size == 245 and len(media.chunk_ranges(250_000, size)) <= 1024
    with pytest.raises(ValueError):
        media.effective_chunk_frames(0, 96, 1024)


@pytest.mark.parametrize(("frames", "slots", "frame_size", "size"), [
    (1500, 2, (1280, 720), 750),    # a 60 s 25 fps order on the embedded default: one chunk per slot
    (1500, 2, (1920, 1080), 375),   # 750 1080p frames would not fit the QA pass's memory: two rounds
    (1500, 2, None, 750),           # frame size unknown (`facefactory k8s render`): frames alone
    (1501, 2, (1280, 720), 751),    # equal chunks, the last one a frame shorter
    (100, 2, (1280, 720), 96),      # short orders keep the 96-frame floor (one or two chunks)
    (1500, 8, (1280, 720), 188),    # 8 GPU slots: one chunk each
    (180_000, 2, (1280, 720), 1023),  # two hours: rounds of chunks under 1024 frames
    (18_000, 2, (3840, 2160), 122),  # 4K: under AUTO_CHUNK_MB a chunk
    (180_000, 2, (3840, 2160), 176),  # ... unless max_map_length needs bigger ones
    (2_000_000, 2, None, 1954),     # and grown past that only to stay under max_map_length
])
def test_auto_chunk_size_gives_each_swap_slot_equal_rounds_of_chunks(
        frames: int, slots: int, frame_size: tuple[int, int] | None, size: int) -> None:
    assert media.effective_chunk_frames(frames, None, 1024, slots, frame_size) == size
    chunks = len(media.chunk_ranges(frames, size))
    grown = size in (media.AUTO_MIN_FRAMES, -(-frames // 1024))  # the floor, or max_map_length
    assert chunks <= 1024 and (chunks % slots == 0 or grown)
    if frame_size is not None and not grown:
        assert size * frame_size[0] * frame_size[1] * 1.5 <= media.AUTO_CHUNK_MB * 1e6
    assert media.effective_chunk_frames(frames, 128, 1024, slots) == max(128, -(-frames // 1024))


PROBE = {"frames": 75, "fps": "25/1", "fps_float": 25.0, "width": 640, "height": 360,
         "duration": 3.0, "is_vfr": False, "audio": [{"codec": "aac"}]}


def test_video_info_from_engine_probe() -> None:
    info = media.video_info(PROBE)
    assert info == {"frames": 75, "fps": 25.0, "width": 640, "height": 360, "duration_s": 3.0,
                    "has_audio": True, "vfr": False}
    no_float = {k: v for k, v in PROBE.items() if k != "fps_float"} | {"fps": "30000/1001", "audio": []}
    info = media.video_info(no_float)
    assert info["fps"] == pytest.approx(29.97, abs=1e-3) and not info["has_audio"]
    with pytest.raises(media.BadOrder, match="not a readable video"):
        media.video_info({"codec": "png"})


def test_caps_refuse_long_big_or_huge_videos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_MAX_DURATION_S", "2")
    monkeypatch.setenv("FACEFACTORY_MAX_WIDTH", "320")
    monkeypatch.setenv("FACEFACTORY_MAX_INPUT_BYTES", "100")
    cfg = config.run_time(use_variables=False)
    info = media.video_info(PROBE)
    with pytest.raises(media.BadOrder, match="3.0s long"):
        media.check_caps(info, 10, cfg)
    monkeypatch.setenv("FACEFACTORY_MAX_DURATION_S", "600")
    with pytest.raises(media.BadOrder, match="640x360"):
        media.check_caps(info, 10, config.run_time(use_variables=False))
    monkeypatch.setenv("FACEFACTORY_MAX_WIDTH", "3840")
    with pytest.raises(media.BadOrder, match="bytes"):
        media.check_caps(info, 1000, config.run_time(use_variables=False))
    media.check_caps(info, 10, config.run_time(use_variables=False))


def test_worker_exit_codes_map_to_retry_policy(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    fake = tmp_path / "faceworker"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  ok) echo \'{"log": 1}\'; echo \'{"frames": 3}\';;\n'
        '  bad) echo \'{"error": "no face in the source photo"}\'; exit 2;;\n'
        "  flaky) exit 75;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("FACEFACTORY_WORKER_BIN", str(fake))
    assert media.run_worker(["ok"], timeout_s=10) == {"frames": 3}
    with pytest.raises(AirflowFailException, match="no face in the source photo"):
        media.run_worker(["bad"], timeout_s=10)
    with pytest.raises(AirflowException, match="transient") as err:
        media.run_worker(["flaky"], timeout_s=10)
    assert not isinstance(err.value, AirflowFailException)


def test_work_root_and_order_dir_for_local_and_s3(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FACEFACTORY_WORK_ROOT", f"file://{tmp_path}/w")
    cfg = config.run_time(use_variables=False)
    assert media.work_root(cfg) == str(tmp_path / "w")
    assert media.order_dir(cfg, "o-1") == f"{tmp_path}/w/orders/o-1"
    monkeypatch.setenv("FACEFACTORY_WORK_ROOT", "s3://work-bucket/ff/")
    cfg = config.run_time(use_variables=False)
    assert media.work_root(cfg) == "s3://work-bucket/ff"
    assert media.order_dir(cfg, "o-1") == "s3://work-bucket/ff/orders/o-1"


def test_an_order_belongs_to_the_first_run_that_ingests_it(tmp_path) -> None:
    from faceworker.workarea import WorkArea

    oa = WorkArea(str(tmp_path)).order("o-claim")
    media.claim_order(oa, "o-claim", "order__o-claim")
    media.claim_order(oa, "o-claim", "order__o-claim")  # a retry or a cleared re-run: same owner
    with pytest.raises(media.BadOrder, match="already belongs to DAG run 'order__o-claim'"):
        media.claim_order(oa, "o-claim", "manual__2026-11-26T16:00:00")
    assert oa.read_json("input/claim.json") == {"run_id": "order__o-claim", "order_id": "o-claim"}


def test_two_runs_claiming_at_once_one_wins(tmp_path) -> None:
    """The claim is created-if-absent, not checked then written: two runs ingesting the same order
    at the same moment cannot both believe they own it."""
    import threading

    from faceworker.workarea import WorkArea

    for attempt in range(5):
        oa = WorkArea(str(tmp_path)).order(f"o-race{attempt}")
        start = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def claim(run_id: str, start: threading.Barrier = start, oa: Any = oa, outcome: dict[str, str] = outcome) -> None:
            start.wait()
            try:
                media.claim_order(oa, oa.order_id, run_id)
                outcome[run_id] = "owner"
            except media.BadOrder:
                outcome[run_id] = "refused"

        threads = [threading.Thread(target=claim, args=(r,)) for r in ("order__x", "manual__y")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome.values()) == ["owner", "refused"], outcome
        winner = next(r for r, v in outcome.items() if v == "owner")
        assert oa.read_json("input/claim.json")["run_id"] == winner


def test_swap_retries_are_counted_per_chunk_from_failure_records(tmp_path) -> None:
    import json as _json

    from faceworker.workarea import WorkArea

    oa = WorkArea(str(tmp_path)).order("o-retries")
    assert media.swap_retries(oa) == {}
    records = [
        {"at": "2026-11-26T10:00:01", "task_id": "swap", "map_index": 1, "try_number": 1, "error": "exit 75"},
        {"at": "2026-11-26T10:00:02", "task_id": "swap", "map_index": 1, "try_number": 2, "error": "exit 75"},
        {"at": "2026-11-26T10:00:00", "task_id": "swap", "map_index": 0, "try_number": 1, "error": "exit 75"},
        {"at": "2026-11-26T10:00:03", "task_id": "ingest", "map_index": -1, "try_number": 1, "error": "x"},
    ]
    for i, rec in enumerate(records):
        oa.write_bytes(f"failures/{i}.json", _json.dumps(rec).encode())
    oa.write_bytes("failures/broken.json", b"not json")
    assert media.swap_retries(oa) == {1: 2, 0: 1}
    assert [r["at"] for r in media.failure_records(oa)] == sorted(r["at"] for r in records)


def test_concurrent_failures_are_all_recorded(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from faceworker.workarea import WorkArea

    monkeypatch.setenv("FACEFACTORY_WORK_ROOT", str(tmp_path))
    for chunk in (0, 1, 2):
        ti = SimpleNamespace(task_id="swap", map_index=chunk, try_number=1)
        media.record_failure({"params": {"order_id": "o-conc"}, "ti": ti, "run_id": "order__o-conc",
                              "exception": RuntimeError(f"chunk {chunk} broke")})
    records = media.failure_records(WorkArea(str(tmp_path)).order("o-conc"))
    assert sorted(r["error"] for r in records) == [f"chunk {c} broke" for c in (0, 1, 2)]


def test_local_inputs_are_hard_linked_into_a_local_work_area(tmp_path, monkeypatch) -> None:
    import os

    from facefactory.operators.s3 import workarea as s3wa
    from faceworker.workarea import WorkArea

    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    src.write_bytes(b"x" * 1000)
    area = WorkArea(tmp_path / "work").order("o1")
    out = s3wa.bring_in(area, src, "input/target.mp4", max_bytes=None, digest=False)
    dest = tmp_path / "work" / "orders" / "o1" / "input" / "target.mp4"
    assert os.path.samefile(src, dest) and out["size"] == 1000 and out["sha256"] is None
    assert s3wa.bring_in(area, src, "input/source.png", max_bytes=None)["sha256"] is not None
    # a filesystem that cannot link (another device): the bytes are copied instead
    monkeypatch.setattr(os, "link", lambda a, b: (_ for _ in ()).throw(OSError(18, "cross-device link")))
    s3wa.bring_in(area, src, "input/again.mp4", max_bytes=None)
    again = dest.with_name("again.mp4")
    assert again.read_bytes() == src.read_bytes() and not os.path.samefile(src, again)
    assert not list(dest.parent.glob(".*.link"))


def test_ingest_probes_a_local_target_in_process(tmp_path, media_clip) -> None:
    from facefactory.operators import uris
    from faceworker.workarea import WorkArea

    area = WorkArea(tmp_path / "work").order("o1")
    target = uris.OrderUri(scheme="file", path=media_clip)
    probe = media.probe_target(area, target, "input/target.mp4")
    assert probe["frames"] == 25 and probe["path"].endswith("orders/o1/input/target.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video\n" * 10)
    with pytest.raises(media.BadOrder, match="bad input"):
        media.probe_target(area, uris.OrderUri(scheme="file", path=broken), "input/target.mp4")


@pytest.fixture
def media_clip(tmp_path):
    import subprocess

    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=25:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    return clip


def test_engine_stderr_lines_are_logged_at_their_own_level(tmp_path, monkeypatch, caplog) -> None:
    """Info lines of the engine must not land in the task log as errors (issue 15)."""
    import logging

    fake = tmp_path / "faceworker"
    fake.write_text(
        "#!/bin/sh\n"
        'echo \'{"level": "info", "event": "decoded 25 frames"}\' >&2\n'
        'echo \'{"level": "warning", "event": "source turned 40 deg"}\' >&2\n'
        "echo 'plain text' >&2\n"
        'echo \'{"level": "error", "error": "disk almost full"}\' >&2\n'
        'echo \'{"frames": 25}\'\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("FACEFACTORY_WORKER_BIN", str(fake))
    with caplog.at_level(logging.DEBUG, logger="facefactory.operators.media"):
        assert media.run_worker(["probe"], timeout_s=10) == {"frames": 25}
    levels = {r.getMessage(): r.levelno for r in caplog.records if r.name == "facefactory.operators.media"}
    assert levels['{"level": "info", "event": "decoded 25 frames"}'] == logging.INFO
    assert levels['{"level": "warning", "event": "source turned 40 deg"}'] == logging.WARNING
    assert levels["plain text"] == logging.INFO
    assert levels['{"level": "error", "error": "disk almost full"}'] == logging.ERROR


def test_engine_timeout_is_reported_and_kills_it(tmp_path, monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowException

    fake = tmp_path / "faceworker"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FACEFACTORY_WORKER_BIN", str(fake))
    with pytest.raises(AirflowException, match="timed out after 1s"):
        media.run_worker(["probe"], timeout_s=1)
