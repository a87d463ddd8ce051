"""`facefactory order run`: run one order on the embedded default as a real DAG run.

The run goes through Airflow (`facefactory.parallel_run`: `DAG.test()`'s scheduling loop, Params
validation, task runner, XCom and OpenLineage listener, with ready tasks run in parallel up to
`[core] parallelism` and each pool's slots, as a scheduler would) with the order as conf and the
run id `order__<order_id>`. The published URI is printed as the LAST line of output; on failure
the exit code is non-zero and the failing task and its reason are printed.

A failed order is resumed by running the same command again: the failed run is replaced and
the chunks whose `done.json` exists are not recomputed (the engine's checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from facefactory import settings as ff_settings
from facefactory.deadlines import without_deadline
from facefactory.operators import names
from facefactory.operators.order_schema import ORDER_FIELDS, coerce_field, run_id_for

DAG_ID = names.DAG_ID
EXIT_FAILED = 1
EXIT_INVALID = 2
#: modules the order's tasks import lazily (Great Expectations, pandas, matplotlib, boto3): imported
#: once by `order run` while ingest runs, inherited by every forked task (facefactory.parallel_run).
#: One import at a time, the run checking on its tasks in between, so a task that ends during an
#: import waits for that one only: Great Expectations first (its two heaviest dependencies on
#: their own, ~1.2 of its ~2.5 s), so that with the Execution API's build it fits in the time
#: ingest takes; the lighter ones run while `chunk` does.
PREWARM = ("scipy.stats", "altair", "facefactory.quality.suite:preload", "facefactory.quality.gate",
           "facefactory.quality.report", "facefactory.quality.plots:preload", "facefactory.operators.publish",
           "facefactory.operators.s3.workarea")


def register(subparsers: Any) -> None:
    order = subparsers.add_parser("order", help="run customer orders")
    sub = order.add_subparsers(dest="order_command", required=True)
    run = sub.add_parser("run", help="run one order end to end on the embedded default")
    run.add_argument("--source", required=True, help="face photo URI (file:// under an input root, or s3://)")
    run.add_argument("--target", required=True, help="target video URI")
    run.add_argument("--order-id", default=None, help="order id (default: cli-<time>-<random>)")
    run.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help=f"any order field ({', '.join(k for k in ORDER_FIELDS if k not in ('source', 'target'))})",
    )
    run.set_defaults(func=cmd_run)


def coerce(key: str, raw: str) -> Any:
    """Turn `--set key=value` text into the JSON type the order schema wants."""
    return coerce_field(key, raw)


def build_conf(args: argparse.Namespace) -> dict[str, Any]:
    """The order conf from the command line, validated against the order schema."""
    from facefactory.operators.order_check import order_problems

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    conf: dict[str, Any] = {
        "order_id": args.order_id or f"cli-{stamp}-{secrets.token_hex(2)}",
        "source": args.source,
        "target": args.target,
    }
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        conf[key.strip()] = coerce(key.strip(), value.strip())
    for path_key in ("source", "target", "reference", "publish_to"):
        value = conf.get(path_key)
        if isinstance(value, str) and value.startswith("/"):
            conf[path_key] = Path(value).as_uri()  # plain paths are accepted, sent as file://
    if problems := order_problems(conf):
        raise ValueError("; ".join(map(str, problems)))  # the one refusal (facefactory.operators.order_check)
    return conf


def ensure_embedded_airflow() -> Path:
    """AIRFLOW_HOME with the repo's config, a migrated DB and the gpu_swaps pool (idempotent)."""
    settings = ff_settings.load()
    home = ff_settings.airflow_home()
    os.environ["AIRFLOW_HOME"] = str(home)
    if not (home / "airflow.cfg").exists():
        ff_settings.write_airflow_cfg(home, settings.home)
    settings.lineage_log.parent.mkdir(parents=True, exist_ok=True)
    for root in settings.input_roots:
        root.mkdir(parents=True, exist_ok=True)
    marker = home / ".facefactory-db-ready"
    if not marker.exists():
        airflow = str(Path(sys.executable).with_name("airflow"))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [airflow, "pools", "set", "gpu_swaps", str(settings.swap_slots), "GPU swap slots (one chunk each)"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )
        marker.write_text(datetime.now(UTC).isoformat())
    return home


