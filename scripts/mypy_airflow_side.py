"""Type-check the Airflow side (dags, plugins, facefactory with its operators and quality) as installed.

mypy maps files to modules by folder, so `operators/media.py` would be checked as `operators.media`
while the code imports `facefactory.operators.media`: those imports would not resolve and, with
`ignore_missing_imports`, would silently become Any. A tree of symlinks (build/mypy-namespace,
remade each run, at a fixed place so mypy's cache stays valid) lays the folders out as the wheel
installs them (pyproject.toml `package-dir`), mypy runs there with the repo's config, and its
paths are written back as repo paths, so editors still jump to the real file.

    python scripts/mypy_airflow_side.py [extra mypy arguments]
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "build" / "mypy-namespace"
#: staged path -> repo path (the subpackages the wheel maps with package-dir)
MAPPED = {"facefactory/operators": "operators", "facefactory/quality": "quality"}
TOP_LEVEL = ("dags", "plugins")


def stage(root: Path) -> None:
    """Symlink the repo into `root` with operators/ and quality/ inside facefactory/."""
    shutil.rmtree(root, ignore_errors=True)
    pkg = root / "facefactory"
    pkg.mkdir(parents=True)
    for entry in (REPO / "facefactory").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for staged, real in MAPPED.items():
        (root / staged).symlink_to(REPO / real)
    for name in TOP_LEVEL:
        (root / name).symlink_to(REPO / name)


def repo_paths(line: str) -> str:
    """mypy's `facefactory/operators/x.py:3: error` as `operators/x.py:3: error`."""
    for staged, real in MAPPED.items():
        if line.startswith(staged + "/"):
            return real + line[len(staged):]
    return line


def main(argv: list[str]) -> int:
    stage(STAGE)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
           "--cache-dir", str(REPO / ".mypy_cache"), *argv, "facefactory", *TOP_LEVEL]
    done = subprocess.run(cmd, cwd=STAGE, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        print(repo_paths(line))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
