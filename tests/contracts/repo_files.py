"""The repository's Python files, listed once for every contract test that reads the code.

Git decides what counts: tracked files plus untracked ones it does not ignore, so a virtual
environment, build output or caches inside a folder are never scanned, in a checkout or a clone.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def python_files(*folders: str) -> list[Path]:
    """Every *.py under `folders` (repo-relative; the whole repo when none), sorted."""
    specs = [f"{folder}/*.py" for folder in folders] or ["*.py"]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *specs],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return sorted({REPO / p for p in listed if (REPO / p).is_file()})
