"""Test-wide set-up: every test session gets its own AIRFLOW_HOME and FACEFACTORY_HOME.

Set before Airflow is imported anywhere (conftest is imported first), so no test touches the
repo's var/ or another helper's Airflow, and Airflow reads the repo's airflow.cfg.template.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="facefactory-tests-"))
_FF_HOME = _SESSION_DIR / "ffhome"
_AF_HOME = _SESSION_DIR / "airflow"

os.environ["FACEFACTORY_HOME"] = str(_FF_HOME)
os.environ["AIRFLOW_HOME"] = str(_AF_HOME)
for _name in ("FACEFACTORY_WORK_ROOT", "FACEFACTORY_PUBLISH_TO", "FACEFACTORY_INPUT_ROOTS"):
    os.environ.pop(_name, None)
os.environ.setdefault("FACEFACTORY_LOG_FORMAT", "json")
(_FF_HOME / "inputs").mkdir(parents=True, exist_ok=True)

from facefactory.settings import write_airflow_cfg  # noqa: E402 - after the env is set

write_airflow_cfg(_AF_HOME, _FF_HOME)

# great_expectations logs a lot at INFO on import and per validation.
for _noisy in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """Scratch space shared by the whole session (removed at the end)."""
    return _SESSION_DIR


def venv_bin(name: str) -> str:
    """A console script of the interpreter running the tests (airflow, faceworker, facefactory)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def make_airflow_env(root: Path) -> dict[str, str]:
    """Environment of an isolated embedded Airflow under `root` (config rendered, DB migrated)."""
    ff_home, af_home = root / "ffhome", root / "airflow"
    (ff_home / "inputs").mkdir(parents=True, exist_ok=True)
    write_airflow_cfg(af_home, ff_home)
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(af_home),
        FACEFACTORY_HOME=str(ff_home),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    subprocess.run(
        [venv_bin("airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    subprocess.run(
        [venv_bin("airflow"), "pools", "set", "gpu_swaps", "2", "GPU swap slots"],
        env=env, check=True, capture_output=True, timeout=120,
    )
    return env


def write_sample_media(out: Path, seconds: float, size: tuple[int, int] = (640, 360)) -> Path:
    """The sample order at 25 fps (`out/source.png`, `out/target.mp4` with audio) from faces shipped
    in wheels (faceworker.sample): the one way tests make order media, so they differ only in
    length and size. Returns `out`."""
    from faceworker.sample import build_sample_order

    build_sample_order(out, seconds=seconds, size=size, fps=25)
    return out


def make_order_env(root: Path, seconds: float, size: tuple[int, int] = (640, 360)) -> dict[str, str]:
    """An isolated Airflow (make_airflow_env) with the sample order in its input root, at
    `<FACEFACTORY_HOME>/inputs/sample`: what the `facefactory order run` tests order."""
    env = make_airflow_env(root)
    write_sample_media(Path(env["FACEFACTORY_HOME"]) / "inputs" / "sample", seconds, size)
    return env


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated SQLite Airflow for the session's real DAG runs."""
    yield make_airflow_env(tmp_path_factory.mktemp("airflow-env"))


def _helper_fixture(name: str, helper: Callable[..., Any]) -> Any:
    """A session fixture whose value is `helper` itself, so a test in any folder gets it by name
    (tests/ has no packages to import it from); its description is the helper's docstring."""

    def fixture() -> Callable[..., Any]:
        return helper

    fixture.__doc__ = helper.__doc__
    return pytest.fixture(scope="session", name=name)(fixture)


airflow_env_factory = _helper_fixture("airflow_env_factory", make_airflow_env)
venv_tool = _helper_fixture("venv_tool", venv_bin)
sample_media = _helper_fixture("sample_media", write_sample_media)
order_env_factory = _helper_fixture("order_env_factory", make_order_env)
