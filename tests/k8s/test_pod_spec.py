"""The swap pod the operator would submit: every production field, checked and schema-validated."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from facefactory.operators.face_swap_pod import FaceSwapPodOperator, swap_arguments
from facefactory.operators.pod_spec import (
    SETTINGS,
    XCOM_FILE,
    PodSettings,
    label_value,
    parse_time_settings,
    pod_manifest,
)

# Oldest and newest Kubernetes the deployment supports (deploy/README in docs/kubernetes.md).
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ORDER = {"swapper": "classic", "enhancer": "none", "face_selector": "one", "identity_weight": 1.0}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*SETTINGS, "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"]:
        monkeypatch.delenv(name, raising=False)


def render(order_id: str = "o-1", chunk: int = 3, pod_settings: dict[str, str] | None = None,
           **kwargs: Any) -> dict[str, Any]:
    spec = {"chunk": chunk, "start": 96 * chunk, "end": 96 * (chunk + 1)}
    args = swap_arguments("s3://ff-work/prod", order_id, spec, ORDER)
    op = FaceSwapPodOperator(task_id="swap", arguments=args, pod_settings=pod_settings, **kwargs)
    ti = SimpleNamespace(dag_id="face_swap_order", task_id="swap", map_index=chunk, try_number=1)
    context = {"ti": ti, "run_id": f"order__{order_id}", "dag": SimpleNamespace(dag_id="face_swap_order")}
    return pod_manifest(op.build_pod_request_obj(context, dry_run=True))


def base(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_default_pod_is_valid_kubernetes(version: str) -> None:
    kubernetes_validate.validate(render(), version, strict=True)


def test_schema_validation_can_fail() -> None:
    pod = render()
    base(pod)["resources"]["limits"]["nvidia.com/gpu"] = {"count": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBE_VERSIONS[-1], strict=True)


def test_container_runs_the_chunk_command() -> None:
    c = base(render(chunk=3))
    assert c["image"] == "ghcr.io/facefactory/faceworker:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["faceworker"]
    assert c["args"] == [
        "swap-chunk", "--work", "s3://ff-work/prod", "--order", "o-1", "--chunk", "3",
        "--start", "288", "--end", "384", "--swapper", "classic", "--enhancer", "none",
        "--face-selector", "one", "--identity-weight", "1.0", "--xcom-file", XCOM_FILE,
    ]


def test_gpu_resources_and_gpu_pool_placement() -> None:
    pod = render()
    res = base(pod)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1" and res["requests"]["nvidia.com/gpu"] == "1"
    assert res["requests"]["cpu"] == "3" and res["limits"]["memory"] == "12Gi"
    assert pod["spec"]["nodeSelector"] == {"facefactory.io/node-pool": "gpu-swaps"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert pod["spec"]["activeDeadlineSeconds"] == 3600
    assert pod["spec"]["restartPolicy"] == "Never"


def test_volumes_model_cache_shm_tmp_and_xcom() -> None:
    pod = render()
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert vols["tmp"]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert vols["models"]["persistentVolumeClaim"] == {"claimName": "facefactory-models", "readOnly": True}
    assert vols["xcom"]["emptyDir"] == {}
    mounts = {m["mountPath"]: m for m in base(pod)["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert {"/dev/shm", "/tmp", "/airflow/xcom"} <= set(mounts)
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] != "base")
    assert sidecar["volumeMounts"] == [{"mountPath": "/airflow/xcom", "name": "xcom"}]


def test_env_has_config_and_no_inline_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    pod = render(pod_settings={"FACEFACTORY_K8S_S3_SECRET": "facefactory-s3"})
    env = {e["name"]: e["value"] for e in base(pod)["env"]}
    assert env == {
        "FACEFACTORY_LOG_FORMAT": "json", "FACEFACTORY_EXECUTION_PROVIDER": "auto",
        "FACEFACTORY_MODEL_DIR": "/models", "PYTHONUNBUFFERED": "1",
        "FACEFACTORY_WORK_ROOT": "s3://ff-work/prod",
        "AWS_ENDPOINT_URL": "http://minio.storage:9000",
        "FACEFACTORY_S3_ENDPOINT_URL": "http://minio.storage:9000", "AWS_REGION": "eu-west-1",
    }
    assert "must-not-leak" not in json.dumps(pod)
    assert base(pod)["envFrom"] == [{"secretRef": {"name": "facefactory-s3"}}]


def test_pod_security() -> None:
    pod = render()
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "faceworker"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:  # the XCom sidecar too
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["metadata"]["namespace"] == "facefactory"


def test_labels_and_annotations_carry_ids() -> None:
    order_id = "Order_" + "x" * 60 + "."
    pod = render(order_id=order_id[:64], chunk=12)
    labels, notes = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in labels.values()), labels
    assert labels["facefactory.io/chunk"] == "12" and labels["map_index"] == "12"
    assert labels["dag_id"] == "face_swap_order"
    assert labels["facefactory.io/order"].startswith("Order_xxx")
    assert notes["facefactory.io/order"] == order_id[:64]  # verbatim for cost attribution
    assert notes["facefactory.io/run-id"] == f"order__{order_id[:64]}"
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", pod["metadata"]["name"])
    assert len(pod["metadata"]["name"]) <= 63


@pytest.mark.parametrize("raw", ["order 1/ä", "-a-", "x" * 80, "a..b__c"])
def test_label_value_sanitiser(raw: str) -> None:
    assert LABEL_VALUE.match(label_value(raw)) and len(label_value(raw)) <= 63


def test_settings_overrides_change_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_WORKER_TAG", "2.3.4")
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 50, "preference": {"matchExpressions": [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]}}]}}
    pod = render(pod_settings={
        "FACEFACTORY_K8S_GPUS": "0",
        "FACEFACTORY_K8S_AFFINITY": json.dumps(affinity),
        "FACEFACTORY_K8S_TOLERATIONS": json.dumps([{"key": "spot", "operator": "Exists"}]),
        "FACEFACTORY_K8S_IMAGE_PULL_SECRETS": "regcred, other",
        "FACEFACTORY_K8S_MODEL_PVC": "",
        "FACEFACTORY_EXECUTION_PROVIDER": "cpu",
    })
    c = base(pod)
    assert c["image"].endswith(":2.3.4")
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert pod["spec"]["affinity"] == affinity
    assert {"key": "spot", "operator": "Exists"} in pod["spec"]["tolerations"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert "models" not in {v["name"] for v in pod["spec"]["volumes"]}
    assert {"name": "FACEFACTORY_EXECUTION_PROVIDER", "value": "cpu"} in c["env"]
    kubernetes_validate.validate(pod, KUBE_VERSIONS[-1], strict=True)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pod settings"):
        PodSettings.from_config(overrides={"FACEFACTORY_K8S_GPU": "2"})


def test_variables_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFACTORY_K8S_NAMESPACE", "from-env")
    variables = {"FACEFACTORY_K8S_NAMESPACE": "from-variable"}
    from facefactory.operators.pod_spec import os as pod_os

    def lookup(name: str) -> str | None:
        return variables.get(name) or pod_os.environ.get(name)

    assert PodSettings.from_config(lookup).namespace == "from-variable"
    assert PodSettings.from_config().namespace == "from-env"


def test_explicit_operator_arguments_win() -> None:
    pod = render(image="registry.local/fw:dev", namespace="gpu-test", active_deadline_seconds=60,
                 node_selector={"pool": "a"})
    assert base(pod)["image"] == "registry.local/fw:dev"
    assert pod["metadata"]["namespace"] == "gpu-test"
    assert pod["spec"]["activeDeadlineSeconds"] == 60
    assert pod["spec"]["nodeSelector"] == {"pool": "a"}


def test_deferrable_and_startup_budget_from_settings() -> None:
    op = FaceSwapPodOperator(task_id="s", arguments=["swap-chunk"],
                             pod_settings={"FACEFACTORY_K8S_DEFERRABLE": "true"})
    op.apply_settings()
    assert op.deferrable is True
    assert op.startup_timeout_seconds == 1200  # room for a GPU node to scale up from zero
    assert op.on_finish_action.value == "delete_succeeded_pod"
    assert op.get_logs is True and op.do_xcom_push is True
    explicit = FaceSwapPodOperator(task_id="s", arguments=["swap-chunk"], deferrable=False,
                                   pod_settings={"FACEFACTORY_K8S_DEFERRABLE": "true"})
    explicit.apply_settings()
    assert explicit.deferrable is False


def test_parse_time_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    got = parse_time_settings()
    assert got["pool"] == "gpu_swaps" and got["retries"] == 3
    assert got["retry_exponential_backoff"] == 2.0 and got["max_active_tis_per_dagrun"] == 4
    monkeypatch.setenv("FACEFACTORY_SWAP_MAX_ACTIVE_PER_RUN", "")
    monkeypatch.setenv("FACEFACTORY_SWAP_RETRIES", "5")
    got = parse_time_settings()
    assert got["max_active_tis_per_dagrun"] is None and got["retries"] == 5
    assert "queue" not in got  # no queue given: Airflow's default_queue
    monkeypatch.setenv("FACEFACTORY_SWAP_QUEUE", "gpu")
    assert parse_time_settings()["queue"] == "gpu"


def test_mapped_partial_carries_pool_and_retries() -> None:
    """What the scheduler sees for the mapped task before any pod exists."""
    from datetime import datetime

    from airflow.sdk import DAG

    with DAG("m", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = FaceSwapPodOperator.partial(task_id="swap").expand(arguments=[["swap-chunk"]])
    assert mapped.partial_kwargs["pool"] == "gpu_swaps"
    assert mapped.partial_kwargs["retries"] == 3
    assert mapped.partial_kwargs["max_active_tis_per_dagrun"] == 4
    assert mapped.partial_kwargs["retry_exponential_backoff"] == 2.0
