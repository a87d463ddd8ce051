"""The one settings module: every FACEFACTORY_* name, read through a small typed API.

Each name is declared once (the rows of `facefactory/settings_table.toml`, which
`facefactory/settings_table.py` joins with the engine's own table, `faceworker/settings.py`) with
its type, default, meaning, readers and whether an Airflow Variable may override it;
docs/settings.md is generated from it (`python -m facefactory.settings --write-docs`, a test
fails when they differ). The CLI, operators, quality, DAGs and plugins read
settings here, never `os.environ`, so a typo is a KeyError and not a silently ignored variable.

A leaf: it imports nothing from the CLI (facefactory.cli, facefactory.commands) or the
operators, which all import it. Airflow is imported lazily, only to read a Variable override.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from facefactory.settings_table import SETTINGS, Setting
from faceworker.settings import Registry, whole_number

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC = REPO_ROOT / "docs" / "settings.md"
TRUE_WORDS = ("1", "true", "yes", "on")
_REGISTRY = Registry(SETTINGS, "facefactory/settings_table.toml")
declared = _REGISTRY.declared
raw = _REGISTRY.raw
text = _REGISTRY.text


def flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A yes/no setting: 1, true, yes or on (any case) mean yes."""
    return text(name, environ).lower() in TRUE_WORDS


def number(name: str, environ: Mapping[str, str] | None = None) -> float:
    return float(text(name, environ))


def integer(name: str, environ: Mapping[str, str] | None = None) -> int:
    return int(text(name, environ))


def variable(name: str) -> str | None:
    """The Airflow Variable overriding `name` (its lower-case name), or None when unset or outside
    a task (CLI, unit tests). Only names declared `variable=True` may be overridden."""
    if not declared(name).variable:
        raise ValueError(f"{name} is read from the environment only (no Airflow Variable override)")
    try:
        from airflow.sdk import Variable

        value = Variable.get(name.lower(), default=None)
    except Exception:  # noqa: BLE001 - no task context (CLI, unit tests): the environment decides
        return None
    return None if value is None else str(value)


