"""Bulk orders: read manifests from an inbox, validate them, plan runs, file them away.

Airflow-free on purpose: the bulk DAG (dags/bulk_orders.py) only wires these functions into
tasks, so the parsing/validation/moving rules are unit-tested without a scheduler.

Rules (also in docs/triggering.md):
- a manifest is ``*.json`` (one order object, or a list of them) or ``*.csv`` (header row =
  order field names, one order per row; empty cells are left out so the defaults apply);
- a manifest is all-or-nothing: if any order in it is invalid (schema, duplicate order id,
  unreadable file, more orders than the per-scan cap) the whole manifest goes to
  ``rejected/`` with ``<name>.reason.json`` and no run is started for it;
- valid manifests are taken whole, in name order, while the total stays within the cap; the
  rest wait in the inbox for the next scan; after their runs were triggered they go to
  ``processed/`` with ``<name>.result.json``;
- every order runs as ``order__<order_id>``, so a re-scan (or the API) never starts a duplicate.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import posixpath
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from facefactory import settings
from facefactory.operators.order_check import order_problems, parse_field
from facefactory.operators.order_schema import run_id_for
from faceworker.workarea import split_s3_uri

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".json", ".csv")
PROCESSED = "processed"
REJECTED = "rejected"
DEFAULT_MAX_RUNS_PER_SCAN = int(settings.declared("FACEFACTORY_BULK_MAX_RUNS").default)
DEFAULT_SCHEDULE = settings.declared("FACEFACTORY_BULK_SCHEDULE").default


class ManifestError(ValueError):
    """The manifest file itself cannot be read as orders (bad JSON/CSV, wrong shape)."""


# --------------------------------------------------------------------------- configuration


def _repo_home() -> Path:
    return Path(__file__).resolve().parents[1] / "var"


def default_inbox() -> str:
    """``FACEFACTORY_INBOX``, else ``$FACEFACTORY_HOME/inbox`` (local folder or s3:// prefix)."""
    home = settings.raw("FACEFACTORY_HOME") or str(_repo_home())
    return settings.raw("FACEFACTORY_INBOX") or str(Path(home) / "inbox")


def default_schedule() -> str | None:
    """Parse-time cron for the bulk DAG: ``FACEFACTORY_BULK_SCHEDULE`` ('none' = manual only)."""
    value = settings.text("FACEFACTORY_BULK_SCHEDULE")
    return None if value.strip().lower() in {"", "none", "off", "manual"} else value


# --------------------------------------------------------------------------- parsing


def _coerce_cell(name: str, raw: str) -> Any:
    """CSV cells are text: convert to the type the order schema wants for that field."""
    try:
        return parse_field(name, raw)
    except ValueError:
        return raw  # unknown field or not a number: validation then names it, like every way in


def parse_manifest(name: str, data: bytes) -> list[dict[str, Any]]:
    """Orders in one manifest file, in file order. Raises ManifestError on unreadable files."""
    suffix = posixpath.splitext(name)[1].lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text: {exc}") from exc
    if suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"invalid JSON: {exc}") from exc
        orders = doc if isinstance(doc, list) else [doc]
        if not orders:
            raise ManifestError("empty list: no orders")
        for i, order in enumerate(orders):
            if not isinstance(order, dict):
                raise ManifestError(f"item {i} is {type(order).__name__}, expected an object")
        return orders
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ManifestError("CSV has no header row")
        orders = []
        for row in reader:
            if None in row:
                raise ManifestError(f"CSV line {reader.line_num} has more cells than the header")
            order = {k.strip(): _coerce_cell(k.strip(), v.strip())
                     for k, v in row.items() if v is not None and v.strip() != ""}
            if order:
                orders.append(order)
        if not orders:
            raise ManifestError("CSV has no order rows")
        return orders
    raise ManifestError(f"unsupported manifest type {suffix!r} (want .json or .csv)")


# --------------------------------------------------------------------------- validation

def order_errors(order: dict[str, Any]) -> list[dict[str, str]]:
    """Problems of one order as ``[{"field", "message"}]`` (empty = valid), worded by
    facefactory.operators.order_check like every other way in."""
    return [p._asdict() for p in order_problems(order)]


