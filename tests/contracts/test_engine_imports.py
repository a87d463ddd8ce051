"""The Airflow side reaches the engine only through its CLI or its named contract modules.

docs/contracts.md ("Engine contract modules") lists what may be imported; this test reads every
Python file of dags/, operators/, quality/, plugins/ and facefactory/ (the AST, not the text) and
fails on any other `faceworker` import, so a new in-process use of an engine internal is a
decision made in that table, not an accident.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from repo_files import REPO, python_files

AIRFLOW_SIDE = ("dags", "operators", "quality", "plugins", "facefactory")
ALL = None  # every name of the module may be used

#: module -> the names the Airflow side may use from it (ALL: the whole module is the contract)
CONTRACT_MODULES: dict[str, frozenset[str] | None] = {
    "faceworker.errors": ALL,
    "faceworker.workarea": ALL,
    "faceworker.spec": ALL,
    "faceworker.options": ALL,
    "faceworker.settings": frozenset({"ENGINE_SETTINGS", "EngineSetting", "Kind", "Registry", "whole_number"}),
    "faceworker.lifeline": ALL,
    "faceworker.testhooks": frozenset({"pause_at", "PAUSE_AT"}),
    "faceworker.probe": frozenset({"probe", "Probe"}),
    "faceworker.contact_sheet": frozenset({"pick_frames"}),
}

#: files that are offline tools, not on the order path, with the engine modules they may use
OFFLINE_TOOLS: dict[str, frozenset[str]] = {
    "quality/calibration.py": frozenset({"faceworker.faces", "faceworker.recognizers", "faceworker.packs"}),
    "quality/calibration_data.py": frozenset({"faceworker.faces"}),
}


def engine_uses(tree: ast.AST) -> list[tuple[int, str, str | None]]:
    """(line, faceworker module, name or None for the module itself) of every engine use:
    `import faceworker.x`, `from faceworker.x import n`, `from faceworker import x` and, for a
    module bound to a local name, each `x.attr` read in the file."""
    uses: list[tuple[int, str, str | None]] = []
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "faceworker" or alias.name.startswith("faceworker."):
                    uses.append((node.lineno, alias.name, None))
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "faceworker":
                for alias in node.names:
                    module = f"faceworker.{alias.name}"
                    bound[alias.asname or alias.name] = module
                    uses.append((node.lineno, module, None))
            elif node.module.startswith("faceworker."):
                uses.extend((node.lineno, node.module, alias.name) for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            uses.append((node.lineno, bound[node.value.id], node.attr))
    return uses


def violations(rel: str, source: str) -> list[str]:
    """Uses of the engine in one file that neither the contract nor an offline-tool entry allows."""
    bad = []
    for line, module, name in engine_uses(ast.parse(source)):
        if module in OFFLINE_TOOLS.get(rel, frozenset()):
            continue
        if module not in CONTRACT_MODULES:
            bad.append(f"{rel}:{line}: {module}")
            continue
        allowed = CONTRACT_MODULES[module]
        if name is not None and allowed is not ALL and name not in allowed:
            bad.append(f"{rel}:{line}: {module}.{name}")
    return bad


def airflow_side_files() -> list[Path]:
    return python_files(*AIRFLOW_SIDE)


def test_airflow_side_imports_only_engine_contract_modules() -> None:
    files = airflow_side_files()
    assert len(files) > 40, "the scan found too few files to mean anything"
    bad = [v for p in files for v in violations(p.relative_to(REPO).as_posix(), p.read_text(encoding="utf-8"))]
    assert not bad, "engine internals imported on the Airflow side (use the CLI or a contract module, " \
                    "docs/contracts.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from faceworker.faces import FaceAnalyzer\n", ["x.py:1: faceworker.faces"]),
    ("import faceworker.chunk_runner as cr\n", ["x.py:1: faceworker.chunk_runner"]),
    ("def f():\n    from faceworker import probe\n    return probe.count_decoded_frames\n",
     ["x.py:3: faceworker.probe.count_decoded_frames"]),
    ("from faceworker.probe import packet_times\n", ["x.py:1: faceworker.probe.packet_times"]),
    ("from faceworker.frameio import read_frames\n", ["x.py:1: faceworker.frameio"]),
    ("from faceworker import errors, probe\nprobe.probe(errors.BadInput)\n", []),
    ("from faceworker.workarea import OrderArea\nimport faceworker.spec\n", []),
])
def test_the_scan_catches_what_it_should(source: str, expected: list[str]) -> None:
    assert violations("x.py", source) == expected


def test_docs_list_the_same_contract_modules() -> None:
    doc = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = doc.split("## Engine contract modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(faceworker\.[a-z_.]+)`", section, flags=re.M))
    assert listed == set(CONTRACT_MODULES)
    for tool in OFFLINE_TOOLS:
        assert f"`{tool}`" in section
