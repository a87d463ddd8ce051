"""The local runner runs exactly the rendered pod's container, and maps exit codes for retries.

A small stand-in `faceworker` (FACEFACTORY_WORKER_BIN) records the argv and env it was started
with, so the assertions compare what really ran against the V1Pod the operator would submit.
"""
from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from facefactory.operators.face_swap_pod import (
    FaceSwapPodOperator,
    WorkerFailed,
    local_invocation,
    swap_arguments,
)
from facefactory.operators.pod_spec import XCOM_FILE

FAKE_WORKER = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
def val(flag):
    return args[args.index(flag) + 1]
with open(os.environ["FAKE_RECORD"], "w") as fh:
    json.dump({{"argv": sys.argv, "env": dict(os.environ)}}, fh)
chunk = int(val("--chunk"))
for frame in range(int(val("--start")), int(val("--end")), 4):
    print(json.dumps({{"level": "info", "event": "frame", "chunk": chunk, "frame": frame}}), file=sys.stderr)
code = int(os.environ.get("FAKE_EXIT", "0"))
if code:
    print(json.dumps({{"level": "error", "event": "failed", "error": "no face in source"}}), file=sys.stderr)
    sys.exit(code)
result = {{"order": val("--order"), "chunk": chunk, "start": int(val("--start")),
          "end": int(val("--end")), "frames": int(val("--end")) - int(val("--start"))}}
if os.environ.get("FAKE_XCOM_MISMATCH"):
    result_file = dict(result, frames=-1)
else:
    result_file = result
with open(val("--xcom-file"), "w") as fh:
    json.dump(result_file, fh)
