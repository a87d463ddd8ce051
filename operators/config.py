"""Airflow-side configuration: FACEFACTORY_* env with Airflow Variable overrides.

Two kinds of setting live here:
- parse-time settings (deadline on/off, retry sizing): read from the environment ONLY, because a
  DAG file must not touch the metadata DB while it is parsed;
- run-time settings (work root, publish prefix, input roots, caps): read inside tasks, where an
  Airflow Variable of the same lower-case name overrides the environment (docs/contracts.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from facefactory import settings as ff_settings


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class ParseTimeConfig:
    """What the DAG file needs while it is parsed (env only, no DB)."""

    deadline_enabled: bool
    deadline: timedelta
    swap_timeout: timedelta
    max_map_length: int


def parse_time() -> ParseTimeConfig:
    """Read once per parse. The deadline is off by default because `airflow dags test`
    crashes after the tasks when a DAG carries a DeadlineAlert (Airflow 3.3.2, DESIGN §7);
    deployments with a scheduler switch it on with FACEFACTORY_DEADLINE_ENABLED=true."""
    return ParseTimeConfig(
        deadline_enabled=_env_bool("FACEFACTORY_DEADLINE_ENABLED", False),
        deadline=timedelta(minutes=_env_float("FACEFACTORY_DEADLINE_MINUTES", 60.0)),
        swap_timeout=timedelta(minutes=_env_float("FACEFACTORY_SWAP_TIMEOUT_MINUTES", 60.0)),
        max_map_length=_max_map_length(),
    )


def _max_map_length() -> int:
    """Airflow's [core] max_map_length (env or airflow.cfg; the config parser reads no DB)."""
    try:
        from airflow.configuration import conf

        return conf.getint("core", "max_map_length", fallback=1024)
    except Exception:  # noqa: BLE001 - outside an Airflow install the default applies
        return 1024


@dataclass(frozen=True)
class Caps:
    """Limits on what one order may ask for (refused at ingest with a clear message)."""

    max_duration_s: float
    max_bytes: int
    max_width: int
    max_height: int


@dataclass(frozen=True)
class RunConfig:
    """Settings a task needs at run time."""

    settings: ff_settings.Settings
    caps: Caps

    @property
    def input_roots(self) -> tuple[Path, ...]:
        return self.settings.input_roots


def _variable(name: str) -> str | None:
    """Airflow Variable `name`, or None outside a task / when unset."""
    try:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
    except Exception:  # noqa: BLE001 - no task context (CLI, unit tests): env only
        return None
    return None if value in (None, "") else str(value)


def run_time(use_variables: bool = True) -> RunConfig:
    """Env first, then Variables (`facefactory_work_root`, ...) override, per the contract."""
    env = dict(os.environ)
    if use_variables:
        for key in (
            "FACEFACTORY_WORK_ROOT",
            "FACEFACTORY_PUBLISH_TO",
            "FACEFACTORY_PUBLISH_ROOTS",
            "FACEFACTORY_INPUT_ROOTS",
            "FACEFACTORY_RUNNER",
            "FACEFACTORY_MODEL_DIR",
        ):
            override = _variable(key.lower())
            if override is not None:
                env[key] = override
    base = ff_settings.load(env)

    def num(name: str, default: float) -> float:
        raw = env.get(name, "").strip()
        return float(raw) if raw else default

    caps = Caps(
        max_duration_s=num("FACEFACTORY_MAX_DURATION_S", 600.0),
        max_bytes=int(num("FACEFACTORY_MAX_INPUT_BYTES", 4 * 1024**3)),
        max_width=int(num("FACEFACTORY_MAX_WIDTH", 3840)),
        max_height=int(num("FACEFACTORY_MAX_HEIGHT", 2160)),
    )
    return RunConfig(settings=base, caps=caps)


def with_settings(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy with some settings replaced (tests)."""
    return replace(cfg, settings=replace(cfg.settings, **changes))


def order_problems(conf: dict[str, object] | None, order: dict[str, object],
                   publish_roots: tuple[str, ...] | None = None) -> list[str]:
    """Why an order must be refused before any work: unknown conf keys (a typo such as
    `min_id_cosin` would otherwise be silently ignored) and problems of the merged order, worded
    by facefactory.operators.order_check like every other way in (the API middleware refuses them earlier;
    this is the last line of defence, e.g. for runs created by other means). `publish_to` is
    checked against the run-time publish roots (Variable `facefactory_publish_roots` > env)."""
    from facefactory.operators.order_check import order_problems as check
    from facefactory.operators.order_schema import ORDER_FIELDS

    extra = {k: v for k, v in (conf or {}).items() if k not in ORDER_FIELDS}
    roots = publish_roots if publish_roots is not None else run_time().settings.publish_roots
    return [str(p) for p in check({**extra, **order}, allow_injected=True, publish_roots=roots)]
