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
    override = os.environ.get("FACEFACTORY_DLIB_MODELS")
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


@functools.cache
def hog_detector() -> "dlib.fhog_object_detector":
    return dlib.get_frontal_face_detector()


@functools.cache
def shape_predictor_68() -> "dlib.shape_predictor":
    return dlib.shape_predictor(str(model_path("shape68")))


@functools.cache
def face_recognizer() -> "dlib.face_recognition_model_v1":
    return dlib.face_recognition_model_v1(str(model_path("resnet")))
