"""Run one DAG run on this machine with its ready tasks in parallel, through Airflow.

`DAG.test()` (what `airflow dags test` runs) executes one task instance at a time, so the mapped
swap chunks of an order ran one after another and one core idled. This is the same loop — Airflow
decides what is ready (`DagRun.update_state`), each task instance runs through Airflow's own
in-process task runner (the one `DAG.test()` uses: Params, XCom, callbacks, listeners, retries,
deferral) — with a scheduler's two limits added: at most `parallelism` task instances at once, and
never more than the open slots of a task's pool (`gpu_swaps` for the swaps), counted in the metadata
DB exactly as the scheduler counts them, so two `order run`s on one machine share the pool.

Each task instance runs in a forked child of this process: the DAG is parsed and the heavy modules
(`prewarm`) imported once, here, and every task inherits them instead of paying the imports again.
Every fork of this process (task children, the OpenLineage listener's pool workers) dies with its
parent (faceworker.lifeline), so a killed run leaves no process behind.
A task instance is set QUEUED before its child starts and is never handed to a second child while
one runs, so no chunk is ever run twice at once. A child that dies without finishing its task
instance (killed, crashed) fails that try through Airflow's own failure handling (retries apply).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

#: how long the loop waits for a child to finish before re-checking the run (retries, deferrals)
IDLE_POLL_S = 1.0
CHILD_POLL_S = 0.02


def _sync_dag(dag: Any, session: Any) -> None:
    """Write the DAG (and its bundle) to the metadata DB so task instances get a DAG version,
    as `DAG.test()` does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.models.dag_version import DagVersion

    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    bundles = list(manager.get_all_dag_bundles())
    current = DagModel.get_current(dag.dag_id, session=session)
    owning = [b for b in bundles if current is not None and b.name == current.bundle_name]
    for bundle in owning or bundles:
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
        if DagVersion.get_version(dag.dag_id):
            return


def _create_run(dag: Any, run_id: str, conf: dict[str, Any], session: Any) -> tuple[Any, Any]:
    """(scheduler view of the DAG, the new DagRun `run_id` with `conf`)."""
    from airflow.models.dagrun import get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.types import DagRunTriggeredByType

    dag.validate()
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    now = timezone.utcnow()
    SerializedDAG.clear_dags(dags=[scheduler_dag], start_date=now, end_date=now, dag_run_state=False)
    _sync_dag(dag, session)
    # callbacks are not serialised; the run's own success/failure callbacks come from the real DAG
    scheduler_dag.on_success_callback = dag.on_success_callback  # type: ignore[attr-defined]  # set for this run only
    scheduler_dag.on_failure_callback = dag.on_failure_callback  # type: ignore[attr-defined]  # set for this run only
    interval = coerce_to_core_timetable(dag.timetable).infer_manual_data_interval(run_after=now)
    run = get_or_create_dagrun(
        dag=scheduler_dag, run_id=run_id, logical_date=now, data_interval=interval, run_after=now,
        conf=conf, triggered_by=DagRunTriggeredByType.TEST, triggering_user_name="facefactory",
        start_date=now, session=session,
    )
    return scheduler_dag, run


def _pool_has_room(ti: Any, session: Any) -> bool:
    """Whether the task instance's pool has `pool_slots` open right now (all runs on this DB)."""
    from airflow.models.pool import Pool

    pool = Pool.get_pool(ti.pool, session=session)
    if pool is None or pool.slots < 0:  # unknown pool: the scheduler would not run it either
        return pool is not None
    return pool.slots - pool.occupied_slots(session=session) >= (ti.pool_slots or 1)


def _run_child(ti: Any, task: Any) -> None:
    """In the forked child: run the task instance with Airflow's in-process runner, then exit."""
    code = 0
    try:
        from airflow import settings
        from airflow.sdk.definitions.dag import _run_task

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if settings.engine is not None:
            settings.engine.dispose(close=False)  # the parent's DB connections stay the parent's
        _run_task(ti=ti, task=task, run_triggerer=True)
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's loop
        log.exception("task runner child failed for %s", ti)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _fail_orphan(ti: Any, scheduler_dag: Any, status: int, session: Any) -> None:
    """The child ended without finishing its task instance: fail this try (retries apply)."""
    from airflow.utils.state import TaskInstanceState

    ti.refresh_from_db(session=session)
    if ti.state not in (TaskInstanceState.QUEUED, TaskInstanceState.RUNNING):
        return
    how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
           else f"exited with code {os.waitstatus_to_exitcode(status)}")
    ti.task = scheduler_dag.get_task(ti.task_id)
    ti.handle_failure(f"the task process {how} before finishing the task", session=session)
    session.commit()


