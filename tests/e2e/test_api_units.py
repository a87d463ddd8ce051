"""Fast checks of the CLI/client logic that needs no server (order building, config, log parsing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from facefactory.client import ServerConfig, _last_error
from facefactory.commands.api import build_order


def test_build_order_types_values_and_derives_a_stable_id() -> None:
    a = build_order("/in/a.png", "/in/b.mp4", ["chunk_frames=128", "publish_to=null",
                                              "notify=ops@example.com", "min_id_cosine=0.9"], None)
    assert a["chunk_frames"] == 128 and a["publish_to"] is None and a["min_id_cosine"] == 0.9
    assert a["notify"] == "ops@example.com"
    b = build_order("/in/a.png", "/in/b.mp4", ["min_id_cosine=0.9", "notify=ops@example.com",
                                              "publish_to=null", "chunk_frames=128"], None)
    assert a["order_id"] == b["order_id"] and a["order_id"].startswith("o-")  # same order, same id
    c = build_order("/in/a.png", "/in/b.mp4", ["chunk_frames=64"], None)
    assert c["order_id"] != a["order_id"]
    assert build_order("/in/a.png", "/in/b.mp4", [], "acme-1")["order_id"] == "acme-1"
    with pytest.raises(ValueError, match="key=value"):
        build_order("/in/a.png", "/in/b.mp4", ["chunk_frames"], None)


def test_server_config_defaults_to_the_embedded_password(tmp_path: Path) -> None:
    (tmp_path / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "s3cret"}))
    cfg = ServerConfig.from_env({"AIRFLOW_HOME": str(tmp_path)})
    assert cfg == ServerConfig("http://127.0.0.1:8080", "admin", "s3cret")
    cfg = ServerConfig.from_env({"FACEFACTORY_AIRFLOW_URL": "http://af:9/", "FACEFACTORY_AIRFLOW_USER": "bot",
                                 "FACEFACTORY_AIRFLOW_PASSWORD": "pw", "AIRFLOW_HOME": str(tmp_path)})
    assert cfg == ServerConfig("http://af:9", "bot", "pw")


def test_last_error_prefers_the_raised_exception() -> None:
    log = [{"event": "::group::Pre Execute", "level": "info"},
           {"event": "Task failed with exception", "level": "error",
            "error_detail": [{"exc_type": "BadOrder", "exc_value": "no such file"},
                             {"exc_type": "UriError", "exc_value": "cause"}]},
           {"event": "::endgroup::", "level": "info"}]
    assert _last_error(log) == "BadOrder: no such file"
    assert _last_error([{"event": "boom", "level": "error"}, {"event": "x", "level": "info"}]) == "boom"
    assert _last_error([]) == "(empty log)"