print("some chatter")
print(json.dumps(result))
"""

ORDER = {"order_id": "o-1", "swapper": "classic", "enhancer": "none", "face_selector": "one",
         "identity_weight": 0.75}
CHUNK = {"chunk": 2, "start": 192, "end": 288}


@pytest.fixture()
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "faceworker"
    script.write_text(FAKE_WORKER.format(python=sys.executable))
    script.chmod(0o755)
    record = tmp_path / "record.json"
    monkeypatch.setenv("FACEFACTORY_WORKER_BIN", str(script))
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("FACEFACTORY_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("FAKE_EXIT", raising=False)
    monkeypatch.delenv("FACEFACTORY_RUNNER", raising=False)
    return record


def _operator(tmp_path: Path, **kwargs: object) -> FaceSwapPodOperator:
    args = swap_arguments(str(tmp_path / "work"), ORDER["order_id"], CHUNK, ORDER, {"blend": "feather"})
    return FaceSwapPodOperator(task_id="swap", arguments=args, **kwargs)


def test_swap_arguments_follow_the_cli_contract() -> None:
    args = swap_arguments("s3://b/w", "o-1", CHUNK, ORDER, {"b": 1, "a": 2}, model_dir="/m")
    assert args == [
        "swap-chunk", "--work", "s3://b/w", "--order", "o-1", "--chunk", "2",
        "--start", "192", "--end", "288", "--swapper", "classic", "--enhancer", "none",
        "--face-selector", "one", "--identity-weight", "0.75", "--options", '{"a":2,"b":1}',
        "--model-dir", "/m", "--xcom-file", XCOM_FILE,
    ]
    assert "--options" not in swap_arguments("w", "o", CHUNK, {})
    ref = swap_arguments("w", "o", CHUNK, {"face_selector": "reference", "reference": "s3://b/r.jpg"})
    assert ref[ref.index("--reference") + 1] == "input/reference_embedding.npy"
    assert "--reference" not in args


def test_local_runner_runs_exactly_the_pod_container(tmp_path: Path, fake_worker: Path) -> None:
    op = _operator(tmp_path, runner="local")
    pod = op.build_pod_request_obj(dry_run=True)
    container = pod.spec.containers[0]
    assert container.command == ["faceworker"]

    result = op.execute(context=None)

    ran = json.loads(fake_worker.read_text())
    argv = ran["argv"]
    assert argv[0] == os.environ["FACEFACTORY_WORKER_BIN"]
    xcom_at = container.args.index("--xcom-file") + 1
    expected = list(container.args)
    expected[xcom_at] = argv[1:][xcom_at]  # the one argv mapping: sidecar path -> temp file
    assert argv[1:] == expected
    assert argv[1:][xcom_at] != XCOM_FILE and argv[1:][xcom_at].endswith("/return.json")
    pod_env = {e.name: e.value for e in container.env}
    assert pod_env["FACEFACTORY_MODEL_DIR"] == "/models"
    for name, value in pod_env.items():
        want = os.environ["FACEFACTORY_MODEL_DIR"] if name == "FACEFACTORY_MODEL_DIR" else value
        assert ran["env"][name] == want, name
    assert ran["env"]["FACEFACTORY_WORK_ROOT"] == str(tmp_path / "work")
    assert result == {"order": "o-1", "chunk": 2, "start": 192, "end": 288, "frames": 96}


def test_local_invocation_only_maps_xcom_and_model_dir(tmp_path: Path, fake_worker: Path) -> None:
    pod = _operator(tmp_path).build_pod_request_obj(dry_run=True)
    argv, env = local_invocation(pod, "/elsewhere/r.json", "/local/models", base_env={"PATH": "/bin"})
    container = pod.spec.containers[0]
    assert argv[1:-1] == container.args[:-1] and argv[-1] == "/elsewhere/r.json"
    assert env.pop("PATH") == "/bin"
    assert env == {e.name: ("/local/models" if e.name == "FACEFACTORY_MODEL_DIR" else e.value)
                   for e in container.env}


def test_stderr_progress_reaches_the_task_log(tmp_path: Path, fake_worker: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    _operator(tmp_path).execute(context=None)
    out = capfd.readouterr()
    logged = [ln for ln in (out.out + out.err).splitlines() if '"event": "frame"' in ln]
    frames = [int(re.search(r'"frame": (\d+)', ln).group(1)) for ln in logged]
    assert frames == list(range(192, 288, 4))


def test_exit_2_fails_without_retry(tmp_path: Path, fake_worker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXIT", "2")
    with pytest.raises(AirflowFailException, match="no face in source"):
        _operator(tmp_path).execute(context=None)


@pytest.mark.parametrize("code", [1, 75, 137])
def test_other_exit_codes_are_retried(tmp_path: Path, fake_worker: Path, monkeypatch: pytest.MonkeyPatch,
                                      code: int) -> None:
    monkeypatch.setenv("FAKE_EXIT", str(code))
    with pytest.raises(AirflowException) as info:
        _operator(tmp_path).execute(context=None)
    assert not isinstance(info.value, AirflowFailException)
    assert isinstance(info.value, WorkerFailed) and f"exited {code}" in str(info.value)


def test_xcom_file_and_stdout_must_agree(tmp_path: Path, fake_worker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_XCOM_MISMATCH", "1")
    with pytest.raises(WorkerFailed, match="differ"):
        _operator(tmp_path).execute(context=None)


def test_runner_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op = _operator(tmp_path)
    assert op.resolved_runner() == "local"
    monkeypatch.setenv("FACEFACTORY_RUNNER", "kubernetes")
    assert op.resolved_runner() == "kubernetes"
    monkeypatch.setenv("FACEFACTORY_RUNNER", "docker")
    with pytest.raises(AirflowFailException, match="unknown runner"):
        op.resolved_runner()


def test_kubernetes_exit_2_is_not_retried(tmp_path: Path) -> None:
    """KPO's cleanup raises a plain AirflowException for a failed pod; exit 2 becomes a hard fail."""
    from kubernetes.client import models as k8s

    def failed_pod(code: int) -> k8s.V1Pod:
        terminated = k8s.V1ContainerStateTerminated(exit_code=code)
        status = k8s.V1ContainerStatus(name="base", image="i", image_id="", ready=False, restart_count=0,
                                       state=k8s.V1ContainerState(terminated=terminated))
        return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p", namespace="n"),
                         status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]))

    op = _operator(tmp_path, on_finish_action="keep_pod", do_xcom_push=False)
    # the Kubernetes API calls of KPO's cleanup (no cluster here); its failure logic runs for real
    op.patch_already_checked = lambda *a, **k: None
    op.is_istio_enabled = lambda pod: False
    op.process_pod_deletion = lambda *a, **k: True
    with pytest.raises(AirflowFailException, match="exit 2"):
        op.cleanup(pod=failed_pod(2), remote_pod=failed_pod(2))
    with pytest.raises(AirflowException) as info:
        op.cleanup(pod=failed_pod(75), remote_pod=failed_pod(75))
    assert not isinstance(info.value, AirflowFailException)


