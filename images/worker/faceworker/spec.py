"""What a swap-chunk run is (the spec), its hash, and the done.json checkpoint.

The spec hash covers every argument that changes the output, so a retried or re-run task with the
same inputs finds done.json with the same hash and returns at once, while any changed setting (or a
new engine version, or a different source face) recomputes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from faceworker import ENGINE_VERSION
from faceworker.errors import BadInput

SWAPPER_DEFAULT = "classic"
# The engine's choices, each one Literal: the CLI, the order schema and the Airflow side's worker
# arguments are derived from these (operators/names.py re-exports them), so a new enhancer or face
# selector is this Literal plus the engine code that implements it.
Enhancer = Literal["none", "gfpgan"]
FaceSelector = Literal["one", "many", "reference"]
ENHANCERS: tuple[Enhancer, ...] = get_args(Enhancer)
FACE_SELECTORS: tuple[FaceSelector, ...] = get_args(FaceSelector)


@dataclass
class ChunkSpec:
    """Arguments of one `faceworker swap-chunk` run."""

    work: str
    order: str
    chunk: int
    start: int
    end: int
    swapper: str = SWAPPER_DEFAULT
    enhancer: str = "none"
    face_selector: str = "one"
    identity_weight: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    model_dir: str | None = None
    reference: str | None = None  # URI of a reference photo/embedding (face_selector=reference)
    crf: int = 18
    preset: str = "veryfast"

    def validate(self) -> ChunkSpec:
        if self.chunk < 0:
            raise BadInput(f"chunk must be >= 0, got {self.chunk}")
        if self.start < 0 or self.end <= self.start:
            raise BadInput(f"bad frame range [{self.start}, {self.end}): end must be > start >= 0")
        if self.enhancer not in ENHANCERS:
            raise BadInput(f"unknown enhancer {self.enhancer!r} (expected one of {', '.join(ENHANCERS)})")
        if self.face_selector not in FACE_SELECTORS:
            raise BadInput(f"unknown face selector {self.face_selector!r} (expected {', '.join(FACE_SELECTORS)})")
        if self.face_selector == "reference" and not self.reference:
            raise BadInput("face selector 'reference' needs --reference")
        if self.identity_weight is not None and not 0.0 <= self.identity_weight <= 1.0:
            raise BadInput(f"identity weight must be in [0, 1], got {self.identity_weight}")
        if not 0 <= self.crf <= 51:
            raise BadInput(f"crf must be in [0, 51], got {self.crf}")
        if not isinstance(self.options, dict):
            raise BadInput("--options must be a JSON object")
        return self

    @property
    def frames(self) -> int:
        return self.end - self.start

    def swapper_options(self) -> dict[str, Any]:
        """--identity-weight is the order's setting; --options (reswap's fallback) overrides it."""
        opts: dict[str, Any] = {}
        if self.identity_weight is not None:
            opts["identity_weight"] = self.identity_weight
        opts.update(self.options)
        return opts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """sha256 of a file, streamed in blocks (model packs and videos are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def spec_hash(spec: ChunkSpec, source_embedding_sha256: str, reference_sha256: str | None = None) -> str:
    """sha256 over the canonical JSON of everything that changes this chunk's output.

    Not included: where things live (work root, model dir path) — moving a work area keeps checkpoints."""
    payload = {
        "order": spec.order,
        "chunk": spec.chunk,
        "start": spec.start,
        "end": spec.end,
        "swapper": spec.swapper,
        "enhancer": spec.enhancer,
        "face_selector": spec.face_selector,
        "identity_weight": spec.identity_weight,
        "options": spec.options,
        "encode": {"crf": spec.crf, "preset": spec.preset},
        "source_embedding_sha256": source_embedding_sha256,
        "reference_sha256": reference_sha256,
        "engine_version": ENGINE_VERSION,
    }
    return sha256_bytes(canonical_json(payload).encode())


def done_record(spec: ChunkSpec, spec_hash_: str, frames: int, timings: dict[str, float],
                summary: dict[str, Any]) -> dict[str, Any]:
    """The done.json document (docs/contracts.md)."""
    return {
        "spec_hash": spec_hash_,
        "engine_version": ENGINE_VERSION,
        "order": spec.order,
        "chunk": spec.chunk,
        "start": spec.start,
        "end": spec.end,
        "frames": frames,
        "swapper": spec.swapper,
        "enhancer": spec.enhancer,
        "timings": timings,
        "summary": summary,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def done_matches(done: dict[str, Any] | None, spec_hash_: str, frames: int) -> bool:
    """A checkpoint counts only with the same spec hash and the full frame count."""
    return done is not None and bool(done) and done.get("spec_hash") == spec_hash_ and int(done.get("frames", -1)) == frames