def _load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ff_settings.REPO_ROOT / "dags" / f"{DAG_ID}.py"))
    if DAG_ID not in bag.dags:
        raise RuntimeError(f"{DAG_ID} failed to import: {bag.import_errors}")
    return bag.dags[DAG_ID]


def _existing_run(run_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))


def _delete_run(run_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))


def published_uri(run_id: str) -> str | None:
    """The `publish` task's XCom (the published URI) of a run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == DAG_ID, XComModel.run_id == run_id,
                XComModel.task_id == "publish", XComModel.key == "return_value",
            )
        )
    if isinstance(value, str) and value.startswith('"'):
        value = json.loads(value)  # older XCom rows hold JSON text
    return value if isinstance(value, str) else None


def failed_tasks(run_id: str) -> list[tuple[str, int, str]]:
    """(task_id, map_index, state) of the run's unsuccessful task instances."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id,
                TaskInstance.state.in_(["failed", "upstream_failed"]),
            )
        ).all()
    return [(r[0], r[1], str(r[2])) for r in rows]


def failure_reasons(order_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's failed tries recorded under `<order>/failures/` (the tasks' failure callback)."""
    from facefactory.operators import config, media

    cfg = config.run_time(use_variables=False)
    try:
        with media.worker_env(cfg):
            records = media.failure_records(media.area(cfg, order_id))
    except Exception as exc:  # noqa: BLE001 - the failure itself is what matters
        return [{"task_id": "?", "error": f"(could not read the failure records: {exc})", "run_id": run_id}]
    return [r for r in records if r.get("run_id") == run_id]


class SchedulerRunning(RuntimeError):
    """`order run` refused: a live scheduler shares this Airflow database."""


def live_scheduler() -> Any | None:
    """The scheduler job heartbeating on this Airflow database, if any (e.g. `facefactory up`)."""
    from airflow.jobs.job import most_recent_job

    job = most_recent_job("SchedulerJob")
    return job if job is not None and job.is_alive() else None


def check_same_inputs(conf: dict[str, Any]) -> None:
    """Refuse (facefactory.operators.order_inputs.InputsChanged) an order id whose recorded inputs differ."""
    from facefactory.operators import config, media
    from facefactory.operators.order_inputs import check_rerun

    order = {name: conf.get(name, spec.get("default")) for name, spec in ORDER_FIELDS.items()}
    cfg = config.run_time(use_variables=False)
    with media.worker_env(cfg):
        check_rerun(order, cfg, media.area(cfg, conf["order_id"]))


def run_order(conf: dict[str, Any]) -> tuple[str, Any, bool]:
    """Run the order as DAG run `order__<order_id>`; returns (run_id, final state, ran).

    An order whose run already succeeded is not run again (ran=False). Refused while a scheduler
    runs on the same database: `facefactory.parallel_run` runs the tasks from this process, and that scheduler
    would pick up the same run's tasks too (and replacing a failed run could pull it from under
    a retry the scheduler is running)."""
    run_id = run_id_for(conf["order_id"])
    job = live_scheduler()
    if job is not None:
        raise SchedulerRunning(
            f"a scheduler is running on this Airflow database (job {job.id} on {job.hostname}, "
            f"last heartbeat {job.latest_heartbeat:%H:%M:%S} UTC), e.g. from `facefactory up`; it would "
            "run this order's tasks as well. Hand the order to it instead: `facefactory submit "
            f"--source {conf['source']} --target {conf['target']} --order-id {conf['order_id']} --wait` "
            "(or the UI form, docs/triggering.md), or stop it and run this command again"
        )
    existing = _existing_run(run_id)
    if existing is not None:
        check_same_inputs(conf)  # never resume, nor call "done", an id with other inputs
        if str(existing.state) == "success":
            return run_id, existing.state, False
        print(f"resuming order {conf['order_id']}: replacing {existing.state} run {run_id} "
              "(chunks with done.json are not recomputed)", flush=True)
        _delete_run(run_id)
    from airflow.configuration import conf as airflow_conf

    from facefactory.parallel_run import run_dag

    dag = _load_dag()
    dr = run_dag(dag, run_id=run_id, conf=conf, prewarm=PREWARM,
                 parallelism=max(1, airflow_conf.getint("core", "parallelism")))
    return run_id, dr.state, True


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, prepare the embedded Airflow, then run the order in a child process whose
    AIRFLOW_HOME is set before Airflow is first imported."""
    try:
        conf = build_conf(args)
    except (ValueError, TypeError) as exc:
        print(f"invalid order: {exc}", file=sys.stderr)
        return EXIT_INVALID
    home = ensure_embedded_airflow()
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    print(without_deadline(env), file=sys.stderr, flush=True)  # facefactory.deadlines: why
    with tempfile.TemporaryDirectory(prefix="facefactory-order-") as tmp:
        result_file = Path(tmp) / "result.json"
        from faceworker.lifeline import die_with_parent_preexec

        proc = subprocess.run(  # the run dies with this command (and takes its tasks along)
            [sys.executable, "-m", "facefactory.commands.order", json.dumps(conf), str(result_file)],
            env=env, check=False, preexec_fn=die_with_parent_preexec(),
        )
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    # Printed here, after the child (and any late Airflow/OpenLineage log lines) has exited,
    # so the published URI really is the last line.
    for line in result.get("messages", []):
        print(line, file=sys.stderr)
    if proc.returncode == 0 and result.get("uri"):
        print(result["summary"], flush=True)
        print(result["uri"], flush=True)
        return 0
    return proc.returncode or EXIT_FAILED


