"""FaceSwapPodOperator: one swap pod per chunk, or the very same command as a local subprocess.

The operator always renders the pod first (`build_pod_request_obj`). With `runner=kubernetes`
that pod is submitted as usual by KubernetesPodOperator; with `runner=local` (the embedded
default) the rendered base container's `command + args` run on the Airflow worker with the
container's env. Only two documented mappings separate the two: the pod's `--xcom-file`
(the XCom sidecar path) points into a temp dir, and the model-cache mount path is replaced by
the local model dir. So the local path cannot drift from what a cluster would run.

Exit codes (docs/contracts.md): 2 = bad input -> AirflowFailException (never retried); any
other failure -> AirflowException (retried with exponential backoff).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.bases.operator import partial as _sdk_partial
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from facefactory import settings as ff_settings
from facefactory.operators import engine_client, names
from facefactory.operators.pod_spec import (
    BASE_CONTAINER,
    XCOM_FILE,
    PodSettings,
    label_value,
    parse_time_settings,
    pod_manifest,
)
from faceworker import workarea
from faceworker.errors import EXIT_BAD_INPUT

if TYPE_CHECKING:
    from airflow.sdk import Context

REFERENCE_EMBEDDING = workarea.REFERENCE_EMBEDDING
RUNNERS = names.RUNNERS
_PARSE = parse_time_settings()


def swap_arguments(
    work_root: str,
    order_id: str,
    chunk: Mapping[str, Any],
    order: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    *,
    model_dir: str | None = None,
) -> list[str]:
    """Container args of one chunk's swap (`faceworker swap-chunk ...`, docs/contracts.md)."""
    args = [
        "swap-chunk",
        "--work", str(work_root),
        "--order", str(order_id),
        "--chunk", str(int(chunk["chunk"])),
        "--start", str(int(chunk["start"])),
        "--end", str(int(chunk["end"])),
        "--swapper", str(order.get("swapper") or "classic"),
        "--enhancer", str(order.get("enhancer") or "none"),
        "--face-selector", str(order.get("face_selector") or "one"),
        "--identity-weight", repr(float(order.get("identity_weight", 1.0))),
    ]
    if order.get("face_selector") == "reference":
        # written by `faceworker embed --reference` at ingest; relative = inside the order's area
        args += ["--reference", REFERENCE_EMBEDDING]
    if options:
        args += ["--options", json.dumps(dict(options), sort_keys=True, separators=(",", ":"))]
    if model_dir:
        args += ["--model-dir", str(model_dir)]
    return args + ["--xcom-file", XCOM_FILE]


def arg_value(args: Sequence[str], flag: str) -> str | None:
    """Value following `flag` in an argv list (None when absent)."""
    for i, item in enumerate(args[:-1]):
        if item == flag:
            return str(args[i + 1])
    return None


def local_model_dir() -> str:
    """The model dir of the embedded deployment (Variable > env > $FACEFACTORY_HOME/models)."""
    from facefactory.settings import load

    return ff_settings.lookup("FACEFACTORY_MODEL_DIR") or load().model_dir


