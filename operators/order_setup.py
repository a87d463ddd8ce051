"""Parse-time set-up of the face_swap_order DAG: the trigger form, the order deadline and the
grid label of a chunk. Here, not in the DAG file, so that file reads like the pipeline diagram;
everything below reads the environment only (no DB, no network), as DAG parsing must."""
from __future__ import annotations

from airflow.sdk import Param

# The defining modules, not airflow.sdk: it exports these lazily (module __getattr__), which mypy
# cannot see; the classes are the same.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from facefactory import settings as ff_settings
from facefactory.operators import config
from facefactory.operators.order_schema import ORDER_FIELDS
from facefactory.operators.uris import expand_placeholders

# Shown in the grid instead of the bare map index.
CHUNK_LABEL = (
    "{% set a = task.arguments %}chunk {{ a[a.index('--chunk') + 1] }}"
    " [{{ a[a.index('--start') + 1] }}-{{ a[a.index('--end') + 1] }})"
)


def order_params() -> dict[str, Param]:
    """The trigger form, generated from the one order schema (facefactory.operators.order_schema)."""
    input_roots = ff_settings.load().input_roots
    params: dict[str, Param] = {}
    for name, spec in ORDER_FIELDS.items():
        schema = {k: v for k, v in spec.items() if k not in ("default", "section")}
        default = spec.get("default")
        if isinstance(default, str):
            default = expand_placeholders(default, input_roots)
        params[name] = Param(default, section=spec.get("section"), **schema)
    return params


def deadline_alert(parse: config.ParseTimeConfig | None = None) -> DeadlineAlert | None:
    """Order SLA, off unless FACEFACTORY_DEADLINE_ENABLED (see facefactory.operators.config.parse_time)."""
    parse = parse or config.parse_time()
    if not parse.deadline_enabled:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=parse.deadline,
        callback=AsyncCallback(
            "facefactory_deadlines.record_deadline_miss",
            kwargs={
                "log_path": str(ff_settings.load().deadline_log),
                "interval_s": parse.deadline.total_seconds(),
            },
        ),
    )
