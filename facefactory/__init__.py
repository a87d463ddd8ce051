"""facefactory: the Airflow side of the face-swap pipeline, under one distribution namespace.

The repository keeps `operators/` and `quality/` as top-level folders (the layout the deployment
expects), but their code is the subpackages `facefactory.operators` and `facefactory.quality`,
so nothing with a generic name lands in site-packages. An installed wheel maps the folders with
setuptools `package-dir` (pyproject.toml). A source tree (PYTHONPATH = repo root: tests, the
DagBag, Airflow's own processes, an editable install made before the mapping existed) has no such
mapping, so the repo root is added to this package's search path when it is a checkout (its
pyproject.toml and both folders sit next to this package; never true in site-packages, where
that would expose every installed top-level package under this name); `facefactory.operators`
then resolves to `<repo>/operators`. Nothing imports `operators` or
`quality` as top-level packages (tests/contracts/test_namespace.py), so no module has two names.
"""
from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_SUBPACKAGES = ("operators", "quality")
if (_REPO / "pyproject.toml").is_file() and all((_REPO / sub / "__init__.py").is_file() for sub in _SUBPACKAGES):
    __path__.append(str(_REPO))
