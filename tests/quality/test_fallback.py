"""Fallback settings must be accepted by the installed classic swapper and follow the failure."""
from __future__ import annotations

import pytest

from facefactory.quality.fallback import fallback_options

CASES = {
    "id_cosine": {"identity_weight": 1.0, "keep_target_mouth": False},
    "psnr_outside_db": {"blend_mode": "alpha", "grow": 1.0},
    "ssim_outside": {"blend_mode": "alpha"},
    "face_found_after": {"color_strength": 1.0},
}


@pytest.mark.parametrize("metric", [*CASES, "landmark_jitter_px", "frame_missing"])
def test_options_construct_the_classic_swapper(metric):
    from faceworker.swappers.classic import ClassicSwapper

    opts = fallback_options([{"chunk": 0, "frame": 3, "metric": metric, "value": 0.1, "threshold": 0.85}])
    for k, v in CASES.get(metric, {}).items():
        assert opts[k] == v
    ClassicSwapper(**{k: v for k, v in opts.items() if k != "detector"})


def test_psnr_wins_the_region_size_over_identity():
    opts = fallback_options([{"metric": "id_cosine"}, {"metric": "psnr_outside_db"}])
    assert opts["grow"] == 1.0 and opts["identity_weight"] == 1.0 and opts["feather_frac"] < 0.08


def test_no_failure_no_change_and_base_kept():
    assert fallback_options([]) == {}
    assert fallback_options([], base={"identity_weight": 0.8}) == {"identity_weight": 0.8}
    assert fallback_options([{"metric": "id_cosine"}], swapper="inswapper_128") == {}


@pytest.mark.parametrize("metric", ["face_found_after", "landmark_jitter_px", "id_cosine", "psnr_outside_db"])
def test_options_pass_the_chunk_runner_validation(metric):
    """Detector settings go under "detector" exactly when the engine's runner accepts them."""
    from faceworker import chunk_runner
    from faceworker.swappers.classic import ClassicSwapper

    opts = fallback_options([{"metric": metric}])
    swapper_opts, detector = chunk_runner.split_options(opts)
    ClassicSwapper(**swapper_opts)
    if metric == "face_found_after":
        assert detector == {"detect_scale": 1.0, "upsample": 1}
    if metric == "landmark_jitter_px":
        assert detector == {"detect_scale": 1.0, "redetect_every": 1}
