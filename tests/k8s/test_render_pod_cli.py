"""`facefactory k8s render-pod`: YAML on stdout, schema-valid, chunk ranges from the work area."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from facefactory.cli import main
from facefactory.operators.pod_spec import SETTINGS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["k8s", "render-pod", *argv])
    out = capsys.readouterr()
    return code, (yaml.safe_load(out.out) if code == 0 else None), out.err


def args_of(pod: dict[str, Any]) -> list[str]:
    return pod["spec"]["containers"][0]["args"]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_renders_valid_pod_for_order_and_chunk(capsys: pytest.CaptureFixture[str]) -> None:
    code, pod, err = run(capsys, "--set", "order_id=shop-42", "--set", "chunk_frames=48",
                         "--set", "swapper=inswapper_128", "--set", "identity_weight=0.5",
                         "--work", "s3://ff-work/prod", "--chunk", "2", "--frames", "120", "--validate")
    assert code == 0, err
    assert "validated against the Kubernetes" in err
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    args = args_of(pod)
    assert (flag(args, "--order"), flag(args, "--chunk")) == ("shop-42", "2")
    assert (flag(args, "--start"), flag(args, "--end")) == ("96", "120")  # clamped to the target
    assert flag(args, "--swapper") == "inswapper_128" and flag(args, "--identity-weight") == "0.5"
    labels = pod["metadata"]["labels"]
    assert labels["run_id"] == "order__shop-42" and labels["map_index"] == "2"
    assert labels["dag_id"] == "face_swap_order" and labels["task_id"] == "swap"


def test_chunk_range_comes_from_chunks_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "orders" / "o1" / "chunks" / "chunks.json"
    listing.parent.mkdir(parents=True)
    listing.write_text(json.dumps([{"chunk": 0, "start": 0, "end": 40}, {"chunk": 1, "start": 40, "end": 71}]))
    code, pod, err = run(capsys, "--set", "order_id=o1", "--work", str(tmp_path), "--chunk", "1")
    assert code == 0, err
    assert (flag(args_of(pod), "--start"), flag(args_of(pod), "--end")) == ("40", "71")
    code, _, err = run(capsys, "--set", "order_id=o1", "--work", str(tmp_path), "--chunk", "5")
    assert code == 2 and "no chunk 5" in err


def test_pod_settings_via_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, pod, err = run(capsys, "--chunk", "0", "--set", "FACEFACTORY_K8S_NAMESPACE=gpu",
                         "--set", "FACEFACTORY_K8S_GPUS=2", "--set", "FACEFACTORY_WORKER_TAG=9.9")
    assert code == 0, err
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["namespace"] == "gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["image"].endswith(":9.9")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "nope=1"], "unknown key 'nope'"),
        (["--set", "swapper=deepfake9000"], "swapper: must be one of classic, inswapper_128"),
        (["--set", "order_id=bad id!"], "order_id: use 1 to 128 letters"),
        (["--set", "chunk_frames=96", "--frames", "50", "--chunk", "1"], "past the 50 frames"),
        (["--set", "FACEFACTORY_K8S_GPUS=many"], "invalid literal"),
    ],
)
def test_bad_input_is_reported(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    if "--chunk" not in argv:
        argv = [*argv, "--chunk", "0"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err, err
