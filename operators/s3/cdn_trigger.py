"""Waiting for a CloudFront invalidation in the triggerer instead of in a worker slot.

An invalidation takes one to several minutes; polling it from the publish task held a worker
slot that long for every order. The `cdn_ready` task defers to this trigger: the triggerer polls
CloudFront (boto3 in a thread, the Airflow connection's credentials) and wakes the task with the
final status, or with a timeout it can retry on.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from facefactory.operators.s3.client import DEFAULT_CONN_ID


class InvalidationTrigger(BaseTrigger):
    """Fires once, with the distribution and invalidation ids and: {"status", "polls"} when
    Completed, plus "timed_out": True when the deadline (epoch seconds) passes first, or
    {"error"} when CloudFront cannot be asked. The event carries everything the task needs on
    resumption (no defer kwargs: `DAG.test()`'s inline trigger does not hand them back)."""

    def __init__(self, distribution_id: str, invalidation_id: str, deadline: float, poll_s: float = 10.0,
                 conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.distribution_id = distribution_id
        self.invalidation_id = invalidation_id
        self.deadline = float(deadline)
        self.poll_s = max(0.01, float(poll_s))
        self.conn_id = conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "distribution_id": self.distribution_id, "invalidation_id": self.invalidation_id,
            "deadline": self.deadline, "poll_s": self.poll_s, "conn_id": self.conn_id,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from facefactory.operators.s3 import cdn
        from facefactory.operators.s3.client import ClientSettings, cloudfront_client

        polls = 0
        ids = {"distribution_id": self.distribution_id, "invalidation_id": self.invalidation_id}
        try:
            client = await asyncio.to_thread(cloudfront_client, ClientSettings.from_env(self.conn_id))
            while True:
                status = await asyncio.to_thread(
                    cdn.invalidation_status, client, self.distribution_id, self.invalidation_id)
                polls += 1
                if cdn.is_completed(status):
                    yield TriggerEvent({**ids, "status": status, "polls": polls})
                    return
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield TriggerEvent({**ids, "status": status, "polls": polls, "timed_out": True})
                    return
                await asyncio.sleep(min(self.poll_s, remaining))
        except Exception as exc:  # noqa: BLE001 - handed to the task, which raises it
            yield TriggerEvent({**ids, "error": f"{type(exc).__name__}: {exc}", "polls": polls})
