"""`facefactory submit | status | wait`: orders over the REST API without writing HTTP.

Exit codes: 0 success (or submitted), 1 the order failed, 2 bad input / API refused / server
unreachable (after the client's retries), 3 timed out waiting. With --wait (and for `wait`) the
LAST stdout line is the published URI, so scripts can do
`uri=$(facefactory submit ... --wait | tail -n1)`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from facefactory.client import ClientError, OrderClient, RunStatus, ServerConfig
from facefactory.operators.order_check import order_problems, refusal
from facefactory.operators.order_schema import coerce_field


def build_order(source: str, target: str, sets: list[str], order_id: str | None) -> dict[str, Any]:
    """The order document; without --order-id the id is a hash of the order (same order = same id)."""
    order: dict[str, Any] = {"source": source, "target": target}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set wants key=value, got {item!r}")
        order[key.strip()] = coerce_field(key.strip(), raw.strip())
    if order_id:
        order["order_id"] = order_id
    order.setdefault("order_id", "o-" + hashlib.sha256(
        json.dumps(order, sort_keys=True).encode()).hexdigest()[:16])
    return order


def _err(msg: str) -> None:
    print(f"facefactory: {msg}", file=sys.stderr)


def _finish(client: OrderClient, status: RunStatus, timeout: float, poll: float) -> int:
    """Wait, report progress on stderr, print the published URI last; non-zero on failure."""
    try:
        status = client.wait(status.run_id, timeout_s=timeout, poll_s=poll,
                             on_change=lambda s: _err(f"{status.run_id}: {s}"))
    except TimeoutError as exc:
        _err(str(exc))
        return 3
    if status.state != "success":
        fail = status.failure or {"task": "?", "reason": "run failed without a failed task"}
        _err(f"order {status.conf.get('order_id')} failed in task {fail['task']}: {fail['reason']}")
        return 1
    if not status.published_uri:
        _err(f"{status.run_id} succeeded but its publish task returned no URI")
        return 1
    print(status.published_uri)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        order = build_order(args.source, args.target, args.set, args.order_id)
    except ValueError as exc:
        _err(f"invalid order: {exc}")
        return 2
    # publish_to's form only: its publish roots are the server's, which refuses outside ones
    if problems := order_problems(order, publish_roots=None):
        _err(refusal(problems))
        return 2
    try:
        client = OrderClient(ServerConfig.from_env())
        if client.is_paused():
            _err(f"warning: DAG {client.dag_id} is paused; the run stays queued until it is unpaused")
        status = client.submit(order)
        verb = "submitted" if status.created else "already exists"
        _err(f"{status.run_id}: {verb} (state {status.state})")
        print(json.dumps(status.to_json()))
        if args.wait:
            return _finish(client, status, args.timeout, args.poll)
    except ClientError as exc:
        _err(str(exc))
        return 2
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        status = OrderClient(ServerConfig.from_env()).status(args.run_id)
    except ClientError as exc:
        _err(str(exc))
        return 2
    print(json.dumps(status.to_json(), indent=2))
    return 1 if status.state == "failed" else 0


def cmd_wait(args: argparse.Namespace) -> int:
    try:
        client = OrderClient(ServerConfig.from_env())
        return _finish(client, client.status(args.run_id), args.timeout, args.poll)
    except ClientError as exc:
        _err(str(exc))
        return 2


def _wait_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    p.add_argument("--poll", type=float, default=5, help="seconds between polls (default 5)")


def register(subparsers: argparse._SubParsersAction) -> None:
    env_help = ("Server: FACEFACTORY_AIRFLOW_URL (default http://127.0.0.1:8080), "
                "FACEFACTORY_AIRFLOW_USER (admin), FACEFACTORY_AIRFLOW_PASSWORD (default: the "
                "embedded server's generated password).")
    p = subparsers.add_parser("submit", help="submit a face-swap order via the REST API",
                              description=env_help)
    p.add_argument("--source", required=True, help="face photo URI (file:// or s3://)")
    p.add_argument("--target", required=True, help="video URI (file:// or s3://)")
    p.add_argument("--order-id", help="order id (default: hash of the order -> idempotent)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other order field, e.g. --set chunk_frames=128 (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait; last line = published URI")
    _wait_opts(p)
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("status", help="state of an order run (JSON)", description=env_help)
    p.add_argument("run_id", help="e.g. order__sample-0001")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("wait", help="wait for an order run; last line = published URI",
                              description=env_help)
    p.add_argument("run_id")
    _wait_opts(p)
    p.set_defaults(func=cmd_wait)
