"""Run-time config, order checks and the atomic publish."""
from __future__ import annotations

from pathlib import Path

import pytest

from facefactory.operators import config, publish
from facefactory.operators.order_schema import ORDER_FIELDS


def _order(**changes: object) -> dict[str, object]:
    order = {k: v["default"] for k, v in ORDER_FIELDS.items()}
    order.update(source="file:///in/s.png", target="file:///in/t.mp4")
    order.update(changes)
    return order


def test_valid_order_has_no_problems() -> None:
    assert config.order_problems({"order_id": "o-1"}, _order()) == []


def test_unknown_keys_and_bad_values_are_reported() -> None:
    problems = config.order_problems({"min_id_cosin": 0.9}, _order(chunk_frames=4, swapper="magic"))
    text = " | ".join(problems)
    assert "min_id_cosin: unknown order field (did you mean 'min_id_cosine'?" in text
    assert "chunk_frames" in text and "swapper" in text


def test_env_settings_and_caps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("FACEFACTORY_INPUT_ROOTS", f"{tmp_path}/a:{tmp_path}/b")
    cfg = config.run_time(use_variables=False)
    assert cfg.settings.work_root == str(tmp_path / "work")
    assert cfg.settings.publish_to == str(tmp_path / "published")
    assert cfg.input_roots == (tmp_path / "a", tmp_path / "b")
    assert cfg.caps.max_duration_s == 600


def test_parse_time_deadline_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEFACTORY_DEADLINE_ENABLED", raising=False)
    assert config.parse_time().deadline_enabled is False
    monkeypatch.setenv("FACEFACTORY_DEADLINE_ENABLED", "true")
    monkeypatch.setenv("FACEFACTORY_DEADLINE_MINUTES", "0.5")
    cfg = config.parse_time()
    assert cfg.deadline_enabled and cfg.deadline.total_seconds() == 30


def test_publish_is_atomic_and_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "work" / "o.mp4"
    out.parent.mkdir()
    out.write_bytes(b"video-1")
    uri = publish.publish_local(out, f"file://{tmp_path}/pub", "o-1")
    dest = tmp_path / "pub" / "o-1.mp4"
    assert uri == dest.as_uri() and dest.read_bytes() == b"video-1"
    out.write_bytes(b"video-2")
    publish.publish_local(out, str(tmp_path / "pub"), "o-1")
    assert dest.read_bytes() == b"video-2"
    assert [p.name for p in dest.parent.iterdir()] == ["o-1.mp4"]  # no temp files left


def test_publish_refuses_unsupported_prefixes(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    for prefix in ("relative/dir", "file://host/x", "s3://bucket/prefix"):  # s3: delivery module
        with pytest.raises(AirflowFailException):
            publish.destination(prefix, "o-1")


def test_conf_keys_injected_by_airflow_are_not_order_problems() -> None:
    conf = {"order_id": "o-1", "openlineage": {"parentRunId": "x"}}
    assert config.order_problems(conf, _order()) == []
