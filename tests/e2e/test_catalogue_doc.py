"""docs/reliability.md's catalogue table matches the cases' specs (fast: no Airflow).

The table is written by a run of test_catalogue.py (FACEFACTORY_UPDATE_DOCS=1); this keeps it from
going stale when a case is added or its expected outcome changes without a new run."""
from __future__ import annotations

from catalogue import CASES, doc_rows, normalise_message


def test_catalogue_is_big_enough_and_ids_are_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_doc_table_matches_the_specs() -> None:
    rows = doc_rows()
    assert list(rows) == [c.id for c in CASES], "regenerate: FACEFACTORY_UPDATE_DOCS=1 pytest tests/reliability"
    for case in CASES:
        row = rows[case.id]
        assert row["task"] == case.task, (case.id, row)
        assert normalise_message(case.message, {}) in row["message"], (case.id, row)
        assert row["published"] == ("yes" if case.published else "no"), (case.id, row)
        assert case.input in row["input"], (case.id, row)
