"""A whole face_swap_order run with the work area and the publish prefix on the moto server.

Inputs come from s3://, the engine reads and writes the work area in S3, the Airflow side
reaches S3 only through the aws_default connection, and the published object is checked for
headers, SSE, metadata, CDN invalidation and a presigned URL that serves the same bytes.
The worker processes get their credentials from their own environment (what a pod's role or
secret gives them), never from the order.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from s3_server import MotoServer
from s3_support import KEY_ID, REGION, SECRET, connection_json

from facefactory.operators.s3.client import make_client

pytestmark = pytest.mark.slow

ORDER_TIMEOUT_S = 1200


def _routes_s3() -> str | None:
    """Why the DAG cannot run this yet (None when it routes s3:// work roots and publish_to)."""
    from airflow.sdk.exceptions import AirflowFailException

    from facefactory.operators import config, media, publish

    cfg = config.with_settings(config.run_time(use_variables=False), work_root="s3://ff-probe-bucket/w")
    try:
        media.order_dir(cfg, "probe")
    except AirflowFailException as exc:
        return f"operators/media.py does not route s3:// work roots yet ({exc})"
    if not hasattr(publish, "publish"):
        return "operators/publish.py has no s3-aware publish() yet (see docs/storage.md / the s3 report)"
    return None


@pytest.fixture(scope="module")
def s3_order_env(moto_server: MotoServer, airflow_env_factory: Any, venv_tool: Any, sample_media: Any,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = _routes_s3()
    if reason:
        pytest.skip(f"face_swap_order does not route s3 yet: {reason}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection_json(moto_server.endpoint))
        yield _prepare(moto_server, airflow_env_factory, venv_tool, sample_media, tmp_path_factory)


def _prepare(moto_server: MotoServer, airflow_env_factory: Any, venv_tool: Any, sample_media: Any,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = airflow_env_factory(tmp_path_factory.mktemp("s3-orders"))
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "FACEFACTORY_S3_", "FACEFACTORY_CDN_"))}
    env["AIRFLOW_CONN_AWS_DEFAULT"] = os.environ["AIRFLOW_CONN_AWS_DEFAULT"]
    s3 = make_client("s3")
    names = {"in": "ff-order-inputs", "work": "ff-order-work", "pub": "ff-order-delivery"}
    for bucket in names.values():
        s3.create_bucket(Bucket=bucket)
    dist = make_client("cloudfront").create_distribution(DistributionConfig={
        "CallerReference": "ff-order-s3", "Comment": "facefactory order test", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{names['pub']}.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https", "MinTTL": 0,
                                 "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })["Distribution"]
    sample = sample_media(tmp_path_factory.mktemp("s3-sample"), seconds=3)
    s3.upload_file(str(sample / "source.png"), names["in"], "incoming/o/source.png")
    s3.upload_file(str(sample / "target.mp4"), names["in"], "incoming/o/target.mp4")
    env.update({
        "FACEFACTORY_WORK_ROOT": f"s3://{names['work']}/ff",
        "FACEFACTORY_PUBLISH_ROOTS": f"s3://{names['pub']}/videos",
        "FACEFACTORY_CDN_DISTRIBUTION_ID": dist["Id"],
        "FACEFACTORY_CDN_POLL_S": "0.5",
        "FACEFACTORY_S3_SSE": "AES256",
        # the engine's own credentials/endpoint (a pod gets these from its role or a secret)
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION,
        "FACEFACTORY_S3_ENDPOINT_URL": moto_server.endpoint,
    })
    return {"env": env, "buckets": names, "distribution": dist, "facefactory": venv_tool("facefactory"),
            "moto_endpoint": moto_server.endpoint}


def _run(ctx: dict[str, Any], order_id: str, *sets: str) -> subprocess.CompletedProcess[str]:
    b = ctx["buckets"]
    cmd = [ctx["facefactory"], "order", "run", "--order-id", order_id,
           "--source", f"s3://{b['in']}/incoming/o/source.png", "--target", f"s3://{b['in']}/incoming/o/target.mp4",
           "--set", f"publish_to=s3://{b['pub']}/videos"]
    for item in sets:
        cmd += ["--set", item]
    return subprocess.run(cmd, env=ctx["env"], capture_output=True, text=True, timeout=ORDER_TIMEOUT_S)


def _published_xcom(ctx: dict[str, Any], order_id: str, task_id: str = "publish",
                    key: str = "published") -> dict[str, Any]:
    """The publish task's `published` XCom (or another task's), read from the run's metadata DB."""
    code = (
        "import json, sys\n"
        "from airflow.models.xcom import XComModel\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    row = s.query(XComModel).filter_by(dag_id='face_swap_order', run_id=sys.argv[1],\n"
        "                                       task_id=sys.argv[2], key=sys.argv[3]).one()\n"
        "    value = row.value\n"
        "    print(json.dumps(json.loads(value) if isinstance(value, (str, bytes)) else value))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, f"order__{order_id}", task_id, key], env=ctx["env"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _keys(bucket: str, prefix: str) -> list[str]:
    pages = make_client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_order_with_work_area_and_publish_on_s3(s3_order_env: dict[str, Any]) -> None:
    from s3_faults import FaultProxy

    ctx, b = s3_order_env, s3_order_env["buckets"]
    # moto completes invalidations at once; through this front CloudFront answers "InProgress" to
    # the create and the first status poll, so cdn_ready really defers and the trigger polls
    with FaultProxy(ctx["moto_endpoint"]) as proxy:
        proxy.rewrite_responses(b"<Status>COMPLETED</Status>", b"<Status>InProgress</Status>", count=2)
        via_proxy = {**ctx, "env": {**ctx["env"], "AIRFLOW_CONN_AWS_DEFAULT": connection_json(proxy.endpoint)}}
        res = _run(via_proxy, "s3-good", "chunk_frames=32")
        polls = [path for method, path, _ in proxy.requests if method == "GET" and "/invalidation/" in path]
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-6000:]
        uri = res.stdout.strip().splitlines()[-1]
        assert uri.startswith(f"s3://{b['pub']}/videos/") and "/s3-good/" in uri and uri.endswith(".mp4")
        key = uri.split("/", 3)[3]
        s3 = make_client("s3")
        head = s3.head_object(Bucket=b["pub"], Key=key)
        assert head["ContentType"] == "video/mp4"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        assert head["ServerSideEncryption"] == "AES256"
        meta = head["Metadata"]
        assert meta["order-id"] == "s3-good" and len(meta["source-sha256"]) == 64
        assert key.endswith(f"/{meta['content-sha256']}.mp4")
        assert json.loads(meta["quality"])  # the gate summary travels with the object
        # intermediate objects where the layout says
        work = _keys(b["work"], "ff/orders/s3-good/")
        rel = {k[len("ff/orders/s3-good/"):] for k in work}
        for expected in ("input/source.png", "input/target.mp4", "input/probe.json", "input/source_embedding.npy",
                         "chunks/chunks.json", "chunks/00000/segment.mkv", "swapped/00000/segment.mp4",
                         "swapped/00000/metrics.json", "swapped/00000/thumbs.json", "swapped/00000/thumbs.jpg",
                         "swapped/00000/done.json", "quality/validation.json",
                         "output/s3-good.mp4"):
            assert expected in rel, f"{expected} missing from the S3 work area: {sorted(rel)}"
        merged = s3.get_object(Bucket=b["work"], Key="ff/orders/s3-good/output/s3-good.mp4")["Body"].read()
        # XCom: presigned URL serves the same bytes; CloudFront invalidation created and recorded
        xcom = _published_xcom(ctx, "s3-good")
        assert xcom["uri"] == uri and xcom["sha256"] == meta["content-sha256"]
        with urllib.request.urlopen(xcom["presigned_url"], timeout=60) as response:
            assert response.read() == merged
        inv = xcom["invalidation"]
        assert inv["distribution_id"] == ctx["distribution"]["Id"] and inv["status"] == "InProgress"  # publish did not wait
        ready = _published_xcom(ctx, "s3-good", task_id="cdn_ready", key="return_value")
        assert ready["invalidation_id"] == inv["invalidation_id"] and ready["status"].lower() == "completed"
        assert len(polls) == 2  # the trigger: one InProgress answer, then Completed
        listed = make_client("cloudfront").list_invalidations(DistributionId=inv["distribution_id"])
        assert inv["invalidation_id"] in [i["Id"] for i in listed["InvalidationList"].get("Items", [])]
        assert xcom["cdn_url"] == f"https://{ctx['distribution']['DomainName']}/{key}"
        assert SECRET not in json.dumps(xcom) and SECRET not in res.stdout and SECRET not in res.stderr
        assert "X-Amz-Signature" not in res.stdout + res.stderr  # presigned URLs only redacted in logs
        assert not _keys(b["pub"], "videos/.incoming/")


def test_failed_gate_publishes_nothing_on_s3(s3_order_env: dict[str, Any]) -> None:
    ctx, b = s3_order_env, s3_order_env["buckets"]
    res = _run(ctx, "s3-strict", "chunk_frames=64", "min_id_cosine=0.999")
    assert res.returncode != 0
    assert "final_gate" in res.stderr, res.stderr[-4000:]
    assert not [k for k in _keys(b["pub"], "videos/") if "s3-strict" in k]
