"""An order id is bound to its inputs: the checksums of its source, target (and reference) and the
order options that change pixels, recorded in its work area when it is first ingested.

The work area's checkpoints (mezzanine chunks, swapped segments with done.json, the merged video)
belong to those inputs. A re-run of the same id with a different target would otherwise be served
the old target's frames, and an id that already published would silently ignore its new inputs.
So a re-run with other inputs is refused, saying which id, what changed and what to do (use a new
order id); the same inputs resume as before (finished chunks are not redone).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from facefactory.operators import uris

BINDING_REL = "input/inputs.json"
#: order options that change the output's pixels (thresholds, chunking and delivery do not)
PIXEL_OPTIONS = ("swapper", "enhancer", "face_selector", "identity_weight")
INPUT_FIELDS = ("source", "target", "reference")


class InputsChanged(ValueError):
    """The order id was started with other inputs; its checkpoints are not for these ones."""


def _sha256_s3(uri: str) -> str:
    from facefactory.operators.s3.client import s3_client
    from facefactory.operators.s3.uris import parse_s3_uri

    where = parse_s3_uri(uri)
    body = s3_client().get_object(Bucket=where.bucket, Key=where.key)["Body"]
    digest = hashlib.sha256()
    for block in body.iter_chunks(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def input_sha256(src: uris.OrderUri) -> str:
    """sha256 of one validated input where it lies (read once, streamed)."""
    if src.scheme == "s3":
        return _sha256_s3(src.uri)
    from faceworker.spec import sha256_file

    return sha256_file(src.path)


def binding(order: Mapping[str, Any], inputs: Mapping[str, uris.OrderUri | None]) -> dict[str, Any]:
    """The record of what this order id is: input checksums + pixel options."""
    return {
        "order_id": order["order_id"],
        "inputs": {name: {"uri": src.uri, "sha256": input_sha256(src)}
                   for name, src in inputs.items() if src is not None},
        "options": {name: order.get(name) for name in PIXEL_OPTIONS},
    }


def changes(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between the recorded binding and this order's, in words."""
    out: list[str] = []
    old_in, new_in = recorded.get("inputs") or {}, now.get("inputs") or {}
    for name in INPUT_FIELDS:
        old, new = old_in.get(name), new_in.get(name)
        if old is None and new is None:
            continue
        if old is None or new is None:
            out.append(f"{name} {'added' if old is None else 'removed'}")
        elif old.get("sha256") != new.get("sha256"):
            moved = "" if old.get("uri") == new.get("uri") else f" ({old.get('uri')} -> {new.get('uri')})"
            out.append(f"{name} content changed{moved}: sha256 {str(old.get('sha256'))[:12]}... -> "
                       f"{str(new.get('sha256'))[:12]}...")
    old_opt, new_opt = recorded.get("options") or {}, now.get("options") or {}
    for name in PIXEL_OPTIONS:
        if name in old_opt and old_opt.get(name) != new_opt.get(name):
            out.append(f"{name} {old_opt.get(name)!r} -> {new_opt.get(name)!r}")
    return out


def refusal(order_id: str, changed: list[str], record: str) -> str:
    return (f"order {order_id} was already started with other inputs ({'; '.join(changed)}); its "
            f"work area holds results for those inputs (recorded in {record}), so it is not run again "
            "with these. Use a new order id for the new inputs (or delete that order's work area to "
            "start this id over)")


def bind(order_area: Any, order: Mapping[str, Any], inputs: Mapping[str, uris.OrderUri | None]) -> dict[str, Any]:
    """Record the binding on first ingest; on a later one refuse other inputs (InputsChanged).
    Of two first ingests at once, exactly one record wins (create-if-absent); the other is
    compared against it like any re-run."""
    now = binding(order, inputs)
    if order_area.create_json(BINDING_REL, now):
        return now
    recorded = order_area.read_json(BINDING_REL)
    _refuse_if_changed(order_area, order, recorded, now)
    return recorded


def _refuse_if_changed(order_area: Any, order: Mapping[str, Any], recorded: Mapping[str, Any],
                       now: Mapping[str, Any]) -> None:
    changed = changes(recorded, now)
    if changed:
        raise InputsChanged(refusal(str(order["order_id"]), changed, order_area.uri(BINDING_REL)))


def parse_inputs(order: Mapping[str, Any], roots: tuple[Any, ...]) -> dict[str, uris.OrderUri | None]:
    """The order's input URIs, validated (UriError as ingest would raise it)."""
    parsed: dict[str, uris.OrderUri | None] = {}
    for name in INPUT_FIELDS:
        value = order.get(name)
        if name == "reference" and (order.get("face_selector") != "reference" or not value):
            parsed[name] = None
            continue
        parsed[name] = uris.parse(uris.expand_placeholders(str(value), roots), roots)
    return parsed


def check_rerun(order: Mapping[str, Any], cfg: Any, order_area: Any) -> None:
    """Before re-running (or reporting as done) an order id that already has a run: refuse when
    its inputs differ from the recorded ones. Nothing recorded or inputs unreadable: nothing to
    say here (ingest decides)."""
    if not order_area.exists(BINDING_REL):
        return
    try:
        inputs = parse_inputs(order, cfg.input_roots)
    except uris.UriError:
        return
    _refuse_if_changed(order_area, order, order_area.read_json(BINDING_REL), binding(order, inputs))
