"""One settings module (issue 17): every FACEFACTORY_* name is declared once, read through the
registry, and documented by a generated table.

- every FACEFACTORY_* name the code mentions is declared (facefactory/settings_table.toml, which
  facefactory/settings_table.py loads and joins with the engine's faceworker/settings.py);
- nothing reads one from the environment directly except the two settings modules (building a
  child process's environment is not a read: `env[NAME] = v`, `{NAME: v}`, and saving/restoring
  keys computed at run time, as operators/s3/workarea.worker_environment does, name no setting);
- docs/settings.md is what `python -m facefactory.settings --write-docs` writes;
- the registry is a leaf (no CLI, no operators, Airflow only lazily), so there is no cycle.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from repo_files import REPO, python_files

from facefactory import settings, settings_table
from facefactory.settings_table import AIRFLOW_SETTINGS, SETTINGS
from faceworker import settings as engine_settings

CODE = ("dags", "operators", "quality", "plugins", "facefactory", "images/worker/faceworker")
SETTINGS_MODULES = {"facefactory/settings.py", "facefactory/settings_table.py", "images/worker/faceworker/settings.py"}
NAME = re.compile(r"FACEFACTORY_[A-Z0-9_]+")
#: AST reads of the environment: os.environ.get / os.getenv / env.get, env[...], name in env
READ_CALLS = {"get", "getenv", "setdefault", "pop"}


def code_files() -> list[Path]:
    return python_files(*CODE)


def constants(tree: ast.AST) -> dict[str, str]:
    """Module names bound to a FACEFACTORY_* string (`PAUSE_AT = "FACEFACTORY_TEST_PAUSE_AT"`)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and NAME.fullmatch(node.value.value):
                    found[target.id] = node.value.value
    return found


def all_constants() -> dict[str, str]:
    """Every module constant bound to a FACEFACTORY_* name in the code (imported ones count too)."""
    found: dict[str, str] = {}
    for path in code_files():
        found.update(constants(ast.parse(path.read_text(encoding="utf-8"))))
    return found


def direct_reads(source: str, imported: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """(line, name) of every read of a FACEFACTORY_* variable from a mapping: `x.get(NAME)`,
    `os.getenv(NAME)`, `x[NAME]` (load), `NAME in x`; a name may come through a module constant,
    this module's or one imported from another (`imported`: constant -> variable name).
    Writes (`env[NAME] = v`, `{NAME: v}`) build a child's environment and are fine."""
    tree = ast.parse(source)
    bound = constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in (imported or {}):
                    bound[alias.asname or alias.name] = (imported or {})[alias.name]

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value):
            return node.value
        if isinstance(node, ast.JoinedStr) and any(
                isinstance(v, ast.Constant) and str(v.value).startswith("FACEFACTORY_") for v in node.values):
            return "FACEFACTORY_<f-string>"
        if isinstance(node, ast.Name) and node.id in bound:
            return bound[node.id]
        return None

    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READ_CALLS:
            if node.args and (n := name_of(node.args[0])):
                reads.append((node.lineno, n))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and (n := name_of(node.slice)):
            reads.append((node.lineno, n))
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if n := name_of(node.left):
                reads.append((node.lineno, n))
    return reads


def test_every_name_in_the_code_is_declared() -> None:
    names = {s.name for s in SETTINGS}
    files = code_files()
    assert len(files) > 100, "the scan found too few files to mean anything"
    undeclared = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in NAME.findall(line):
                # `FACEFACTORY_K8S_*` in prose names a family: it must have members
                known = any(n.startswith(name) for n in names) if name.endswith("_") else name in names
                if not known:
                    undeclared.append(f"{path.relative_to(REPO)}:{lineno}: {name}")
    assert not undeclared, "declare these in facefactory/settings_table.toml (or faceworker/settings.py):\n" + \
        "\n".join(undeclared)


def test_nothing_reads_a_facefactory_variable_around_the_registry() -> None:
    bad = []
    imported = all_constants()
    for path in code_files():
        rel = path.relative_to(REPO).as_posix()
        if rel in SETTINGS_MODULES:
            continue
        bad += [f"{rel}:{line}: {name}" for line, name in direct_reads(path.read_text(encoding="utf-8"), imported)]
    assert not bad, "read these through facefactory.settings (engine: faceworker.settings):\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ('import os\nos.environ.get("FACEFACTORY_X")\n', [(2, "FACEFACTORY_X")]),
    ('import os\nos.getenv("FACEFACTORY_X", "d")\n', [(2, "FACEFACTORY_X")]),
    ('import os\nos.environ["FACEFACTORY_X"]\n', [(2, "FACEFACTORY_X")]),
    ('ENV = "FACEFACTORY_X"\ndef f(env):\n    return env.get(ENV, "")\n', [(3, "FACEFACTORY_X")]),
    ('def f(env):\n    return "FACEFACTORY_X" in env\n', [(2, "FACEFACTORY_X")]),
    ('import os\nfrom faceworker.testhooks import PAUSE_AT\nos.environ.get(PAUSE_AT, "")\n', [(3, "FACEFACTORY_TEST_PAUSE_AT")]),
    ('import os\nos.environ.get(f"FACEFACTORY_{n}")\n', [(2, "FACEFACTORY_<f-string>")]),
    ('env = {}\nenv["FACEFACTORY_X"] = "1"\nchild = {"FACEFACTORY_Y": "2"}\n', []),
    ('from facefactory import settings\nsettings.text("FACEFACTORY_X")\n', []),
])
def test_the_read_scan_catches_what_it_should(source: str, expected: list[tuple[int, str]]) -> None:
    assert direct_reads(source, {"PAUSE_AT": "FACEFACTORY_TEST_PAUSE_AT"}) == expected


