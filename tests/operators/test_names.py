"""facefactory.operators.names: every choice is one Literal, and everything that offers or checks the choice
is derived from it (issue 17: a new face selector is one Literal plus the engine code)."""
from __future__ import annotations

import argparse
from typing import get_args

import pytest

from facefactory.operators import names
from facefactory.operators.face_swap_pod import swap_arguments
from facefactory.operators.order_check import order_problems
from facefactory.operators.order_schema import ORDER_FIELDS, order_json_schema, run_id_for
from faceworker import spec as engine_spec
from faceworker import tracking
from faceworker.cli import build_parser
from faceworker.workarea import check_order_id


def _cli_choices(command: str, flag: str) -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if flag in a.option_strings)
    return list(action.choices or [])


@pytest.mark.parametrize("field, literal", [
    ("face_selector", engine_spec.FaceSelector),
    ("enhancer", engine_spec.Enhancer),
    ("swapper", names.Swapper),
])
def test_schema_choices_are_the_literals(field: str, literal: object) -> None:
    assert ORDER_FIELDS[field]["enum"] == list(get_args(literal))
    assert order_json_schema()["properties"][field]["enum"] == list(get_args(literal))


def test_every_face_selector_consumer_follows_the_literal() -> None:
    selectors = list(get_args(engine_spec.FaceSelector))
    assert list(names.FACE_SELECTORS) == selectors  # the Airflow side's re-export
    assert _cli_choices("swap-chunk", "--face-selector") == selectors  # the engine's CLI
    assert set(tracking.SELECTORS) == set(selectors)  # the engine's tracker
    chunk = {"chunk": 0, "start": 0, "end": 8}
    for selector in selectors:  # the worker arguments pass each one, and the engine accepts it
        args = swap_arguments("/w", "o-1", chunk, {"face_selector": selector, "reference": "/r.jpg"})
        assert args[args.index("--face-selector") + 1] == selector
        assert build_parser().parse_args(args[:-2]).face_selector == selector
        engine_spec.ChunkSpec(work="/w", order="o-1", chunk=0, start=0, end=8, face_selector=selector,
                              reference="r.npy").validate()
        order = {"order_id": "o-1", "source": "/in/s.png", "target": "/in/t.mp4",
                 "face_selector": selector, "reference": "/in/r.jpg"}
        assert not [p for p in order_problems(order) if "face_selector" in str(p)]


def test_an_unknown_selector_is_refused_everywhere() -> None:
    order = {"order_id": "o-1", "source": "/in/s.png", "target": "/in/t.mp4", "face_selector": "nobody"}
    assert [p for p in order_problems(order) if "face_selector" in str(p)]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["swap-chunk", "--order", "o", "--chunk", "0", "--start", "0", "--end", "1",
                                   "--face-selector", "nobody"])


def test_one_order_id_rule() -> None:
    longest = "a" * names.ORDER_ID_MAX
    assert ORDER_FIELDS["order_id"]["pattern"] == names.ORDER_ID_PATTERN
    assert run_id_for(longest) == names.RUN_ID_PREFIX + longest and check_order_id(longest) == longest
    with pytest.raises(ValueError):
        run_id_for(longest + "a")
    with pytest.raises(Exception, match="max 128"):
        check_order_id(longest + "a")


def test_gate_stages_are_the_gate_task_ids() -> None:
    assert names.GATE_STAGES == (names.QUALITY_GATE, names.FINAL_GATE)
