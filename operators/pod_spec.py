"""Production pod spec for the GPU swap pods, built from configuration.

Every knob is an environment variable `FACEFACTORY_K8S_*` / `FACEFACTORY_SWAP_*`; on the Airflow
side an Airflow Variable of the same lower-case name overrides it (docs/contracts.md). The
defaults describe the deployment in deploy/ (GPU node pool `gpu-swaps`, taint `nvidia.com/gpu`,
model cache PVC `facefactory-models`), so a stock install needs no Variables at all.

Settings that the scheduler needs before a task runs (pool, retries, max_active_tis_per_dagrun)
are read from the environment only, at DAG-parse time: Variables are not read while parsing.
Everything else is resolved when the pod is built, i.e. on the worker, where Variables work.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubernetes.client import models as k8s

from facefactory import settings

Lookup = Callable[[str], "str | None"]

BASE_CONTAINER = "base"
XCOM_FILE = "/airflow/xcom/return.json"
GPU_TAINT_KEY = "nvidia.com/gpu"

# name (env) -> (default, meaning), for docs/kubernetes.md and `k8s render-pod --set`: views of the
# pod groups of the one settings table (facefactory/settings_table.toml), where they are declared.
SETTINGS: dict[str, tuple[str, str]] = {s.name: (s.default, s.meaning) for s in settings.in_group("pod")}

# Read from the environment at parse time only (the scheduler needs them before execute()).
PARSE_TIME_SETTINGS: dict[str, tuple[str, str]] = {
    s.name: (s.default, s.meaning) for s in settings.in_group("swap_parse_time")}

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


def default_lookup(name: str) -> str | None:
    """Airflow Variable (lower-case name) first, then the environment, for our names; AWS's own
    variables (AWS_ENDPOINT_URL) come from the environment, as boto3 reads them."""
    return settings.lookup(name) if name.startswith("FACEFACTORY_") else os.environ.get(name)


def env_lookup(name: str) -> str | None:
    return settings.raw(name) if name.startswith("FACEFACTORY_") else os.environ.get(name)


def label_value(value: object) -> str:
    """Sanitise to Kubernetes label-value syntax (<=63, alnum at both ends)."""
    text = _LABEL_VALUE.sub("-", str(value))[:63]
    return text.strip("-_.")


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class PodSettings:
    """Resolved configuration of one swap pod; `from_config` documents where each value comes from."""

    image: str
    image_pull_policy: str
    image_pull_secrets: list[str]
    namespace: str
    service_account: str
    automount_token: bool
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpu_resource: str
    gpus: int
    node_selector: dict[str, str]
    extra_tolerations: list[dict[str, Any]]
    affinity: dict[str, Any] | None
    model_pvc: str
    model_mount: str
    shm_size: str
    tmp_size: str
    s3_secret: str
    run_as_user: int
    active_deadline_s: int
    startup_timeout_s: int
    deferrable: bool
    priority_class: str
    execution_provider: str
    log_format: str
    s3_endpoint: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, lookup: Lookup = default_lookup, overrides: Mapping[str, str] | None = None) -> PodSettings:
        """Resolve every setting: overrides > Airflow Variable > environment > default."""
        overrides = dict(overrides or {})

        def get(name: str) -> str:
            if name in overrides:
                return overrides[name]
            value = lookup(name)
            return SETTINGS[name][0] if value is None else value

        unknown = set(overrides) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown pod settings: {sorted(unknown)}; known: {sorted(SETTINGS)}")
        tolerations = get("FACEFACTORY_K8S_TOLERATIONS").strip()
        affinity = get("FACEFACTORY_K8S_AFFINITY").strip()
        aws_env = {k: v for k in ("AWS_REGION", "AWS_DEFAULT_REGION") if (v := lookup(k))}
        return cls(
            image=f"{get('FACEFACTORY_WORKER_IMAGE')}:{get('FACEFACTORY_WORKER_TAG')}",
            image_pull_policy=get("FACEFACTORY_K8S_IMAGE_PULL_POLICY"),
            image_pull_secrets=[s.strip() for s in get("FACEFACTORY_K8S_IMAGE_PULL_SECRETS").split(",") if s.strip()],
            namespace=get("FACEFACTORY_K8S_NAMESPACE"),
            service_account=get("FACEFACTORY_K8S_SERVICE_ACCOUNT"),
            automount_token=_bool(get("FACEFACTORY_K8S_AUTOMOUNT_TOKEN")),
            cpu_request=get("FACEFACTORY_K8S_CPU_REQUEST"),
            cpu_limit=get("FACEFACTORY_K8S_CPU_LIMIT"),
            memory_request=get("FACEFACTORY_K8S_MEMORY_REQUEST"),
            memory_limit=get("FACEFACTORY_K8S_MEMORY_LIMIT"),
            gpu_resource=get("FACEFACTORY_K8S_GPU_RESOURCE"),
            gpus=int(get("FACEFACTORY_K8S_GPUS")),
            node_selector=_pairs(get("FACEFACTORY_K8S_NODE_SELECTOR")),
            extra_tolerations=json.loads(tolerations) if tolerations else [],
            affinity=json.loads(affinity) if affinity else None,
            model_pvc=get("FACEFACTORY_K8S_MODEL_PVC").strip(),
            model_mount=get("FACEFACTORY_K8S_MODEL_MOUNT"),
            shm_size=get("FACEFACTORY_K8S_SHM_SIZE"),
            tmp_size=get("FACEFACTORY_K8S_TMP_SIZE"),
            s3_secret=get("FACEFACTORY_K8S_S3_SECRET").strip(),
            run_as_user=int(get("FACEFACTORY_K8S_RUN_AS_USER")),
            active_deadline_s=int(get("FACEFACTORY_K8S_ACTIVE_DEADLINE_S")),
            startup_timeout_s=int(get("FACEFACTORY_K8S_STARTUP_TIMEOUT_S")),
            deferrable=_bool(get("FACEFACTORY_K8S_DEFERRABLE")),
            priority_class=get("FACEFACTORY_K8S_PRIORITY_CLASS").strip(),
            execution_provider=get("FACEFACTORY_EXECUTION_PROVIDER"),
            log_format=get("FACEFACTORY_LOG_FORMAT"),
            s3_endpoint=get("FACEFACTORY_S3_ENDPOINT_URL") or (lookup("AWS_ENDPOINT_URL") or ""),
            extra_env=aws_env,
        )

    # -- Kubernetes objects -------------------------------------------------------------

    def resources(self) -> k8s.V1ResourceRequirements:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {"cpu": self.cpu_limit, "memory": self.memory_limit}
        if self.gpus > 0:  # extended resources: request must equal limit, so set both
            requests[self.gpu_resource] = str(self.gpus)
            limits[self.gpu_resource] = str(self.gpus)
        return k8s.V1ResourceRequirements(requests=requests, limits=limits)

    def tolerations(self) -> list[k8s.V1Toleration]:
        base = [k8s.V1Toleration(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")]
        return base + [k8s.V1Toleration(**t) for t in self.extra_tolerations]

    def affinity_obj(self) -> k8s.V1Affinity | None:
        if not self.affinity:
            return None
        from kubernetes.client import ApiClient

        return _deserialize(ApiClient(), self.affinity, "V1Affinity")

    def volumes(self) -> list[k8s.V1Volume]:
        vols = [
            k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=self.shm_size)),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=self.tmp_size)),
        ]
        if self.model_pvc:
            vols.append(
                k8s.V1Volume(
                    name="models",
                    persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                        claim_name=self.model_pvc, read_only=True
                    ),
                )
            )
        return vols

    def volume_mounts(self) -> list[k8s.V1VolumeMount]:
        mounts = [
            k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ]
        if self.model_pvc:
            mounts.append(k8s.V1VolumeMount(name="models", mount_path=self.model_mount, read_only=True))
        return mounts

    def env(self, work_root: str | None) -> dict[str, str]:
        """Container env: literal values only (credentials come from env_from / IRSA, never inline)."""
        env = {
            "FACEFACTORY_LOG_FORMAT": self.log_format,
            "FACEFACTORY_EXECUTION_PROVIDER": self.execution_provider,
            "FACEFACTORY_MODEL_DIR": self.model_mount,
            "PYTHONUNBUFFERED": "1",
        }
        if work_root:
            env["FACEFACTORY_WORK_ROOT"] = work_root
        if self.s3_endpoint:
            env["AWS_ENDPOINT_URL"] = self.s3_endpoint
            env["FACEFACTORY_S3_ENDPOINT_URL"] = self.s3_endpoint
        env.update(self.extra_env)
        return env

    def env_from(self) -> list[k8s.V1EnvFromSource]:
        if not self.s3_secret:
            return []
        return [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=self.s3_secret))]

    def pod_security_context(self) -> k8s.V1PodSecurityContext:
        return k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=self.run_as_user,
            run_as_group=self.run_as_user,
            fs_group=self.run_as_user,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        )

    def container_security_context(self) -> k8s.V1SecurityContext:
        return k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            privileged=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        )

    def pull_secrets(self) -> list[k8s.V1LocalObjectReference]:
        return [k8s.V1LocalObjectReference(name=n) for n in self.image_pull_secrets]


def parse_time_settings(lookup: Lookup = env_lookup) -> dict[str, Any]:
    """BaseOperator kwargs that the scheduler must know at parse time (pool, retries, caps)."""

    def get(name: str) -> str:
        value = lookup(name)
        return PARSE_TIME_SETTINGS[name][0] if value is None else value

    max_active = get("FACEFACTORY_SWAP_MAX_ACTIVE_PER_RUN").strip()
    queue = get("FACEFACTORY_SWAP_QUEUE").strip()  # empty: Airflow's [operators] default_queue
    return {
        **({"queue": queue} if queue else {}),
        "pool": get("FACEFACTORY_SWAP_POOL"),
        "max_active_tis_per_dagrun": int(max_active) if max_active else None,
        "retries": int(get("FACEFACTORY_SWAP_RETRIES")),
        "retry_delay": timedelta(seconds=float(get("FACEFACTORY_SWAP_RETRY_DELAY_S"))),
        "retry_exponential_backoff": float(get("FACEFACTORY_SWAP_RETRY_BACKOFF")),
        "max_retry_delay": timedelta(seconds=float(get("FACEFACTORY_SWAP_MAX_RETRY_DELAY_S"))),
    }


def pod_manifest(pod: k8s.V1Pod) -> dict[str, Any]:
    """The pod as the API server would receive it (camelCase), without nulls and empty lists.

    Empty dicts stay: `emptyDir: {}` is meaningful.
    """
    from kubernetes.client import ApiClient

    return _prune(ApiClient().sanitize_for_serialization(pod))


def pod_yaml(pod: k8s.V1Pod) -> str:
    import yaml

    return yaml.safe_dump(pod_manifest(pod), sort_keys=False)


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _deserialize(api: Any, data: dict[str, Any], klass: str) -> Any:
    """Turn a plain dict (as written in a Variable) into a kubernetes model object."""
    return api._ApiClient__deserialize(data, klass)  # the public deserialize() needs an HTTP response
