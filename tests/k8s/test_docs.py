"""docs/kubernetes.md documents every pod setting with its real default (no silent drift)."""
from __future__ import annotations

import re
from pathlib import Path

from facefactory.operators.pod_spec import PARSE_TIME_SETTINGS, SETTINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"


def test_every_setting_is_documented_with_its_default() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([A-Z0-9_]+)` \| (.+?) \| (.+) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    settings = {**SETTINGS, **PARSE_TIME_SETTINGS}
    assert set(rows) == set(settings)
    for name, (default, _meaning) in settings.items():
        shown = rows[name]
        assert shown == (f"`{default}`" if default else "(none)"), (name, shown, default)


def test_build_commands_name_the_dockerfiles() -> None:
    text = DOC.read_text()
    assert "docker build -f images/worker/Dockerfile" in text
    assert "docker build -f images/airflow/Dockerfile" in text
    assert "ESTIMATE" in text
