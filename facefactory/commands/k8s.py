"""`facefactory k8s render-pod`: the V1Pod one swap task would submit, without a cluster.

The dry run an operator reviews before pointing the deployment at a real cluster: the same
FaceSwapPodOperator, the same configuration (env; `--set FACEFACTORY_K8S_*=…` overrides), the
same swap arguments the DAG's `chunk` task builds, and the pod labels of the mapped task
instance (`dag_id`, `run_id` = order__<order_id>, `map_index` = chunk).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from facefactory.operators import names

DAG_ID = names.DAG_ID


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("k8s", help="Kubernetes helpers (render the swap pod)")
    sub = parser.add_subparsers(dest="k8s_command", required=True)
    render = sub.add_parser(
        "render-pod",
        help="print the V1Pod YAML of one chunk's swap task",
        description="Order fields are lower-case keys (order_id, swapper, chunk_frames, ...); "
        "FACEFACTORY_* keys override pod settings (see docs/kubernetes.md).",
    )
    render.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="order field or FACEFACTORY_* pod setting (repeatable)")
    render.add_argument("--chunk", type=int, required=True, help="chunk index (= map index)")
    render.add_argument("--frames", type=int, default=None,
                        help="total frames of the target (clamps the last chunk); "
                        "ignored when the work area already has chunks/chunks.json")
    render.add_argument("--work", default=None, help="work root (default: FACEFACTORY_WORK_ROOT)")
    render.add_argument("--task-id", default="swap", choices=["swap", "reswap"])
    render.add_argument("--try-number", type=int, default=1)
    render.add_argument("--validate", action="store_true",
                        help="also validate against the Kubernetes OpenAPI schema (kubernetes-validate)")
    render.add_argument("--kube-version", default=None, help="schema version for --validate (default: newest)")
    render.set_defaults(func=_render_pod)


def parse_sets(pairs: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split `--set` pairs into order fields (typed per the order schema) and pod settings."""
    from facefactory.operators.order_schema import ORDER_FIELDS, coerce_field
    from facefactory.operators.pod_spec import SETTINGS

    order: dict[str, Any] = {}
    pod: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        if key in SETTINGS:
            pod[key] = raw
        elif key in ORDER_FIELDS:
            order[key] = coerce_field(key, raw)
        else:
            raise ValueError(f"unknown key {key!r}: not an order field ({', '.join(ORDER_FIELDS)}) "
                             "nor a pod setting (FACEFACTORY_K8S_*, see docs/kubernetes.md)")
    return order, pod


def full_order(fields: dict[str, Any]) -> dict[str, Any]:
    """Order defaults (the trigger form's) with the given fields on top, checked with the one
    refusal (facefactory.operators.order_check) like every way in."""
    from facefactory.operators.order_check import order_problems, refusal
    from facefactory.operators.order_schema import ORDER_FIELDS

    order = {name: spec.get("default") for name, spec in ORDER_FIELDS.items()}
    order.update(fields)
    if problems := order_problems(order):
        raise ValueError(refusal(problems))
    return order


def _chunk_size(order: dict[str, Any], frames: int | None) -> int:
    """The order's chunk size as the DAG's chunk task would choose it; "auto" (empty) without the
    target's frame count (`--frames`) renders the auto rule's smallest chunk."""
    from facefactory import settings as ff_settings
    from facefactory.operators.config import parse_time
    from facefactory.operators.media import AUTO_MIN_FRAMES, effective_chunk_frames

    requested = order.get("chunk_frames")
    if frames is None:
        return AUTO_MIN_FRAMES if requested is None else int(requested)
    return effective_chunk_frames(frames, None if requested is None else int(requested),
                                  parse_time().max_map_length, ff_settings.load().swap_slots)


def chunk_range(work_root: str, order: dict[str, Any], index: int, frames: int | None) -> dict[str, int]:
    """The chunk's frame range: from the work area's chunks.json when present, else computed."""
    listing = Path(work_root) / "orders" / str(order["order_id"]) / "chunks" / "chunks.json"
    if "://" not in work_root and listing.exists():
        chunks = json.loads(listing.read_text())
        for chunk in chunks:
            if int(chunk["chunk"]) == index:
                return {"chunk": index, "start": int(chunk["start"]), "end": int(chunk["end"])}
        raise ValueError(f"{listing} has no chunk {index} (it has {len(chunks)})")
    size = _chunk_size(order, frames)
    start, end = index * size, (index + 1) * size
    if frames is not None:
        if start >= frames:
            raise ValueError(f"chunk {index} starts at frame {start}, past the {frames} frames of the target")
        end = min(end, frames)
    return {"chunk": index, "start": start, "end": end}


def render_chunk_pod(order: dict[str, Any], chunk: dict[str, int], work_root: str,
                     pod_settings: dict[str, str] | None = None, *, task_id: str = "swap",
                     try_number: int = 1) -> Any:
    """Build the V1Pod of the mapped swap task instance for `chunk` (no cluster, no DB)."""
    from facefactory.operators.face_swap_pod import FaceSwapPodOperator, swap_arguments
    from facefactory.operators.order_schema import run_id_for

    args = swap_arguments(work_root, order["order_id"], chunk, order)
    op = FaceSwapPodOperator(task_id=task_id, arguments=args, pod_settings=pod_settings)
    ti = SimpleNamespace(dag_id=DAG_ID, task_id=task_id, map_index=chunk["chunk"], try_number=try_number)
    context = {"ti": ti, "run_id": run_id_for(order["order_id"]), "dag": SimpleNamespace(dag_id=DAG_ID)}
    return op.build_pod_request_obj(context, dry_run=True)  # type: ignore[arg-type]  # a plain dict context suffices for rendering


def _render_pod(args: argparse.Namespace) -> int:
    from facefactory.operators.pod_spec import pod_manifest, pod_yaml
    from facefactory.settings import load

    try:
        fields, pod_settings = parse_sets(args.sets)
        order = full_order(fields)
        work_root = args.work or load().work_root
        chunk = chunk_range(work_root, order, args.chunk, args.frames)
        with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; stdout is the YAML
            pod = render_chunk_pod(order, chunk, work_root, pod_settings, task_id=args.task_id,
                                   try_number=args.try_number)
    except Exception as exc:  # noqa: BLE001 - any bad input is reported, not a traceback
        print(f"facefactory k8s render-pod: {exc}", file=sys.stderr)
        return 2
    if args.validate:
        import kubernetes_validate

        version = args.kube_version or kubernetes_validate.latest_version()
        try:
            kubernetes_validate.validate(pod_manifest(pod), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            print(f"facefactory k8s render-pod: invalid pod for Kubernetes {version}: {exc}", file=sys.stderr)
            return 1
        print(f"# validated against the Kubernetes {version} schema (strict)", file=sys.stderr)
    sys.stdout.write(pod_yaml(pod))
    return 0
