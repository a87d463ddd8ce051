"""Every name the Airflow side shares between modules: choices, DAG and task ids, XCom keys, and
the shapes of the documents passed between tasks.

One place, so that a choice is added once and a renamed task cannot leave a stale string behind.
The engine's choices (enhancer, face selector) are its own Literals (faceworker.spec, a contract
module) re-exported here: the order schema, the `facefactory` CLI and the swap arguments are
derived from them, so a new face selector is that Literal plus the engine code implementing it
(tests/operators/test_names.py). No Airflow import: the CLI and the plugins read it too.
"""
from __future__ import annotations

from typing import Any, Final, Literal, TypedDict, get_args

from faceworker.spec import ENHANCERS, FACE_SELECTORS, Enhancer, FaceSelector
from faceworker.workarea import ORDER_ID_MAX, ORDER_ID_PATTERN

__all__ = [
    "ENHANCERS", "FACE_SELECTORS", "Enhancer", "FaceSelector", "ORDER_ID_MAX", "ORDER_ID_PATTERN",
    "Swapper", "SWAPPERS", "Runner", "RUNNERS", "GateStage", "GATE_STAGES",
    "DAG_ID", "BULK_DAG_ID", "RUN_ID_PREFIX", "INGEST", "CHUNK", "SWAP", "QUALITY_GATE", "RESWAP",
    "FINAL_GATE", "MERGE", "PUBLISH", "CDN_READY", "XCOM_GATE", "XCOM_REPORT", "XCOM_PUBLISHED",
    "XCOM_POD", "XCOM_RETURN", "Order", "VideoInfo", "IngestResult", "ChunkSpec", "GateResultDict",
]

# -- choices ----------------------------------------------------------------------------------
#: swappers an order may name: the built-in classic swapper or an ONNX model pack
Swapper = Literal["classic", "inswapper_128"]
SWAPPERS: tuple[Swapper, ...] = get_args(Swapper)
#: where a swap runs: a subprocess on the Airflow worker, or a pod
Runner = Literal["local", "kubernetes"]
RUNNERS: tuple[Runner, ...] = get_args(Runner)

# -- DAGs, tasks, XCom ------------------------------------------------------------------------
DAG_ID = "face_swap_order"
BULK_DAG_ID = "bulk_orders"
RUN_ID_PREFIX = "order__"  # run id of an order: RUN_ID_PREFIX + order_id

INGEST = "ingest"
CHUNK = "chunk"
SWAP = "swap"
QUALITY_GATE: Final = "quality_gate"
RESWAP = "reswap"
FINAL_GATE: Final = "final_gate"
MERGE = "merge"
PUBLISH = "publish"
CDN_READY = "cdn_ready"

#: the two gate runs of an order (the task ids, and the `stage` of their results)
GateStage = Literal["quality_gate", "final_gate"]
GATE_STAGES: tuple[GateStage, ...] = get_args(GateStage)

XCOM_GATE = "gate"  # quality_gate: GateResultDict of the first gate
XCOM_REPORT = "report"  # final_gate: the QA report's URIs
XCOM_PUBLISHED = "published"  # publish: the delivery record
XCOM_POD = "pod"  # swap/reswap: the pod manifest a chunk would submit
XCOM_RETURN = "return_value"  # Airflow's key of a task's return value


# -- documents passed between tasks -----------------------------------------------------------
class Order(TypedDict, total=False):
    """One customer order (facefactory.operators.order_schema.ORDER_FIELDS is its schema)."""

    order_id: str
    source: str
    target: str
    swapper: str
    enhancer: Enhancer
    face_selector: FaceSelector
    reference: str | None
    identity_weight: float
    chunk_frames: int | None
    min_id_cosine: float
    min_psnr_db: float
    publish_to: str | None
    notify: str | None


class VideoInfo(TypedDict):
    """The probe fields the pipeline relies on (facefactory.operators.media.video_info); ingest passes them on
    as part of its result, so they are declared once, here."""

    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    has_audio: bool
    vfr: bool


class IngestResult(VideoInfo):
    """What ingest returns (facefactory.operators.media.ingest) and every later task reads: the target's
    VideoInfo plus where the order's inputs are."""

    order_id: str
    order_dir: str
    source_uri: str
    target_uri: str
    source_sha256: str | None
    video: str
    source_local: str
    target_local: str
    source_face: dict[str, Any]


class ChunkSpec(TypedDict):
    """One swap task's frame range [start, end) of chunk `chunk` (facefactory.operators.media.split)."""

    chunk: int
    start: int
    end: int


class GateResultDict(TypedDict):
    """facefactory.quality.gate.GateResult.to_dict(): what the gate tasks pass on (XCom `gate`)."""

    stage: GateStage
    passed: bool
    failing_chunks: list[int]
    failures: list[dict[str, Any]]
    failures_total: int
    failures_by_chunk: dict[str, list[dict[str, Any]]]
    failure_counts: dict[str, dict[str, int]]
    reswap: list[dict[str, Any]]
    summary: dict[str, Any]
    message: str
    validation_uri: str | None
    fatal: str | None  # why no re-swap can pass the order (e.g. no face anywhere)
