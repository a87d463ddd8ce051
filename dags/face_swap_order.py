"""face_swap_order: one customer order = one run.

    ingest -> chunk -> swap[chunk] -> quality_gate -> reswap[failing chunk] -> final_gate -> merge -> publish
        -> cdn_ready (deferred: waits in the triggerer for the CloudFront invalidation, if any)

The order arrives as the run's conf (the trigger form below, the REST API or bulk_orders); the
run id is `order__<order_id>`. Media work happens in `operators.media` and the `faceworker`
engine; the gate in `quality.gate`; this file only wires them. Parsing reads the environment
only (no DB, no network).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
)

from facefactory import settings as ff_settings
from faceworker.workarea import SOURCE_EMBEDDING, VALIDATION
from operators import config, lineage, media, names, publish as publishing
from operators.cdn_wait import CdnInvalidationWait
from operators.face_swap_pod import FaceSwapPodOperator, swap_arguments
from operators.pod_spec import parse_time_settings as swap_parse_settings
from operators.order_schema import ORDER_FIELDS
from operators.uris import expand_placeholders

PARSE = config.parse_time()
SWAP = swap_parse_settings()  # pool gpu_swaps, retries with exponential backoff (env only)
INPUT_ROOTS = ff_settings.load().input_roots

# Shown in the grid instead of the bare map index.
CHUNK_LABEL = (
    "{% set a = task.arguments %}chunk {{ a[a.index('--chunk') + 1] }}"
    " [{{ a[a.index('--start') + 1] }}-{{ a[a.index('--end') + 1] }})"
)


def order_params() -> dict[str, Param]:
    """The trigger form, generated from the one order schema (operators.order_schema)."""
    params: dict[str, Param] = {}
    for name, spec in ORDER_FIELDS.items():
        schema = {k: v for k, v in spec.items() if k not in ("default", "section")}
        default = spec.get("default")
        if isinstance(default, str):
            default = expand_placeholders(default, INPUT_ROOTS)
        params[name] = Param(default, section=spec.get("section"), **schema)
    return params


def deadline_alert() -> DeadlineAlert | None:
    """Order SLA, off unless FACEFACTORY_DEADLINE_ENABLED (see operators.config.parse_time)."""
    if not PARSE.deadline_enabled:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=PARSE.deadline,
        callback=AsyncCallback(
            "facefactory_deadlines.record_deadline_miss",
            kwargs={
                "log_path": str(ff_settings.load().deadline_log),
                "interval_s": PARSE.deadline.total_seconds(),
            },
        ),
    )


def _order() -> dict[str, Any]:
    """The validated order of the running task (params hold defaults + conf)."""
    params = get_current_context()["params"]
    return {name: params.get(name) for name in ORDER_FIELDS}


def _arguments(spec: dict[str, Any]) -> list[str]:
    return spec["arguments"]


def swap_chunks(task_id: str, specs: Any) -> Any:
    """One FaceSwapPodOperator per chunk spec (a GPU pod, or the local runner)."""
    return FaceSwapPodOperator.partial(
        task_id=task_id,
        map_index_template=CHUNK_LABEL,
        execution_timeout=PARSE.swap_timeout,
        on_success_callback=lineage.record_swap,
        **SWAP,
    ).expand(arguments=specs.map(_arguments))


@dag(
    dag_id=names.DAG_ID,
    description="Swap the face of a source photo into a target video (one order per run).",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=8,
    params=order_params(),
    deadline=deadline_alert(),
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(minutes=10),
        "on_failure_callback": media.record_failure,
        "on_retry_callback": media.record_failure,  # every failed try: reasons + retry counts
        "on_execute_callback": lineage.reset,
    },
    tags=["facefactory", "orders"],
    doc_md=__doc__,
)
def face_swap_order() -> None:
    @task(task_id=names.INGEST, execution_timeout=timedelta(minutes=30))
    def ingest() -> names.IngestResult:
        """Validate the order, copy the inputs in, probe the video, embed the source face."""
        order = _order()
        context = get_current_context()
        problems = config.order_problems(context["dag_run"].conf, order)
        if problems:
            raise media.BadOrder("invalid order: " + "; ".join(problems))
        cfg = config.run_time()
        result = media.ingest(order, cfg, run_id=context["run_id"])
        area = lineage.order_paths(media.work_root(cfg), order["order_id"])
        lineage.record(
            inputs=[result["source_uri"], result["target_uri"]],
            outputs=[result["source_local"], result["target_local"], area.uri(SOURCE_EMBEDDING)],
        )
        return result

    @task(task_id=names.CHUNK, execution_timeout=timedelta(minutes=30))
    def chunk(ingested: dict[str, Any]) -> list[dict[str, Any]]:
        """Frame ranges + mezzanine pieces; each spec carries its swap-chunk arguments."""
        order, cfg = _order(), config.run_time()
        chunks = media.split(order, ingested, cfg, max_chunks=PARSE.max_map_length)
        area = lineage.order_paths(media.work_root(cfg), order["order_id"])
        lineage.record(
            inputs=[ingested["video"]],
            outputs=[area.uri(area.chunk_rel(c["chunk"])) for c in chunks],
        )
        return [
            {**c, "arguments": swap_arguments(media.work_root(cfg), order["order_id"], c, order)}
            for c in chunks
        ]

    @task(task_id=names.QUALITY_GATE, execution_timeout=timedelta(minutes=20))
    def quality_gate(ingested: dict[str, Any]) -> list[dict[str, Any]]:
        """Validate every frame's metrics; returns the re-swap plan (empty when all passed)."""
        from quality.gate import evaluate

        order, cfg = _order(), config.run_time()
        odir = media.order_dir(cfg, order["order_id"])
        with media.worker_env(cfg):
            result = evaluate(odir, order, int(ingested["frames"]))
        get_current_context()["ti"].xcom_push(key=names.XCOM_GATE, value=result.to_dict())
        if result.fatal:  # e.g. no face anywhere: no re-swap can fix it, and no retry either
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(result.message())
        lineage.record(
            inputs=media.swapped_files(cfg, order["order_id"], "metrics.json"),
            outputs=[result.validation_uri
                     or lineage.order_paths(media.work_root(cfg), order["order_id"]).uri(VALIDATION)],
        )
        return [
            {**plan, "arguments": swap_arguments(
                media.work_root(cfg), order["order_id"], plan, order, plan.get("options"))}
            for plan in result.reswap_plan()
        ]

    @task(task_id=names.FINAL_GATE, trigger_rule="none_failed", execution_timeout=timedelta(minutes=20))
    def final_gate(ingested: dict[str, Any], plan: list[dict[str, Any]]) -> dict[str, Any]:
        """Hard stop: fail the run (naming chunk, frame, metric) unless every frame passes.
        Writes the QA report either way."""
        from airflow.sdk.exceptions import AirflowFailException

        from quality.gate import evaluate

        context = get_current_context()
        order, cfg = _order(), config.run_time()
        first = context["ti"].xcom_pull(task_ids=names.QUALITY_GATE, key=names.XCOM_GATE) or {}
        if first.get("passed") and not plan:
            result = first
        else:
            with media.worker_env(cfg):
                result = evaluate(media.order_dir(cfg, order["order_id"]), order,
                                  int(ingested["frames"]), stage=names.FINAL_GATE).to_dict()
        report = media.qa_report(cfg, order)
        if report:
            context["ti"].xcom_push(key=names.XCOM_REPORT, value=report)
        if not result.get("passed"):
            raise AirflowFailException(result.get("message") or "quality gate failed")
        return result

    @task(task_id=names.MERGE, execution_timeout=timedelta(minutes=30))
    def merge(ingested: dict[str, Any], gate: dict[str, Any]) -> dict[str, Any]:
        """Concat the swapped segments, mux the original audio, verify frames and duration."""
        order, cfg = _order(), config.run_time()
        merged = media.merge(order, ingested, cfg)
        lineage.record(
            inputs=[*media.swapped_files(cfg, order["order_id"], "segment.mp4"),
                    ingested["target_local"]],
            outputs=[merged["output_uri"]],
        )
        return {**merged, "gate_passed": bool(gate.get("passed")), "summary": gate.get("summary")}

    @task(task_id=names.PUBLISH, outlets=[lineage.PUBLISHED], execution_timeout=timedelta(minutes=20))
    def publish(merged: dict[str, Any], ingested: dict[str, Any]) -> str:
        """Deliver the video (atomically) and announce it as an Asset event; returns its URI.
        The full delivery record (checksums, presigned URL, CDN) is XCom `published`."""
        from airflow.sdk.exceptions import AirflowFailException

        if not merged.get("gate_passed"):
            raise AirflowFailException("refusing to publish: the quality gate did not pass")
        context = get_current_context()
        order, cfg = _order(), config.run_time()
        prefix = order.get("publish_to") or cfg.settings.publish_to
        delivered = publishing.publish(
            merged["output"], prefix, order["order_id"], quality=merged.get("summary"),
            source_sha256=ingested.get("source_sha256"), when=context["dag_run"].run_after,
        )  # creates the CDN invalidation; cdn_ready waits for it, deferred, holding no worker slot
        uri = delivered["uri"]
        context["ti"].xcom_push(key=names.XCOM_PUBLISHED, value=delivered)
        lineage.record(inputs=[merged["output_uri"]], outputs=[uri])
        context["outlet_events"][lineage.PUBLISHED].extra = {
            "order_id": order["order_id"], "uri": uri, "frames": merged["frames"],
        }
        return uri

    ingested = ingest()
    chunks = chunk(ingested)
    swapped = swap_chunks(names.SWAP, chunks)
    plan = quality_gate(ingested)
    swapped >> plan
    reswapped = swap_chunks(names.RESWAP, plan)
    gate = final_gate(ingested, plan)
    reswapped >> gate
    publish(merge(ingested, gate), ingested) >> CdnInvalidationWait(
        task_id=names.CDN_READY, retries=2, retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=20))


face_swap_order()
