"""Deadlines: on where a scheduler runs (`up`), off and said so for `order run`."""
from __future__ import annotations

from pathlib import Path

from facefactory import deadlines
from facefactory.airflow_env import AirflowEnv


def test_up_components_run_with_the_deadline_on_unless_opted_out(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FACEFACTORY_DEADLINE_ENABLED", raising=False)
    env = AirflowEnv(airflow_home=tmp_path / "af", ff_home=tmp_path / "ff")
    (tmp_path / "af").mkdir()
    assert env.environ()["FACEFACTORY_DEADLINE_ENABLED"] == "true"
    line = deadlines.summary(env.environ(), "/x/deadline_misses.jsonl")
    assert line.startswith("deadlines:    60 min per order") and "/x/deadline_misses.jsonl" in line
    opted_out = AirflowEnv(airflow_home=tmp_path / "af", ff_home=tmp_path / "ff",
                           extra_env={"FACEFACTORY_DEADLINE_ENABLED": "false"})
    assert deadlines.summary(opted_out.environ(), "f") == "deadlines:    off (FACEFACTORY_DEADLINE_ENABLED=false)"


def test_up_components_wait_for_the_sqlite_lock(tmp_path: Path) -> None:
    import importlib

    env = AirflowEnv(airflow_home=tmp_path / "af", ff_home=tmp_path / "ff")
    (tmp_path / "af").mkdir()
    module, _, name = env.environ()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"].rpartition(".")
    args = getattr(importlib.import_module(module), name)
    assert args["timeout"] > 5  # sqlite3's default, which a burst of orders exceeded


def test_order_run_is_switched_off_with_one_plain_line() -> None:
    env = {"FACEFACTORY_DEADLINE_ENABLED": "true"}
    line = deadlines.without_deadline(env)
    assert env["FACEFACTORY_DEADLINE_ENABLED"] == "false"
    assert "\n" not in line and "without a deadline" in line
