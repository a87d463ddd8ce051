"""benchmarks/onnx_providers.py --quick on CPU: the engine's ONNX pack path runs on the stand-in models
and the JSON reports sane timings, the FLOPs of each model and the provider every session really got."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "onnx_providers.py"
STAGES = ("model_recognizer", "model_swapper", "model_enhancer", "prepare", "embed", "swap", "swap_batch8",
          "enhance", "swap_enhance")


def test_quick_cpu_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--providers", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert "CPUExecutionProvider" in proc.stderr  # the engine logged its onnx_session lines
    assert any(line.startswith("swap_enhance") for line in proc.stdout.splitlines())  # the table

    assert doc["settings"]["quick"] is True and doc["settings"]["providers"] == ["cpu"]
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["onnxruntime"]
    assert "CPUExecutionProvider" in doc["machine"]["available_providers"]
    for role in ("swapper", "recognizer", "enhancer"):
        m = doc["models"][role]
        assert m["gmac"] > 0 and abs(m["gflop"] - 2 * m["gmac"]) <= 0.02, m
        assert 0 < m["mb"] < 200

    cpu = doc["providers"]["cpu"]
    assert cpu["requested"] == "cpu" and cpu["config"]["provider"] == "cpu"
    assert cpu["used"] == {"swapper": "CPUExecutionProvider", "recognizer": "CPUExecutionProvider",
                           "enhancer": "CPUExecutionProvider"}
    assert all(p == ["CPUExecutionProvider"] for p in cpu["session_providers"].values())
    sessions = [e for e in cpu["log_events"] if e["event"] == "onnx_session"]  # the engine's own log lines
    assert sorted(e["role"] for e in sessions) == ["enhancer", "recognizer", "swapper"]
    assert all(e["provider"] == "CPUExecutionProvider" and e["requested"] == "cpu" for e in sessions)
    assert set(cpu["session_load_ms"]) == {"swapper", "recognizer", "enhancer"}
    assert all(v > 0 for v in cpu["construct_ms"].values()) and all(v > 0 for v in cpu["first_call_ms"].values())
    for st in STAGES:
        s = cpu["stages"][st]
        assert s["n"] >= 1 and 0 < s["min_ms"] <= s["median_ms"] <= s["max_ms"], (st, s)
        assert s["ms_per_face"] > 0 and s["faces_per_s"] > 0, (st, s)
    assert cpu["stages"]["swap_batch8"]["faces_per_call"] == 8
    assert cpu["mask_pixels"] > 0  # the swap really pasted a face back into the frame

    assert doc["cuda"] == {"requested": False, "used": False}
    assert "ratio_cpu_over_cuda" not in doc
    assert doc["dlib_imported"] is False  # the ONNX pack path needs no dlib
