"""face_swap_order: one customer order = one run.

    ingest -> chunk -> swap[chunk] -> quality_gate -> reswap[failing chunk] -> final_gate -> publish
                                                                          +-> merge ------+
        -> cdn_ready (deferred: waits in the triggerer for the CloudFront invalidation, if any)

merge runs next to final_gate (both need only the swapped segments): the video is built while the
report is, and publish takes both, so nothing is published unless the gate passed.

The order arrives as the run's conf (the trigger form below, the REST API or bulk_orders); the
run id is `order__<order_id>`. What each task does is in `facefactory.operators.order_tasks` (media work in
`facefactory.operators.media` and the `faceworker` engine, the gate in `facefactory.quality.gate`, publishing in
`facefactory.operators.publish`); the trigger form and deadline in `facefactory.operators.order_setup`. This file only
wires them. Parsing reads the environment only (no DB, no network).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from facefactory.operators import config, lineage, media, names, order_tasks
from facefactory.operators.cdn_wait import CdnInvalidationWait
from facefactory.operators.face_swap_pod import FaceSwapPodOperator
from facefactory.operators.order_setup import CHUNK_LABEL, deadline_alert, order_params
from facefactory.operators.pod_spec import parse_time_settings as swap_parse_settings

PARSE = config.parse_time()
SWAP = swap_parse_settings()  # pool gpu_swaps, retries with exponential backoff (env only)


def swap_chunks(task_id: str, specs: Any) -> Any:
    """One FaceSwapPodOperator per chunk spec (a GPU pod, or the local runner)."""
    return FaceSwapPodOperator.partial(
        task_id=task_id,
        map_index_template=CHUNK_LABEL,
        execution_timeout=PARSE.swap_timeout,
        on_success_callback=lineage.record_swap,
        **SWAP,
    ).expand(arguments=specs.map(order_tasks.chunk_arguments))


@dag(
    dag_id=names.DAG_ID,
    description="Swap the face of a source photo into a target video (one order per run).",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=8,
    params=order_params(),
    deadline=deadline_alert(PARSE),
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
        return order_tasks.ingest()

    @task(task_id=names.CHUNK, execution_timeout=timedelta(minutes=30))
    def chunk(ingested: dict[str, Any]) -> list[dict[str, Any]]:
        """Frame ranges + mezzanine pieces; each spec carries its swap-chunk arguments."""
        return order_tasks.chunk(ingested, max_chunks=PARSE.max_map_length)

    @task(task_id=names.QUALITY_GATE, execution_timeout=timedelta(minutes=20))
    def quality_gate(ingested: dict[str, Any]) -> list[dict[str, Any]]:
        """Validate every frame's metrics; returns the re-swap plan (empty when all passed)."""
        return order_tasks.quality_gate(ingested)

    @task(task_id=names.FINAL_GATE, trigger_rule="none_failed", execution_timeout=timedelta(minutes=20))
    def final_gate(ingested: dict[str, Any], plan: list[dict[str, Any]]) -> dict[str, Any]:
        """Hard stop: fail the run (naming chunk, frame, metric) unless every frame passes.
        Writes the QA report either way."""
        return order_tasks.final_gate(ingested, plan)

    @task(task_id=names.MERGE, trigger_rule="none_failed", execution_timeout=timedelta(minutes=30))
    def merge(ingested: dict[str, Any]) -> dict[str, Any]:
        """Concat the swapped segments, mux the original audio, verify frames and duration."""
        return order_tasks.merge(ingested)

    @task(task_id=names.PUBLISH, outlets=[lineage.PUBLISHED], execution_timeout=timedelta(minutes=20))
    def publish(merged: dict[str, Any], gate: dict[str, Any], ingested: dict[str, Any]) -> str:
        """Deliver the video (atomically) if the gate passed and announce it as an Asset event;
        returns its URI. The full delivery record (checksums, presigned URL, CDN) is XCom `published`."""
        return order_tasks.publish(merged, gate, ingested)

    ingested = ingest()
    chunks = chunk(ingested)
    swapped = swap_chunks(names.SWAP, chunks)
    plan = quality_gate(ingested)
    swapped >> plan
    reswapped = swap_chunks(names.RESWAP, plan)
    gate = final_gate(ingested, plan)
    merged = merge(ingested)
    reswapped >> [gate, merged]
    publish(merged, gate, ingested) >> CdnInvalidationWait(
        task_id=names.CDN_READY, retries=2, retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=20))


face_swap_order()
