"""The order's Great Expectations suite: versioned JSON in ``suites/``, run in an ephemeral context.

The suite file holds expectations in GX's own configuration shape plus ``${name}`` placeholders
for per-order thresholds, so thresholds live in the order (Params) and the checks live in data.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

SUITES_DIR = Path(__file__).resolve().parent / "suites"
DEFAULT_SUITE = SUITES_DIR / "order_suite.json"
_PLACEHOLDER = re.compile(r"^\$\{([a-z_]+)\}$")

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _quiet_gx() -> None:
    """GX logs every metric at INFO and draws progress bars; the gate's log must stay readable."""
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)


def preload() -> None:
    """Import Great Expectations now. Why: its import is most of a gate's time (≈ 2.5 s on the
    2-core machine, more than the validation); a runner that forks task processes calls this once
    in the parent so every gate task inherits the loaded modules."""
    _quiet_gx()
    import great_expectations  # noqa: F401 - imported only to load GX once, in the parent process
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration  # noqa: F401 - see above


def load_suite_doc(path: str | Path = DEFAULT_SUITE) -> dict:
    """The suite document (name, version, default parameters, expectation configs)."""
    return json.loads(Path(path).read_text())


def resolve_parameters(doc: dict, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Suite defaults updated by the order's values (unknown keys are ignored)."""
    params = dict(doc.get("parameters", {}))
    for k, v in (overrides or {}).items():
        if v is not None:
            params[k] = v
    return params


def _substitute(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str):
        m = _PLACEHOLDER.match(value)
        if m:
            if m.group(1) not in params:
                raise KeyError(f"suite parameter {m.group(1)!r} has no value")
            return params[m.group(1)]
        return value
    if isinstance(value, list):
        return [_substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, params) for k, v in value.items()}
    return value


def render_expectations(doc: dict, params: dict[str, Any]) -> list[dict]:
    """Expectation configs with every ``${name}`` replaced by its parameter value."""
    return [_substitute(copy.deepcopy(e), params) for e in doc["expectations"]]


def validate_frames(
    df: pd.DataFrame, params: dict[str, Any], suite_path: str | Path = DEFAULT_SUITE,
) -> dict:
    """Validate the per-frame DataFrame; returns the GX validation result as JSON-able dict.

    Unexpected rows are reported with their ``frame`` and ``chunk`` so the gate can name them.
    """
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    doc = load_suite_doc(suite_path)
    configs = render_expectations(doc, params)
    ctx = gx.get_context(mode="ephemeral")
    try:
        ctx.variables.progress_bars = {"globally": False}  # type: ignore[assignment]  # GX takes the dict form too
    except Exception:  # noqa: BLE001 - cosmetic only; older configs lack the field
        pass
    source = ctx.data_sources.add_pandas("order_frames")
    asset = source.add_dataframe_asset("frames")
    batch_def = asset.add_batch_definition_whole_dataframe("whole_order")
    expectations = [
        ExpectationConfiguration(type=c["type"], kwargs=c["kwargs"], meta=c.get("meta", {})).to_domain_obj()
        for c in configs
    ]
    suite = ctx.suites.add(gx.ExpectationSuite(name=doc["name"], expectations=expectations,
                                               meta={"suite_version": doc.get("version")}))
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["frame", "chunk"],
                       "partial_unexpected_count": 20},
    )
    out = result.to_json_dict()
    out.setdefault("meta", {})["suite_version"] = doc.get("version")
    out["meta"]["suite_parameters_resolved"] = {k: v for k, v in params.items()}
    return out
