"""Every FACEFACTORY_* name, declared once: type, default, meaning, who reads it, Variable override.

The rows are data, in facefactory/settings_table.toml next to this file; this module turns them
into `Setting`s and is read through `facefactory.settings` (the accessors, the Settings of the
embedded default and the docs table, docs/settings.md). The engine's names are declared in the
engine (`faceworker.settings`, installed alone in the worker image): they are included here as
they are, and the few the Airflow side reads too are rows with `from_engine = true`, which take
the engine's kind, default and meaning and may not redeclare them.

`variable=True`: inside a task an Airflow Variable of the lower-case name overrides the
environment (env -> Variable). Parse-time names stay environment-only: a DAG file must not reach
the metadata DB while it is parsed.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from faceworker.settings import ENGINE_SETTINGS, EngineSetting, Kind

Reader = Literal["engine", "airflow", "cli", "tests"]
#: groups other modules read as a whole: the swap pod's spec (docs/kubernetes.md)
Group = Literal["", "pod", "swap_parse_time"]


@dataclass(frozen=True)
class Setting:
    """One environment variable. `default` is what `settings.text` returns when it is unset or
    blank ("" = none); `shown_default` says how a default worked out from other settings is found."""

    name: str
    kind: Kind
    default: str
    meaning: str
    read_by: tuple[Reader, ...]
    variable: bool = False
    shown_default: str = ""
    group: Group = ""

    @property
    def documented_default(self) -> str:
        return self.shown_default or (f"`{self.default}`" if self.default else "(none)")


_ENGINE: dict[str, EngineSetting] = {e.name: e for e in ENGINE_SETTINGS}
#: the data file of the Airflow side's names (a package file: wheels carry it, pyproject.toml)
TABLE = "settings_table.toml"
_ENGINE_OWNS = ("kind", "default", "meaning", "shown_default")


def engine_only(e: EngineSetting) -> Setting:
    readers: tuple[Reader, ...] = ("engine", "tests") if e.name.startswith("FACEFACTORY_TEST_") else ("engine",)
    return Setting(e.name, e.kind, e.default, e.meaning, readers, False, e.shown_default)


def from_row(row: dict[str, Any]) -> Setting:
    """One [[setting]] row as a Setting. The words a typo would change (kind, readers, group) are
    checked here, at import, because nothing else would notice them in a data file."""
    row = dict(row)
    name = row.get("name", "?")
    if row.pop("from_engine", False):
        if name not in _ENGINE:
            raise ValueError(f"{TABLE}: {name} has from_engine = true but faceworker/settings.py does not declare it")
        if redeclared := [k for k in _ENGINE_OWNS if k in row]:
            raise ValueError(f"{TABLE}: {name} is the engine's: {', '.join(redeclared)} stay in faceworker/settings.py")
        e = _ENGINE[name]
        row.update(kind=e.kind, default=e.default, meaning=e.meaning, shown_default=e.shown_default)
    row["read_by"] = tuple(row.get("read_by", ()))
    wrong = [f"reader {r!r}" for r in row["read_by"] if r not in get_args(Reader)]
    if row.get("kind") not in get_args(Kind):
        wrong.append(f"kind {row.get('kind')!r}")
    if row.get("group", "") not in get_args(Group):
        wrong.append(f"group {row.get('group')!r}")
    if wrong:
        raise ValueError(f"{TABLE}: {name}: unknown {', '.join(wrong)}")
    return Setting(**row)


def load(table: str = TABLE) -> tuple[Setting, ...]:
    """The Airflow side's settings, in the data file's order (the docs table's order)."""
    # next to this module in a checkout and in an installed wheel (package data); not
    # importlib.resources: in a checkout the package's search path also holds the repo root
    # (facefactory/__init__.py), and a same-named folder there (tests/facefactory) could answer
    rows = tomllib.loads((Path(__file__).with_name(table)).read_text(encoding="utf-8"))["setting"]
    return tuple(from_row(row) for row in rows)


AIRFLOW_SETTINGS: tuple[Setting, ...] = load()

_EXTENDED = {s.name for s in AIRFLOW_SETTINGS}
#: the registry: the Airflow side's names, then the engine's that only the engine reads
SETTINGS: tuple[Setting, ...] = AIRFLOW_SETTINGS + tuple(
    engine_only(e) for e in ENGINE_SETTINGS if e.name not in _EXTENDED)
