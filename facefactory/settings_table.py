"""Every FACEFACTORY_* name, declared once: type, default, meaning, who reads it, Variable override.

Data only; read through `facefactory.settings` (the accessors, the Settings of the embedded
default and the docs table, docs/settings.md). The engine's names are declared in the engine
(`faceworker.settings`, installed alone in the worker image): they are included here as they
are, and the few the Airflow side reads too are extended with `shared(...)`, never redeclared.

`variable=True`: inside a task an Airflow Variable of the lower-case name overrides the
environment (env -> Variable). Parse-time names stay environment-only: a DAG file must not reach
the metadata DB while it is parsed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from faceworker.settings import ENGINE_SETTINGS, EngineSetting, Kind

Reader = Literal["engine", "airflow", "cli", "tests"]
#: groups other modules read as a whole: the swap pod's spec (docs/kubernetes.md)
Group = Literal["", "pod", "swap_parse_time"]


@dataclass(frozen=True)
class Setting:
    """One environment variable. `default` is what `settings.text` returns when it is unset or
    blank ("" = none); `shown_default` says how a default worked out from other settings is found."""

    name: str
    kind: Kind
    default: str
    meaning: str
    read_by: tuple[Reader, ...]
    variable: bool = False
    shown_default: str = ""
    group: Group = ""

    @property
    def documented_default(self) -> str:
        return self.shown_default or (f"`{self.default}`" if self.default else "(none)")


def _s(name: str, kind: Kind, default: str, meaning: str, *read_by: Reader, variable: bool = False,
       shown: str = "", group: Group = "") -> Setting:
    return Setting(name, kind, default, meaning, read_by, variable, shown, group)


def _pod(name: str, default: str, meaning: str, kind: Kind = "text") -> Setting:
    """A swap pod setting: resolved on the worker when the pod is built, so Variables apply."""
    return Setting(name, kind, default, meaning, ("airflow", "cli"), True, "", "pod")


def _swap(name: str, default: str, meaning: str, kind: Kind = "text") -> Setting:
    """A swap task setting the scheduler needs at parse time: environment only."""
    return Setting(name, kind, default, meaning, ("airflow",), False, "", "swap_parse_time")


_ENGINE: dict[str, EngineSetting] = {e.name: e for e in ENGINE_SETTINGS}


def shared(name: str, *read_by: Reader, variable: bool = False, group: Group = "") -> Setting:
    """An engine name the Airflow side reads too: default and meaning stay the engine's."""
    e = _ENGINE[name]
    return Setting(e.name, e.kind, e.default, e.meaning, ("engine", *read_by), variable, e.shown_default, group)


def engine_only(e: EngineSetting) -> Setting:
    readers: tuple[Reader, ...] = ("engine", "tests") if e.name.startswith("FACEFACTORY_TEST_") else ("engine",)
    return Setting(e.name, e.kind, e.default, e.meaning, readers, False, e.shown_default)


