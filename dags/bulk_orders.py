"""bulk_orders: turn order manifests dropped in an inbox into face_swap_order runs.

    scan (validate; reject bad manifests now) -> trigger_order[order] (mapped) -> file_processed
                                                                                -> report

`report` fails (no retry) when the scan rejected a manifest, so such a scan run shows red in
the UI with the reasons in its log; the valid manifests' orders were started all the same.

Runs on a cron (FACEFACTORY_BULK_SCHEDULE, default every 5 minutes, 'none' = manual only; read
from the environment because the schedule is needed at parse time) and on demand (Trigger
button, optional `inbox`/`max_runs` params). The inbox (FACEFACTORY_INBOX, default
$FACEFACTORY_HOME/inbox, local folder or s3:// prefix) and the cap (FACEFACTORY_BULK_MAX_RUNS)
are read when the scan runs; Airflow Variables `facefactory_inbox` / `facefactory_bulk_max_runs`
override them. Each order runs as `order__<order_id>`; a run that exists already is skipped, so
a re-scan never duplicates work. Rules of the manifests: operators/bulk.py, docs/triggering.md.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from facefactory.operators import bulk, names


@dag(
    dag_id=names.BULK_DAG_ID,
    description="Scan the order inbox, validate manifests, start one face_swap_order run per order.",
    schedule=bulk.default_schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two scans at once would both see (and trigger) the same manifests
    params={
        "inbox": Param(None, type=["null", "string"], title="Inbox",
                       description="Folder or s3:// prefix to scan (empty = configured inbox)."),
        "max_runs": Param(None, type=["null", "integer"], minimum=1, title="Max runs per scan",
                          description="Cap on order runs started by this scan (empty = configured)."),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["facefactory", "orders", "bulk"],
    doc_md=__doc__,
)
def bulk_orders() -> None:
    @task
    def scan() -> dict[str, Any]:
        """Validate every manifest; file rejected ones with their reasons; plan the runs."""
        return bulk.scan_task(get_current_context()["params"])

    @task
    def trigger_kwargs(result: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"trigger_run_id": t["run_id"], "conf": t["conf"]} for t in result["triggers"]]

    @task(trigger_rule="none_failed")
    def file_processed(result: dict[str, Any]) -> list[str]:
        """Only after every trigger succeeded (or found its run): move manifests to processed/."""
        return bulk.file_processed(bulk.open_inbox(result["inbox"]), result["accepted"])

    @task(trigger_rule="none_failed")
    def report(result: dict[str, Any]) -> str:
        """Make rejections visible: a green run means every manifest was taken (or deferred)."""
        text = bulk.rejection_report(result.get("rejections") or {}, result["inbox"])
        if text:
            raise AirflowFailException(text)
        return "no manifest rejected"

    result = scan()
    triggered = TriggerDagRunOperator.partial(
        task_id="trigger_order",
        trigger_dag_id=names.DAG_ID,
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        # Off: it would add an "openlineage" key to the conf, and the order schema allows no
        # extra keys (ingest refuses unknown fields). Lineage of the order runs is emitted by
        # face_swap_order itself.
        openlineage_inject_parent_info=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(trigger_kwargs(result))
    triggered >> file_processed(result) >> report(result)


bulk_orders()
