"""The swap/reswap tasks of the real `face_swap_order` DAG render the production pod.

Parsed from dags/face_swap_order.py (no DB); the mapped task is unmapped with the arguments
its `chunk` task would produce for an order, and rendered for that task instance.
"""
from __future__ import annotations

from types import SimpleNamespace

import kubernetes_validate
import pytest

from facefactory.operators.face_swap_pod import FaceSwapPodOperator, swap_arguments
from facefactory.operators.order_schema import run_id_for
from facefactory.operators.pod_spec import SETTINGS, XCOM_FILE, pod_manifest

ORDER = {"order_id": "shop-7", "swapper": "classic", "enhancer": "none", "face_selector": "one",
         "identity_weight": 0.8}


@pytest.fixture(scope="module")
def dag():  # noqa: ANN201 - an Airflow DAG
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "face_swap_order.py"))
    assert bag.import_errors == {}
    return bag.dags["face_swap_order"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("task_id", ["swap", "reswap"])
def test_mapped_task_is_capped_and_retried(dag, task_id: str) -> None:  # noqa: ANN001 - the dag fixture, an Airflow DAG
    task = dag.get_task(task_id)
    assert task.operator_class is FaceSwapPodOperator
    kwargs = task.partial_kwargs
    assert kwargs["pool"] == "gpu_swaps"
    assert kwargs["max_active_tis_per_dagrun"] == 4
    assert kwargs["retries"] == 3 and kwargs["retry_exponential_backoff"] == 2.0
    assert kwargs["execution_timeout"] is not None


@pytest.mark.parametrize("chunk", [0, 5])
def test_unmapped_swap_renders_the_production_pod(dag, chunk: int) -> None:  # noqa: ANN001 - the dag fixture, an Airflow DAG
    spec = {"chunk": chunk, "start": 96 * chunk, "end": 96 * chunk + 96}
    args = swap_arguments("s3://facefactory-work", ORDER["order_id"], spec, ORDER)
    op = dag.get_task("swap").unmap({"arguments": args})
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="swap", map_index=chunk, try_number=1)
    context = {"ti": ti, "run_id": run_id_for(ORDER["order_id"]), "dag": dag}
    pod = pod_manifest(op.build_pod_request_obj(context, dry_run=True))
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    base = pod["spec"]["containers"][0]
    assert base["command"] == ["faceworker"] and base["args"][-2:] == ["--xcom-file", XCOM_FILE]
    assert base["args"][base["args"].index("--chunk") + 1] == str(chunk)
    assert base["args"][base["args"].index("--identity-weight") + 1] == "0.8"
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    labels = pod["metadata"]["labels"]
    assert (labels["dag_id"], labels["run_id"], labels["map_index"]) == ("face_swap_order", "order__shop-7", str(chunk))
    assert pod["spec"]["activeDeadlineSeconds"] == 3600
