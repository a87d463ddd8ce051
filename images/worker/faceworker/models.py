"""Locate and lazily load the dlib models shipped in the `face_recognition_models` wheel.

The package's own ``__init__`` imports ``pkg_resources`` (gone in current setuptools), so it is
never imported: only its directory is located through the import machinery. Each model is
loaded once per process (they weigh ~126 MB together and take ~1 s to read).
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import dlib

from faceworker import settings
from faceworker.errors import WorkerError

_FILES = {
    "shape68": "shape_predictor_68_face_landmarks.dat",
    "shape5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod": "mmod_human_face_detector.dat",
}


@functools.cache
def model_dir() -> Path:
    """Directory holding the .dat files (override with FACEFACTORY_DLIB_MODELS)."""
    override = settings.raw("FACEFACTORY_DLIB_MODELS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WorkerError("face_recognition_models is not installed: the default dlib model pack is missing")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(key: str) -> Path:
    path = model_dir() / _FILES[key]
    if not path.is_file():
        raise WorkerError(f"dlib model file missing: {path}")
    return path


def cache_dir() -> Path:
    """Where derived model files are kept between processes (FACEFACTORY_CACHE_DIR, else the
    XDG cache); the engine works without it, only slower to start."""
    override = settings.text("FACEFACTORY_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "facefactory"


@functools.cache
def hog_detector() -> dlib.fhog_object_detector:
    """dlib's frontal HOG detector. Building it from dlib's built-in description costs ~0.7-1.3 s
    per process (every swap chunk paid it); the same detector saved as a file loads in ~1 ms, so
    the first process saves it and the rest load it. Any problem with the file: built as before."""
    cached = cache_dir() / f"dlib-{dlib.__version__}-frontal_face_detector.svm"
    if cached.is_file():
        try:
            return dlib.fhog_object_detector(str(cached))
        except RuntimeError:  # truncated or foreign file: rebuild and replace it below
            pass
    detector = dlib.get_frontal_face_detector()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        detector.save(str(tmp))
        os.replace(tmp, cached)  # atomic: a concurrent reader sees the old file or the whole new one
    except (OSError, RuntimeError):  # read-only or full disk: still works, only slower to start
        pass
    return detector


@functools.cache
def shape_predictor_68() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(model_path("shape68")))


@functools.cache
def face_recognizer() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(model_path("resnet")))
