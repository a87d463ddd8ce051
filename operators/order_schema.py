"""The order: one JSON document per customer order.

One schema serves the DAG's Params (the UI trigger form), the bulk inbox validator and the
`facefactory submit` CLI, so the three ways in can never disagree on what a valid order is.
"""
from __future__ import annotations

import re
from typing import Any

from facefactory.operators import names

# One order id rule for the whole project: the engine's work area's (faceworker.workarea), the one
# docs/triggering.md promises (128 characters).
ORDER_ID_MAX = names.ORDER_ID_MAX
ORDER_ID_PATTERN = names.ORDER_ID_PATTERN
URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+|file:///\S+|/\S+)$"
ORDER_ID_RE = re.compile(ORDER_ID_PATTERN)
URI_RE = re.compile(URI_PATTERN)
URI_FIELDS = ("source", "target", "reference")  # input URIs (publish_to is a prefix, checked at publish)

# the choices, from their Literals (operators/names.py)
SWAPPERS = list(names.SWAPPERS)
ENHANCERS = list(names.ENHANCERS)
FACE_SELECTORS = list(names.FACE_SELECTORS)

# field -> JSON-schema fragment (with "default", "title", "description" and "section").
ORDER_FIELDS: dict[str, dict[str, Any]] = {
    "order_id": {
        "type": "string",
        "pattern": ORDER_ID_PATTERN,
        "default": "sample-0001",
        "title": "Order id",
        "description": "Unique id of the customer order (letters, digits, . _ -). "
        "The DAG run id is derived from it, so the same order never runs twice.",
        "section": "Order",
    },
    "source": {
        "type": "string",
        "pattern": URI_PATTERN,
        "default": "file:///{inputs}/sample/source.png",
        "title": "Source face photo",
        "description": "URI of the photo whose face is put into the video: file:// path under "
        "an allow-listed input root, or s3://bucket/key.",
        "section": "Order",
    },
    "target": {
        "type": "string",
        "pattern": URI_PATTERN,
        "default": "file:///{inputs}/sample/target.mp4",
        "title": "Target video",
        "description": "URI of the video whose face is replaced (file:// or s3://).",
        "section": "Order",
    },
    "swapper": {
        "type": "string",
        "enum": SWAPPERS,
        "default": "classic",
        "title": "Swapper",
        "description": "classic = offline landmark warp (no learned weights); inswapper_128 = "
        "ONNX model pack from the model directory.",
        "section": "Swap",
    },
    "enhancer": {
        "type": "string",
        "enum": ENHANCERS,
        "default": "none",
        "title": "Face enhancer",
        "description": "Optional face restoration after the swap (gfpgan needs its model pack).",
        "section": "Swap",
    },
    "face_selector": {
        "type": "string",
        "enum": FACE_SELECTORS,
        "default": "one",
        "title": "Which faces to swap",
        "description": "one = the largest face per frame; many = every face; reference = the "
        "face closest to the reference photo.",
        "section": "Swap",
    },
    "reference": {
        "type": ["null", "string"],
        "pattern": URI_PATTERN,
        "default": None,
        "title": "Reference face photo",
        "description": "With face_selector=reference: URI of a photo of the person in the video "
        "to replace.",
        "section": "Swap",
    },
    "identity_weight": {
        "type": "number",
        "minimum": 0.0,
        "maximum": 1.0,
        "default": 1.0,
        "title": "Identity weight",
        "description": "classic swapper: 1 = face shape from the source, 0 = keep the target's "
        "face shape (texture only).",
        "section": "Swap",
    },
    "chunk_frames": {
        "type": ["integer", "null"],
        "minimum": 16,
        "maximum": 512,
        "default": None,
        "title": "Frames per chunk",
        "description": "Each chunk is one swap task (one GPU pod). Empty = auto: one chunk per "
                       "swap slot (equal rounds of them past 1024 frames a chunk). Smaller = more parallel, "
                       "but each chunk pays a start-up.",
        "section": "Swap",
    },
    "min_id_cosine": {
        "type": "number",
        "minimum": 0.0,
        "maximum": 1.0,
        "default": 0.85,
        "title": "Minimum identity cosine",
        "description": "Quality gate: calibrated cosine between the source face and the "
        "swapped face, on frames with a face.",
        "section": "Quality gate",
    },
    "min_psnr_db": {
        "type": "number",
        "minimum": 10,
        "maximum": 80,
        "default": 30,
        "title": "Minimum PSNR outside the face (dB)",
        "description": "Quality gate: the background must stay untouched.",
        "section": "Quality gate",
    },
    "publish_to": {
        "type": ["null", "string"],
        "default": None,
        "title": "Publish to",
        "description": "URI prefix for the finished video (file:// or s3://). Empty = the "
        "deployment's default (FACEFACTORY_PUBLISH_TO).",
        "section": "Delivery",
    },
    "notify": {
        "type": ["null", "string"],
        "default": None,
        "title": "Notify",
        "description": "Optional e-mail address or webhook URL told when the order finishes.",
        "section": "Delivery",
    },
}

REQUIRED = ["order_id", "source", "target"]


def order_json_schema() -> dict[str, Any]:
    """The whole order as one JSON schema (for bulk manifests and API clients)."""
    props = {
        name: {k: v for k, v in spec.items() if k != "section"}
        for name, spec in ORDER_FIELDS.items()
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "facefactory order",
        "type": "object",
        "properties": props,
        "required": REQUIRED,
        "additionalProperties": False,
    }


def run_id_for(order_id: str) -> str:
    """Deterministic DAG run id: the same order can never start two runs."""
    from facefactory.operators.order_check import ORDER_ID_RULE

    if not isinstance(order_id, str) or not ORDER_ID_RE.match(order_id) or ".." in order_id:
        raise ValueError(f"order_id: {ORDER_ID_RULE}; got {order_id!r}")
    return f"{names.RUN_ID_PREFIX}{order_id}"


def coerce_field(key: str, raw: str) -> Any:
    """`--set key=value` text -> the JSON type the schema gives that field (one parser for all
    CLIs; the human messages live in facefactory.operators.order_check)."""
    from facefactory.operators.order_check import parse_field

    return parse_field(key, raw)