def lookup(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Variable (inside a task, when the name allows one) > environment; None when neither is set."""
    if declared(name).variable:
        value = variable(name)
        if value is not None:
            return value
    return raw(name, environ)


def with_variables(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment where a non-empty Variable overrides each of `names`."""
    env = dict(os.environ if environ is None else environ)
    for name in names:
        value = variable(name)
        if value not in (None, ""):
            env[name] = str(value)
    return env


def in_group(group: str) -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.group == group)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; every path is absolute (or an s3:// URI for work/publish)."""

    home: Path
    work_root: str
    publish_to: str
    input_roots: tuple[Path, ...]
    runner: str
    model_dir: str
    log_format: str
    execution_provider: str
    s3_endpoint_url: str | None
    swap_slots: int = 2
    publish_roots: tuple[str, ...] = ()

    @property
    def sample_inputs(self) -> Path:
        """Where the set-up writes the sample order's media (first input root)."""
        return self.input_roots[0] / "sample"

    @property
    def deadline_log(self) -> Path:
        """JSON-lines file the deadline-miss callback appends to."""
        return self.home / "deadline_misses.jsonl"

    @property
    def lineage_log(self) -> Path:
        """OpenLineage file transport target of the embedded default."""
        return self.home / "lineage" / "openlineage.jsonl"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the FACEFACTORY_* variables now (not at import time: tests change them)."""
    env = os.environ if environ is None else environ

    def get(name: str, default: str) -> str:
        return text(name, env) or default

    home = Path(get("FACEFACTORY_HOME", str(REPO_ROOT / "var"))).expanduser().resolve()
    roots_raw = get("FACEFACTORY_INPUT_ROOTS", str(home / "inputs"))
    roots = tuple(
        Path(r).expanduser().resolve() for r in roots_raw.split(":") if r.strip()
    )
    if not roots:
        roots = (home / "inputs",)
    publish_to = get("FACEFACTORY_PUBLISH_TO", str(home / "published"))
    return Settings(
        home=home,
        work_root=get("FACEFACTORY_WORK_ROOT", str(home / "work")),
        publish_to=publish_to,
        input_roots=roots,
        runner=text("FACEFACTORY_RUNNER", env),
        model_dir=get("FACEFACTORY_MODEL_DIR", str(home / "models")),
        log_format=text("FACEFACTORY_LOG_FORMAT", env),
        execution_provider=text("FACEFACTORY_EXECUTION_PROVIDER", env),
        s3_endpoint_url=raw("FACEFACTORY_S3_ENDPOINT_URL", env) or env.get("AWS_ENDPOINT_URL") or None,
        swap_slots=whole_number("FACEFACTORY_SWAP_SLOTS", text("FACEFACTORY_SWAP_SLOTS", env), 1),
        publish_roots=publish_roots(raw("FACEFACTORY_PUBLISH_ROOTS", env) or "", home, publish_to),
    )


def publish_roots(raw: str, home: Path, publish_to: str) -> tuple[str, ...]:
    """Where an order's `publish_to` may point: FACEFACTORY_PUBLISH_ROOTS (comma-separated local
    dirs and s3://bucket[/prefix] URIs), else the embedded default's `<home>/published`. The
    deployment's own FACEFACTORY_PUBLISH_TO (its local dir, or its S3 bucket) is always a root:
    it is the operator's configuration, not something an order asked for."""
    given = [r.strip() for r in raw.split(",") if r.strip()]
    roots = given or [str(home / "published")]
    own = publish_to.strip()
    if own.startswith("s3://"):
        own = "s3://" + own[len("s3://"):].split("/", 1)[0]
    if own and own not in roots:
        roots.append(own)
    return tuple(roots)


def airflow_home(environ: Mapping[str, str] | None = None) -> Path:
    """AIRFLOW_HOME of the embedded default: $AIRFLOW_HOME, else <FACEFACTORY_HOME>/airflow."""
    env = os.environ if environ is None else environ
    explicit = env.get("AIRFLOW_HOME", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    return load(dict(env)).home / "airflow"


def render_airflow_cfg(airflow_home_dir: Path, facefactory_home: Path) -> str:
    """airflow.cfg.template with @REPO@, @AIRFLOW_HOME@ and @FACEFACTORY_HOME@ filled in."""
    text = (REPO_ROOT / "airflow.cfg.template").read_text()
    return (
        text.replace("@REPO@", str(REPO_ROOT))
        .replace("@AIRFLOW_HOME@", str(airflow_home_dir))
        .replace("@FACEFACTORY_HOME@", str(facefactory_home))
    )


def write_airflow_cfg(airflow_home_dir: Path, facefactory_home: Path) -> Path:
    """Write $AIRFLOW_HOME/airflow.cfg from the template (idempotent). Also creates the
    OpenLineage file transport's folder, which the transport does not create itself."""
    airflow_home_dir.mkdir(parents=True, exist_ok=True)
    (facefactory_home / "lineage").mkdir(parents=True, exist_ok=True)
    target = airflow_home_dir / "airflow.cfg"
    text = render_airflow_cfg(airflow_home_dir, facefactory_home)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


# --------------------------------------------------------------------------- the docs table


def markdown() -> str:
    """docs/settings.md: one row per name (generated; edit settings_table.toml, not the page)."""
    lines = [
        "# Settings",
        "",
        "Every `FACEFACTORY_*` environment variable, generated from `facefactory/settings_table.toml` and the",
        "engine's `faceworker/settings.py` by `python -m facefactory.settings --write-docs` (`make docs`);",
        "`tests/contracts/test_settings.py` fails when this page and the table differ.",
        "",
        "*Variable*: yes = inside a task an Airflow Variable of the lower-case name (e.g.",
        "`facefactory_work_root`) overrides the environment. Read by: `engine` = the worker (`faceworker`),",
        "`airflow` = DAGs, operators, quality, plugins; `cli` = the `facefactory` command; `tests` = tests",
        "and set-up only.",
        "",
        "| name | type | default | meaning | read by | Variable |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        meaning = s.meaning.replace("|", "\\|")
        lines.append(f"| `{s.name}` | {s.kind} | {s.documented_default} | {meaning} | {', '.join(s.read_by)} | "
                     f"{'yes' if s.variable else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facefactory.settings", description="The FACEFACTORY_* settings table")
    ap.add_argument("--markdown", action="store_true", help="print docs/settings.md")
    ap.add_argument("--write-docs", action="store_true", help="rewrite docs/settings.md")
    args = ap.parse_args(argv)
    if args.write_docs:
        DOC.write_text(markdown(), encoding="utf-8")
        print(f"wrote {DOC}")
    elif args.markdown:
        sys.stdout.write(markdown())
    else:
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
