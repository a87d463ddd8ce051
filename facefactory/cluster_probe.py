"""Can this node reach the work area? Run in a worker's environment before it takes tasks.

Why: a worker that cannot write the shared work area (wrong credentials, no route to the S3
endpoint, a bucket policy) would otherwise take a chunk, fail it after S3's retries and burn the
order's retries one by one. Checked once at start, the cluster refuses to start with a message
that names the node, the URI and the S3 error. Usage: python -m facefactory.cluster_probe URI
"""
from __future__ import annotations

import sys
import uuid


def probe_work_area(work_root: str, node: str) -> None:
    """Write, read back and delete one small object under `work_root`; RuntimeError if not."""
    if not work_root.startswith("s3://"):
        raise RuntimeError(f"node {node}: work area {work_root!r} is not on S3; the cluster profile "
                           "shares nothing on disk between nodes (set FACEFACTORY_WORK_ROOT=s3://...)")
    from botocore.exceptions import BotoCoreError, ClientError

    from facefactory.operators.s3.client import s3_client

    bucket, _, prefix = work_root[len("s3://"):].partition("/")
    key = "/".join(p for p in (prefix.strip("/"), ".probe", f"{node}-{uuid.uuid4().hex}") if p)
    try:
        client = s3_client()
        client.put_object(Bucket=bucket, Key=key, Body=node.encode())
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise RuntimeError(f"node {node}: no access to the work area s3://{bucket}/{key}: {exc}") from None
    if body != node.encode():
        raise RuntimeError(f"node {node}: work area s3://{bucket}/{key} returned other bytes than written")


def main(argv: list[str]) -> int:
    from facefactory import settings

    node = settings.raw("FACEFACTORY_NODE_NAME") or "?"
    try:
        probe_work_area(argv[0], node)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
