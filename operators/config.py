"""Airflow-side configuration: what the DAG file and the tasks need, read through the one
settings module (facefactory.settings: names, defaults and which Variables may override).

Two kinds of setting live here:
- parse-time settings (deadline on/off, retry sizing): read from the environment ONLY, because a
  DAG file must not touch the metadata DB while it is parsed;
- run-time settings (work root, publish prefix, input roots, caps): read inside tasks, where an
  Airflow Variable of the same lower-case name overrides the environment (docs/contracts.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from facefactory import settings as ff_settings

#: what `run_time` lets an Airflow Variable override (each declared `variable=True`)
RUN_TIME_VARIABLES = (
    "FACEFACTORY_WORK_ROOT",
    "FACEFACTORY_PUBLISH_TO",
    "FACEFACTORY_PUBLISH_ROOTS",
    "FACEFACTORY_INPUT_ROOTS",
    "FACEFACTORY_RUNNER",
    "FACEFACTORY_MODEL_DIR",
)


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
        deadline_enabled=ff_settings.flag("FACEFACTORY_DEADLINE_ENABLED"),
        deadline=timedelta(minutes=ff_settings.number("FACEFACTORY_DEADLINE_MINUTES")),
        swap_timeout=timedelta(minutes=ff_settings.number("FACEFACTORY_SWAP_TIMEOUT_MINUTES")),
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


def run_time(use_variables: bool = True) -> RunConfig:
    """Env first, then Variables (`facefactory_work_root`, ...) override, per the contract."""
    env = ff_settings.with_variables(RUN_TIME_VARIABLES if use_variables else ())
    caps = Caps(
        max_duration_s=ff_settings.number("FACEFACTORY_MAX_DURATION_S", env),
        max_bytes=int(ff_settings.number("FACEFACTORY_MAX_INPUT_BYTES", env)),
        max_width=int(ff_settings.number("FACEFACTORY_MAX_WIDTH", env)),
        max_height=int(ff_settings.number("FACEFACTORY_MAX_HEIGHT", env)),
    )
    return RunConfig(settings=ff_settings.load(env), caps=caps)


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