def _reap(children: dict[int, Any], scheduler_dag: Any, session: Any, wait_s: float) -> None:
    """Collect finished children, waiting up to `wait_s` for the first."""
    deadline = time.monotonic() + wait_s
    finished = False
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if finished or time.monotonic() >= deadline:
                break
            time.sleep(CHILD_POLL_S)
            continue
        ti = children.pop(pid, None)
        finished = True
        if ti is not None:
            _fail_orphan(ti, scheduler_dag, status, session)


class _SharedExecutionAPI:
    """Airflow's in-process Execution API app, built once per process and inherited by forks.

    Every task's runner talks to the metadata DB through that app, and a process builds it on
    first use: ~3 s of imports, then cadwyn generates its versioned routes on the first request
    (~3-5 CPU-s on this machine, measured with cProfile in the app's event loop). Built here, each
    child forked afterwards gets a ready copy (the parent never starts its lifespan or event loop;
    each child does, once, in its own copy) and a task starts in milliseconds. The first task is
    forked before the parent builds it: that child builds its own on the other core meanwhile,
    instead of waiting. Relies on `supervisor.in_process_api_server`,
    `InProcessExecutionAPI(app=...)` and cadwyn's `_cadwyn_initialize` (Airflow 3.3 / cadwyn,
    pinned); without them children fall back to Airflow's own.

    The app is built for the one API version this process's task runners speak
    (`_only_our_api_version`): cadwyn generates every route once per version it knows (ten), and
    the in-process app never serves another client."""

    def __init__(self) -> None:
        self.app: Any = None
        self.failed = False

    def install(self) -> None:
        """Make this process (and its forks) get the API from `server()`."""
        from airflow.sdk.execution_time import supervisor

        self._airflow_default = supervisor.in_process_api_server
        supervisor.in_process_api_server = self.server  # type: ignore[assignment]  # was lru_cache'd
        _memoise_fastapi_dependants()

    def build(self) -> None:
        """Build the app now (in the parent, so later forks inherit it)."""
        if self.app is not None or self.failed:
            return
        try:
            from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

            with _only_our_api_version() as latest_only:
                app = InProcessExecutionAPI().app
                _initialise_versioned_routes(app, latest_only)
            self.app = app
        except Exception:  # noqa: BLE001 - only a speed-up
            self.failed = True
            log.warning("could not pre-build the in-process Execution API", exc_info=True)

    def server(self) -> Any:
        from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

        self.build()
        if self.app is None:
            return self._airflow_default()
        return InProcessExecutionAPI(app=self.app)


def _memoise_fastapi_dependants() -> None:
    """Build each FastAPI dependency description once per process, not on every request.

    The in-process app overrides its auth dependencies (`dependency_overrides`), and with any
    override set FastAPI rebuilds every sub-dependency of the route from its signature on every
    request (`solve_dependencies` -> `get_dependant`): ~1.5 CPU-s of a short order's API calls on
    this machine (py-spy), and API calls are on every task's start and end. The description
    depends only on the arguments (the callable, its path, name and scopes), and FastAPI reuses
    the ones it builds at route creation for every request the same way, so the rebuilt ones can
    be reused too. Unhashable arguments are passed through."""
    from fastapi.dependencies import utils

    original = utils.get_dependant
    if getattr(original, "facefactory_memoised", False):
        return
    built: dict[tuple[Any, ...], Any] = {}

    @functools.wraps(original)
    def get_dependant(**kwargs: Any) -> Any:
        try:
            key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
            hash(key)
        except TypeError:
            return original(**kwargs)
        if key not in built:
            built[key] = original(**kwargs)
        return built[key]

    get_dependant.facefactory_memoised = True  # type: ignore[attr-defined]  # a marker on our wrapper
    utils.get_dependant = get_dependant


@contextlib.contextmanager
def _only_our_api_version() -> Iterator[bool]:
    """While building the app: Airflow's version bundle cut down to the Task SDK's own version.

    In-process, the only client is this Airflow's Task SDK, which always sends its `API_VERSION`
    (the newest version of the bundle; checked here, else the full bundle is kept). The newest
    version's schemas are the head schemas, so no migration is lost; generating the routes of the
    nine older versions was ~85 % of the app's build (~4 CPU-s, cProfile)."""
    from airflow.api_fastapi.execution_api import versions
    from airflow.sdk.api.datamodels._generated import API_VERSION
    from cadwyn import HeadVersion, Version, VersionBundle

    full = versions.bundle
    if str(full.versions[0].value) != API_VERSION:
        yield False
        return
    versions.bundle = VersionBundle(HeadVersion(), Version(API_VERSION))
    try:
        yield True
    finally:
        versions.bundle = full