class OrderRunner:
    """The component named to Airflow's listeners when this process stops."""


def exit_without_finalising(code: int) -> NoReturn:
    """End the run's process once its listeners are done, skipping interpreter finalisation.

    Tearing down Airflow's module state at exit took ~2 s (C-level, measured with faulthandler)
    after every order. The listeners are stopped first, as Airflow's task runner stops them: the
    OpenLineage listener's `before_stopping` waits for its process pool to deliver the run's last
    event and stop its workers (with a bare os._exit they were orphaned, holding stdout open).
    """
    try:
        from airflow.listeners.listener import get_listener_manager

        get_listener_manager().hook.before_stopping(component=OrderRunner())
    except Exception as exc:  # noqa: BLE001 - the order's result is already written; still exit
        print(f"facefactory: stopping Airflow's listeners failed: {exc}", file=sys.stderr)
    try:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run_in_airflow(conf: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Child process: run the order; returns (exit code, result for the parent)."""
    started = time.monotonic()
    try:
        run_id, state, ran = run_order(conf)
    except Exception as exc:  # noqa: BLE001 - e.g. ParamValidationError: report, do not trace
        message = f"order {conf['order_id']} was refused: {type(exc).__name__}: {exc}"
        invalid = ("Param" in type(exc).__name__ or isinstance(exc, SchedulerRunning)
                   or type(exc).__name__ == "InputsChanged")
        if type(exc).__name__ == "InputsChanged":
            message = f"order {conf['order_id']} was refused: {exc}"
        return (EXIT_INVALID if invalid else EXIT_FAILED), {"messages": [message]}
    took = time.monotonic() - started
    if str(state) != "success":
        messages = [f"order {conf['order_id']} FAILED (run {run_id}, {took:.1f}s)"]
        for task_id, map_index, ti_state in failed_tasks(run_id):
            label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            messages.append(f"  task {label}: {ti_state}")
        for reason in failure_reasons(conf["order_id"], run_id)[-3:]:
            index = reason.get("map_index")
            label = reason["task_id"] if index is None or index < 0 else f"{reason['task_id']}[{index}]"
            messages.append(f"  reason ({label}): {reason['error']}")
        return EXIT_FAILED, {"run_id": run_id, "state": str(state), "messages": messages}
    uri = published_uri(run_id)
    if not uri:
        return EXIT_FAILED, {"messages": [f"order {conf['order_id']} succeeded but published nothing"]}
    summary = (f"order {conf['order_id']} published in {took:.1f}s (run {run_id})" if ran
               else f"order {conf['order_id']} was already published by run {run_id}")
    return 0, {"run_id": run_id, "state": "success", "uri": uri, "summary": summary}


if __name__ == "__main__":
    from faceworker.lifeline import bind_forks_to_parent

    bind_forks_to_parent()  # before Airflow starts any pool: every fork dies with this run
    code, payload = run_in_airflow(json.loads(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(payload))
    exit_without_finalising(code)
