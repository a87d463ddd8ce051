"""CloudFront invalidation polling and presigned-URL handling against the moto server.

moto completes invalidations at once, so the loopback front rewrites the status of the next
answers to "InProgress": the wait loop then really polls the API until it sees Completed, or
gives up at its timeout with a retryable error.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from s3_faults import FaultProxy
from s3_server import MotoServer
from s3_support import connection_json

from facefactory.operators.s3 import cdn
from facefactory.operators.s3.client import ClientSettings, cloudfront_client, make_client
from facefactory.operators.s3.errors import CdnTimeoutError, S3PermanentError
from facefactory.operators.s3.uris import S3Uri


def _distribution(name: str) -> str:
    response = make_client("cloudfront").create_distribution(DistributionConfig={
        "CallerReference": name, "Comment": "facefactory cdn test", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{name}.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0,
                                 "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    })
    return str(response["Distribution"]["Id"])


@pytest.fixture
def proxied_cloudfront(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    with FaultProxy(aws_env.endpoint) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_CDN", connection_json(proxy.endpoint))
        yield proxy, cloudfront_client(ClientSettings(conn_id="aws_cdn"))


def test_wait_polls_until_completed(proxied_cloudfront: Any, bucket: str) -> None:
    proxy, cf = proxied_cloudfront
    dist = _distribution(bucket)
    proxy.rewrite_responses(b"<Status>COMPLETED</Status>", b"<Status>InProgress</Status>", count=3)
    sleeps: list[float] = []
    inv = cdn.invalidate(cf, dist, ["/a/b.mp4"], poll_s=0.05, timeout_s=30, sleep=sleeps.append)
    assert inv.status.lower() == "completed"
    gets = [path for method, path, _ in proxy.requests if method == "GET" and "/invalidation/" in path]
    assert len(gets) == 3 and len(sleeps) == 3  # create + 2 in-progress polls, the 3rd saw Completed
    assert inv.invalidation_id in gets[-1]


def test_wait_times_out_with_a_retryable_error(proxied_cloudfront: Any, bucket: str) -> None:
    proxy, cf = proxied_cloudfront
    dist = _distribution(bucket)
    proxy.rewrite_responses(b"<Status>COMPLETED</Status>", b"<Status>InProgress</Status>", count=1000)
    with pytest.raises(CdnTimeoutError, match="still InProgress") as err:
        cdn.invalidate(cf, dist, ["/x.mp4"], poll_s=0.1, timeout_s=0.5)
    assert not isinstance(err.value, S3PermanentError)
    # without waiting, the request is created and returned as it stands
    assert cdn.invalidate(cf, dist, ["/y.mp4"], wait=False).status == "InProgress"


def test_presign_expiry_bounds_and_redaction(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="v.mp4", Body=b"v")
    url = cdn.presign(s3, S3Uri(bucket, "v.mp4"), 120)
    assert "X-Amz-Expires=120" in url
    redacted = cdn.redact_url(url)
    assert redacted.endswith(f"/{bucket}/v.mp4?<redacted>") and "Signature" not in redacted
    for bad in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expiry"):
            cdn.presign(s3, S3Uri(bucket, "v.mp4"), bad)
    assert cdn.cdn_path("published/2026/11/o/x.mp4", origin_path="/published") == "/2026/11/o/x.mp4"
    assert cdn.cdn_path("published/x.mp4") == "/published/x.mp4"
    assert json.dumps(cdn.Invalidation("D", "I", "Completed", ["/p"], 0.1).to_dict())


def _run_trigger(trigger: Any) -> list[dict[str, Any]]:
    import asyncio

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_trigger_polls_in_the_triggerer_until_completed(proxied_cloudfront: Any, bucket: str) -> None:
    """The deferred wait: the trigger asks CloudFront (through the Airflow connection) until the
    invalidation is Completed, fires once, and survives serialisation (the triggerer rebuilds it)."""
    import time

    from airflow.sdk.module_loading import import_string

    from facefactory.operators.s3.cdn_trigger import InvalidationTrigger

    proxy, cf = proxied_cloudfront
    dist = _distribution(bucket)
    inv = cdn.invalidate(cf, dist, ["/t/ready.mp4"], wait=False)
    proxy.rewrite_responses(b"<Status>COMPLETED</Status>", b"<Status>InProgress</Status>", count=2)
    path, kwargs = InvalidationTrigger(dist, inv.invalidation_id, deadline=time.time() + 30, poll_s=0.05,
                                       conn_id="aws_cdn").serialize()
    events = _run_trigger(import_string(path)(**json.loads(json.dumps(kwargs))))
    assert len(events) == 1 and cdn.is_completed(events[0]["status"]) and events[0]["polls"] == 3
    assert events[0]["invalidation_id"] == inv.invalidation_id and events[0]["distribution_id"] == dist
    assert "timed_out" not in events[0]


def test_trigger_reports_deadline_and_errors(proxied_cloudfront: Any, bucket: str) -> None:
    import time

    from facefactory.operators.s3.cdn_trigger import InvalidationTrigger

    proxy, cf = proxied_cloudfront
    dist = _distribution(bucket)
    inv = cdn.invalidate(cf, dist, ["/t/slow.mp4"], wait=False)
    proxy.rewrite_responses(b"<Status>COMPLETED</Status>", b"<Status>InProgress</Status>", count=1000)
    event, = _run_trigger(InvalidationTrigger(dist, inv.invalidation_id, deadline=time.time() + 3, poll_s=0.05,
                                              conn_id="aws_cdn"))
    assert event["timed_out"] and event["status"] == "InProgress" and event["polls"] >= 2
    event, = _run_trigger(InvalidationTrigger(dist, "NO-SUCH-ID", deadline=time.time() + 5, conn_id="aws_cdn"))
    assert "error" in event


def test_cdn_ready_defers_and_finishes_from_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task: nothing to wait for -> done at once; InProgress -> defers to the trigger (no
    polling in the worker); the trigger's event -> final status, or a retryable error."""
    from airflow.sdk.exceptions import TaskDeferred

    from facefactory.operators.cdn_wait import CdnInvalidationWait
    from facefactory.operators.s3.cdn_trigger import InvalidationTrigger

    op = CdnInvalidationWait(task_id="cdn_ready")

    class TI:
        def __init__(self, published: Any) -> None:
            self.published = published

        def xcom_pull(self, task_ids: str, key: str) -> Any:
            assert (task_ids, key) == ("publish", "published")
            return self.published

    monkeypatch.delenv("FACEFACTORY_CDN_WAIT", raising=False)
    assert op.execute({"ti": TI({"uri": "/local/out.mp4", "size": 3})}) is None  # local publish
    done = {"distribution_id": "D1", "invalidation_id": "I1", "status": "Completed", "paths": ["/a"]}
    assert op.execute({"ti": TI({"invalidation": done})}) == done
    pending = {**done, "status": "InProgress"}
    monkeypatch.setenv("FACEFACTORY_CDN_WAIT_TIMEOUT_S", "90")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": TI({"invalidation": pending})})
    trigger = deferred.value.trigger
    assert isinstance(trigger, InvalidationTrigger) and trigger.invalidation_id == "I1"
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() >= 90
    ids = {"distribution_id": "D1", "invalidation_id": "I1"}
    back = {"ti": TI({"invalidation": pending})}
    assert op.execute_complete(back, {**ids, "status": "Completed", "polls": 4}) == {**pending, "status": "Completed"}
    with pytest.raises(CdnTimeoutError, match="I1 still InProgress"):
        op.execute_complete(back, {**ids, "status": "InProgress", "timed_out": True})
    from facefactory.operators.s3.errors import S3TransientError

    with pytest.raises(S3TransientError, match="could not read"):
        op.execute_complete(back, {**ids, "error": "EndpointConnectionError: down"})
    monkeypatch.setenv("FACEFACTORY_CDN_WAIT", "false")
    assert op.execute({"ti": TI({"invalidation": pending})}) == pending  # told not to wait
