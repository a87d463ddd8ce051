"""The gate and the report read/write an s3:// work area (moto in-process)."""
from __future__ import annotations

import json

import pytest

moto = pytest.importorskip("moto")


@pytest.fixture()
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("FACEFACTORY_S3_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="work")
        yield client


def test_gate_and_report_on_s3(tmp_path, s3):
    from synthetic import make_order

    from facefactory.quality.gate import evaluate
    from facefactory.quality.report import build_report

    local = make_order(tmp_path, bad_identity={2: [100]}, frames=120)
    for path in local.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "work", f"ff/orders/o1/{path.relative_to(local)}")
    res = evaluate("s3://work/ff/orders/o1", {"id_mostly": 1.0}, 120)
    assert not res.passed and res.failing_chunks == [2]
    assert res.validation_uri == "s3://work/ff/orders/o1/quality/validation.json"
    doc = json.loads(s3.get_object(Bucket="work", Key="ff/orders/o1/quality/validation.json")["Body"].read())
    assert doc["meta"]["facefactory"]["failing_chunks"] == [2]
    out = build_report("s3://work/ff/orders/o1", {"order_id": "o1"}, emit_metrics=False)
    assert out["report"] == "s3://work/ff/orders/o1/report/index.html"
    page = s3.get_object(Bucket="work", Key="ff/orders/o1/report/index.html")
    assert page["ContentType"].startswith("text/html") and b"FAILED" in page["Body"].read()
