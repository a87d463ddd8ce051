"""Where order deadlines are on, and why `order run` runs without one.

`facefactory up` (and the Helm values) switch the DeadlineAlert of face_swap_order on: misses
are found by the scheduler and recorded by the triggerer (plugins/facefactory_deadlines.py).
`facefactory order run` has no scheduler, so a deadline could never be checked there; worse,
Airflow's in-process run (facefactory.parallel_run, like DAG.test) hands the DagRun a DAG whose
`deadline` holds decoded alerts instead of alert ids, and finishing a successful run then
crashes in DeadlineAlert.get_by_id (DESIGN.md). So it is always off there, and said so.
"""
from __future__ import annotations

from collections.abc import MutableMapping

from facefactory import settings

ENV = "FACEFACTORY_DEADLINE_ENABLED"
MINUTES_ENV = "FACEFACTORY_DEADLINE_MINUTES"
DEFAULT_MINUTES = float(settings.declared(MINUTES_ENV).default)

NO_DEADLINE_LINE = ("facefactory: this order runs without a deadline (`order run` has no scheduler to "
                    "watch one); for SLA tracking submit it to `facefactory up` instead")


def without_deadline(env: MutableMapping[str, str]) -> str:
    """Switch the deadline off in `env` (of an `order run` child); returns the line to print."""
    env[ENV] = "false"
    return NO_DEADLINE_LINE


def summary(env: MutableMapping[str, str], misses_file: str) -> str:
    """One line for `up`'s banner: the deadline in force and where misses are recorded."""
    if not settings.flag(ENV, env):
        return f"deadlines:    off ({ENV}=false)"
    minutes = settings.text(MINUTES_ENV, env)
    return f"deadlines:    {minutes} min per order from queue time; misses -> {misses_file}"
