"""Per-order QA report: one self-contained HTML page (images embedded as data URIs).

Written to ``<order>/report/index.html`` with ``metrics.png`` and ``contact_sheet.png`` beside
it (contracts.md). Everything is read from the work area, so the page can be rebuilt at any time
after a gate: ``python -m facefactory.quality.report <order_dir>``.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from facefactory.operators.names import GATE_STAGES
from facefactory.quality import workarea as wa
from facefactory.quality.contact import contact_sheet_png
from facefactory.quality.cost import emit_stats, order_cost
from facefactory.quality.frames import load_order_frames
from facefactory.quality.plots import metrics_png

log = logging.getLogger(__name__)

# the columns of the expectations table, in order (underscored ones are derived)
EXPECTATION_COLUMNS = ["name", "_result", "expectation", "threshold", "mostly", "observed", "_notes"]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .ok{color:#11772e;font-weight:600} .bad{color:#b3261e;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.badge.ok{background:#11772e;color:#fff} .badge.bad{background:#b3261e;color:#fff}
img{max-width:100%;border:1px solid #ccc} .muted{color:#777;font-size:12px} .notes{max-width:520px}
"""


def _e(v: Any) -> str:
    if isinstance(v, float):
        return html.escape(f"{v:.4g}")
    return html.escape("—" if v is None else str(v))


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{_e(c.lstrip('_'))}</th>" for c in cols)  # "_x": pre-rendered HTML cell
    body = "".join("<tr>" + "".join(f"<td>{r.get(c, '') if c.startswith('_') else _e(r.get(c))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv(d: dict) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in d.items()) + "</table>"


def _img(png: bytes | None, alt: str, ident: str, as_jpeg: bool = False) -> str:
    """An <img> with the picture inlined (the page must work offline, copied anywhere)."""
    if not png:
        return f'<p class="muted">{_e(alt)}: not available</p>'
    mime, data = "image/png", png
    if as_jpeg:  # photos: a JPEG data URI is ~10x smaller than the PNG kept beside the page
        ok, buf = cv2.imencode(".jpg", np.asarray(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)),
                               [cv2.IMWRITE_JPEG_QUALITY, 88])
        if ok:
            mime, data = "image/jpeg", buf.tobytes()
    b64 = base64.b64encode(data).decode()
    return f'<img id="{ident}" alt="{_e(alt)}" src="data:{mime};base64,{b64}">'


def _expectation_rows(validation: dict) -> list[dict]:
    rows = []
    for r in validation.get("results", []):
        cfg, res = r["expectation_config"], r.get("result", {})
        meta = cfg.get("meta", {})
        observed = res.get("observed_value")
        if observed is None and "element_count" in res:
            observed = f"{res.get('unexpected_count', 0)} of {res['element_count']} frames unexpected"
        rows.append({
            "name": meta.get("name", cfg["type"]), "expectation": cfg["type"], "threshold": meta.get("threshold"),
            "mostly": cfg["kwargs"].get("mostly"), "observed": observed,
            "_result": '<span class="ok">pass</span>' if r["success"] else '<span class="bad">FAIL</span>',
            "_notes": f'<span class="notes">{_e(meta.get("notes"))}</span>',
        })
    return rows


def _stage_history(order_dir: str) -> list[dict]:
    out = []
    for stage in GATE_STAGES:
        uri = wa.join(order_dir, "quality", f"{stage}.json")
        if wa.exists(uri):
            ff = wa.read_json(uri).get("meta", {}).get("facefactory", {})
            out.append({"stage": stage, "passed": ff.get("passed"), "failing_chunks": ff.get("failing_chunks"),
                        "failures": ff.get("failures_total")})
    return out


def build_report(order_dir: str, order: dict | None = None, retries: dict[int, int] | None = None,
                 emit_metrics: bool = True) -> dict:
    """Write the report files for the order in ``order_dir``; returns their URIs and the cost.

    ``order``: the order conf (thresholds, swapper…) for the summary; ``retries``: chunk ->
    retries the swap task needed (from Airflow's try numbers), for the cost table.
    """
    order = dict(order or {})
    validation = wa.read_json(wa.join(order_dir, "quality", "validation.json"))
    ff = validation.get("meta", {}).get("facefactory", {})
    summary, failures = ff.get("summary", {}), ff.get("failures", [])
    thresholds = summary.get("thresholds", {})
    of = load_order_frames(order_dir)
    order_id = order.get("order_id") or order_dir.rstrip("/").rsplit("/", 1)[-1]
    min_id = float(thresholds.get("min_id_cosine") or order.get("min_id_cosine", 0.85))
    min_psnr = float(thresholds.get("min_psnr_db") or order.get("min_psnr_db", 30.0))
    plot = metrics_png(of.df, of.chunks, min_id, min_psnr, failures) if len(of.df) else None
    sheet = None
    try:
        sheet = contact_sheet_png(order_dir, of.df, of.chunks)
    except Exception as exc:  # noqa: BLE001 - a missing/unreadable video must not hide the metrics
        log.warning("contact sheet failed: %s", exc)
    sheet_png, sheet_rows = sheet if sheet else (None, [])
    cost = order_cost(of.done, retries)
    report_dir = wa.join(order_dir, "report")
    if plot:
        wa.write_bytes(wa.join(report_dir, "metrics.png"), plot, "image/png")
    if sheet_png:
        wa.write_bytes(wa.join(report_dir, "contact_sheet.png"), sheet_png, "image/png")
    source_png = None
    if wa.exists(wa.join(order_dir, "input", "source_face.png")):
        source_png = wa.read_bytes(wa.join(order_dir, "input", "source_face.png"))
    passed = bool(ff.get("passed", validation.get("success")))
    badge = f'<span class="badge {"ok" if passed else "bad"}">{"PASSED" if passed else "FAILED"}</span>'
    order_rows = {k: order.get(k) for k in ("order_id", "source", "target", "swapper", "enhancer", "chunk_frames",
                                           "min_id_cosine", "min_psnr_db", "publish_to") if k in order}
    chunk_rows = [{"chunk": c.chunk, "frames": c.frames, "device": c.device, "seconds": c.seconds, "fps": c.fps,
                   "retries": c.retries, **{k: round(v, 3) for k, v in c.timings.items() if k != "total_s"}}
                  for c in cost.chunks]
    stage_cols = ["chunk", "frames", "device", "seconds", "fps", "retries", "decode_s", "detect_s", "swap_s",
                  "encode_s", "metrics_s"]
    fail_rows = failures[:60]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>QA report — order {_e(order_id)}</title><style>{CSS}</style></head><body>
<h1>QA report — order {_e(order_id)} {badge}</h1>
<p class="muted">stage {_e(ff.get('stage'))} · suite {_e(validation.get('meta', {}).get('suite_version'))} ·
calibration {_e(summary.get('calibration'))} · generated {datetime.now(UTC).isoformat(timespec='seconds')}</p>
<h2>Order</h2>{_kv(order_rows) if order_rows else '<p class="muted">order conf not given</p>'}
{_img(source_png, 'source face', 'source-face') if source_png else ''}
<h2>Gate summary</h2>{_kv({k: v for k, v in summary.items() if k not in ('thresholds', 'failed_expectations')})}
<p>thresholds: {_e(json.dumps(thresholds))}</p>
<h2>Self-healing</h2>{_table(_stage_history(order_dir), ['stage', 'passed', 'failing_chunks', 'failures'])}
<h2>Expectations</h2>{_table(_expectation_rows(validation), EXPECTATION_COLUMNS)}
<h2>Failures ({_e(ff.get('failures_total', len(failures)))})</h2>
{_table(fail_rows, ['chunk', 'frame', 'metric', 'value', 'threshold']) if fail_rows else '<p class="ok">none</p>'}
<h2>Per-frame identity and PSNR</h2>
<p id="id-measured">identity measured on {_e(summary.get('id_measured_frames'))} of {_e(summary.get('face_frames'))} face frames
(the others carry only the cheap per-frame checks): {_e(summary.get('id_measured') or 'none')}</p>
{_img(plot, 'per-frame metrics plot', 'metrics-plot')}
<h2>Before / after</h2>{_img(sheet_png, 'before/after contact sheet', 'contact-sheet', as_jpeg=True)}
{_table(sheet_rows, ['frame', 'why', 'id_cosine', 'psnr_outside_db'])}
<h2>Timings and cost</h2>
{_kv({'frames': cost.frames, 'gpu_seconds': cost.gpu_seconds, 'cpu_seconds': cost.cpu_seconds, 'fps': cost.fps,
      'retries': cost.retries, 'price_per_gpu_s (USD)': cost.price_per_gpu_s,
      'price_per_cpu_s (USD)': cost.price_per_cpu_s, 'estimated cost (USD)': cost.estimated_cost_usd})}
<p>seconds per stage (all chunks): {_e(json.dumps(cost.stage_seconds))}</p>
{_table(chunk_rows, stage_cols)}
</body></html>"""
    index = wa.join(report_dir, "index.html")
    wa.write_bytes(index, page.encode(), "text/html; charset=utf-8")
    wa.write_json(wa.join(report_dir, "cost.json"), cost.to_dict())
    if emit_metrics:
        emit_stats(order_id, cost)
    return {"report": index, "metrics_png": wa.join(report_dir, "metrics.png") if plot else None,
            "contact_sheet": wa.join(report_dir, "contact_sheet.png") if sheet_png else None,
            "cost": {k: v for k, v in cost.to_dict().items() if k != "chunks"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facefactory.quality.report", description="(Re)build an order's QA report")
    ap.add_argument("order_dir")
    ap.add_argument("--order", help="order conf JSON")
    args = ap.parse_args(argv)
    print(json.dumps(build_report(args.order_dir, json.loads(args.order) if args.order else None,
                                  emit_metrics=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
