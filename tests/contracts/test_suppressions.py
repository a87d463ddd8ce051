"""Every lint or type-check suppression says why it is there (issue 17).

A `# noqa: CODE` must be followed by ` - <reason>`, a `# type: ignore[code]` by a second comment
(`  # <reason>`). The reason says why the rule does not apply at that spot, so a reader (or a later
clean-up) can tell a deliberate exception from a silenced mistake. Only real comments count: the
files are tokenized, so a marker quoted in a string or docstring is not a suppression.
"""
from __future__ import annotations

import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_files import REPO, python_files

FOLDERS = ("dags", "operators", "quality", "facefactory", "plugins", "images/worker/faceworker", "tests",
           "benchmarks", "scripts")

#: a noqa marker, bare or with codes ("E402", "E731,F401"); `rest` is what follows the codes
NOQA = re.compile(r"#\s*noqa\b(?::\s*[A-Za-z]+[0-9]+(?:\s*,\s*[A-Za-z]+[0-9]+)*)?(?P<rest>.*)", re.IGNORECASE)
#: a type-ignore marker, with or without [codes]; `rest` is what follows
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?:\[[^\]]*\])?(?P<rest>.*)")
NOQA_REASON = re.compile(r"\s+-\s+\S")
TYPE_IGNORE_REASON = re.compile(r"\s*#\s*\S")


def unexplained(comment: str) -> list[str]:
    """The suppression markers in one comment that carry no reason (empty list when all do)."""
    missing = []
    for match in NOQA.finditer(comment):
        if not NOQA_REASON.match(match["rest"]):
            missing.append(match.group(0).strip())
    for match in TYPE_IGNORE.finditer(comment):
        if not TYPE_IGNORE_REASON.match(match["rest"]):
            missing.append(match.group(0).strip())
    return missing




def comments(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for token in tokenize.tokenize(handle.readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.string


@pytest.mark.parametrize(("comment", "missing"), [
    ("# noqa: BLE001", ["# noqa: BLE001"]),
    ("# noqa: ANN001, ANN202   ", ["# noqa: ANN001, ANN202"]),
    ("# noqa", ["# noqa"]),
    ("# noqa:E402", ["# noqa:E402"]),
    ("# noqa: E402 -", ["# noqa: E402 -"]),
    ("# noqa: E402 the reason without its dash", ["# noqa: E402 the reason without its dash"]),
    ("# noqa: BLE001 - lineage must never fail an order", []),
    ("# noqa: ANN001, ANN201 - see above", []),
    ("# type: ignore", ["# type: ignore"]),
    ("# type: ignore[call-overload]", ["# type: ignore[call-overload]"]),
    ("# type: ignore[no-redef,assignment]  #", ["# type: ignore[no-redef,assignment]  #"]),
    ("# type: ignore[index]  # set in __init__ for BGR views", []),
    ("# a comment that is no suppression", []),
])
def test_the_check_tells_a_reason_from_none(comment: str, missing: list[str]) -> None:
    assert unexplained(comment) == missing


def test_the_check_reads_comments_not_strings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('TEXT = "x = 1  # noqa: E731"\ny = 2  # type: ignore[misc]\n')
    found = [(line, bad) for line, text in comments(sample) for bad in unexplained(text)]
    assert found == [(2, "# type: ignore[misc]")]


def test_every_suppression_carries_a_reason() -> None:
    offenders = []
    scanned = 0
    for path in python_files(*FOLDERS):
        scanned += 1
        try:
            found = list(comments(path))
        except (tokenize.TokenError, SyntaxError) as exc:  # a file ruff would reject anyway; say which
            offenders.append(f"{path.relative_to(REPO)}: cannot tokenize ({exc})")
            continue
        for line, text in found:
            offenders += [f"{path.relative_to(REPO)}:{line}: {bad}" for bad in unexplained(text)]
    assert scanned > 100, f"only {scanned} files scanned: are the folders right?"
    assert not offenders, (
        f"{len(offenders)} suppression(s) without a reason; write `# noqa: CODE - why` or "
        "`# type: ignore[code]  # why`, or drop the marker if the tool no longer needs it:\n"
        + "\n".join(offenders)
    )
