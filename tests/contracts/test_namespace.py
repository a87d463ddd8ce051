"""One distribution namespace: operators/ and quality/ are `facefactory.operators` and
`facefactory.quality`, never top-level packages (issue 17, "Namespace").

A module reachable as both `operators.media` and `facefactory.operators.media` would be loaded
twice (two module objects, two sets of globals, patches that miss), and a top-level `operators`
in site-packages collides with any other distribution's. So: no file of the repo imports or names
them as top-level modules, the wheel's package list covers every folder, and the source tree
resolves the subpackages to the repo folders.
"""
from __future__ import annotations

import ast
import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest
from repo_files import REPO, python_files

MAPPED = {"operators": "facefactory.operators", "quality": "facefactory.quality"}
#: a module path given as a string: mock.patch targets, logger names, `python -m`, "module:callable"
DOTTED = re.compile(r"""(?<![\w.])["'](?:-m\s+)?(operators|quality)\.[A-Za-z_]""")


def top_level_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of `operators`/`quality` as a top-level package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in MAPPED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in MAPPED:
                found.append((node.lineno, node.module))
    return found


def scanned_files() -> list[Path]:
    here = Path(__file__).resolve()  # its examples below are the names it refuses
    return [p for p in python_files() if p.resolve() != here]


def test_nothing_imports_operators_or_quality_as_top_level_packages() -> None:
    files = scanned_files()
    assert len(files) > 100, "the scan found too few files to mean anything"
    bad = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(REPO).as_posix()
        bad += [f"{rel}:{line}: import {mod}" for line, mod in top_level_imports(source)]
        bad += [f"{rel}:{source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in DOTTED.finditer(source)]
    assert not bad, "use facefactory.operators / facefactory.quality:\n" + "\n".join(bad)


#: one module with every form the import scan must tell apart; the "hit" lines are the ones it refuses
IMPORT_SAMPLE = """\
import operators.media  # hit
from quality import gate  # hit
def f():
    from operators.s3.uris import parse  # hit: inside a function too
from facefactory.operators import media
import facefactory.quality.gate
from . import quality
"""


def test_the_import_scan_catches_what_it_should() -> None:
    assert sorted(top_level_imports(IMPORT_SAMPLE)) == [(1, "operators.media"), (2, "quality"), (4, "operators.s3.uris")]


@pytest.mark.parametrize("text, hit", [
    ('mock.patch("operators.media.run_worker")', True),
    ("logger='quality.gate'", True),
    ('["-m", "quality.calibration"]', True),
    ('"-m quality.report"', True),
    ('"facefactory.operators.media"', False),
    ('"airflow.providers.cncf.kubernetes.operators.pod"', False),
    ('(order / "quality" / "validation.json")', False),
])
def test_the_string_scan_catches_what_it_should(text: str, hit: bool) -> None:
    assert bool(DOTTED.search(text)) is hit


def test_the_wheel_lists_every_package_folder_under_the_namespace() -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    package_dir = tool["package-dir"]
    assert package_dir == {pkg: folder for folder, pkg in MAPPED.items()}
    expected = set()  # every folder, the data-only ones (quality/data, quality/suites) included
    for folder, root in [("facefactory", "facefactory"), *MAPPED.items()]:
        for sub in [REPO / folder, *(REPO / folder).rglob("*")]:
            if sub.is_dir() and sub.name != "__pycache__":
                expected.add(".".join((root, *sub.relative_to(REPO / folder).parts)))
    assert set(tool["packages"]) == expected, "pyproject.toml [tool.setuptools] packages is out of date"
    assert all(p == "facefactory" or p.startswith("facefactory.") for p in tool["packages"])
    assert set(tool["package-data"]) <= expected


def test_the_source_tree_resolves_the_subpackages_to_the_repo_folders() -> None:
    for folder, package in MAPPED.items():
        module = importlib.import_module(package)
        assert Path(module.__file__ or "").resolve() == REPO / folder / "__init__.py"
    media = importlib.import_module("facefactory.operators.media")
    assert Path(media.__file__ or "").resolve() == REPO / "operators" / "media.py"
    assert media.__name__ == "facefactory.operators.media"
    assert not [name for name in sys.modules if name.split(".")[0] in MAPPED]
