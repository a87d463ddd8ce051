"""Per-frame metrics: PSNR/SSIM outside the mask, identity distances, the contract's row keys."""
from __future__ import annotations

import json

import numpy as np
import pytest

from faceworker.frame_pipeline import FrameInfo, SwapSession
from faceworker.masks import RegionMask
from faceworker.metrics import PSNR_CAP_DB, measure_frame, psnr_outside, ssim_outside
from faceworker.sample import shipped_faces, synth_target_frames
from faceworker.source import load_source_face

ROW_KEYS = {"frame", "faces_target", "swapped", "face_found_after", "id_cosine_raw", "id_dist_source",
            "id_dist_target", "psnr_outside_db", "ssim_outside", "landmark_jitter_px", "yaw_deg", "warnings",
            "t_detect_ms", "t_swap_ms", "t_metrics_ms"}


def _img(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (180, 320, 3), np.uint8)


def test_psnr_identical_is_capped_and_ssim_one() -> None:
    a = _img()
    assert psnr_outside(a, a.copy(), None) == PSNR_CAP_DB
    assert ssim_outside(a, a.copy(), None) == pytest.approx(1.0, abs=1e-4)


def test_psnr_matches_numpy_and_ignores_masked_pixels() -> None:
    a = _img()
    b = a.copy()
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[40:120, 100:200] = 255
    b[40:120, 100:200] = 255 - b[40:120, 100:200]  # inside the mask: must not count
    assert psnr_outside(a, b, mask) == PSNR_CAP_DB
    noise = np.random.default_rng(1).integers(-6, 7, a.shape)
    c = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    keep = mask == 0
    mse = ((a[keep].astype(float) - c[keep]) ** 2).mean()
    assert psnr_outside(a, c, mask) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-3)


def test_psnr_and_ssim_drop_when_background_altered() -> None:
    a = _img()
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[40:120, 100:200] = 255
    slight = a.copy()
    slight[0:20, 0:20] = np.clip(slight[0:20, 0:20].astype(int) + 3, 0, 255)
    heavy = a.copy()
    heavy[:, :60] = 0
    p_slight, p_heavy = psnr_outside(a, slight, mask), psnr_outside(a, heavy, mask)
    assert 40 < p_slight < PSNR_CAP_DB
    assert p_heavy < 15 < p_slight
    assert ssim_outside(a, heavy, mask) < ssim_outside(a, slight, mask) < 1.0


@pytest.fixture(scope="module")
def swapped():
    faces = shipped_faces()
    source = load_source_face(faces["t1_2"])
    frames = synth_target_frames(faces["t1_0"], 3, (640, 360), 25, 0)
    session = SwapSession(source)
    results = [session.process(f, 10 + i) for i, f in enumerate(frames)]
    return source, session, frames, results


def test_measure_frame_row_follows_contract(swapped) -> None:
    source, session, frames, results = swapped
    out, info = results[-1]
    row = measure_frame(frames[-1], out, info, source.embedding, session.analyzer)
    emb = row.pop("embedding")
    assert set(row) == ROW_KEYS
    json.dumps(row, allow_nan=False)  # strict JSON
    assert row["frame"] == 12 and row["faces_target"] == 1 and row["swapped"] and row["face_found_after"]
    assert emb.shape == (128,) and emb.dtype == np.float32
    assert row["id_dist_source"] < 0.6 < row["id_dist_target"]  # identity moved to the source
    assert row["id_cosine_raw"] > 0.9
    assert row["psnr_outside_db"] == PSNR_CAP_DB  # background untouched before encoding
    assert row["landmark_jitter_px"] is not None and row["landmark_jitter_px"] < 5


def test_measure_frame_without_face(swapped) -> None:
    source, session, _, _ = swapped
    blank = np.full((360, 640, 3), 100, np.uint8)
    info = FrameInfo(frame_index=3, warnings=["no_face_in_target"], changed=RegionMask((360, 640)))
    row = measure_frame(blank, blank, info, source.embedding, session.analyzer)
    assert row["embedding"] is None and row["id_cosine_raw"] is None and row["id_dist_target"] is None
    assert not row["face_found_after"] and row["warnings"] == ["no_face_in_target"]
    assert row["psnr_outside_db"] == PSNR_CAP_DB


def test_measure_frame_uses_given_target_embedding(swapped) -> None:
    source, session, frames, results = swapped
    out, info = results[0]
    row = measure_frame(frames[0], out, info, source.embedding, session.analyzer,
                        target_embedding=source.embedding)
    assert row["id_dist_target"] == pytest.approx(row["id_dist_source"])


def test_ssim_matches_the_plain_formula() -> None:
    """The in-place SSIM is the same 7×7 box-window SSIM, masked mean included."""
    import cv2

    a = _img(3)
    b = cv2.GaussianBlur(a, (5, 5), 0)
    mask = np.zeros(a.shape[:2], np.uint8)
    mask[40:120, 100:220] = 255
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float64) for x in (a, b))

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (7, 7), borderType=cv2.BORDER_REFLECT)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = blur(ga), blur(gb)
    va, vb, cov = blur(ga * ga) - ma * ma, blur(gb * gb) - mb * mb, blur(ga * gb) - ma * mb
    smap = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    assert ssim_outside(a, b, mask) == pytest.approx(float(smap[mask == 0].mean()), abs=1e-4)
    assert ssim_outside(a, b, None) == pytest.approx(float(smap.mean()), abs=1e-4)
    assert ssim_outside(a, b, np.full(mask.shape, 255, np.uint8)) == 1.0  # nothing left to compare


def test_chips_in_worker_processes_embed_exactly_like_embed(swapped) -> None:
    """The metrics pass sends aligned chips to worker processes: same descriptor, bit for bit."""
    from faceworker.faces import ChipEmbedder
    from faceworker.metrics import start_measure

    source, session, frames, results = swapped
    out, info = results[1]
    rec = session.analyzer.recognizer
    direct = rec.embed(out, info.faces[0])
    with ChipEmbedder(1) as pool:
        vec, ms = pool.submit(rec.chip(out, info.faces[0])).result(timeout=120)
        pooled = start_measure(frames[1], out, info, source.embedding, session.analyzer, embedder=pool).result()
    assert np.array_equal(vec, direct) and ms > 0
    inline = measure_frame(frames[1], out, info, source.embedding, session.analyzer)
    for key in ("face_found_after", "id_cosine_raw", "id_dist_source", "id_dist_target", "psnr_outside_db",
                "ssim_outside"):
        assert pooled[key] == inline[key], key
    assert np.array_equal(pooled["embedding"], inline["embedding"])


def test_worker_pool_does_not_rerun_the_callers_main(tmp_path) -> None:
    """spawn would re-run an unguarded main script in every worker (and cannot for `python -`):
    the pool starts its workers with __main__ hidden, so such a caller works and runs once."""
    import subprocess
    import sys

    marker = tmp_path / "runs.txt"
    code = (
        "import numpy as np\n"
        "from faceworker.faces import ChipEmbedder\n"
        f"open({str(marker)!r}, 'a').write('run\\n')\n"
        "with ChipEmbedder(2) as pool:\n"
        "    vec, ms = pool.submit(np.zeros((150, 150, 3), np.uint8)).result(timeout=120)\n"
        "print(vec.shape)\n"
    )
    out = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "(128,)" in out.stdout
    assert marker.read_text() == "run\n"
