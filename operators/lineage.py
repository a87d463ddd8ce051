"""Lineage of an order: which files each task read and wrote.

Static Assets (known at parse time) go on the tasks' outlets so downstream DAGs can be
scheduled on them; the per-order files (source, target, segments, output, published video) are
only known at run time, so tasks report them to Airflow's hook-lineage collector, which the
OpenLineage provider turns into the input/output datasets of each task's events.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath

from faceworker.workarea import SOURCE_EMBEDDING, VALIDATION, OrderArea, open_store

log = logging.getLogger(__name__)

# Asset event emitted once per published order; `extra` carries the order id and the URI.
PUBLISHED = Asset(name="facefactory_published_video", uri="facefactory://published/videos")


def order_paths(work_root: str, order_id: str) -> OrderArea:
    """The order's work area, for naming its files (OrderArea's layout; no I/O, no S3 client yet)."""
    return OrderArea(open_store(work_root), order_id)


def as_uri(path_or_uri: str | Path) -> str:
    """file:// URI for local paths; URIs pass through."""
    text = str(path_or_uri)
    if "://" in text:
        return text
    return Path(text).resolve().as_uri()


def record(inputs: Iterable[str | Path] = (), outputs: Iterable[str | Path] = ()) -> None:
    """Tell the lineage collector what the running task read and wrote (no-op when off)."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
    except Exception:  # noqa: BLE001 - lineage must never fail an order
        log.debug("no lineage collector", exc_info=True)
        return
    for kind, items in (("input", inputs), ("output", outputs)):
        add = collector.add_input_asset if kind == "input" else collector.add_output_asset
        for item in items:
            uri = as_uri(item)
            try:
                add(context=ObjectStoragePath(uri), uri=uri)
            except Exception:  # noqa: BLE001 - lineage is best-effort: one unrecordable URI must not fail the task
                log.warning("could not record %s lineage for %s", kind, uri, exc_info=True)


def reset(context: object = None) -> None:
    """on_execute_callback: start each task with an empty collector.

    In a deployed Airflow every task is a fresh process, so this is a no-op there; under
    `DAG.test()` all tasks share one process and the collector would otherwise report every
    earlier task's files again."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
    except Exception:  # noqa: BLE001 - no collector means nothing to clear; lineage never fails a task
        return
    for name in ("_inputs", "_outputs", "_input_counts", "_output_counts", "_extra", "_extra_counts"):
        clear = getattr(getattr(collector, name, None), "clear", None)
        if callable(clear):
            clear()


def record_swap(context: dict) -> None:
    """on_success_callback of the swap tasks: chunk mezzanine piece -> swapped segment.

    Success callbacks run before the OpenLineage listener's success hook, so what is recorded
    here lands in the swap task's COMPLETE event."""
    task = context.get("task")
    args = list(getattr(task, "arguments", None) or [])

    def value(flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args[:-1] else None

    work, order, chunk = value("--work"), value("--order"), value("--chunk")
    if not (work and order and chunk is not None):
        return
    area = order_paths(work, order)
    record(
        inputs=[area.uri(area.chunk_rel(int(chunk))), area.uri(SOURCE_EMBEDDING)],
        outputs=[area.uri(area.swapped_rel(int(chunk), "segment.mp4")),
                 area.uri(area.swapped_rel(int(chunk), "metrics.json"))],
    )


# What each step of face_swap_order read and wrote (the per-order files, known at run time).


def record_ingest(area: OrderArea, result: Mapping[str, Any]) -> None:
    """ingest: the order's source and target -> their work-area copies and the source embedding."""
    record(
        inputs=[result["source_uri"], result["target_uri"]],
        outputs=[result["source_local"], result["target_local"], area.uri(SOURCE_EMBEDDING)],
    )


def record_chunks(area: OrderArea, video: str, chunks: Iterable[Mapping[str, Any]]) -> None:
    """chunk: the (normalised) target -> one mezzanine piece per chunk."""
    record(inputs=[video], outputs=[area.uri(area.chunk_rel(c["chunk"])) for c in chunks])


def record_gate(area: OrderArea, metrics: Iterable[str], validation_uri: str | None) -> None:
    """quality_gate: every swapped chunk's metrics -> the validation result."""
    record(inputs=metrics, outputs=[validation_uri or area.uri(VALIDATION)])


def record_merge(segments: Iterable[str], target_local: str, output_uri: str) -> None:
    """merge: the swapped segments and the target's audio -> the order's output video."""
    record(inputs=[*segments, target_local], outputs=[output_uri])
