"""The engine's FACEFACTORY_* settings: one declaration per name, read through `raw`/`text`.

The engine is installed alone in the worker image, so it cannot use the Airflow side's registry
(`facefactory.settings`); this table is the engine's half of it. Each name is declared once
here, with its default and meaning, and every engine module reads it through this module, so a
new name cannot appear without a default and a line of documentation. The Airflow side includes
this table in its registry and in the generated docs table (docs/settings.md); names both sides
read (the work root, the model dir, ...) are declared here and only extended there.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

Kind = Literal["text", "int", "float", "bool", "path", "paths", "uri", "list"]


@dataclass(frozen=True)
class EngineSetting:
    """One environment variable the engine reads.

    `default` is what `text` returns when the variable is unset or blank ("" = none); when the
    real default is worked out from other settings, `shown_default` says how (for the docs)."""

    name: str
    kind: Kind
    default: str
    meaning: str
    shown_default: str = ""

    @property
    def documented_default(self) -> str:
        return self.shown_default or self.default


ENGINE_SETTINGS: tuple[EngineSetting, ...] = (
    EngineSetting("FACEFACTORY_HOME", "path", "", "data dir of the embedded default (work area, models, inputs)",
                  "`<repo>/var`"),
    EngineSetting("FACEFACTORY_WORK_ROOT", "uri", "", "work area root (local path or `s3://bucket/prefix`)",
                  "`$FACEFACTORY_HOME/work`"),
    EngineSetting("FACEFACTORY_MODEL_DIR", "path", "", "ONNX model packs (one sub-dir per pack, `manifest.json`)",
                  "`$FACEFACTORY_HOME/models`"),
    EngineSetting("FACEFACTORY_S3_ENDPOINT_URL", "uri", "",
                  "S3-compatible endpoint (moto, MinIO); `AWS_ENDPOINT_URL` is read when unset"),
    EngineSetting("FACEFACTORY_LOG_FORMAT", "text", "json", "worker logs on stderr: `json` lines or `text`"),
    EngineSetting("FACEFACTORY_LOG_LEVEL", "text", "info", "lowest worker log level written: debug, info, warning, error"),
    EngineSetting("FACEFACTORY_EXECUTION_PROVIDER", "text", "auto", "onnxruntime provider: `auto`, `cuda` or `cpu`"),
    EngineSetting("FACEFACTORY_ORT_INTRA_THREADS", "int", "0", "onnxruntime intra-op threads (0 = its default)"),
    EngineSetting("FACEFACTORY_ORT_INTER_THREADS", "int", "0", "onnxruntime inter-op threads (0 = its default)"),
    EngineSetting("FACEFACTORY_CUDA_DEVICE", "int", "0", "CUDA device id of the ONNX session"),
    EngineSetting("FACEFACTORY_METRICS_WORKERS", "int", "0",
                  "processes embedding output faces in the metrics pass (0 = inline; ~85 MB each)"),
    EngineSetting("FACEFACTORY_ENCODER_THREADS", "int", "", "segment encoder's x264 threads (0 = x264's)", "half the CPUs"),
    EngineSetting("FACEFACTORY_METRICS_KEEP_MB", "float", "2048",
                  "memory (MB) the swap pass may keep original frames in for the metrics pass (0 = decode again)"),
    EngineSetting("FACEFACTORY_MAX_IMAGE_PIXELS", "int", "50000000", "cap on a photo's pixels, read from its header"),
    EngineSetting("FACEFACTORY_FFMPEG", "path", "ffmpeg", "ffmpeg binary"),
    EngineSetting("FACEFACTORY_FFPROBE", "path", "ffprobe", "ffprobe binary"),
    EngineSetting("FACEFACTORY_DLIB_MODELS", "path", "", "folder of the dlib .dat files",
                  "the `face_recognition_models` package"),
    EngineSetting("FACEFACTORY_CACHE_DIR", "path", "", "derived model files kept between processes",
                  "`$XDG_CACHE_HOME/facefactory` (`~/.cache/facefactory`)"),
    EngineSetting("FACEFACTORY_SCRATCH", "path", "", "parent of the engine's local temp dirs", "the system temp dir"),
    EngineSetting("FACEFACTORY_TEST_PAUSE_AT", "list", "",
                  "test hook: `point[,point:key]` where a process pauses so a test can kill it there"),
    EngineSetting("FACEFACTORY_TEST_PAUSE_DIR", "path", "", "test hook: where a paused process writes its pid",
                  "the system temp dir"),
    EngineSetting("FACEFACTORY_TEST_PAUSE_S", "float", "120", "test hook: longest pause before going on"),
)

class Declared(Protocol):
    """What a registry needs of a declaration (EngineSetting here, facefactory's Setting there)."""

    @property
    def name(self) -> str: ...

    @property
    def default(self) -> str: ...


D = TypeVar("D", bound=Declared)


class Registry(Generic[D]):
    """Reads declared names only: a typo is a KeyError, not a silently ignored variable. The
    engine's table and the Airflow side's (facefactory.settings) are both read through one."""

    def __init__(self, table: Iterable[D], home: str) -> None:
        self.by_name: dict[str, D] = {s.name: s for s in table}
        self.home = home

    def declared(self, name: str) -> D:
        """The declaration of `name`; an undeclared name is a programming error, not a missing value."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"{name} is not declared in {self.home}") from None

    def raw(self, name: str, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable as set (None when unset), for readers that treat unset and blank their own way."""
        self.declared(name)
        return (os.environ if environ is None else environ).get(name)

    def text(self, name: str, environ: Mapping[str, str] | None = None) -> str:
        """The variable stripped, or its declared default when unset or blank."""
        value = (self.raw(name, environ) or "").strip()
        return value or self.declared(name).default


def whole_number(name: str, raw: str, minimum: int) -> int:
    """`raw` as an integer >= `minimum`; a ValueError naming the variable otherwise."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


ENGINE = Registry(ENGINE_SETTINGS, "faceworker/settings.py")
declared = ENGINE.declared
raw = ENGINE.raw
text = ENGINE.text
