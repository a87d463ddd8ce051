"""Every DAG file imports cleanly, fast, and without touching the DB or the network."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "face_swap_order" in dagbag.dag_ids


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_under_two_seconds(path: Path) -> None:
    """Parse each file in a fresh interpreter (Airflow already imported, as in the processor)."""
    code = (
        "import sys, time, socket\n"
        "import airflow.sdk, airflow.providers.cncf.kubernetes.operators.pod\n"
        "def _no_net(*a, **k):\n"
        "    raise RuntimeError('network access at parse time')\n"
        "socket.socket.connect = _no_net\n"
        "import sqlalchemy.engine\n"
        "_orig = sqlalchemy.engine.Engine.connect\n"
        "def _no_db(*a, **k):\n"
        "    raise RuntimeError('metadata DB access at parse time')\n"
        "sqlalchemy.engine.Engine.connect = _no_db\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "t = time.perf_counter()\n"
        f"bag = DagBag(dag_folder={str(path)!r})\n"
        "dt = time.perf_counter() - t\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "assert bag.dag_ids, 'no DAG in file'\n"
        "print(f'{dt:.3f}')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    seconds = float(res.stdout.strip().splitlines()[-1])
    assert seconds < 2.0, f"{path.name} took {seconds:.2f}s to parse"


def test_face_swap_order_shape(dagbag) -> None:
    dag = dagbag.dags["face_swap_order"]
    expected = ["ingest", "chunk", "swap", "quality_gate", "reswap", "final_gate", "merge", "publish"]
    assert set(expected) <= set(dag.task_ids)
    downstream = {t: set(dag.get_task(t).downstream_task_ids) for t in expected}
    assert "chunk" in downstream["ingest"] and "swap" in downstream["chunk"]
    assert "quality_gate" in downstream["swap"] and "reswap" in downstream["quality_gate"]
    assert {"final_gate", "merge"} <= downstream["reswap"]  # merge runs next to the final gate
    assert "publish" in downstream["merge"] and "publish" in downstream["final_gate"]
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.execution_timeout is not None, task.task_id
    for mapped in ("swap", "reswap"):
        op = dag.get_task(mapped)
        assert op.pool == "gpu_swaps"
        assert op.retry_exponential_backoff
        assert "chunk" in (op.map_index_template or "")
    assert dag.get_task("final_gate").trigger_rule == "none_failed"
    assert [a.name for a in dag.get_task("publish").outlets] == ["facefactory_published_video"]
    # the CDN wait is its own deferrable task after publish (no worker slot held while CloudFront works)
    from facefactory.operators.cdn_wait import CdnInvalidationWait

    assert downstream["publish"] == {"cdn_ready"}
    assert isinstance(dag.get_task("cdn_ready"), CdnInvalidationWait)
    # every task id is one of facefactory.operators.names' constants (the links, report and CLI look tasks up by them)
    from facefactory.operators import names

    assert dag.dag_id == names.DAG_ID
    assert set(dag.task_ids) == {names.INGEST, names.CHUNK, names.SWAP, names.QUALITY_GATE, names.RESWAP,
                                 names.FINAL_GATE, names.MERGE, names.PUBLISH, names.CDN_READY}


def test_params_form_comes_from_order_schema(dagbag) -> None:
    from facefactory.operators.order_schema import ORDER_FIELDS

    params = dagbag.dags["face_swap_order"].params
    assert set(params.keys()) == set(ORDER_FIELDS)
    swapper = params.get_param("swapper")
    assert swapper.schema["enum"] == ORDER_FIELDS["swapper"]["enum"]
    assert swapper.schema["section"] == "Swap" and swapper.schema["title"] == "Swapper"
    source = params["source"]
    assert "{inputs}" not in source and source.endswith("/inputs/sample/source.png")


@pytest.mark.parametrize(
    "conf, field",
    [
        ({"chunk_frames": 8}, "chunk_frames"),
        ({"swapper": "deepfake9000"}, "swapper"),
        ({"min_id_cosine": 1.5}, "min_id_cosine"),
        ({"order_id": "../etc"}, "order_id"),
        ({"target": "http://example.com/x.mp4"}, "target"),
    ],
)
def test_invalid_conf_is_refused_before_the_run(dagbag, conf: dict, field: str) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    params = copy.deepcopy(dagbag.dags["face_swap_order"].params)
    with pytest.raises(ParamValidationError, match=field):
        for key, value in conf.items():
            params[key] = value  # ParamsDict validates on assignment, as run creation does
        params.validate()


def test_deadline_alert_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_DEADLINE_ENABLED", "true")
    monkeypatch.setenv("FACEFACTORY_DEADLINE_MINUTES", "1")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "face_swap_order.py"))
    dag = bag.dags["face_swap_order"]
    alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.interval.total_seconds() == 60
    assert alert.callback.path == "facefactory_deadlines.record_deadline_miss"
