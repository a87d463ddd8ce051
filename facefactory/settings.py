"""FACEFACTORY_* configuration from the environment (docs/contracts.md "Configuration").

One place that knows the defaults of the embedded deployment, so the CLI, the DAG tasks and
the tests agree on where the work area, published videos and allowed inputs live. Airflow-side
overrides (Variables) are layered on top in `facefactory.operators.config`; this module never imports Airflow.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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



def load(environ: dict[str, str] | None = None) -> Settings:
    """Read the FACEFACTORY_* variables now (not at import time: tests change them)."""
    env = os.environ if environ is None else environ

    def get(name: str, default: str) -> str:
        value = env.get(name, "").strip()
        return value or default

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
        runner=get("FACEFACTORY_RUNNER", "local"),
        model_dir=get("FACEFACTORY_MODEL_DIR", str(home / "models")),
        log_format=get("FACEFACTORY_LOG_FORMAT", "json"),
        execution_provider=get("FACEFACTORY_EXECUTION_PROVIDER", "auto"),
        s3_endpoint_url=env.get("FACEFACTORY_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL") or None,
        swap_slots=_positive_int("FACEFACTORY_SWAP_SLOTS", get("FACEFACTORY_SWAP_SLOTS", "2")),
        publish_roots=publish_roots(env.get("FACEFACTORY_PUBLISH_ROOTS", ""), home, publish_to),
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


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of slots, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def airflow_home(environ: dict[str, str] | None = None) -> Path:
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