@dataclass
class ManifestCheck:
    """Outcome of checking one manifest: its orders when valid, else the reasons."""

    name: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def check_manifest(name: str, data: bytes, max_orders: int | None = None) -> ManifestCheck:
    """Parse + validate every order; duplicate order ids inside one manifest are an error."""
    check = ManifestCheck(name=name)
    try:
        orders = parse_manifest(name, data)
    except ManifestError as exc:
        check.errors.append({"reason": "unreadable_manifest", "message": str(exc)})
        return check
    seen: dict[str, int] = {}
    for index, order in enumerate(orders):
        for err in order_errors(order):
            check.errors.append({"reason": "invalid_order", "index": index,
                                 "order_id": order.get("order_id"), **err})
        oid = order.get("order_id")
        if isinstance(oid, str):
            if oid in seen:
                check.errors.append({"reason": "duplicate_order_id", "index": index,
                                     "order_id": oid, "field": "order_id",
                                     "message": f"order_id {oid!r} already used by item {seen[oid]}"})
            seen.setdefault(oid, index)
    if max_orders is not None and len(orders) > max_orders:
        check.errors.append({"reason": "too_many_orders", "orders": len(orders),
                             "max_runs_per_scan": max_orders,
                             "message": f"{len(orders)} orders > cap of {max_orders} runs per "
                             "scan: split the manifest"})
    if not check.errors:
        check.orders = orders
    return check


# --------------------------------------------------------------------------- planning


@dataclass
class ScanPlan:
    """What one scan does: runs to trigger, manifests to file, manifests left for later."""

    triggers: list[dict[str, Any]] = field(default_factory=list)   # {"run_id","conf","manifest"}
    accepted: dict[str, list[str]] = field(default_factory=dict)   # manifest -> run ids
    rejected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # manifest -> errors
    deferred: list[str] = field(default_factory=list)              # over the cap, next scan


def plan_scan(checks: list[ManifestCheck], max_runs: int) -> ScanPlan:
    """Take valid manifests whole, in name order, until the run cap would be exceeded."""
    plan = ScanPlan()
    budget = max_runs
    for check in sorted(checks, key=lambda c: c.name):
        if not check.valid:
            plan.rejected[check.name] = check.errors
            continue
        if len(check.orders) > budget:
            plan.deferred.append(check.name)
            budget = 0  # keep name order: later manifests must not overtake this one
            continue
        budget -= len(check.orders)
        run_ids = []
        for order in check.orders:
            run_id = run_id_for(order["order_id"])
            run_ids.append(run_id)
            plan.triggers.append({"run_id": run_id, "conf": order, "manifest": check.name})
        plan.accepted[check.name] = run_ids
    return plan


# --------------------------------------------------------------------------- inbox storage


class Inbox(Protocol):
    """A folder of manifests with processed/ and rejected/ sub-folders."""

    url: str

    def list_manifests(self) -> list[str]: ...
    def read(self, name: str) -> bytes: ...
    def file(self, name: str, to: str, note: dict[str, Any]) -> str: ...


def _note_name(name: str, to: str) -> str:
    return f"{name}.{'reason' if to == REJECTED else 'result'}.json"


