"""`facefactory up`: the embedded Airflow in the foreground, Ctrl-C stops all of it.

Starts api-server (REST API + UI), scheduler (LocalExecutor), dag-processor and triggerer with
AIRFLOW_HOME=$FACEFACTORY_HOME/airflow, prints the UI URL and the login, and supervises them: a
component that exits is restarted (at most 5 times in 10 minutes, facefactory.supervisor), the
others keep running. Ctrl-C or SIGTERM (or a component past its restart budget) stops every
component's process group, children included.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facefactory import deadlines, settings
from facefactory.airflow_env import AirflowEnv, embedded_airflow_home, facefactory_home
from facefactory.supervisor import RestartBudget, give_up_line, restart_line


def cmd_up(args: argparse.Namespace) -> int:
    if getattr(args, "profile", "embedded") == "cluster":
        return cmd_up_cluster(args)
    env = AirflowEnv(
        airflow_home=Path(args.airflow_home or embedded_airflow_home()),
        ff_home=facefactory_home(),
        host=args.host,
        port=args.port,
        password=args.password or settings.raw("FACEFACTORY_AIRFLOW_PASSWORD") or None,
    )
    print(f"facefactory: preparing Airflow in {env.airflow_home} ...", flush=True)

    def start() -> tuple[AirflowEnv, str]:
        env.prepare()
        env.start()
        env.wait_ready(timeout=args.ready_timeout)
        user, password = env.credentials()
        return env, (f"\nAirflow UI:   {env.url}\n"
                     f"login:        user {user!r}, password {password!r}\n"
                     f"              (from {env.passwords_file}; set a fixed one with --password or "
                     "FACEFACTORY_AIRFLOW_PASSWORD)\n"
                     f"trigger form: {env.url}/dags/face_swap_order  (button 'Trigger')\n"
                     f"REST API:     {env.url}/api/v2  (token: POST {env.url}/auth/token)\n"
                     f"logs:         {env.log_dir}\n"
                     f"{deadlines.summary(env.environ(), str(env.ff_home / 'deadline_misses.jsonl'))}\n"
                     "Press Ctrl-C to stop.")

    return _serve(args, start, env.stop, "Airflow")


def cmd_up_cluster(args: argparse.Namespace) -> int:
    """PostgreSQL + Redis + CeleryExecutor workers + S3 work area (docs/cluster.md)."""
    from facefactory.cluster_stack import ClusterStack

    root = Path(args.airflow_home) if args.airflow_home else facefactory_home() / "cluster"
    stack = ClusterStack.from_environ(
        root, port=args.port, password=args.password or settings.raw("FACEFACTORY_AIRFLOW_PASSWORD"),
        gpu_workers=args.gpu_workers)
    print(f"facefactory: starting the cluster profile in {root} ...", flush=True)

    def start() -> tuple[Any, str]:
        env = stack.start(ready_timeout=args.ready_timeout)
        user, password = env.credentials()
        workers = ", ".join(f"{s.name} (queues {','.join(s.queues)}, {s.concurrency} slots)"
                            for s in env.worker_specs.values())
        return env, (f"\nAirflow UI:   {env.url}\nlogin:        user {user!r}, password {password!r}\n"
                     f"metadata DB:  {stack.db_url}\nbroker:       {stack.broker_url}\n"
                     f"work area:    {stack.work_root}\npublished:    {settings.raw('FACEFACTORY_PUBLISH_TO', env.environ())}\n"
                     f"workers:      {workers}\nlogs:         {env.log_dir}\nPress Ctrl-C to stop.")

    return _serve(args, start, stack.stop, "the cluster")


def _serve(args: argparse.Namespace, start: Callable[[], tuple[Any, str]], stop: Callable[[], None],
           what: str) -> int:
    """Start, print the banner, supervise until Ctrl-C/SIGTERM or a component past its restart
    budget; stop everything whatever happened (one shape for both profiles)."""

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        env, banner = start()
        print(banner, flush=True)
        return supervise(env, RestartBudget(limit=args.max_restarts, window_s=args.restart_window_s))
    except KeyboardInterrupt:
        print(f"\nfacefactory: stopping {what} ...", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"facefactory: {exc}", file=sys.stderr)
        return 1
    finally:
        stop()
        print("facefactory: stopped.", flush=True)


def supervise(env: AirflowEnv, budget: RestartBudget, poll_s: float = 1.0) -> int:
    """Restart components that exit until one exceeds its budget (then return 1)."""
    while True:
        for name, code in env.dead().items():
            allowed, count = budget.allow(name, time.monotonic())
            tail = env.tail_logs(chars=1500, names=(name,))
            if not allowed:
                print(f"{give_up_line(name, code, budget)}\n{tail}", file=sys.stderr, flush=True)
                return 1
            print(f"{restart_line(name, code, count, budget)}\n{tail}", file=sys.stderr, flush=True)
            env.restart(name)
        time.sleep(poll_s)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("up", help="run the embedded Airflow (UI + API + scheduler)")
    p.add_argument("--host", default=settings.text("FACEFACTORY_AIRFLOW_HOST"))
    p.add_argument("--port", type=int, default=settings.integer("FACEFACTORY_AIRFLOW_PORT"))
    p.add_argument("--password", help="fixed password for user admin (default: generated once)")
    p.add_argument("--airflow-home", help="default $FACEFACTORY_HOME/airflow")
    p.add_argument("--ready-timeout", type=float, default=180)
    p.add_argument("--max-restarts", type=int, default=5,
                   help="restarts of one component allowed within --restart-window-s (default 5)")
    p.add_argument("--restart-window-s", type=float, default=600, help="default 600 (10 min)")
    p.add_argument("--profile", choices=("embedded", "cluster"), default="embedded",
                   help="embedded: SQLite + LocalExecutor (default); cluster: PostgreSQL + "
                        "CeleryExecutor workers (Redis) + S3 work area, see docs/cluster.md")
    p.add_argument("--gpu-workers", type=int, default=1,
                   help="cluster profile: number of gpu-queue Celery workers (default 1)")
    p.set_defaults(func=cmd_up)
