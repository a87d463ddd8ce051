"""Lineage of an order: which files each task read and wrote.

Static Assets (known at parse time) go on the tasks' outlets so downstream DAGs can be
scheduled on them; the per-order files (source, target, segments, output, published video) are
only known at run time, so tasks report them to Airflow's hook-lineage collector, which the
OpenLineage provider turns into the input/output datasets of each task's events.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from airflow.sdk import Asset, ObjectStoragePath

log = logging.getLogger(__name__)

# Asset event emitted once per published order; `extra` carries the order id and the URI.
PUBLISHED = Asset(name="facefactory_published_video", uri="facefactory://published/videos")


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
            except Exception:  # noqa: BLE001
                log.warning("could not record %s lineage for %s", kind, uri, exc_info=True)
