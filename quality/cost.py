"""Per-order cost and speed from the chunks' ``done.json`` timings.

A chunk's ``timings.total_s`` is wall time of the worker process; on the Kubernetes runner it
holds a GPU for that long (GPU-seconds), on the embedded local runner it is CPU time of one
worker. Prices are configuration: ``FACEFACTORY_PRICE_PER_GPU_S`` (default 0.0011 USD ≈ 4 USD/h)
and ``FACEFACTORY_PRICE_PER_CPU_S`` (default 0.000012 USD ≈ 0.043 USD per core-hour).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from facefactory import settings

log = logging.getLogger(__name__)

DEFAULT_PRICE_PER_GPU_S = float(settings.declared("FACEFACTORY_PRICE_PER_GPU_S").default)
DEFAULT_PRICE_PER_CPU_S = float(settings.declared("FACEFACTORY_PRICE_PER_CPU_S").default)
STAGES = ("decode_s", "detect_s", "swap_s", "encode_s", "metrics_s", "total_s")


@dataclass
class ChunkCost:
    chunk: int
    frames: int
    device: str  # "gpu" | "cpu"
    seconds: float
    fps: float
    retries: int
    timings: dict[str, float]


@dataclass
class OrderCost:
    frames: int
    chunks: list[ChunkCost]
    gpu_seconds: float
    cpu_seconds: float
    fps: float  # frames per worker-second (all chunks)
    retries: int
    price_per_gpu_s: float
    price_per_cpu_s: float
    estimated_cost_usd: float
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _device(done: dict, default: str) -> str:
    ep = str(done.get("execution_provider") or done.get("device") or "").lower()
    if "cuda" in ep or "gpu" in ep:
        return "gpu"
    if ep:
        return "cpu"
    return default


def default_device() -> str:
    """Kubernetes runner pods request a GPU; the embedded local runner uses the CPU."""
    return "gpu" if settings.raw("FACEFACTORY_RUNNER") == "kubernetes" else "cpu"


def order_cost(done_by_chunk: dict[int, dict], retries: dict[int, int] | None = None,
               price_per_gpu_s: float | None = None, price_per_cpu_s: float | None = None,
               device: str | None = None) -> OrderCost:
    """Aggregate chunk timings into seconds per device, fps and an estimated price."""
    gpu_p = float(price_per_gpu_s if price_per_gpu_s is not None
                  else settings.number("FACEFACTORY_PRICE_PER_GPU_S"))
    cpu_p = float(price_per_cpu_s if price_per_cpu_s is not None
                  else settings.number("FACEFACTORY_PRICE_PER_CPU_S"))
    dev_default = device or default_device()
    retries = retries or {}
    chunks: list[ChunkCost] = []
    stages = dict.fromkeys(STAGES, 0.0)
    for i in sorted(done_by_chunk):
        d = done_by_chunk[i]
        t = {k: float(v) for k, v in (d.get("timings") or {}).items() if isinstance(v, (int, float))}
        secs = t.get("total_s", sum(t.get(k, 0.0) for k in STAGES[:-1]))
        frames = int(d.get("frames") or (int(d.get("end", 0)) - int(d.get("start", 0))))
        for k in STAGES:
            stages[k] += t.get(k, 0.0)
        chunks.append(ChunkCost(i, frames, _device(d, dev_default), round(secs, 3),
                                round(frames / secs, 2) if secs > 0 else 0.0, int(retries.get(i, 0)), t))
    gpu = sum(c.seconds for c in chunks if c.device == "gpu")
    cpu = sum(c.seconds for c in chunks if c.device == "cpu")
    frames = sum(c.frames for c in chunks)
    return OrderCost(
        frames=frames, chunks=chunks, gpu_seconds=round(gpu, 3), cpu_seconds=round(cpu, 3),
        fps=round(frames / (gpu + cpu), 2) if gpu + cpu > 0 else 0.0,
        retries=sum(c.retries for c in chunks), price_per_gpu_s=gpu_p, price_per_cpu_s=cpu_p,
        estimated_cost_usd=round(gpu * gpu_p + cpu * cpu_p, 6),
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
    )


def emit_stats(order_id: str, cost: OrderCost) -> bool:
    """Send the cost as StatsD/OpenTelemetry metrics through Airflow's Stats (no-op without Airflow)."""
    try:
        try:
            from airflow.observability.stats import Stats  # Airflow 3.1+
        except ImportError:
            from airflow.stats import Stats  # type: ignore[no-redef,assignment]  # pre-3.1 home of the same class
    except ImportError:
        return False
    tags = {"order": order_id}
    try:
        Stats.gauge("facefactory.order.frames", cost.frames, tags=tags)
        Stats.gauge("facefactory.order.gpu_seconds", cost.gpu_seconds, tags=tags)
        Stats.gauge("facefactory.order.cpu_seconds", cost.cpu_seconds, tags=tags)
        Stats.gauge("facefactory.order.fps", cost.fps, tags=tags)
        Stats.gauge("facefactory.order.cost_usd", cost.estimated_cost_usd, tags=tags)
        Stats.incr("facefactory.order.chunk_retries", cost.retries, tags=tags)
    except Exception as exc:  # noqa: BLE001 - metrics must never fail an order
        log.warning("stats emit failed: %s", exc)
        return False
    return True
