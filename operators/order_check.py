"""The one refusal: why an order is invalid, in words a person can act on.

Every way in (the UI form and REST through the API-server middleware in
plugins/facefactory_orders.py, `facefactory submit`, the bulk inbox, `facefactory order run`, and
ingest as the last line of defence) calls `order_problems`, so an order refused by one is refused
by all, with the same message naming the field. The messages are written from the one schema
(operators/order_schema.py ORDER_FIELDS) without quoting regexes or dumping it: a person reading
"order_id: use 1 to 128 letters, ..." can fix the order, one reading `^[A-Za-z0-9]...$` cannot.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from facefactory.operators import uris
from facefactory.operators.order_schema import (
    ORDER_FIELDS,
    ORDER_ID_MAX,
    ORDER_ID_RE,
    REQUIRED,
    URI_FIELDS,
    URI_RE,
)

# Conf keys Airflow itself adds: the OpenLineage provider puts the parent job under
# "openlineage" when a run is triggered by TriggerDagRunOperator (bulk_orders).
INJECTED_CONF_KEYS = frozenset({"openlineage"})

ORDER_ID_RULE = (f"use 1 to {ORDER_ID_MAX} letters, digits, '.', '_' or '-', starting with a "
                 "letter or digit")
URI_RULE = "use file:///absolute/path, /absolute/path or s3://bucket/key"


class Problem(NamedTuple):
    """One reason to refuse an order: the field it is about and what is wrong with it. A plain
    pair (immutable, compared by value); `_asdict()` is the JSON the API and bulk reports carry."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def refusal(problems: list[Problem]) -> str:
    """The one-line refusal every way in shows (CLI stderr, HTTP 400 detail, bulk reason)."""
    return "invalid order: " + "; ".join(str(p) for p in problems)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown(key: str) -> Problem:
    close = difflib.get_close_matches(key, list(ORDER_FIELDS), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return Problem(str(key), f"unknown order field ({hint}known fields: {', '.join(ORDER_FIELDS)})")


def _kinds(spec: Mapping[str, Any]) -> list[str]:
    kinds = spec["type"]
    return list(kinds) if isinstance(kinds, list) else [kinds]


def _range_text(spec: Mapping[str, Any]) -> str:
    lo, hi = spec.get("minimum"), spec.get("maximum")
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}"
    if lo is not None:
        return f" of at least {lo:g}"
    if hi is not None:
        return f" of at most {hi:g}"
    return ""


def _number_problem(name: str, spec: Mapping[str, Any], value: Any) -> str | None:
    """Numbers: a real JSON number (not a bool, not NaN/inf), whole when the field says so, in range."""
    whole = "integer" in _kinds(spec)
    want = ("a whole number" if whole else "a number") + _range_text(spec)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {want}; got {_shown(value)}"
    if not math.isfinite(value):
        return f"must be {want}; got {value!r} (not a finite number)"
    if whole and value != int(value):
        return f"must be {want}; got {value!r}"
    lo, hi = spec.get("minimum"), spec.get("maximum")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"must be {want}; got {value!r}"
    return None


def _uri_problem(value: str) -> str | None:
    if not URI_RE.match(value):
        return f"{URI_RULE}; got {_shown(value)}"
    path = value.split("://", 1)[-1]
    if ".." in PurePosixPath(path).parts:
        return f"'..' is not allowed in a path; got {_shown(value)}"
    if value.startswith("s3://") and (bucket := uris.bucket_problem(path.split("/", 1)[0])):
        return f"{bucket}; got {_shown(value)}"
    return None


def env_publish_roots() -> tuple[str, ...]:
    """The publish roots of this process's environment (facefactory.settings); tasks pass the
    Variable-aware ones from facefactory.operators.config instead."""
    from facefactory.settings import load

    return load().publish_roots


def _publish_to_problem(value: str, roots: tuple[str, ...] | None) -> str | None:
    from facefactory.operators.uris import publish_problem

    return publish_problem(value, roots)


def _string_problem(name: str, spec: Mapping[str, Any], value: str,
                    publish_roots: tuple[str, ...] | None = None) -> str | None:
    if "enum" in spec and value not in spec["enum"]:
        return f"must be one of {', '.join(spec['enum'])}; got {_shown(value)}"
    if name == "order_id" and (not ORDER_ID_RE.match(value) or ".." in value):
        return f"{ORDER_ID_RULE}; got {_shown(value)}"
    if name in URI_FIELDS:
        return _uri_problem(value)
    if name == "publish_to":
        return _publish_to_problem(value, publish_roots)
    return None


def field_problem(name: str, value: Any, publish_roots: tuple[str, ...] | None = None) -> str | None:
    """What is wrong with one known field's value (None = fine). `publish_roots` limits
    `publish_to` (None: its form only)."""
    spec = ORDER_FIELDS[name]
    kinds = _kinds(spec)
    if value is None:
        return None if "null" in kinds else "must not be empty"
    if "integer" in kinds or "number" in kinds:
        return _number_problem(name, spec, value)
    if "string" in kinds:
        if not isinstance(value, str):
            return f"must be text; got {_shown(value)}"
        if not value.strip() and "null" not in kinds:
            return "must not be empty"
        return _string_problem(name, spec, value, publish_roots) if value.strip() else None
    return None


_ENV_ROOTS: Any = object()  # "read the publish roots from the environment"


def order_problems(order: Any, *, allow_injected: bool = False,
                   publish_roots: tuple[str, ...] | None = _ENV_ROOTS) -> list[Problem]:
    """Every reason to refuse `order` (empty = valid): unknown fields, missing required fields,
    wrong types, values out of range, bad URIs, a `publish_to` outside the publish roots and bad
    order ids, in field order.

    `allow_injected` tolerates the conf keys Airflow adds itself (checks of a run's conf).
    `publish_roots`: where `publish_to` may point (default: FACEFACTORY_PUBLISH_ROOTS of this
    process); None checks only its form, for a client that cannot know the server's roots."""
    if not isinstance(order, Mapping):
        return [Problem("order", f"must be an object of order fields; got {type(order).__name__}")]
    problems = [
        _unknown(str(key)) for key in order
        if key not in ORDER_FIELDS and not (allow_injected and key in INJECTED_CONF_KEYS)
    ]
    roots = env_publish_roots() if publish_roots is _ENV_ROOTS else publish_roots
    for name in ORDER_FIELDS:
        if name not in order:
            if name in REQUIRED:
                problems.append(Problem(name, "is required"))
            continue
        message = field_problem(name, order[name], roots)
        if message:
            problems.append(Problem(name, message))
    return problems


def parse_field(name: str, raw: str) -> Any:
    """Command-line / CSV text -> the JSON value the schema gives field `name`.

    Only the conversion can fail here (ValueError with the same human message as
    `order_problems`, never Python's "invalid literal for int()"); ranges, NaN and the rest
    are `order_problems`' job, so every way in words them the same."""
    if name not in ORDER_FIELDS:
        raise ValueError(str(_unknown(name)))
    spec = ORDER_FIELDS[name]
    kinds = _kinds(spec)
    text = raw.strip()
    if "null" in kinds and text.lower() in ("", "null", "none"):
        return None
    if "integer" in kinds or "number" in kinds:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(str(Problem(name, _number_problem(name, spec, text) or ""))) from None
        if "integer" in kinds and math.isfinite(value) and value == int(value):
            return int(value)
        return value
    return text
