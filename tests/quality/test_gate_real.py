"""The gate on real engine output: a real classic swap passes, a no-op swap fails identity;
the QA report of the real order renders in headless Chromium with the plot and contact sheet."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from realorder import _fw, make_damaged_order, make_noop_order, make_real_order

from facefactory.quality.gate import evaluate
from facefactory.quality.report import build_report

pytestmark = pytest.mark.slow
ORDER = {"order_id": "o1", "min_id_cosine": 0.85, "min_psnr_db": 30.0, "swapper": "classic"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwork")
    real = make_real_order(root)
    probe = json.loads((real / "input" / "probe.json").read_text())
    return root, real, int(probe["frames"])


def test_real_swap_passes(work):
    _, real, frames = work
    res = evaluate(str(real), ORDER, frames)
    print(res.message())
    assert res.passed, res.message()
    assert res.summary["face_frames"] == frames
    assert res.summary["id_cosine_min"] >= 0.85
    assert res.summary["id_cosine_raw_mean"] > res.summary["id_cosine_mean"] - 0.2
    # identity is measured on a sample (+ doubts), and the summary says which frames carry it
    assert 0 < res.summary["id_measured_frames"] < frames
    assert res.summary["id_measured"].startswith("0")  # a chunk's first face frame is always measured


def test_noop_swap_fails_identity(work):
    root, real, frames = work
    noop = make_noop_order(root, real)
    res = evaluate(str(noop), ORDER, frames)
    print(res.message())
    assert not res.passed
    assert "identity" in res.summary["failed_expectations"]
    assert res.failing_chunks == sorted({f["chunk"] for f in res.failures}) and len(res.failing_chunks) >= 2
    assert {f["metric"] for f in res.failures} == {"id_cosine"}
    assert res.summary["id_cosine_mean"] < 0.85
    assert "chunk 0" in res.message() and "id_cosine" in res.message()


@pytest.mark.e2e
def test_report_renders_in_chromium(work):
    if CHROMIUM is None:
        pytest.fail("needs Debian's chromium (make test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, real, frames = work
    evaluate(str(real), ORDER, frames)
    out = build_report(str(real), ORDER, emit_metrics=False)
    index = Path(out["report"])
    assert (index.parent / "metrics.png").stat().st_size > 10_000
    assert (index.parent / "contact_sheet.png").stat().st_size > 10_000
    page_html = index.read_text()
    assert "http://" not in page_html and "https://" not in page_html  # no external assets
    shots = Path(os.environ.get("FACEFACTORY_TEST_ARTIFACTS", index.parent))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.id, e.complete, e.naturalWidth])")
        assert {"metrics-plot", "contact-sheet"} <= {i[0] for i in imgs}
        broken = [i for i in imgs if not i[1] or i[2] == 0]
        assert not broken, broken
        for ident in ("metrics-plot", "contact-sheet"):
            el = page.locator(f"#{ident}")
            el.scroll_into_view_if_needed()
            box = el.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 150, (ident, box)
            el.screenshot(path=str(shots / f"report_{ident}.png"))
        page.screenshot(path=str(shots / "report_full.png"), full_page=True)
        assert "PASSED" in page.inner_text("h1")
        browser.close()
    import cv2

    for name in ("report_metrics-plot.png", "report_contact-sheet.png"):
        img = cv2.imread(str(shots / name))
        assert img is not None and img.std() > 10, name  # not a blank/broken-image box


def test_damaged_chunk_is_healed_by_fallback_options(work):
    """Self-healing at the engine seam: a chunk swapped with identity-destroying settings fails
    the gate alone; re-running only it with ``reswap_plan()`` options makes the order pass."""
    import shutil

    from realorder import _fw

    root, real, frames = work
    od = root / "orders" / "dmg"
    od.mkdir(parents=True)
    for sub in ("input", "chunks", "swapped"):
        shutil.copytree(real / sub, od / sub)
    chunks = json.loads((od / "chunks" / "chunks.json").read_text())
    chunks = chunks["chunks"] if isinstance(chunks, dict) else chunks
    bad = chunks[-1]
    damage = {"identity_weight": 0.0, "forehead": 0.0, "grow": 0.9}  # texture-only, small region
    _fw("swap-chunk", "--work", str(root), "--order", "dmg", "--chunk", str(bad["chunk"]), "--start",
        str(bad["start"]), "--end", str(bad["end"]), "--options", json.dumps(damage))
    first = evaluate(str(od), ORDER, frames)
    assert not first.passed and first.failing_chunks == [bad["chunk"]], first.message()
    plan = first.reswap_plan()
    assert [p["chunk"] for p in plan] == [bad["chunk"]]
    for p in plan:
        _fw("swap-chunk", "--work", str(root), "--order", "dmg", "--chunk", str(p["chunk"]), "--start",
            str(p["start"]), "--end", str(p["end"]), "--options", json.dumps(p["options"]))
    final = evaluate(str(od), ORDER, frames, stage="final_gate")
    assert final.passed, final.message()
    assert (od / "quality" / "quality_gate.json").exists() and (od / "quality" / "final_gate.json").exists()


def _heal(root: Path, od: Path, res, frames: int):  # noqa: ANN001, ANN202 - test helper: res and the result are gate.GateResult
    """What `reswap` + `final_gate` do: re-run the failing chunks with the plan's options."""
    for p in res.reswap_plan():
        _fw("swap-chunk", "--work", str(root), "--order", od.name, "--chunk", str(p["chunk"]), "--start",
            str(p["start"]), "--end", str(p["end"]), "--options", json.dumps(p["options"]))
    return evaluate(str(od), ORDER, frames, stage="final_gate")


@pytest.mark.parametrize("name, damage, metric", [
    # frames of the second chunk (25..49); none of them is a stratified or track-edge pick by design
    ("skip3", {28: "skip", 36: "skip", 44: "skip"}, "id_cosine"),
    ("own5", {f: "own_face" for f in range(31, 36)}, "id_cosine"),
    ("lost1", {40: "lose_face"}, "face_found_after"),
])
def test_injected_per_frame_failures_are_caught_and_healed(work, name, damage, metric):
    """Per-frame failures the identity sample alone would likely miss: the cheap checks flag each
    damaged frame, so the first gate fails naming exactly that chunk and those frames; the reswap
    (a real re-run with the plan's options) heals them."""
    root, real, frames = work
    od, chunk = make_damaged_order(root, real, name, damage)
    first = evaluate(str(od), ORDER, frames)
    print(first.message())
    assert not first.passed and first.failing_chunks == [chunk], first.message()
    hits = {f["frame"] for f in first.failures if f["metric"] == metric}
    assert hits == set(damage), (hits, first.message())
    rows = json.loads((od / "swapped" / f"{chunk:05d}" / "metrics.json").read_text())["frames"]
    by_frame = {r["frame"]: r for r in rows}
    if metric == "id_cosine":  # measured because a cheap check doubted them, not by luck
        assert all(by_frame[f]["id_measured"] and by_frame[f]["id_reason"] == "unchanged" for f in damage)
    measured = [r["frame"] for r in rows if r["id_measured"]]
    assert len(measured) < len(rows) / 2, measured  # still a sample, not every frame
    final = _heal(root, od, first, frames)
    assert final.passed, final.message()
