"""e2e fixtures: one real embedded Airflow per test session, sample media, a finished order.

The bulk DAG's schedule is off (scans are triggered by the tests) and so is the order deadline
(test_deadline.py starts its own server with a tiny deadline, so a deadline problem cannot take
the other tests down with it).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from airflow_server import (
    BULK_DAG,
    ORDER_DAG,
    AirflowServer,
    running_airflow,
    sample_order,
    server_env,
)


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory: pytest.TempPathFactory, sample_media) -> Iterator[AirflowServer]:
    """Real api-server + scheduler + dag-processor + triggerer on a free loopback port, with 2 s of
    640x360 sample media (50 frames) in its input root."""
    root = tmp_path_factory.mktemp("e2e-airflow")
    logging.getLogger("faceworker").setLevel(logging.WARNING)
    sample_media(root / "ffhome" / "inputs" / "sample", seconds=2)
    with running_airflow(root, server_env(root, FACEFACTORY_DEADLINE_ENABLED="false")) as server:
        for dag_id in (ORDER_DAG, BULK_DAG):
            server.wait_for_dag(dag_id)
            server.unpause(dag_id)
        yield server


@pytest.fixture(scope="session")
def api_order(airflow_server: AirflowServer) -> dict[str, Any]:
    """One order submitted with the official client and waited for (shared by API + deadline tests)."""
    client = airflow_server.client()
    order = sample_order(airflow_server, "e2e-api-1")  # 50 frames / 32 -> 2 mapped swap chunks
    first = client.submit(order)
    status = client.wait(first.run_id, timeout_s=900, poll_s=3)
    return {"order": order, "submitted": first, "status": status,
            "diagnose": lambda: airflow_server.diagnose(ORDER_DAG, first.run_id)}