def _initialise_versioned_routes(app: Any, latest_only: bool = False) -> None:
    """Run cadwyn's lazy route generation now, for the app and every app mounted in it.

    `latest_only`: the app knows only the newest version, so the routes kept solely for older
    clients (cadwyn's `only_exists_in_older_versions`) are dropped first; cadwyn refuses to build
    a bundle in which no older version restores them."""
    from cadwyn import Cadwyn
    from cadwyn.route_generation import _DELETED_ROUTE_TAG
    from fastapi.routing import APIRoute

    todo, seen = [app], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Cadwyn) and not current._cadwyn_initialized:
            if latest_only:
                router = current._latest_version_router
                router.routes = [r for r in router.routes
                                 if not (isinstance(r, APIRoute) and _DELETED_ROUTE_TAG in r.tags)]
            current._cadwyn_initialize()
        todo.extend(r.app for r in getattr(current, "routes", None) or [] if getattr(r, "app", None) is not None)


def _prewarm(name: str) -> None:
    """Import one module; "module:function" also calls that function (e.g. a library's own lazy
    imports, such as facefactory.quality.suite:preload for Great Expectations)."""
    module_name, _, call = name.partition(":")
    try:
        module = importlib.import_module(module_name)
        if call:
            getattr(module, call)()
    except Exception:  # noqa: BLE001 - only a speed-up: the task imports it itself otherwise
        log.warning("could not pre-import %s", name, exc_info=True)


def run_dag(dag: Any, *, run_id: str, conf: dict[str, Any], parallelism: int,
            prewarm: Iterable[str] = ()) -> Any:
    """Run `dag` once as `run_id` with `conf`; returns the finished DagRun."""
    from airflow import settings
    from airflow.sdk import timezone
    from airflow.utils.state import DagRunState, TaskInstanceState

    if settings.Session is None:
        raise RuntimeError("Airflow's ORM is not configured")
    from faceworker.lifeline import bind_forks_to_parent

    bind_forks_to_parent()  # task children and every pool worker forked below die with this process
    session = settings.Session()
    scheduler_dag, run = _create_run(dag, run_id, conf, session)
    api = _SharedExecutionAPI()
    api.install()  # built once (below, after the first fork), not by every task
    children: dict[int, Any] = {}
    warm_up = list(prewarm)  # imported one at a time while tasks run, checking on them in between
    seen: set[tuple[str, int, Any]] = set()  # (task, map index, state) of the last round
    try:
        while run.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = timezone.utcnow()
            session.commit()
            running = {ti.key for ti in children.values()}
            tis = run.get_task_instances(session=session)
            states = {(ti.task_id, ti.map_index, ti.state) for ti in tis}
            changed, seen = states != seen, states
            ready = sorted(
                (ti for ti in tis if ti.state == TaskInstanceState.SCHEDULED and ti.key not in running),
                key=lambda ti: (-(ti.priority_weight or 0), ti.task_id, ti.map_index),
            )
            for ti in ready:
                if len(children) >= parallelism:
                    break
                if not _pool_has_room(ti, session):
                    continue
                ti.set_state(TaskInstanceState.QUEUED, session=session)
                session.commit()
                pid = os.fork()
                if pid == 0:
                    _run_child(ti, dag.task_dict[ti.task_id])
                children[pid] = ti
                log.info("started %s (pid %d, %d running)", ti.key, pid, len(children))
            if children:
                api.build()  # once: the first task builds its own meanwhile, later ones inherit this
            if children and warm_up:
                _prewarm(warm_up.pop(0))
                _reap(children, scheduler_dag, session, wait_s=0.0)
            elif children:
                _reap(children, scheduler_dag, session, wait_s=IDLE_POLL_S)
            elif not changed:  # nothing ran and nothing moved: e.g. a retry delay
                time.sleep(IDLE_POLL_S)
            # else: go round at once (a skipped task, say, makes its downstream ready next round)
            run.refresh_from_db(session=session)
    finally:
        for pid in list(children):  # interrupted: take the children down with us
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            children.pop(pid, None)
    return run
