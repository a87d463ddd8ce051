"""`facefactory order run` argument handling (the real runs are in tests/e2e/test_order_run.py)."""
from __future__ import annotations

import argparse

import pytest

from facefactory.commands import order


def _args(*sets: str, **kw: str) -> argparse.Namespace:
    return argparse.Namespace(source=kw.get("source", "/in/s.png"), target=kw.get("target", "/in/t.mp4"),
                              order_id=kw.get("order_id"), sets=list(sets))


def test_sets_are_typed_and_paths_become_file_uris() -> None:
    conf = order.build_conf(_args("chunk_frames=48", "min_id_cosine=0.8", "publish_to=null", order_id="o-1"))
    assert conf == {"order_id": "o-1", "source": "file:///in/s.png", "target": "file:///in/t.mp4",
                    "chunk_frames": 48, "min_id_cosine": 0.8, "publish_to": None}


def test_generated_order_id_is_valid() -> None:
    from facefactory.operators.order_schema import run_id_for

    conf = order.build_conf(_args())
    assert run_id_for(conf["order_id"]).startswith("order__cli-")


@pytest.mark.parametrize("bad", ["chunk_frames=8", "swapper=magic", "nope=1", "chunk_frames", "min_psnr_db=x"])
def test_bad_orders_are_refused(bad: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        order.build_conf(_args(bad))


def test_cli_exit_code_for_invalid_order(capsys) -> None:
    from facefactory.cli import main

    assert main(["order", "run", "--source", "/a.png", "--target", "/b.mp4", "--set", "chunk_frames=1"]) == 2
    assert "chunk_frames" in capsys.readouterr().err
