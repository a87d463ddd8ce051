"""`cdn_ready`: the order is done when the CDN serves the new video, waited for in the triggerer.

The publish task creates the CloudFront invalidation and moves on; this task defers to
`facefactory.operators.s3.cdn_trigger.InvalidationTrigger`, so no worker slot is held while CloudFront works
(minutes per order). Without a distribution (the embedded default, local publishing) or with
FACEFACTORY_CDN_WAIT=false it finishes at once.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from facefactory.operators import names
from facefactory.operators.s3 import cdn
from facefactory.operators.s3.errors import CdnTimeoutError, S3TransientError


class CdnInvalidationWait(BaseOperator):
    """Wait for the invalidation recorded in the publish task's `published` XCom; returns it with
    its final status (XCom return_value)."""

    ui_color = "#e8f4fd"

    def __init__(self, *, publish_task_id: str = names.PUBLISH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publish_task_id = publish_task_id

    def execute(self, context: Any) -> dict[str, Any] | None:
        from facefactory.operators.s3.cdn_trigger import InvalidationTrigger
        from facefactory.operators.s3.client import ClientSettings
        from facefactory.operators.s3.delivery import CdnOptions

        delivered = context["ti"].xcom_pull(task_ids=self.publish_task_id, key=names.XCOM_PUBLISHED) or {}
        inv = delivered.get("invalidation")
        if not inv:
            self.log.info("no CDN invalidation to wait for (no distribution configured, or published locally)")
            return None
        if cdn.is_completed(inv["status"]):
            return inv
        options = CdnOptions.from_env()
        if not options.wait:
            self.log.info("invalidation %s is %s; not waiting (FACEFACTORY_CDN_WAIT=false)",
                          inv["invalidation_id"], inv["status"])
            return inv
        self.log.info("invalidation %s on %s is %s: waiting up to %.0fs in the triggerer (poll every %.0fs)",
                      inv["invalidation_id"], inv["distribution_id"], inv["status"], options.timeout_s,
                      options.poll_s)
        trigger = InvalidationTrigger(inv["distribution_id"], inv["invalidation_id"],
                                      deadline=time.time() + options.timeout_s, poll_s=options.poll_s,
                                      conn_id=ClientSettings.from_env().conn_id)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=options.timeout_s + 120))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the invalidation with its final status, or a retryable error."""
        where = f"cloudfront {event['distribution_id']}: invalidation {event['invalidation_id']}"
        if event.get("error"):
            raise S3TransientError(f"{where}: could not read its status: {event['error']}")
        if event.get("timed_out"):
            raise CdnTimeoutError(f"{where} still {event['status']} at the deadline; it continues server-side, "
                                  "the retry waits for it again")
        self.log.info("%s: %s after %d poll(s)", where, event["status"], event.get("polls", 0))
        delivered = context["ti"].xcom_pull(task_ids=self.publish_task_id, key=names.XCOM_PUBLISHED) or {}
        recorded = delivered.get("invalidation") or {}
        return {**recorded, "distribution_id": event["distribution_id"],
                "invalidation_id": event["invalidation_id"], "status": event["status"]}