def test_the_docs_table_is_generated_from_the_registry() -> None:
    assert settings.DOC.read_text(encoding="utf-8") == settings.markdown(), \
        "docs/settings.md is stale: run `python -m facefactory.settings --write-docs`"
    for s in SETTINGS:
        assert f"| `{s.name}` |" in settings.markdown()


def test_each_name_is_declared_once_and_engine_names_keep_the_engine_default() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.read_by and s.meaning for s in SETTINGS)
    for e in engine_settings.ENGINE_SETTINGS:
        s = settings.declared(e.name)
        assert (s.default, s.meaning, s.kind) == (e.default, e.meaning, e.kind)
        assert "engine" in s.read_by
    assert not [s.name for s in AIRFLOW_SETTINGS if "engine" in s.read_by
                and s.name not in {e.name for e in engine_settings.ENGINE_SETTINGS}]


def test_a_table_row_with_a_typo_or_a_redeclared_engine_field_is_refused() -> None:
    """The rows are data (settings_table.toml): what a typo breaks must fail at import, not pass."""
    row = {"name": "FACEFACTORY_X", "kind": "text", "default": "", "meaning": "m", "read_by": ["airflow"]}
    assert settings_table.from_row(row).read_by == ("airflow",)
    with pytest.raises(ValueError, match="unknown reader 'airflwo', kind 'integer'"):
        settings_table.from_row({**row, "kind": "integer", "read_by": ["airflwo"]})
    with pytest.raises(TypeError, match="varaible"):
        settings_table.from_row({**row, "varaible": True})
    with pytest.raises(ValueError, match="FACEFACTORY_HOME is the engine's: default stay"):
        settings_table.from_row({"name": "FACEFACTORY_HOME", "from_engine": True, "default": "/x", "read_by": ["engine"]})


def test_run_time_variables_are_declared_overridable() -> None:
    from facefactory.operators.config import RUN_TIME_VARIABLES

    assert all(settings.declared(n).variable for n in RUN_TIME_VARIABLES)
    assert all(s.variable for s in settings.in_group("pod"))
    assert not any(s.variable for s in settings.in_group("swap_parse_time"))


def test_the_accessors(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FACEFACTORY_S3_MAX_ATTEMPTS": " 7 ", "FACEFACTORY_CDN_WAIT": "", "FACEFACTORY_DEADLINE_ENABLED": "Yes"}
    assert settings.integer("FACEFACTORY_S3_MAX_ATTEMPTS", env) == 7
    assert settings.text("FACEFACTORY_CDN_WAIT", env) == "true"  # blank: the declared default
    assert settings.raw("FACEFACTORY_CDN_WAIT", env) == ""
    assert settings.flag("FACEFACTORY_DEADLINE_ENABLED", env) is True
    assert settings.number("FACEFACTORY_CDN_POLL_S", {}) == 10.0
    with pytest.raises(KeyError, match="not declared"):
        settings.text("FACEFACTORY_NO_SUCH_THING", env)
    with pytest.raises(ValueError, match="environment only"):
        settings.variable("FACEFACTORY_SWAP_POOL")
    # a Variable beats the environment where the name allows one, never where it does not
    monkeypatch.setattr(settings, "variable", lambda name: "from-variable")
    assert settings.lookup("FACEFACTORY_RUNNER", {"FACEFACTORY_RUNNER": "local"}) == "from-variable"
    assert settings.lookup("FACEFACTORY_SWAP_POOL", {"FACEFACTORY_SWAP_POOL": "p"}) == "p"
    assert settings.with_variables(["FACEFACTORY_WORK_ROOT"], {})["FACEFACTORY_WORK_ROOT"] == "from-variable"


def test_outside_a_task_there_is_no_variable() -> None:
    assert settings.variable("FACEFACTORY_WORK_ROOT") is None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    return found


def test_the_registry_is_a_leaf() -> None:
    """The CLI imports operators and operators import settings: settings importing either would
    close a cycle. Airflow is imported only inside `variable()` (the test checks the names)."""
    for rel in ("facefactory/settings.py", "facefactory/settings_table.py"):
        ours = {m for m in _imports(REPO / rel) if m.split(".")[0] in {"facefactory", "faceworker", "airflow"}}
        allowed = {"facefactory.settings_table", "facefactory.settings_table.SETTINGS",
                   "facefactory.settings_table.Setting", "faceworker.settings", "airflow.sdk", "airflow.sdk.Variable"}
        allowed |= {f"faceworker.settings.{n}" for n in ("ENGINE_SETTINGS", "EngineSetting", "Kind", "Registry", "whole_number")}
        assert ours <= allowed, (rel, ours - allowed)
    engine = _imports(REPO / "images/worker/faceworker/settings.py")
    assert not {m for m in engine if m.split(".")[0] in {"facefactory", "faceworker", "airflow"}}
