"""Both Dockerfiles lint clean (hadolint) and agree with the pins and the pod spec.

No engine can build images here; these checks keep the files honest: same versions as
requirements.txt, the uid the pod's securityContext expects, the mount the pod uses.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from facefactory.operators.pod_spec import SETTINGS

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "images" / "worker" / "Dockerfile"
AIRFLOW = REPO / "images" / "airflow" / "Dockerfile"
HADOLINT = str(Path(sys.executable).parent / "hadolint")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HADOLINT, "--failure-threshold", "info", "--no-color", str(path)],
                          capture_output=True, text=True, timeout=60)


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if m:
            out[re.sub(r"\[.*\]", "", m.group(1)).lower()] = m.group(2)
    return out


@pytest.mark.parametrize("dockerfile", [WORKER, AIRFLOW], ids=["worker", "airflow"])
def test_hadolint_clean(dockerfile: Path) -> None:
    proc = hadolint(dockerfile)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nUSER root\n")
    proc = hadolint(bad)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_worker_image_matches_pins_and_pod_spec() -> None:
    text = WORKER.read_text()
    assert re.search(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-", text), "CUDA 13 + cuDNN 9 runtime base"
    assert "onnxruntime-gpu==1.31.1" in text
    assert re.search(r"^\s*onnxruntime==", text, re.M) is None, "never the CPU onnxruntime"
    assert pins()["onnxruntime"] == "1.31.1", "GPU and CPU onnxruntime move together"
    for name, version in re.findall(r"^\s+([a-z0-9\-]+)==([^\s\\]+)", text, re.M):
        if name != "onnxruntime-gpu":
            assert pins().get(name) == version, f"{name} {version} differs from requirements.txt"
    assert text.count("FROM ") >= 2, "multi-stage"
    uid = SETTINGS["FACEFACTORY_K8S_RUN_AS_USER"][0]
    assert f"USER {uid}:{uid}" in text
    assert f"FACEFACTORY_MODEL_DIR={SETTINGS['FACEFACTORY_K8S_MODEL_MOUNT'][0]}" in text
    assert 'ENTRYPOINT ["faceworker"]' in text
    assert "--no-deps /src" in text


def test_airflow_image_matches_pins() -> None:
    text = AIRFLOW.read_text()
    airflow = pins()["apache-airflow"]
    assert f"apache/airflow:{airflow}-python3.11" in text
    assert f'"apache-airflow=={airflow}"' in text
    assert "-r /opt/facefactory/requirements.txt" in text
    assert (REPO / ".dockerignore").read_text().count(".venv") == 1
