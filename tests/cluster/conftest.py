"""One real cluster-profile stack per test module: private PostgreSQL + Redis (apt-installed by
the profile when missing), a moto S3 server, scheduler, dag-processor, triggerer, API server
and Celery workers `cpu-1` (queue default) and `gpu-1` (queue gpu) with separate homes.

The stack is facefactory.cluster_stack.ClusterStack, what `facefactory up --profile cluster`
runs; it is stopped (every process group, the services and their temp dirs) even when a test
or the start itself fails.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # AirflowServer helpers

from airflow_server import ORDER_DAG, PASSWORD, AirflowServer
from cluster_checks import SIZE

from facefactory.cluster_stack import ClusterStack

TEST_ENV = {
    "FACEFACTORY_BULK_SCHEDULE": "none",
    "FACEFACTORY_DEADLINE_ENABLED": "false",
    "FACEFACTORY_LOG_FORMAT": "json",
    # A killed chunk is retried 2 s after the scheduler declares it lost (not 30 s): the test
    # measures the heartbeat detection, not the retry back-off.
    "FACEFACTORY_SWAP_RETRY_DELAY_S": "2",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cluster")
    stack = ClusterStack(root=root, password=PASSWORD, dag_refresh_s=5, extra_env=dict(TEST_ENV),
                         log=lambda line: print(line, flush=True))
    with stack:
        env = stack.env
        assert env is not None
        server = AirflowServer(env=env, username="admin", password=PASSWORD)
        server.wait_for_dag(ORDER_DAG)
        server.unpause(ORDER_DAG)
        yield {"stack": stack, "env": env, "server": server, "root": root}


@pytest.fixture(scope="module")
def media(cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`upload(source_face, seconds) -> (source_uri, target_uri)`: sample media on S3 inputs."""
    from faceworker.sample import build_sample_order

    logging.getLogger("faceworker").setLevel(logging.WARNING)
    out = tmp_path_factory.mktemp("cluster-media")
    made: dict[tuple[str, float], tuple[str, str]] = {}

    def upload(face: str, seconds: float) -> tuple[str, str]:
        if (face, seconds) not in made:
            folder = out / f"{face}-{seconds:g}s"
            build_sample_order(folder, source=face, seconds=seconds, size=SIZE, fps=25)
            client = _s3(cluster)
            for name in ("source.png", "target.mp4"):
                client.upload_file(str(folder / name), "ff-inputs", f"{face}-{seconds:g}s/{name}")
            made[(face, seconds)] = (f"s3://ff-inputs/{face}-{seconds:g}s/source.png",
                                     f"s3://ff-inputs/{face}-{seconds:g}s/target.mp4")
        return made[(face, seconds)]

    return {"upload": upload, "dir": out}


def _s3(cluster: dict[str, Any]) -> Any:
    """A boto3 S3 client on the stack's moto server (the connection every node gets)."""
    import json

    import boto3

    conn = json.loads(cluster["env"].environ()["AIRFLOW_CONN_AWS_DEFAULT"])
    return boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"],
                        aws_access_key_id=conn["login"], aws_secret_access_key=conn["password"],
                        region_name=conn["extra"]["region_name"])


@pytest.fixture(scope="module")
def s3(cluster: dict[str, Any]) -> Any:
    return _s3(cluster)
