"""What each task of face_swap_order does, run inside the task.

The DAG file only wires the steps (it reads like the pipeline diagram); each function here reads
the running task's order, calls the module that owns the work (facefactory.operators.media, facefactory.quality.gate,
facefactory.operators.publish, facefactory.operators.lineage) and returns the task's XCom value. facefactory.quality.gate pulls in
pandas/great_expectations, so it is imported in the task, never at DAG parse time.
"""
from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from facefactory.operators import config, lineage, media, names
from facefactory.operators import publish as publishing
from facefactory.operators.face_swap_pod import swap_arguments
from facefactory.operators.order_schema import ORDER_FIELDS


def current_order() -> dict[str, Any]:
    """The validated order of the running task (params hold defaults + conf)."""
    params = get_current_context()["params"]
    return {name: params.get(name) for name in ORDER_FIELDS}


def chunk_arguments(spec: dict[str, Any]) -> list[str]:
    """The swap-chunk arguments a chunk spec carries (what each mapped swap task runs)."""
    return spec["arguments"]


def ingest() -> names.IngestResult:
    """Refuse an invalid order, then copy the inputs in, probe the video, embed the source face."""
    context = get_current_context()
    order, cfg = current_order(), config.run_time()
    problems = config.order_problems(context["dag_run"].conf, order)
    if problems:
        raise media.BadOrder("invalid order: " + "; ".join(problems))
    result = media.ingest(order, cfg, run_id=context["run_id"])
    lineage.record_ingest(lineage.order_paths(media.work_root(cfg), order["order_id"]), result)
    return result


def chunk(ingested: dict[str, Any], max_chunks: int) -> list[dict[str, Any]]:
    """Frame ranges + mezzanine pieces; each spec carries its swap-chunk arguments."""
    order, cfg = current_order(), config.run_time()
    chunks = media.split(order, ingested, cfg, max_chunks=max_chunks)
    lineage.record_chunks(lineage.order_paths(media.work_root(cfg), order["order_id"]), ingested["video"], chunks)
    return [
        {**c, "arguments": swap_arguments(media.work_root(cfg), order["order_id"], c, order)}
        for c in chunks
    ]


def quality_gate(ingested: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge every frame's metrics; push the result, return the re-swap plan (empty when all passed).
    A fatal result (e.g. no face anywhere) fails the run without retries: no re-swap can fix it."""
    from facefactory.quality.gate import evaluate

    order, cfg = current_order(), config.run_time()
    with media.worker_env(cfg):
        result = evaluate(media.order_dir(cfg, order["order_id"]), order, int(ingested["frames"]))
    get_current_context()["ti"].xcom_push(key=names.XCOM_GATE, value=result.to_dict())
    if result.fatal:
        raise AirflowFailException(result.message())
    lineage.record_gate(lineage.order_paths(media.work_root(cfg), order["order_id"]),
                        media.swapped_files(cfg, order["order_id"], "metrics.json"), result.validation_uri)
    return [
        {**plan, "arguments": swap_arguments(
            media.work_root(cfg), order["order_id"], plan, order, plan.get("options"))}
        for plan in result.reswap_plan()
    ]


def final_gate(ingested: dict[str, Any], plan: list[dict[str, Any]]) -> dict[str, Any]:
    """Fail the run (naming chunk, frame, metric) unless every frame passes; the QA report is
    written and pushed either way."""
    from facefactory.quality.gate import final_result

    context = get_current_context()
    order, cfg = current_order(), config.run_time()
    first = context["ti"].xcom_pull(task_ids=names.QUALITY_GATE, key=names.XCOM_GATE) or {}
    with media.worker_env(cfg):
        result = dict(final_result(media.order_dir(cfg, order["order_id"]), order, int(ingested["frames"]),
                                   first, reswapped=bool(plan)))
    report = media.qa_report(cfg, order)
    if report:
        context["ti"].xcom_push(key=names.XCOM_REPORT, value=report)
    if not result.get("passed"):
        raise AirflowFailException(result.get("message") or "quality gate failed")
    return result


def merge(ingested: dict[str, Any]) -> dict[str, Any]:
    """Concat the swapped segments, mux the original audio, verify frames and duration (in the
    work area: publish decides, with the gate's verdict, whether it leaves)."""
    order, cfg = current_order(), config.run_time()
    merged = media.merge(order, ingested, cfg)
    lineage.record_merge(media.swapped_files(cfg, order["order_id"], "segment.mp4"), ingested["target_local"],
                         merged["output_uri"])
    return merged


def publish(merged: dict[str, Any], gate: dict[str, Any], ingested: dict[str, Any]) -> str:
    """Deliver the video if the gate passed, push the delivery record (XCom `published`),
    announce the Asset event; returns the published URI."""
    context = get_current_context()
    order, cfg = current_order(), config.run_time()
    merged = {**merged, "gate_passed": bool(gate.get("passed")), "summary": gate.get("summary")}
    delivered = publishing.publish_order(merged, order, cfg.settings.publish_to,
                                         source_sha256=ingested.get("source_sha256"), when=context["dag_run"].run_after)
    uri = delivered["uri"]
    context["ti"].xcom_push(key=names.XCOM_PUBLISHED, value=delivered)
    lineage.record(inputs=[merged["output_uri"]], outputs=[uri])
    context["outlet_events"][lineage.PUBLISHED].extra = {
        "order_id": order["order_id"], "uri": uri, "frames": merged["frames"],
    }
    return uri
