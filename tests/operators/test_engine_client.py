"""facefactory.operators.engine_client: the one reader of the engine's CLI contract (docs/contracts.md)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from facefactory.operators import engine_client, media
from faceworker import errors

log = logging.getLogger(__name__)


def _fake(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-faceworker"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    script.chmod(0o755)
    return script


def test_worker_bin_override_applies_to_every_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake(tmp_path, 'print(json.dumps({"argv": sys.argv[1:]}))')
    monkeypatch.setenv("FACEFACTORY_WORKER_BIN", str(fake))
    assert engine_client.worker_command() == [str(fake)]
    assert engine_client.worker_command("faceworker") == [str(fake)]
    assert media.run_worker(["probe", "x"], timeout_s=30) == {"argv": ["probe", "x"]}


def test_without_override_falls_back_to_the_engine_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEFACTORY_WORKER_BIN", raising=False)
    monkeypatch.setattr(engine_client.shutil, "which", lambda _name: None)
    monkeypatch.setattr(engine_client.sys, "executable", "/nonexistent/python")
    assert engine_client.worker_command() == ["/nonexistent/python", "-m", "faceworker.cli"]
    with pytest.raises(AirflowFailException, match="not found"):
        engine_client.worker_command("other-tool")


@pytest.mark.parametrize("stdout, expected", [
    ('chatter\n{"a": 1}\n\n', {"a": 1}),
    ('{"a": 1}\nnot json\n', None),
    ("[1, 2]\n", None),
    ("", None),
])
def test_last_json_reads_only_the_last_line(stdout: str, expected: object) -> None:
    assert engine_client.last_json(stdout) == expected


def test_exit_codes_come_from_the_engine_errors_module(tmp_path: Path) -> None:
    cases = {errors.EXIT_BAD_INPUT: engine_client.EngineRejected, errors.EXIT_TRANSIENT: engine_client.EngineFailed,
             errors.EXIT_BUG: engine_client.EngineFailed}
    for code, kind in cases.items():
        fake = _fake(tmp_path, f'print(json.dumps({{"level": "error", "error": "why {code}"}}), file=sys.stderr)\n'
                               f"sys.exit({code})")
        with pytest.raises(kind, match=f"why {code}") as info:
            engine_client.result_of(
                engine_client.run([str(fake)], name="x", logger=log, timeout_s=30))
        assert isinstance(info.value, AirflowFailException) == (code == errors.EXIT_BAD_INPUT)


def test_success_without_a_json_result_is_retried(tmp_path: Path) -> None:
    fake = _fake(tmp_path, 'print("done, no result")')
    with pytest.raises(engine_client.EngineFailed, match="no JSON result"):
        engine_client.result_of(engine_client.run([str(fake)], name="x", logger=log, timeout_s=30))
