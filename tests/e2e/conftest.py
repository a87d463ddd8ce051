"""e2e fixtures: one real embedded Airflow per test session, sample media, a finished order.

The bulk DAG's schedule is off (scans are triggered by the tests) and so is the order deadline
(test_deadline.py starts its own server with a tiny deadline, so a deadline problem cannot take
the other tests down with it).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
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
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Real api-server + scheduler + dag-processor + triggerer on a free loopback port."""
    root = tmp_path_factory.mktemp("e2e-airflow")
    ff_home = root / "ffhome"
    _sample_media(ff_home / "inputs" / "sample")
    with running_airflow(root, server_env(root, FACEFACTORY_DEADLINE_ENABLED="false")) as server:
        for dag_id in (ORDER_DAG, BULK_DAG):
            server.wait_for_dag(dag_id)
            server.unpause(dag_id)
        yield server


def _sample_media(out: Path) -> None:
    """2 s of 640x360 at 25 fps (50 frames) + a source photo, from faces shipped in wheels."""
    from faceworker.sample import build_sample_order

    logging.getLogger("faceworker").setLevel(logging.WARNING)
    build_sample_order(out, seconds=2, size=(640, 360), fps=25)


@pytest.fixture(scope="session")
def api_order(airflow_server: AirflowServer) -> dict[str, Any]:
    """One order submitted with the official client and waited for (shared by API + deadline tests)."""
    client = airflow_server.client()
    order = sample_order(airflow_server, "e2e-api-1")  # 50 frames / 32 -> 2 mapped swap chunks
    first = client.submit(order)
    status = client.wait(first.run_id, timeout_s=900, poll_s=3)
    return {"order": order, "submitted": first, "status": status,
            "diagnose": lambda: airflow_server.diagnose(ORDER_DAG, first.run_id)}
