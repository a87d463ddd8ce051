"""`faceworker` CLI: exit codes and messages for bad input, result JSON on the last stdout line,
--xcom-file, and one real end-to-end order (embed, split, swap-chunk, merge, contact-sheet)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from worker_support import make_order

from faceworker.sample import insightface_images_dir

FACEWORKER = str(Path(sys.executable).with_name("faceworker"))


def run(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> tuple[int, dict, str]:
    """Run the real console script; return (exit code, last stdout line as JSON, stderr)."""
    proc = subprocess.run([FACEWORKER, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines else {}
    return proc.returncode, result, proc.stderr


def _json_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name, message", [("empty", "0 bytes"), ("text", "not a readable video"),
                                           ("image", "not a video")])
def test_probe_bad_targets_exit_2(media: dict[str, Path], name: str, message: str) -> None:
    rc, result, err = run("probe", str(media[name]))
    assert rc == 2, err
    assert message in result["error"] and result["kind"] == "bad_input"
    assert any(r["event"] == "bad_input" and message in r["error"] for r in _json_lines(err))


def test_probe_ok_and_xcom_file(media: dict[str, Path], tmp_path: Path) -> None:
    xcom = tmp_path / "airflow/xcom/return.json"
    rc, result, err = run("probe", f"file://{media['cfr']}", "--xcom-file", str(xcom))
    assert rc == 0, err
    assert result["frames"] == 75 and result["fps"] == "25/1" and result["audio"][0]["codec"] == "aac"
    assert json.loads(xcom.read_text()) == result


def _order_with_source(root: Path, image: np.ndarray | bytes | None, order: str = "o1") -> Path:
    inp = root / "orders" / order / "input"
    inp.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        (inp / "source.png").write_bytes(image)
    else:
        cv2.imwrite(str(inp / "source.png"), image)
    return root


def test_embed_no_face_exit_2(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    rc, result, _ = run("embed", "--work", str(_order_with_source(tmp_path, noise)), "--order", "o1")
    assert rc == 2 and "no face" in result["error"]


@pytest.mark.parametrize("data, message", [(b"", "0 bytes"), (b"GIF89a broken", "not a readable image")])
def test_embed_unreadable_source_exit_2(tmp_path: Path, data: bytes, message: str) -> None:
    rc, result, _ = run("embed", "--work", str(_order_with_source(tmp_path, data)), "--order", "o1")
    assert rc == 2 and message in result["error"]


def test_embed_several_faces(tmp_path: Path) -> None:
    group = cv2.imread(str(insightface_images_dir() / "t1.jpg"))
    root = _order_with_source(tmp_path, group)
    rc, result, _ = run("embed", "--work", str(root), "--order", "o1")
    assert rc == 2 and "6 faces" in result["error"] and "largest" in result["error"]
    rc, result, err = run("embed", "--work", str(root), "--order", "o1", "--selector", "largest")
    assert rc == 0, err
    emb = np.load(root / "orders/o1/input/source_embedding.npy")
    assert emb.shape == (128,) and emb.dtype == np.float32
    meta = json.loads((root / "orders/o1/input/source_face.json").read_text())
    assert meta["recognizer"] == "dlib_resnet_v1" and len(meta["landmarks68"]) == 68
    assert cv2.imread(str(root / "orders/o1/input/source_face.png")).shape == (256, 256, 3)


def test_split_bad_target_exit_2(tmp_path: Path, media: dict[str, Path]) -> None:
    inp = tmp_path / "orders/o1/input"
    inp.mkdir(parents=True)
    shutil.copy(media["text"], inp / "target.mp4")
    rc, result, _ = run("split", "--work", str(tmp_path), "--order", "o1", "--chunk-frames", "10")
    assert rc == 2 and "not a readable video" in result["error"]
    rc, result, _ = run("split", "--work", str(tmp_path), "--order", "../x", "--chunk-frames", "10")
    assert rc == 2 and "order id" in result["error"]


def test_unreachable_s3_exit_75(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"FACEFACTORY_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}
    rc, result, _ = run("swap-chunk", "--work", "s3://bucket/w", "--order", "o1", "--chunk", "0", "--start", "0",
                        "--end", "10", env=env)
    assert rc == 75 and result["kind"] == "transient"


def test_usage_error_exit_2() -> None:
    rc, _, err = run("swap-chunk", "--order", "o1")
    assert rc == 2 and "required" in err


@pytest.mark.slow
def test_end_to_end_sample_order(tmp_path: Path, sample_dir: Path) -> None:
    """Real engine (dlib + classic swapper + metrics) over a 30-frame 640x360 sample order."""
    root = make_order(tmp_path / "work", "demo", sample_dir)
    w = ["--work", str(root), "--order", "demo"]
    rc, emb, err = run("embed", *w)
    assert rc == 0, err
    rc, split, err = run("split", *w, "--chunk-frames", "20")
    assert rc == 0, err
    assert split["frames"] == 30 and [(c["start"], c["end"]) for c in split["chunks"]] == [(0, 20), (20, 30)]
    for c in split["chunks"]:
        xcom = tmp_path / f"xcom{c['chunk']}.json"
        rc, res, err = run("swap-chunk", *w, "--chunk", str(c["chunk"]), "--start", str(c["start"]),
                           "--end", str(c["end"]), "--xcom-file", str(xcom))
        assert rc == 0, err
        assert res["cached"] is False and res["frames"] == c["end"] - c["start"]
        assert json.loads(xcom.read_text()) == res
        logs = _json_lines(err)
        assert {r.get("order") for r in logs} == {"demo"} and any(r["event"] == "swap_progress" for r in logs)
        rows = json.loads(Path(res["metrics"]).read_text())["frames"]
        assert len(rows) == res["frames"]
        assert sum(r["swapped"] for r in rows) >= 0.9 * len(rows)
        assert min(r["psnr_outside_db"] for r in rows if r["psnr_outside_db"] is not None) >= 30
        thumbs = json.loads((Path(res["metrics"]).parent / "thumbs.json").read_text())  # for the QA report
        assert thumbs["frames"][0]["frame"] == c["start"]
        assert (thumbs["tile_width"], thumbs["tile_height"]) == (320, 180)
        strip = cv2.imread(str(Path(res["metrics"]).parent / "thumbs.jpg"))
        assert strip.shape == (180 * len(thumbs["frames"]), 640, 3)
    # checkpoint through the CLI: same args -> cached at once
    rc, res, err = run("swap-chunk", *w, "--chunk", "0", "--start", "0", "--end", "20")
    assert rc == 0 and res["cached"] is True
    rc, merged, err = run("merge", *w)
    assert rc == 0, err
    assert merged["frames"] == 30 and merged["audio_streams"] == 1
    assert merged["duration"] == pytest.approx(30 / 25, abs=1e-6)
    rc, sheet, err = run("contact-sheet", *w, "--out", str(tmp_path / "sheet.png"), "--frames", "3")
    assert rc == 0, err
    img = cv2.imread(sheet["png"])
    assert img is not None and img.shape[1] == 2 * 480 + 6 and len(sheet["frames"]) == 3


def test_probe_s3_uri(media: dict[str, Path], s3_bucket: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["FACEFACTORY_S3_ENDPOINT_URL"], region_name="us-east-1")
    s3.upload_file(str(media["cfr"]), s3_bucket, "in/clip.mp4")
    rc, result, err = run("probe", f"s3://{s3_bucket}/in/clip.mp4")
    assert rc == 0, err
    assert result["frames"] == 75 and result["path"] == f"s3://{s3_bucket}/in/clip.mp4"
    rc, result, _ = run("probe", f"s3://{s3_bucket}/in/missing.mp4")
    assert rc == 2 and "missing" in result["error"]


def test_text_log_format(media: dict[str, Path]) -> None:
    rc, _, err = run("probe", str(media["empty"]), env={"FACEFACTORY_LOG_FORMAT": "text"})
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert " ERROR " in line and "bad_input" in line and "exit_code=2" in line and not line.startswith("{")


def test_embed_and_split_on_s3(sample_dir: Path, s3_bucket: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["FACEFACTORY_S3_ENDPOINT_URL"], region_name="us-east-1")
    for name in ("source.png", "target.mp4"):
        s3.upload_file(str(sample_dir / name), s3_bucket, f"w/orders/s3o/input/{name}")
    w = ["--work", f"s3://{s3_bucket}/w", "--order", "s3o"]
    rc, emb, err = run("embed", *w)
    assert rc == 0, err
    assert emb["embedding"] == f"s3://{s3_bucket}/w/orders/s3o/input/source_embedding.npy"
    rc, split, err = run("split", *w, "--chunk-frames", "16")
    assert rc == 0, err
    assert [(c["start"], c["end"]) for c in split["chunks"]] == [(0, 16), (16, 30)]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="w/orders/s3o/")["Contents"]}
    assert {"w/orders/s3o/chunks/00000/segment.mkv", "w/orders/s3o/chunks/00001/segment.mkv",
            "w/orders/s3o/chunks/chunks.json", "w/orders/s3o/input/source_face.json"} <= keys


def test_normalise_writes_the_cfr_target_and_prints_its_probe(media: dict[str, Path], tmp_path: Path) -> None:
    inp = tmp_path / "orders" / "o1" / "input"
    inp.mkdir(parents=True)
    shutil.copy(media["vfr"], inp / "target.mkv")
    rc, before, err = run("probe", str(inp / "target.mkv"))
    assert rc == 0 and before["is_vfr"], err
    rc, result, err = run("normalise", "--work", str(tmp_path), "--order", "o1")
    assert rc == 0, err
    cfr = inp / "target_cfr.mkv"
    assert result["path"] == str(cfr) and cfr.is_file()
    assert not result["is_vfr"] and result["frames"] == 118  # as test_video measures the same file
    rc, again, err = run("probe", str(cfr))
    assert rc == 0 and again["frames"] == result["frames"] and not again["is_vfr"], err


def test_normalise_without_a_target_exit_2(tmp_path: Path) -> None:
    (tmp_path / "orders" / "o1" / "input").mkdir(parents=True)
    rc, result, _ = run("normalise", "--work", str(tmp_path), "--order", "o1")
    assert rc == 2 and "input/target" in result["error"]
