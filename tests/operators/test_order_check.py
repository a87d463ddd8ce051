"""The one refusal (facefactory.operators.order_check): human messages naming the field, for every kind of
invalid order, and the same words whichever parser produced the value."""
from __future__ import annotations

import math
import re

import pytest

from facefactory.operators.order_check import Problem, order_problems, parse_field, refusal
from facefactory.operators.order_schema import ORDER_ID_PATTERN, coerce_field, run_id_for

GOOD = {"order_id": "o-1", "source": "file:///in/s.png", "target": "s3://bucket-1/t.mp4"}

# (case, change to GOOD, field named, words the message must contain)
INVALID = [
    ("unknown field", {"chunk_frame": 64}, "chunk_frame", "did you mean 'chunk_frames'"),
    ("wrong type", {"chunk_frames": "abc"}, "chunk_frames", "whole number from 16 to 512; got 'abc'"),
    ("bool is no number", {"identity_weight": True}, "identity_weight", "number from 0 to 1"),
    ("out of range", {"chunk_frames": 4}, "chunk_frames", "from 16 to 512; got 4"),
    ("fraction for int", {"chunk_frames": 96.5}, "chunk_frames", "whole number"),
    ("nan", {"min_id_cosine": math.nan}, "min_id_cosine", "not a finite number"),
    ("inf", {"min_psnr_db": math.inf}, "min_psnr_db", "not a finite number"),
    ("bad enum", {"swapper": "magic"}, "swapper", "one of classic, inswapper_128"),
    ("bad uri", {"source": "http://x/s.png"}, "source", "file:///absolute/path"),
    ("traversal", {"target": "file:///in/../etc/passwd"}, "target", "'..' is not allowed"),
    ("bad reference", {"reference": "ftp://x"}, "reference", "s3://bucket/key"),
    ("bad order id", {"order_id": "bad id!"}, "order_id", "letters, digits"),
    ("order id dots", {"order_id": "a..b"}, "order_id", "letters, digits"),
    ("order id too long", {"order_id": "a" * 129}, "order_id", "1 to 128"),
    ("missing", {"target": None}, "target", "must not be empty"),
]


@pytest.mark.parametrize("case,change,field,words", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_orders_are_named_in_words(case: str, change: dict, field: str, words: str) -> None:
    problems = order_problems({**GOOD, **change})
    assert [p.field for p in problems] == [field], problems
    text = refusal(problems)
    assert text.startswith(f"invalid order: {field}: ") and words in text, text
    assert "^" not in text and "$" not in text and "{" not in text  # no regex, no schema dump


def test_a_valid_order_and_required_fields() -> None:
    assert order_problems(GOOD) == []
    assert order_problems({**GOOD, "reference": None, "publish_to": None, "chunk_frames": 96.0}) == []
    assert order_problems({"order_id": "x"}) == [Problem("source", "is required"),
                                                 Problem("target", "is required")]
    assert order_problems(["not", "an", "object"])[0].field == "order"


def test_airflow_injected_keys_only_when_asked() -> None:
    conf = {**GOOD, "openlineage": {"parentRunId": "x"}}
    assert order_problems(conf, allow_injected=True) == []
    assert [p.field for p in order_problems(conf)] == ["openlineage"]


def test_text_parsing_speaks_the_same_words() -> None:
    """`--set chunk_frames=abc` (CLI) and {"chunk_frames": "abc"} (REST) read the same."""
    with pytest.raises(ValueError) as exc:
        parse_field("chunk_frames", "abc")
    assert str(exc.value) == str(order_problems({**GOOD, "chunk_frames": "abc"})[0])
    assert "invalid literal" not in str(exc.value)
    with pytest.raises(ValueError, match="chunk_frame: unknown order field"):
        coerce_field("chunk_frame", "64")
    assert coerce_field("chunk_frames", "128") == 128 and coerce_field("publish_to", "null") is None
    assert math.isnan(parse_field("min_id_cosine", "nan"))  # parsed, then refused by the check
    assert order_problems({**GOOD, "min_id_cosine": parse_field("min_id_cosine", "nan")})


def test_one_order_id_rule_for_airflow_and_the_engine() -> None:
    from faceworker import workarea

    assert ORDER_ID_PATTERN == workarea._ORDER_ID.pattern  # noqa: SLF001 - the two must not drift
    assert run_id_for("a" * 128) == "order__" + "a" * 128
    with pytest.raises(ValueError, match=re.escape("order_id: use 1 to 128 letters")):
        run_id_for("a" * 129)
