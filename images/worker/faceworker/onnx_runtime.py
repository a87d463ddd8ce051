"""onnxruntime sessions: CUDA when onnxruntime-gpu sees a GPU, else CPU; which one is always logged.

The same worker image runs on GPU nodes and on the CPU-only embedded default, so the provider is
chosen at run time (FACEFACTORY_EXECUTION_PROVIDER = auto | cuda | cpu) and a CUDA start-up
failure degrades to CPU with a warning instead of failing the order.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from faceworker import settings
from faceworker.errors import BadInput
from faceworker.logs import get_logger

_log = get_logger(component="onnx")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_CHOICES = ("auto", "cuda", "cpu")


def log_event(level: str, event: str, **fields: Any) -> None:
    """One JSON line on stderr (faceworker.logs), e.g. which execution provider a session got."""
    _log.log(level, event, **fields)


@dataclass(frozen=True)
class RuntimeConfig:
    """How sessions are created; `from_env` reads the documented environment variables."""

    provider: str = "auto"
    intra_op_threads: int = 0  # 0 = onnxruntime's default (all cores)
    inter_op_threads: int = 0
    cuda_device_id: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RuntimeConfig:
        env = dict(os.environ if env is None else env)
        provider = settings.text("FACEFACTORY_EXECUTION_PROVIDER", env).lower()
        if provider not in PROVIDER_CHOICES:
            raise BadInput(f"FACEFACTORY_EXECUTION_PROVIDER={provider!r}: expected one of {', '.join(PROVIDER_CHOICES)}")

        def _int(name: str) -> int:
            try:
                return settings.whole_number(name, settings.text(name, env), 0)
            except ValueError as exc:
                raise BadInput(str(exc)) from None

        return cls(
            provider=provider,
            intra_op_threads=_int("FACEFACTORY_ORT_INTRA_THREADS"),
            inter_op_threads=_int("FACEFACTORY_ORT_INTER_THREADS"),
            cuda_device_id=_int("FACEFACTORY_CUDA_DEVICE"),
        )


def choose_providers(requested: str, available: list[str]) -> tuple[list[str], str | None]:
    """Provider list to ask onnxruntime for, and a warning when the request cannot be honoured."""
    if requested == "cpu":
        return [CPU], None
    if CUDA in available:
        return [CUDA, CPU], None
    if requested == "cuda":
        return [CPU], "cuda requested but onnxruntime reports no CUDAExecutionProvider (install onnxruntime-gpu); using CPU"
    return [CPU], None


def _session_options(config: RuntimeConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = config.intra_op_threads
    opts.inter_op_num_threads = config.inter_op_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # onnxruntime's own C++ warnings are noise in JSON logs
    return opts


def create_session(
    model_path: str | Path,
    config: RuntimeConfig | None = None,
    *,
    role: str = "model",
    available: Callable[[], list[str]] = ort.get_available_providers,
    factory: Callable[..., ort.InferenceSession] = ort.InferenceSession,
) -> ort.InferenceSession:
    """Open `model_path` on the best allowed provider; CUDA init failure falls back to CPU (warned)."""
    config = config or RuntimeConfig.from_env()
    providers, warning = choose_providers(config.provider, list(available()))
    if warning:
        log_event("warning", "onnx_provider_unavailable", model=str(model_path), role=role, message=warning)
    opts = _session_options(config)
    t0 = time.perf_counter()
    fell_back = False
    try:
        session = factory(str(model_path), sess_options=opts, providers=_with_options(providers, config))
    except Exception as exc:  # noqa: BLE001 - any CUDA init error must degrade, not kill the order
        if providers[0] != CUDA:
            raise BadInput(f"cannot load ONNX {role} model {model_path}: {exc}") from exc
        log_event("warning", "onnx_cuda_fallback", model=str(model_path), role=role,
                  message=f"CUDA session failed, using CPU: {exc}")
        fell_back = True
        try:
            session = factory(str(model_path), sess_options=opts, providers=[CPU])
        except Exception as exc2:  # noqa: BLE001 - the CPU retry failed too: reported as BadInput with its cause
            raise BadInput(f"cannot load ONNX {role} model {model_path}: {exc2}") from exc2
    used = list(session.get_providers())
    if providers[0] == CUDA and not fell_back and (not used or used[0] != CUDA):
        # onnxruntime silently drops CUDA when its libraries fail to load; say so.
        log_event("warning", "onnx_cuda_fallback", model=str(model_path), role=role,
                  message="CUDAExecutionProvider was requested but the session runs on " + ",".join(used))
    log_event("info", "onnx_session", model=str(model_path), role=role,
              provider=used[0] if used else CPU, providers=used, requested=config.provider,
              intra_op_threads=config.intra_op_threads, load_ms=round((time.perf_counter() - t0) * 1000, 1))
    return session


def _with_options(providers: list[str], config: RuntimeConfig) -> list[Any]:
    return [(CUDA, {"device_id": config.cuda_device_id}) if p == CUDA else p for p in providers]


def session_provider(session: ort.InferenceSession) -> str:
    used = session.get_providers()
    return used[0] if used else CPU


def require_float32(session: ort.InferenceSession, what: str) -> None:
    """Every input must be float32: the pre-processing feeds float32 (fp16 exports need a float32 variant)."""
    for arg in session.get_inputs():
        if arg.type != "tensor(float)":
            raise BadInput(f"{what}: input {arg.name!r} is {arg.type}, only float32 inputs are supported "
                           "(use the float32 export of this model, e.g. inswapper_128.onnx, not _fp16)")