MAPPED_DAG = textwrap.dedent(
    """
    import os
    from datetime import datetime
    from airflow.sdk import dag, task
    from facefactory.operators.face_swap_pod import FaceSwapPodOperator, swap_arguments

    @dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    def mapped_swap():
        @task
        def plan() -> list[list[str]]:
            chunks = [{"chunk": i, "start": 32 * i, "end": 32 * (i + 1)} for i in range(3)]
            work = os.environ["MAPPED_WORK"]
            return [swap_arguments(work, "o-1", c, {"swapper": "classic"}) for c in chunks]

        FaceSwapPodOperator.partial(task_id="swap").expand(arguments=plan())

    mapped_swap()
    """
)

READ_XCOM = textwrap.dedent(
    """
    import json
    from airflow.models import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    with create_session() as s:
        run = s.query(DagRun).filter_by(dag_id="mapped_swap").one()
        rows = s.query(XComModel).filter_by(run_id=run.run_id, task_id="swap", key="return_value").all()
        out = {str(r.map_index): r.value for r in rows}
        out["state"] = str(run.state)
        print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_mapped_swap_runs_locally_in_a_dag_run(tmp_path: Path, fake_worker: Path) -> None:
    """`.partial().expand(arguments=...)` in a real `airflow dags test` run: one subprocess per chunk."""
    import subprocess

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mapped_swap.py").write_text(MAPPED_DAG)
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow"), FACEFACTORY_HOME=str(tmp_path / "ff"),
               AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               MAPPED_WORK=str(tmp_path / "work"))
    airflow = str(Path(sys.executable).parent / "airflow")
    repo = Path(__file__).parents[2]
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    run = subprocess.run([airflow, "dags", "test", "mapped_swap"], env=env, capture_output=True, text=True,
                         timeout=240, cwd=repo)
    read = subprocess.run([sys.executable, "-c", READ_XCOM], env=env, capture_output=True, text=True,
                          timeout=60, cwd=repo)
    line = next((ln for ln in read.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, run.stdout[-3000:] + run.stderr[-3000:] + read.stderr[-2000:]
    got = json.loads(line[len("RESULT "):])
    assert got.pop("state").endswith("success"), run.stdout[-3000:]
    got = {k: json.loads(v) if isinstance(v, str) else v for k, v in got.items()}
    assert {k: (v["chunk"], v["frames"]) for k, v in got.items()} == {"0": (0, 32), "1": (1, 32), "2": (2, 32)}


def test_deferrable_reentry_exit_2_is_not_retried(tmp_path: Path) -> None:
    """The trigger's failure event for a pod whose worker exited 2 is a hard failure too."""
    from kubernetes.client import models as k8s

    terminated = k8s.V1ContainerStateTerminated(exit_code=2)
    status = k8s.V1ContainerStatus(name="base", image="i", image_id="", ready=False, restart_count=0,
                                   state=k8s.V1ContainerState(terminated=terminated))
    op = _operator(tmp_path)
    op.pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p", namespace="n"),
                       status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]))

    def failing_reentry(self: object, context: object, event: object) -> None:
        raise AirflowException("Trigger emitted a failed event")

    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    original = KubernetesPodOperator.trigger_reentry
    KubernetesPodOperator.trigger_reentry = failing_reentry
    try:
        with pytest.raises(AirflowFailException, match="exit 2"):
            op.trigger_reentry(context={}, event={"status": "failed"})
        op.pod.status.container_statuses[0].state.terminated.exit_code = 75
        with pytest.raises(AirflowException) as info:
            op.trigger_reentry(context={}, event={"status": "failed"})
        assert not isinstance(info.value, AirflowFailException)
    finally:
        KubernetesPodOperator.trigger_reentry = original
