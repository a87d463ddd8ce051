"""`facefactory s3 …`: bucket set-up that is done once per environment, not per order.

`setup-lifecycle` applies the documented lifecycle rules (operators/s3/lifecycle.py)
idempotently; `tag-intermediates` back-fills the tag those rules match. Both use the Airflow
connection (default aws_default) for credentials and endpoint.
"""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("s3", help="S3 bucket set-up (lifecycle rules, tags)")
    sub = parser.add_subparsers(dest="s3_command", required=True)

    setup = sub.add_parser("setup-lifecycle", help="apply the facefactory lifecycle rules to a bucket")
    setup.add_argument("--bucket", required=True, help="bucket of the work area (and/or published outputs)")
    setup.add_argument("--work-prefix", default="orders/", help="prefix of order folders (default orders/)")
    setup.add_argument("--intermediate-days", type=int, default=7, help="expire chunks/ and swapped/ after N days")
    setup.add_argument("--publish-temp-prefix", default=None, help="e.g. published/.incoming/ (temporary publish keys)")
    setup.add_argument("--publish-temp-days", type=int, default=1)
    setup.add_argument("--abort-multipart-days", type=int, default=2)
    setup.add_argument("--conn-id", default="aws_default", help="Airflow connection with credentials/endpoint")
    setup.add_argument("--dry-run", action="store_true", help="report whether anything would change")
    setup.set_defaults(func=_setup_lifecycle)

    tag = sub.add_parser("tag-intermediates", help="tag existing chunk/swapped objects for expiry")
    tag.add_argument("--bucket", required=True)
    tag.add_argument("--prefix", default="orders/")
    tag.add_argument("--conn-id", default="aws_default")
    tag.add_argument("--dry-run", action="store_true")
    tag.set_defaults(func=_tag_intermediates)


def _client(conn_id: str):  # noqa: ANN202 - a boto3 client
    from facefactory.operators.s3.client import ClientSettings, s3_client

    return s3_client(ClientSettings.from_env(conn_id=conn_id))


def _setup_lifecycle(args: argparse.Namespace) -> int:
    from facefactory.operators.s3.errors import S3Error
    from facefactory.operators.s3.lifecycle import LifecyclePolicy, apply_lifecycle
    from facefactory.operators.s3.uris import validate_bucket

    try:
        validate_bucket(args.bucket)
        policy = LifecyclePolicy(
            work_prefix=args.work_prefix,
            intermediate_days=args.intermediate_days,
            publish_temp_prefix=args.publish_temp_prefix,
            publish_temp_days=args.publish_temp_days,
            abort_multipart_days=args.abort_multipart_days,
        )
        result = apply_lifecycle(_client(args.conn_id), args.bucket, policy, dry_run=args.dry_run)
    except (S3Error, ValueError) as exc:
        print(f"facefactory s3 setup-lifecycle: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


def _tag_intermediates(args: argparse.Namespace) -> int:
    from facefactory.operators.s3.errors import S3Error
    from facefactory.operators.s3.lifecycle import tag_intermediates

    try:
        counts = tag_intermediates(_client(args.conn_id), args.bucket, args.prefix, dry_run=args.dry_run)
    except S3Error as exc:
        print(f"facefactory s3 tag-intermediates: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"bucket": args.bucket, **counts}, sort_keys=True))
    return 0
