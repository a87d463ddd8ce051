"""Bulk manifest rules: parsing, validation, cap, and filing (local folder and S3 via moto)."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from facefactory.operators import bulk

SRC = "file:///data/in/face.png"
TGT = "file:///data/in/clip.mp4"


def order(oid: str, **extra: object) -> dict:
    return {"order_id": oid, "source": SRC, "target": TGT, **extra}


def test_json_object_and_list() -> None:
    assert bulk.parse_manifest("a.json", json.dumps(order("a")).encode()) == [order("a")]
    two = [order("a"), order("b")]
    assert bulk.parse_manifest("b.JSON", json.dumps(two).encode()) == two


def test_csv_rows_are_typed_and_blank_cells_dropped() -> None:
    text = ("order_id,source,target,chunk_frames,identity_weight,publish_to\n"
            f"c1,{SRC},{TGT},128,0.5,\n")
    [o] = bulk.parse_manifest("m.csv", text.encode())
    assert o == order("c1", chunk_frames=128, identity_weight=0.5)
    assert bulk.check_manifest("m.csv", text.encode()).valid


@pytest.mark.parametrize("name,data,needle", [
    ("x.json", b"{not json", "invalid JSON"),
    ("x.json", b"[]", "empty list"),
    ("x.json", b"[1]", "expected an object"),
    ("x.csv", b"", "no header"),
    ("x.csv", b"order_id,source\na,b,c\n", "more cells"),
    ("x.txt", b"{}", "unsupported"),
])
def test_unreadable_manifests(name: str, data: bytes, needle: str) -> None:
    check = bulk.check_manifest(name, data)
    assert not check.valid and check.errors[0]["reason"] == "unreadable_manifest"
    assert needle in check.errors[0]["message"]


def test_schema_errors_name_field_and_order() -> None:
    bad = [order("ok"), order("bad id!", chunk_frames=4, swapper="deepfake", extra=1)]
    check = bulk.check_manifest("m.json", json.dumps(bad).encode())
    assert not check.valid and check.orders == []
    fields = {(e["index"], e["field"]) for e in check.errors}
    assert {(1, "order_id"), (1, "chunk_frames"), (1, "swapper"), (1, "extra")} <= fields
    assert all(e["reason"] == "invalid_order" for e in check.errors)
    msg = next(e["message"] for e in check.errors if e["field"] == "chunk_frames")
    assert msg == "must be a whole number from 16 to 512; got 4"


def test_missing_required_and_duplicate_ids() -> None:
    check = bulk.check_manifest("m.json", json.dumps([{"order_id": "a"}, order("b"), order("b")]).encode())
    reasons = [(e["reason"], e.get("index")) for e in check.errors]
    assert ("invalid_order", 0) in reasons and ("duplicate_order_id", 2) in reasons


def test_plan_respects_cap_and_name_order() -> None:
    mk = lambda name, n: bulk.check_manifest(  # noqa: E731 - a local shorthand for this test's calls
        name, json.dumps([order(f"{name[0]}{i}") for i in range(n)]).encode(), max_orders=3)
    checks = [mk("c.json", 1), mk("a.json", 2), mk("b.json", 2), mk("z.json", 4)]
    plan = bulk.plan_scan(checks, max_runs=3)
    assert [t["run_id"] for t in plan.triggers] == ["order__a0", "order__a1"]
    assert plan.accepted == {"a.json": ["order__a0", "order__a1"]}
    assert plan.deferred == ["b.json", "c.json"]  # c would fit but must not overtake b
    assert plan.rejected["z.json"][0]["reason"] == "too_many_orders"


def _exercise_inbox(inbox: bulk.Inbox) -> dict[str, bulk.ScanPlan]:
    plan = bulk.scan(inbox, max_runs=10)
    assert [t["run_id"] for t in plan.triggers] == ["order__g2", "order__g1"]
    assert list(plan.rejected) == ["bad.json"]
    assert inbox.list_manifests() == ["good.csv", "good.json"]
    bulk.file_processed(inbox, plan.accepted)
    assert inbox.list_manifests() == []
    return {"plan": plan}


def test_local_inbox_files_manifests(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps(order("g1")))
    (tmp_path / "good.csv").write_text(f"order_id,source,target\ng2,{SRC},{TGT}\n")
    (tmp_path / "bad.json").write_text(json.dumps(order("b1", min_psnr_db=5)))
    (tmp_path / "notes.txt").write_text("ignored")
    _exercise_inbox(bulk.LocalInbox(tmp_path))
    reason = json.loads((tmp_path / "rejected/bad.json.reason.json").read_text())
    assert reason["status"] == "rejected" and reason["errors"][0]["field"] == "min_psnr_db"
    assert (tmp_path / "rejected/bad.json").exists()
    result = json.loads((tmp_path / "processed/good.csv.result.json").read_text())
    assert result["run_ids"] == ["order__g2"]
    assert (tmp_path / "notes.txt").exists()
    assert bulk.scan(bulk.LocalInbox(tmp_path), 10).triggers == []  # re-scan: nothing new


def test_s3_inbox_files_manifests() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ff-inbox")
        put = lambda k, b: s3.put_object(Bucket="ff-inbox", Key=k, Body=b)  # noqa: E731 - a local shorthand for this test's calls
        put("drop/good.json", json.dumps(order("g1")))
        put("drop/good.csv", f"order_id,source,target\ng2,{SRC},{TGT}\n")
        put("drop/bad.json", json.dumps(order("b1", enhancer="magic")))
        put("drop/processed/old.json", json.dumps(order("old")))  # sub-folders are not scanned
        _exercise_inbox(bulk.S3Inbox("s3://ff-inbox/drop", client=s3))
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ff-inbox")["Contents"]}
        assert {"drop/rejected/bad.json", "drop/rejected/bad.json.reason.json",
                "drop/processed/good.json", "drop/processed/good.json.result.json"} <= keys
        body = s3.get_object(Bucket="ff-inbox", Key="drop/rejected/bad.json.reason.json")["Body"].read()
        assert json.loads(body)["errors"][0]["field"] == "enhancer"


def test_schedule_and_inbox_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FACEFACTORY_BULK_SCHEDULE", raising=False)
    assert bulk.default_schedule() == "*/5 * * * *"
    monkeypatch.setenv("FACEFACTORY_BULK_SCHEDULE", "none")
    assert bulk.default_schedule() is None
    monkeypatch.delenv("FACEFACTORY_INBOX", raising=False)
    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    assert bulk.default_inbox() == str(tmp_path / "inbox")


def test_rejections_are_warnings_and_make_a_report(tmp_path: Path, caplog) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(order("b1", min_psnr_db=5)))
    (tmp_path / "good.json").write_text(json.dumps(order("g1")))
    with caplog.at_level("INFO", logger="facefactory.operators.bulk"):
        plan = bulk.scan(bulk.LocalInbox(tmp_path), 10)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "bad.json rejected" in warnings[0] and "min_psnr_db" in warnings[0]
    report = bulk.rejection_report(plan.rejected, str(tmp_path))
    assert report is not None and "1 manifest(s) rejected" in report and "bad.json: min_psnr_db" in report
    assert bulk.rejection_report({}, str(tmp_path)) is None


def test_missing_inbox_is_created_and_reported(tmp_path: Path, caplog) -> None:
    inbox = tmp_path / "not" / "there"
    with caplog.at_level("WARNING", logger="facefactory.operators.bulk"):
        assert bulk.scan(bulk.LocalInbox(inbox), 10).triggers == []
    assert inbox.is_dir()
    assert any("did not exist; created it" in r.getMessage() for r in caplog.records)


def test_uncreatable_inbox_fails_the_scan_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(bulk.ManifestError, match="cannot be created"):
        bulk.scan(bulk.LocalInbox(blocker / "inbox"), 10)
