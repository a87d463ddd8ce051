"""An order id is bound to its inputs' checksums and pixel options (facefactory.operators.order_inputs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from facefactory.operators import order_inputs, uris
from facefactory.operators.config import run_time
from faceworker.workarea import WorkArea


@pytest.fixture()
def setup(tmp_path: Path) -> dict:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "s.png").write_bytes(b"source")
    (inputs / "t.mp4").write_bytes(b"target-1")
    (inputs / "t2.mp4").write_bytes(b"target-2")
    (inputs / "t-copy.mp4").write_bytes(b"target-1")
    area = WorkArea(str(tmp_path / "work")).order("o-1")
    order = {"order_id": "o-1", "source": f"file://{inputs}/s.png", "target": f"file://{inputs}/t.mp4",
             "swapper": "classic", "enhancer": "none", "face_selector": "one", "identity_weight": 1.0}
    return {"roots": (inputs,), "area": area, "order": order, "inputs": inputs}


def _bind(setup: dict, **changes: object) -> dict:
    order = {**setup["order"], **changes}
    return order_inputs.bind(setup["area"], order, order_inputs.parse_inputs(order, setup["roots"]))


def test_first_ingest_records_and_same_inputs_resume(setup: dict) -> None:
    first = _bind(setup)
    assert set(first["inputs"]) == {"source", "target"}
    assert first["inputs"]["target"]["sha256"] == __import__("hashlib").sha256(b"target-1").hexdigest()
    assert _bind(setup) == first  # a re-run with the same inputs goes on
    # the same bytes under another path are the same input (a moved file resumes)
    assert _bind(setup, target=f"file://{setup['inputs']}/t-copy.mp4") == first
    # thresholds, chunking and delivery do not change pixels: not part of the binding
    assert _bind(setup, min_id_cosine=0.5, chunk_frames=64, publish_to="/x") == first


@pytest.mark.parametrize("change,words", [
    ({"target": "file://{inputs}/t2.mp4"}, "target content changed ("),
    ({"swapper": "inswapper_128"}, "swapper 'classic' -> 'inswapper_128'"),
    ({"identity_weight": 0.5}, "identity_weight 1.0 -> 0.5"),
])
def test_other_inputs_are_refused_saying_what_changed(setup: dict, change: dict, words: str) -> None:
    _bind(setup)
    change = {k: v.format(inputs=setup["inputs"]) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(order_inputs.InputsChanged) as info:
        _bind(setup, **change)
    text = str(info.value)
    assert text.startswith("order o-1 was already started with other inputs (") and words in text, text
    assert "Use a new order id" in text


def test_a_target_rewritten_in_place_is_refused(setup: dict) -> None:
    _bind(setup)
    (setup["inputs"] / "t.mp4").write_bytes(b"target-edited")
    with pytest.raises(order_inputs.InputsChanged, match="target content changed: sha256"):
        _bind(setup)


def test_check_rerun_before_replacing_a_run(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_INPUT_ROOTS", str(setup["inputs"]))
    cfg = run_time(use_variables=False)
    order_inputs.check_rerun(setup["order"], cfg, setup["area"])  # nothing recorded: nothing to say
    _bind(setup)
    order_inputs.check_rerun(setup["order"], cfg, setup["area"])
    with pytest.raises(order_inputs.InputsChanged, match="target content changed"):
        order_inputs.check_rerun({**setup["order"], "target": f"file://{setup['inputs']}/t2.mp4"}, cfg,
                                 setup["area"])
    # an input that no longer validates is ingest's to refuse, not this check's
    order_inputs.check_rerun({**setup["order"], "target": "file:///elsewhere/t.mp4"}, cfg, setup["area"])
    assert isinstance(uris.UriError("x"), ValueError)