AIRFLOW_SETTINGS: tuple[Setting, ...] = (
    # --- where things live (facefactory.settings.load) ----------------------------------------
    shared("FACEFACTORY_HOME", "airflow", "cli"),
    shared("FACEFACTORY_WORK_ROOT", "airflow", "cli", variable=True),
    _s("FACEFACTORY_PUBLISH_TO", "uri", "", "default publish prefix (local dir or `s3://bucket/prefix`)",
       "airflow", "cli", variable=True, shown="`$FACEFACTORY_HOME/published`"),
    _s("FACEFACTORY_PUBLISH_ROOTS", "list", "",
       "comma-separated local dirs and `s3://bucket[/prefix]` an order's `publish_to` must lie under (docs/storage.md)",
       "airflow", "cli", variable=True,
       shown="`$FACEFACTORY_HOME/published` (+ `FACEFACTORY_PUBLISH_TO`, always)"),
    _s("FACEFACTORY_INPUT_ROOTS", "paths", "", "colon-separated allow-list for local inputs",
       "airflow", "cli", variable=True, shown="`$FACEFACTORY_HOME/inputs`"),
    _s("FACEFACTORY_RUNNER", "text", "local", "`local` (subprocess) or `kubernetes` (pods) for the swap tasks",
       "airflow", "cli", variable=True),
    shared("FACEFACTORY_MODEL_DIR", "airflow", "cli", variable=True),
    _s("FACEFACTORY_SWAP_SLOTS", "int", "2",
       "size of the `gpu_swaps` pool the set-up creates; auto `chunk_frames` gives each slot about two chunks",
       "airflow", "cli"),
    _s("FACEFACTORY_WORKER_BIN", "path", "", "engine command the tasks run", "airflow", "tests",
       shown="`faceworker` beside the task's Python, else on PATH"),
    _s("FACEFACTORY_CALIBRATION_PATH", "paths", "", "extra folders searched first for identity calibrations",
       "airflow"),
    # --- caps and timing (facefactory.operators.config) ----------------------------------------
    _s("FACEFACTORY_MAX_DURATION_S", "float", "600", "ingest cap: target duration (s)", "airflow"),
    _s("FACEFACTORY_MAX_INPUT_BYTES", "int", str(4 * 1024**3), "ingest cap: bytes of one input", "airflow"),
    _s("FACEFACTORY_MAX_WIDTH", "int", "3840", "ingest cap: target width (px)", "airflow"),
    _s("FACEFACTORY_MAX_HEIGHT", "int", "2160", "ingest cap: target height (px)", "airflow"),
    _s("FACEFACTORY_SWAP_TIMEOUT_MINUTES", "float", "60",
       "execution_timeout of swap/reswap (include GPU node cold start on Kubernetes); parse time", "airflow"),
    _s("FACEFACTORY_DEADLINE_ENABLED", "bool", "false",
       "DeadlineAlert on the order DAG; parse time. `order run` forces it off (no scheduler to watch it)",
       "airflow", "cli", shown="`true` under `facefactory up` and Helm, else `false`"),
    _s("FACEFACTORY_DEADLINE_MINUTES", "float", "60", "the order deadline, from queue time; parse time", "airflow", "cli"),
    # --- bulk orders (facefactory.operators.bulk) -----------------------------------------------
    _s("FACEFACTORY_INBOX", "uri", "", "bulk_orders inbox: local folder or `s3://` prefix (docs/triggering.md)",
       "airflow", variable=True, shown="`$FACEFACTORY_HOME/inbox`"),
    _s("FACEFACTORY_BULK_SCHEDULE", "text", "*/5 * * * *", "cron of the bulk_orders scan (`none` = manual only); parse time",
       "airflow"),
    _s("FACEFACTORY_BULK_MAX_RUNS", "int", "20", "orders one bulk scan may start", "airflow", variable=True),
    # --- S3 client, publish, CDN (facefactory.operators.s3) -------------------------------------
    shared("FACEFACTORY_S3_ENDPOINT_URL", "airflow", "cli", variable=True, group="pod"),
    _s("FACEFACTORY_S3_REGION", "text", "", "S3 region when the connection has none", "airflow"),
    _s("FACEFACTORY_S3_RETRY_MODE", "text", "standard", "botocore retry mode: standard, adaptive or legacy", "airflow"),
    _s("FACEFACTORY_S3_MAX_ATTEMPTS", "int", "5", "botocore attempts per request, the first included", "airflow"),
    _s("FACEFACTORY_S3_CONNECT_TIMEOUT_S", "float", "10", "S3 connect timeout (s)", "airflow"),
    _s("FACEFACTORY_S3_READ_TIMEOUT_S", "float", "60", "S3 read timeout (s)", "airflow"),
    _s("FACEFACTORY_S3_SSE", "text", "AES256", "server-side encryption of published objects: AES256 or aws:kms", "airflow"),
    _s("FACEFACTORY_S3_KMS_KEY_ID", "text", "", "KMS key of aws:kms encryption", "airflow"),
    _s("FACEFACTORY_S3_MULTIPART_THRESHOLD_MB", "float", "16", "uploads above this size go multipart (MB)", "airflow"),
    _s("FACEFACTORY_S3_MULTIPART_CHUNK_MB", "float", "16", "multipart part size (MB, at least 5)", "airflow"),
    _s("FACEFACTORY_PUBLISH_VIDEO_CACHE_CONTROL", "text", "public, max-age=31536000, immutable",
       "Cache-Control of a published video (content-addressed, never changes)", "airflow"),
    _s("FACEFACTORY_PUBLISH_MANIFEST_CACHE_CONTROL", "text", "public, max-age=60, must-revalidate",
       "Cache-Control of an order's published manifest", "airflow"),
    _s("FACEFACTORY_CDN_DISTRIBUTION_ID", "text", "", "CloudFront distribution to invalidate (none: no CDN)", "airflow"),
    _s("FACEFACTORY_CDN_DOMAIN", "text", "", "CloudFront domain of the delivery URL", "airflow"),
    _s("FACEFACTORY_CDN_ORIGIN_PATH", "text", "", "the distribution's origin path (stripped from keys)", "airflow"),
    _s("FACEFACTORY_CDN_WAIT", "bool", "true", "`cdn_ready` waits for the invalidation (`false`: finishes at once)",
       "airflow"),
    _s("FACEFACTORY_CDN_WAIT_TIMEOUT_S", "float", "600", "longest wait for an invalidation (s)", "airflow"),
    _s("FACEFACTORY_CDN_POLL_S", "float", "10", "invalidation poll interval (s)", "airflow"),
    _s("FACEFACTORY_PRESIGN_EXPIRY_S", "int", str(24 * 3600), "lifetime of a presigned delivery URL (s)", "airflow"),
    # --- QA report cost estimate (facefactory.quality.cost) -------------------------------------
    _s("FACEFACTORY_PRICE_PER_GPU_S", "float", "0.0011", "price of a GPU second (USD) in the QA report's cost", "airflow"),
    _s("FACEFACTORY_PRICE_PER_CPU_S", "float", "0.000012", "price of a CPU second (USD) in the QA report's cost",
       "airflow"),
    # --- swap pods (facefactory.operators.pod_spec; docs/kubernetes.md) --------------------------
    _pod("FACEFACTORY_WORKER_IMAGE", "ghcr.io/facefactory/faceworker", "worker image repository"),
    _pod("FACEFACTORY_WORKER_TAG", "0.1.0", "worker image tag (pin a digest-stable tag)"),
    _pod("FACEFACTORY_K8S_IMAGE_PULL_POLICY", "IfNotPresent", "Always, IfNotPresent or Never"),
    _pod("FACEFACTORY_K8S_IMAGE_PULL_SECRETS", "", "comma-separated docker-registry secret names", "list"),
    _pod("FACEFACTORY_K8S_NAMESPACE", "facefactory", "namespace of the swap pods"),
    _pod("FACEFACTORY_K8S_SERVICE_ACCOUNT", "faceworker", "service account (IRSA/workload identity for S3)"),
    _pod("FACEFACTORY_K8S_AUTOMOUNT_TOKEN", "false", "mount the Kubernetes API token (the worker never needs it)", "bool"),
    _pod("FACEFACTORY_K8S_CPU_REQUEST", "3", "CPU request (decode/encode run on CPU)"),
    _pod("FACEFACTORY_K8S_CPU_LIMIT", "4", "CPU limit"),
    _pod("FACEFACTORY_K8S_MEMORY_REQUEST", "8Gi", "memory request"),
    _pod("FACEFACTORY_K8S_MEMORY_LIMIT", "12Gi", "memory limit"),
    _pod("FACEFACTORY_K8S_GPU_RESOURCE", "nvidia.com/gpu", "extended resource name of the GPU"),
    _pod("FACEFACTORY_K8S_GPUS", "1", "GPUs per swap pod (0 = CPU-only pods)", "int"),
    _pod("FACEFACTORY_K8S_NODE_SELECTOR", "facefactory.io/node-pool=gpu-swaps", "k=v[,k=v] node labels", "list"),
    _pod("FACEFACTORY_K8S_TOLERATIONS", "", "extra tolerations, JSON list (GPU taint is always tolerated)"),
    _pod("FACEFACTORY_K8S_AFFINITY", "", "optional V1Affinity as JSON"),
    _pod("FACEFACTORY_K8S_MODEL_PVC", "facefactory-models", "read-only model-cache PVC ('' = none)"),
    _pod("FACEFACTORY_K8S_MODEL_MOUNT", "/models", "where the model cache is mounted in the pod", "path"),
    _pod("FACEFACTORY_K8S_SHM_SIZE", "2Gi", "size of the /dev/shm emptyDir (frame batches)"),
    _pod("FACEFACTORY_K8S_TMP_SIZE", "20Gi", "size of the writable /tmp emptyDir (segments in flight)"),
    _pod("FACEFACTORY_K8S_S3_SECRET", "", "secret with AWS_* keys for envFrom ('' = IRSA / node role)"),
    _pod("FACEFACTORY_K8S_RUN_AS_USER", "10001", "uid of the worker (the image's non-root user)", "int"),
    _pod("FACEFACTORY_K8S_ACTIVE_DEADLINE_S", "3600", "hard wall-clock limit of one swap pod", "int"),
    _pod("FACEFACTORY_K8S_STARTUP_TIMEOUT_S", "1200", "pending budget: GPU node scale-from-zero + image pull", "int"),
    _pod("FACEFACTORY_K8S_DEFERRABLE", "false", "wait for the pod in the triggerer instead of a worker slot", "bool"),
    _pod("FACEFACTORY_K8S_PRIORITY_CLASS", "", "optional priorityClassName"),
    shared("FACEFACTORY_EXECUTION_PROVIDER", "airflow", "cli", variable=True, group="pod"),
    shared("FACEFACTORY_LOG_FORMAT", "airflow", "cli", variable=True, group="pod"),
    _swap("FACEFACTORY_SWAP_POOL", "gpu_swaps", "Airflow pool: its size is the GPU budget"),
    _swap("FACEFACTORY_SWAP_MAX_ACTIVE_PER_RUN", "4", "max concurrent swap pods of one order", "int"),
    _swap("FACEFACTORY_SWAP_RETRIES", "3", "retries of a chunk (exit 2 = bad input is never retried)", "int"),
    _swap("FACEFACTORY_SWAP_RETRY_DELAY_S", "30", "first retry delay", "float"),
    _swap("FACEFACTORY_SWAP_RETRY_BACKOFF", "2.0", "exponential backoff multiplier", "float"),
    _swap("FACEFACTORY_SWAP_MAX_RETRY_DELAY_S", "900", "cap on the retry delay", "float"),
    _swap("FACEFACTORY_SWAP_QUEUE", "", "executor queue of swap tasks (cluster profile: `gpu`)"),
    # --- the CLI (facefactory submit/status/wait, up, the cluster profile) -----------------------
    _s("FACEFACTORY_AIRFLOW_URL", "uri", "http://127.0.0.1:8080", "API server `facefactory submit/status/wait` talk to",
       "cli"),
    _s("FACEFACTORY_AIRFLOW_USER", "text", "admin", "API user of the CLI", "cli"),
    _s("FACEFACTORY_AIRFLOW_PASSWORD", "text", "", "API password of the CLI and of `facefactory up`", "cli",
       shown="the embedded server's generated password"),
    _s("FACEFACTORY_CLIENT_RETRY_S", "float", "60", "how long the CLI retries an API server that is not answering (s)",
       "cli"),
    _s("FACEFACTORY_AIRFLOW_HOST", "text", "127.0.0.1", "address `facefactory up` serves on", "cli"),
    _s("FACEFACTORY_AIRFLOW_PORT", "int", "8080", "port `facefactory up` serves on", "cli"),
    _s("FACEFACTORY_CLUSTER_DB_URL", "uri", "", "metadata DB of `up --profile cluster` (none: a local PostgreSQL)",
       "cli"),
    _s("FACEFACTORY_CLUSTER_BROKER_URL", "uri", "", "Celery broker of `up --profile cluster` (none: a local Redis)",
       "cli"),
    _s("FACEFACTORY_NODE_NAME", "text", "", "node name a cluster worker reports (set per worker by `up`)",
       "airflow", "cli", shown="the host's FQDN"),
    # --- tests and set-up only ------------------------------------------------------------------
    _s("FACEFACTORY_TEST_TOOLS", "bool", "0", "`make test`: the set-up installs chromium for the browser tests", "tests"),
    _s("FACEFACTORY_CHROMIUM", "path", "/usr/bin/chromium", "browser of the UI-form and QA-report tests", "tests"),
    _s("FACEFACTORY_TEST_ARTIFACTS", "path", "", "where the real-gate test keeps its screenshots", "tests",
       shown="beside the QA report"),
    _s("FACEFACTORY_UPDATE_DOCS", "bool", "", "`1`: the hostile-input catalogue test rewrites docs/reliability.md",
       "tests"),
    _s("FACEFACTORY_BURST_REST", "int", "6", "orders the burst test submits over REST", "tests"),
    _s("FACEFACTORY_BURST_BULK", "int", "4", "orders the burst test drops in the bulk inbox", "tests"),
)

_EXTENDED = {s.name for s in AIRFLOW_SETTINGS}
#: the registry: the Airflow side's names, then the engine's that only the engine reads
SETTINGS: tuple[Setting, ...] = AIRFLOW_SETTINGS + tuple(
    engine_only(e) for e in ENGINE_SETTINGS if e.name not in _EXTENDED)
