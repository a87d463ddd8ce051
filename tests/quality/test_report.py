"""Report and cost on a synthetic order (no video: the sheet is reported missing, never broken)."""
from __future__ import annotations

import json

import pytest
from synthetic import make_order

from facefactory.quality.cost import order_cost
from facefactory.quality.gate import evaluate
from facefactory.quality.report import build_report


def test_report_from_failed_gate_names_failures(tmp_path):
    order = make_order(tmp_path, bad_identity={1: [60, 61]}, psnr={10: 20.0})
    evaluate(str(order), {"min_id_cosine": 0.85, "min_psnr_db": 30, "id_mostly": 1.0}, 120)
    out = build_report(str(order), {"order_id": "o1", "swapper": "classic"}, retries={1: 2}, emit_metrics=False)
    html = (order / "report" / "index.html").read_text()
    assert "FAILED" in html and 'id="metrics-plot"' in html and "data:image/png;base64," in html
    assert "contact sheet: not available" in html  # no swap task wrote thumbnails in a synthetic order
    for needle in ("identity", "psnr_outside", "frame_unique", "id_cosine", "psnr_outside_db", "Self-healing"):
        assert needle in html
    assert (order / "report" / "metrics.png").stat().st_size > 5000
    cost = json.loads((order / "report" / "cost.json").read_text())
    assert cost["frames"] == 120 and cost["retries"] == 2 and len(cost["chunks"]) == 3
    assert out["cost"]["estimated_cost_usd"] > 0


def test_cost_per_device_and_price():
    done = {0: {"frames": 100, "timings": {"total_s": 10.0, "swap_s": 4.0}},
            1: {"frames": 50, "timings": {"total_s": 5.0}, "execution_provider": "CUDAExecutionProvider"}}
    c = order_cost(done, {1: 1}, price_per_gpu_s=0.01, price_per_cpu_s=0.001, device="cpu")
    assert c.gpu_seconds == 5.0 and c.cpu_seconds == 10.0 and c.frames == 150
    assert c.fps == pytest.approx(10.0) and c.retries == 1
    assert c.estimated_cost_usd == pytest.approx(5 * 0.01 + 10 * 0.001)
    assert c.stage_seconds["swap_s"] == 4.0
    k8s = order_cost(done, price_per_gpu_s=0.01, price_per_cpu_s=0.0, device="gpu")
    assert k8s.gpu_seconds == 15.0 and k8s.estimated_cost_usd == pytest.approx(0.15)


def test_price_from_environment(monkeypatch):
    monkeypatch.setenv("FACEFACTORY_PRICE_PER_GPU_S", "0.5")
    c = order_cost({0: {"frames": 10, "timings": {"total_s": 2.0}}}, device="gpu")
    assert c.price_per_gpu_s == 0.5 and c.estimated_cost_usd == pytest.approx(1.0)


def test_report_says_which_frames_carry_an_identity_measurement(tmp_path):
    order = make_order(tmp_path, measured=[0, 20, 47, 48, 60, 61, 62, 95, 96, 119], id_sample_every=48)
    evaluate(str(order), {"min_id_cosine": 0.85, "min_psnr_db": 30}, 120)
    build_report(str(order), {"order_id": "o1"}, emit_metrics=False)
    html = (order / "report" / "index.html").read_text()
    assert ('identity measured on 10 of 120 face frames' in html
            and "0, 20, 47-48, 60-62, 95-96, 119" in html), html[html.find('id="id-measured"'):][:300]


def _write_thumbs(order, chunks, strangers=()):
    """What each swap task writes (faceworker.thumbs): grey tiles whose level encodes the frame.
    The synthetic rows' raw cosine is flat; the engine's own would be low for a stranger's face."""
    import cv2
    import numpy as np

    from faceworker import thumbs

    for c in chunks:
        d = order / "swapped" / f"{c['chunk']:05d}"
        rows = [{**r, "id_cosine_raw": 0.0} if r["frame"] in strangers else r
                for r in json.loads((d / "metrics.json").read_text())["frames"]]
        picks = thumbs.pick(rows, c["start"], c["end"], chunks[-1]["end"])
        w, h = thumbs.tile_size(320, 180)
        strip = np.vstack([np.hstack([np.full((h, w, 3), 2 * f % 256, np.uint8),
                                      np.full((h, w, 3), 255 - 2 * f % 256, np.uint8)]) for f in picks])
        cv2.imwrite(str(d / "thumbs.jpg"), strip)
        (d / "thumbs.json").write_text(json.dumps({"tile_width": w, "tile_height": h, "frames": [
            {"frame": f, "why": why, "row": k} for k, (f, why) in enumerate(picks.items())]}))


def test_contact_sheet_from_the_swap_tasks_thumbnails(tmp_path):
    import cv2
    import numpy as np

    from facefactory.quality.contact import contact_sheet_png
    from facefactory.quality.frames import load_order_frames

    order = make_order(tmp_path, bad_identity={1: [60, 61]}, psnr={100: 20.0})
    of = load_order_frames(str(order))
    _write_thumbs(order, of.chunks, strangers=(60, 61))
    png, rows = contact_sheet_png(str(order), of.df, of.chunks)
    picked = {r["frame"]: r["why"] for r in rows}
    assert [f for f, why in picked.items() if why == "spread"] == [10, 30, 50, 70, 90, 110]
    assert picked[60] == picked[61] == "worst identity" and picked[100] == "worst PSNR"
    assert all(r["have_before"] and r["have_after"] for r in rows)
    sheet = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    th = (sheet.shape[0] + 6) // len(rows) - 6
    for k, r in enumerate(rows):  # below the label: the tile of exactly that frame, left and right
        y = k * (th + 6) + th - 5
        assert abs(int(sheet[y, 200, 0]) - 2 * r["frame"] % 256) <= 3, r
        assert abs(int(sheet[y, 360 + 6 + 200, 0]) - (255 - 2 * r["frame"] % 256)) <= 3, r
    evaluate(str(order), {"min_id_cosine": 0.85, "min_psnr_db": 30}, 120)
    build_report(str(order), {"order_id": "o1"}, emit_metrics=False)
    html = (order / "report" / "index.html").read_text()
    assert 'id="contact-sheet"' in html and (order / "report" / "contact_sheet.png").exists()
