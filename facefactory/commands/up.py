"""`facefactory up`: the embedded Airflow in the foreground, Ctrl-C stops all of it.

Starts api-server (REST API + UI), scheduler (LocalExecutor), dag-processor and triggerer with
AIRFLOW_HOME=$FACEFACTORY_HOME/airflow, prints the UI URL and the login, and on Ctrl-C (or
SIGTERM, or any component dying) stops every component's process group.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from facefactory.airflow_env import AirflowEnv, embedded_airflow_home, facefactory_home


def cmd_up(args: argparse.Namespace) -> int:
    env = AirflowEnv(
        airflow_home=Path(args.airflow_home or embedded_airflow_home()),
        ff_home=facefactory_home(),
        host=args.host,
        port=args.port,
        password=args.password or os.environ.get("FACEFACTORY_AIRFLOW_PASSWORD") or None,
    )

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    print(f"facefactory: preparing Airflow in {env.airflow_home} ...", flush=True)
    try:
        env.prepare()
        env.start()
        env.wait_ready(timeout=args.ready_timeout)
        user, password = env.credentials()
        print(f"\nAirflow UI:   {env.url}\n"
              f"login:        user {user!r}, password {password!r}\n"
              f"              (from {env.passwords_file}; set a fixed one with --password or "
              "FACEFACTORY_AIRFLOW_PASSWORD)\n"
              f"trigger form: {env.url}/dags/face_swap_order  (button 'Trigger')\n"
              f"REST API:     {env.url}/api/v2  (token: POST {env.url}/auth/token)\n"
              f"logs:         {env.log_dir}\n"
              "Press Ctrl-C to stop.", flush=True)
        while not (dead := env.dead()):
            time.sleep(1)
        print(f"facefactory: component(s) exited: {dead}\n{env.tail_logs()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfacefactory: stopping Airflow ...", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"facefactory: {exc}", file=sys.stderr)
        return 1
    finally:
        env.stop()
        print("facefactory: stopped.", flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("up", help="run the embedded Airflow (UI + API + scheduler)")
    p.add_argument("--host", default=os.environ.get("FACEFACTORY_AIRFLOW_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("FACEFACTORY_AIRFLOW_PORT", "8080")))
    p.add_argument("--password", help="fixed password for user admin (default: generated once)")
    p.add_argument("--airflow-home", help="default $FACEFACTORY_HOME/airflow")
    p.add_argument("--ready-timeout", type=float, default=180)
    p.set_defaults(func=cmd_up)