def _stamp(note: dict[str, Any], name: str, to: str) -> bytes:
    body = {"manifest": name, "status": to, "at": datetime.now(UTC).isoformat(), **note}
    return (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode()


class LocalInbox:
    """Inbox on a local (or mounted) folder."""

    def __init__(self, path: str | Path) -> None:
        self.root = Path(str(path).removeprefix("file://"))
        self.url = str(self.root)

    def list_manifests(self) -> list[str]:
        if not self.root.is_dir():
            # A missing inbox used to scan as "empty" forever: a typo in FACEFACTORY_INBOX was
            # silent. Create it (so drops have somewhere to go) and say so; if that is not
            # possible the scan fails with the reason.
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ManifestError(f"inbox folder {self.root} does not exist and cannot be "
                                    f"created: {exc.strerror or exc}") from exc
            log.warning("inbox folder %s did not exist; created it (empty, nothing to scan)", self.root)
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def file(self, name: str, to: str, note: dict[str, Any]) -> str:
        """Write the note first, then move: a crash leaves the manifest in the inbox, never lost."""
        dest = self.root / to
        dest.mkdir(parents=True, exist_ok=True)
        (dest / _note_name(name, to)).write_bytes(_stamp(note, name, to))
        shutil.move(str(self.root / name), str(dest / name))
        return str(dest / name)


class S3Inbox:
    """Inbox under an ``s3://bucket/prefix`` (boto3; endpoint from AWS_ENDPOINT_URL/FACEFACTORY_S3_ENDPOINT_URL)."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        bucket, prefix = split_s3_uri(url)
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = url
        if client is None:
            import boto3

            endpoint = settings.raw("FACEFACTORY_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
            client = boto3.client("s3", endpoint_url=endpoint)
        self.s3 = client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def list_manifests(self) -> list[str]:
        base = self._key() + "/" if self.prefix else ""
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(base):]
                if name and posixpath.splitext(name)[1].lower() in MANIFEST_SUFFIXES:
                    names.append(name)
        return sorted(names)

    def read(self, name: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()

    def file(self, name: str, to: str, note: dict[str, Any]) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(to, _note_name(name, to)),
                           Body=_stamp(note, name, to), ContentType="application/json")
        dest = self._key(to, name)
        self.s3.copy_object(Bucket=self.bucket, Key=dest,
                            CopySource={"Bucket": self.bucket, "Key": self._key(name)})
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(name))
        return f"s3://{self.bucket}/{dest}"


def open_inbox(url: str) -> Inbox:
    """LocalInbox for paths/file:// URLs, S3Inbox for s3:// prefixes."""
    if url.startswith("s3://"):
        return S3Inbox(url)
    return LocalInbox(url)


# --------------------------------------------------------------------------- one scan


def scan(inbox: Inbox, max_runs: int) -> ScanPlan:
    """Check every manifest, file away the rejected ones now (no side effects to wait for)."""
    checks = [check_manifest(name, inbox.read(name), max_orders=max_runs)
              for name in inbox.list_manifests()]
    plan = plan_scan(checks, max_runs)
    for name, errors in plan.rejected.items():
        inbox.file(name, REJECTED, {"errors": errors})
        log.warning("manifest %s rejected, no order of it started: %s (details in %s/%s)",
                    name, rejection_summary(errors), REJECTED, _note_name(name, REJECTED))
    return plan


def rejection_summary(errors: list[dict[str, Any]]) -> str:
    """One line of a manifest's rejection reasons (field: message), for logs and the report."""
    parts = []
    for e in errors:
        where = e.get("field") or e.get("order_id") or ""
        text = e.get("message") or e.get("reason") or ""
        parts.append(f"{where}: {text}" if where else str(text))
    return "; ".join(parts)


def rejection_report(rejected: dict[str, list[dict[str, Any]]], inbox_url: str) -> str | None:
    """Why a scan run must not look green: None when nothing was rejected."""
    if not rejected:
        return None
    lines = [f"{len(rejected)} manifest(s) rejected in {inbox_url} (moved to {REJECTED}/, "
             "no order of them started):"]
    lines += [f"  {name}: {rejection_summary(errors)}" for name, errors in sorted(rejected.items())]
    return "\n".join(lines)


def file_processed(inbox: Inbox, accepted: dict[str, list[str]]) -> list[str]:
    """After the runs were triggered: move the accepted manifests to processed/."""
    return [inbox.file(name, PROCESSED, {"run_ids": run_ids}) for name, run_ids in accepted.items()]


def runtime_setting(name: str, param: Any, default: str) -> str:
    """Param (manual trigger) > Variable (lower-case `name`) > env `name` > default."""
    if param not in (None, ""):
        return str(param)
    value = settings.variable(name)
    return value if value not in (None, "") else (settings.raw(name) or default)


def scan_task(params: Any) -> dict[str, Any]:
    """bulk_orders' scan task: validate every manifest, plan the runs, and return the XCom the
    trigger, file_processed and report tasks read (inbox, triggers, accepted, rejections, deferred)."""
    inbox_url = runtime_setting("FACEFACTORY_INBOX", params.get("inbox"), default_inbox())
    cap = int(runtime_setting("FACEFACTORY_BULK_MAX_RUNS", params.get("max_runs"), str(DEFAULT_MAX_RUNS_PER_SCAN)))
    plan = scan(open_inbox(inbox_url), cap)
    print(f"inbox {inbox_url}: {len(plan.triggers)} runs from {len(plan.accepted)} manifests, "
          f"{len(plan.rejected)} rejected, {len(plan.deferred)} deferred (cap {cap})")
    return {"inbox": inbox_url, "triggers": plan.triggers, "accepted": plan.accepted,
            "rejected": sorted(plan.rejected), "rejections": plan.rejected,
            "deferred": plan.deferred}