def local_invocation(
    pod: k8s.V1Pod, xcom_path: str, model_dir: str, base_env: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """argv and env that run the pod's base container here (the two documented mappings only)."""
    container = next(c for c in pod.spec.containers if c.name == BASE_CONTAINER)
    command = list(container.command or [])
    args = [xcom_path if (i > 0 and container.args[i - 1] == "--xcom-file") else a
            for i, a in enumerate(container.args or [])]
    mount = next(
        (m.mount_path for m in (container.volume_mounts or []) if m.name == "models"), None
    )
    env = dict(os.environ if base_env is None else base_env)
    for var in container.env or []:
        if var.value_from is not None:
            continue  # secret/field refs only exist in the cluster; the worker's own env applies
        value = var.value or ""
        if var.name == "FACEFACTORY_MODEL_DIR" and (mount is None or value == mount):
            value = model_dir
        env[var.name] = value
    argv = [*engine_client.worker_command(command[0]), *command[1:], *args]
    return argv, env


WorkerFailed = engine_client.EngineFailed  # transient or unexpected worker failure: retried


class FaceSwapPodOperator(KubernetesPodOperator):
    """Swap one chunk on a GPU pod (runner=kubernetes) or as a local subprocess (runner=local).

    Unset pod fields are filled from `facefactory.operators.pod_spec.PodSettings` when the pod is built,
    so Airflow Variables apply on the worker without a DAG re-parse.
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, "runner")
    ui_color = "#f5d0a9"

    def __init__(
        self,
        *,
        runner: str | None = None,
        pod_settings: Mapping[str, str] | None = None,
        cmds: list[str] | None = None,
        deferrable: bool | None = None,
        do_xcom_push: bool = True,
        get_logs: bool = True,
        on_finish_action: str = "delete_succeeded_pod",
        pool: str = _PARSE["pool"],
        max_active_tis_per_dagrun: int | None = _PARSE["max_active_tis_per_dagrun"],
        retries: int = _PARSE["retries"],
        retry_delay: Any = _PARSE["retry_delay"],
        retry_exponential_backoff: float = _PARSE["retry_exponential_backoff"],
        max_retry_delay: Any = _PARSE["max_retry_delay"],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            cmds=cmds or ["faceworker"],
            deferrable=bool(deferrable),
            do_xcom_push=do_xcom_push,
            get_logs=get_logs,
            on_finish_action=on_finish_action,
            pool=pool,
            max_active_tis_per_dagrun=max_active_tis_per_dagrun,
            retries=retries,
            retry_delay=retry_delay,
            retry_exponential_backoff=retry_exponential_backoff,
            max_retry_delay=max_retry_delay,
            **kwargs,
        )
        self.runner = runner
        self.pod_settings = dict(pod_settings or {})
        self._deferrable_explicit = deferrable
        self._settings_applied = False
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]  # classmethod over BaseOperator.partial
        """Mapped tasks take pool/max_active_tis_per_dagrun from partial(), not from __init__
        defaults (only BaseOperator's OPERATOR_DEFAULTS propagate): inject them here so the
        scheduler caps GPU pods even when the DAG does not pass them."""
        for key in ("pool", "max_active_tis_per_dagrun"):
            kwargs.setdefault(key, _PARSE[key])
        return _sdk_partial(cls, **kwargs)

    # -- configuration ------------------------------------------------------------------

    def resolved_runner(self) -> str:
        runner = (self.runner or ff_settings.lookup("FACEFACTORY_RUNNER") or "local").strip().lower()
        if runner not in RUNNERS:
            raise AirflowFailException(f"unknown runner {runner!r}: use one of {RUNNERS}")
        return runner

    def apply_settings(self) -> None:
        """Fill every pod field the DAG author left unset from configuration (once per instance)."""
        if self._settings_applied:
            return
        settings = PodSettings.from_config(overrides=self.pod_settings)
        self.image = self.image or settings.image
        self.namespace = self.namespace or settings.namespace
        self.image_pull_policy = self.image_pull_policy or settings.image_pull_policy
        self.image_pull_secrets = self.image_pull_secrets or settings.pull_secrets()
        self.service_account_name = self.service_account_name or settings.service_account
        if self.automount_service_account_token is None:
            self.automount_service_account_token = settings.automount_token
        self.container_resources = self.container_resources or settings.resources()
        self.node_selector = self.node_selector or settings.node_selector
        self.tolerations = self.tolerations or settings.tolerations()
        if not self.affinity and settings.affinity:
            self.affinity = settings.affinity_obj()
        names = {v.name for v in self.volumes}
        self.volumes = [*self.volumes, *(v for v in settings.volumes() if v.name not in names)]
        paths = {m.mount_path for m in self.volume_mounts}
        self.volume_mounts = [*self.volume_mounts, *(m for m in settings.volume_mounts() if m.mount_path not in paths)]
        self.env_vars = self._merged_env(settings)
        self.env_from = [*self.env_from, *settings.env_from()]
        self.security_context = self.security_context or settings.pod_security_context()
        self.container_security_context = self.container_security_context or settings.container_security_context()
        if self.xcom_sidecar_container_security_context is None:
            self.xcom_sidecar_container_security_context = settings.container_security_context()
        self.active_deadline_seconds = self.active_deadline_seconds or settings.active_deadline_s
        if self.startup_timeout_seconds == 120:  # KPO's default: too short for scale-from-zero
            self.startup_timeout_seconds = settings.startup_timeout_s
            self.schedule_timeout_seconds = settings.startup_timeout_s
        self.priority_class_name = self.priority_class_name or settings.priority_class or None
        if self._deferrable_explicit is None:
            self.deferrable = settings.deferrable
        self._apply_ids()
        self._settings_applied = True

    def _merged_env(self, settings: PodSettings) -> list[k8s.V1EnvVar]:
        """Config env first, the DAG author's env_vars override by name."""
        env = {k: k8s.V1EnvVar(name=k, value=v) for k, v in settings.env(arg_value(self.arguments, "--work")).items()}
        given = self.env_vars
        if isinstance(given, dict):
            given = [k8s.V1EnvVar(name=k, value=str(v)) for k, v in given.items()]
        for var in given or []:
            env[var.name] = var
        return list(env.values())

    def _apply_ids(self) -> None:
        """Order/chunk ids from the args as labels (sanitised) and annotations (verbatim)."""
        order, chunk = arg_value(self.arguments, "--order"), arg_value(self.arguments, "--chunk")
        labels = {"app.kubernetes.io/name": "faceworker", "app.kubernetes.io/component": "swap"}
        annotations: dict[str, str] = {}
        if order is not None:
            labels["facefactory.io/order"] = label_value(order)
            annotations["facefactory.io/order"] = order
        if chunk is not None:
            labels["facefactory.io/chunk"] = label_value(chunk)
            annotations["facefactory.io/chunk"] = chunk
        self.labels = {**labels, **(self.labels or {})}
        self.annotations = {**annotations, **(self.annotations or {})}
        if not self.name and order is not None:
            base = f"{self.task_id}-{order}-c{chunk}".lower()
            self.name = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in base)[:50].strip("-")

    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False) -> k8s.V1Pod:
        self.apply_settings()
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        if context is not None:  # raw ids for cost attribution (labels are truncated/sanitised)
            pod.metadata.annotations = {
                **(pod.metadata.annotations or {}),
                "facefactory.io/dag-id": str(context["ti"].dag_id),
                "facefactory.io/run-id": str(context["run_id"]),
            }
        return pod

    # -- execution ------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self.apply_settings()
        runner = self.resolved_runner()
        self.log.info("swap runner=%s order=%s chunk=%s", runner,
                      arg_value(self.arguments, "--order"), arg_value(self.arguments, "--chunk"))
        if runner == "kubernetes":
            work = arg_value(self.arguments, "--work") or ""
            if not work.startswith("s3://"):
                self.log.warning("work root %r is not s3://: pods only see it if it is a shared volume", work)
            return super().execute(context)
        return self.execute_local(context)

    def execute_local(self, context: Context | None) -> dict[str, Any] | None:
        """Run the rendered pod's container here; stream its JSON-line stderr into the task log."""
        pod = self.build_pod_request_obj(context, dry_run=True)
        if context is not None:  # what this chunk would submit on Kubernetes, visible in the UI
            context["ti"].xcom_push(key=names.XCOM_POD, value=pod_manifest(pod))
        with tempfile.TemporaryDirectory(prefix="faceswap-xcom-") as tmp:
            xcom_path = str(Path(tmp) / "return.json")
            argv, env = local_invocation(pod, xcom_path, local_model_dir())
            self.log.info("local runner: %s", " ".join(argv))
            try:
                result = engine_client.result_of(engine_client.run(
                    argv, name=str(self.arguments[0]) if self.arguments else "", logger=self.log, env=env,
                    timeout_s=self.active_deadline_seconds, started=self._track))
            finally:
                self._proc = None
            if os.path.exists(xcom_path):
                with open(xcom_path, encoding="utf-8") as fh:
                    if json.load(fh) != result:
                        raise WorkerFailed("faceworker's --xcom-file and stdout result differ")
        return result if self.do_xcom_push else None

    def _track(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def on_kill(self) -> None:
        if self._proc is not None:
            engine_client.kill_group(self._proc)
            return
        super().on_kill()

    def cleanup(self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, xcom_result: dict | None = None,
                context: Context | None = None) -> None:
        """KPO raises AirflowException for any failed pod; exit 2 must not be retried."""
        try:
            super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)
        except AirflowException as err:
            hard = _no_retry_on_bad_input(err, remote_pod)
            if hard is err:
                raise
            raise hard from err

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        """Deferrable path: the trigger's failure event is mapped like a sync failure."""
        try:
            return super().trigger_reentry(context, event)
        except AirflowException as err:
            hard = _no_retry_on_bad_input(err, self.pod)
            if hard is err:
                raise
            raise hard from err


def _no_retry_on_bad_input(err: AirflowException, pod: k8s.V1Pod | None) -> AirflowException:
    """The exception to raise for a failed pod: hard fail when the worker said "bad input"."""
    if isinstance(err, AirflowFailException) or type(err).__name__ == "AirflowSkipException":
        return err
    if _exit_code(pod) == EXIT_BAD_INPUT:
        return AirflowFailException(f"faceworker rejected the input (exit 2, not retried): {err}")
    return err


def _exit_code(remote_pod: k8s.V1Pod | None) -> int | None:
    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
    for status in statuses:
        if status.name == BASE_CONTAINER and status.state and status.state.terminated:
            return status.state.terminated.exit_code
    return None
