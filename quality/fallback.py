"""Fallback swap settings for ``reswap``, chosen from why a chunk failed the gate.

Returns the JSON object for ``faceworker swap-chunk --options``. The classic swapper takes
its constructor keywords from ``--options`` and rejects unknown ones, so proposals are
filtered to the keywords the installed classic swapper accepts (``faceworker.options``, an engine
contract module, docs/contracts.md); the names relied on are
``identity_weight``, ``forehead``, ``grow``, ``blend_mode``, ``feather_frac``,
``color_strength``, ``keep_target_mouth``, ``keep_target_eyes``
(images/worker/faceworker/swappers/classic.py). Detector settings (``FaceAnalyzer``'s
``detect_scale``/``upsample``/``redetect_every``, faces.py) go under the ``detector`` key
only when the engine's chunk runner declares it accepts that key (``faceworker.options.RUNNER_OPTIONS``).
"""
from __future__ import annotations

from typing import Any

IDENTITY = {"id_cosine"}
OUTSIDE = {"psnr_outside_db", "ssim_outside"}
FACE_LOST = {"face_found_after"}
JITTER = {"landmark_jitter_px"}


def _classic_keywords() -> frozenset[str] | None:
    try:
        from faceworker.options import classic_options

        return classic_options()
    except Exception:  # noqa: BLE001 - engine absent/broken: do not filter
        return None


def _runner_accepts_detector() -> bool:
    from faceworker.options import RUNNER_OPTIONS

    return "detector" in RUNNER_OPTIONS


def fallback_options(failures_for_chunk: list[dict], swapper: str = "classic",
                     base: dict[str, Any] | None = None) -> dict:
    """Options for a re-swap of one chunk, from that chunk's gate failures.

    - identity below threshold: full source geometry, larger transferred region, full colour
      transfer, sharper mask edge — push the pasted face further toward the source;
    - PSNR/SSIM outside the face: hard alpha blend (seamless cloning alters pixels outside the
      mask), a tighter region and a narrower feather — erode the mask;
    - face lost after the swap: full-strength colour transfer and alpha blend (a washed-out
      blend is what HOG stops seeing) plus a full-scale, upsampled detector;
    - landmark jitter: detect on every frame at full scale.
    Missing/duplicate frames need no new settings: the re-run itself is the fix.
    """
    metrics = {f.get("metric") for f in failures_for_chunk}
    opts: dict[str, Any] = dict(base or {})
    detector: dict[str, Any] = {}
    if metrics & IDENTITY:
        opts.update(identity_weight=1.0, forehead=0.6, grow=1.1, color_strength=1.0, feather_frac=0.05,
                    keep_target_mouth=False, keep_target_eyes=False)
    if metrics & OUTSIDE:
        opts.update(blend_mode="alpha", feather_frac=0.04, grow=1.0)
    if metrics & FACE_LOST:
        opts.update(color_strength=1.0, blend_mode="alpha")
        detector.update(detect_scale=1.0, upsample=1)
    if metrics & JITTER:
        detector.update(detect_scale=1.0, redetect_every=1)
    if swapper == "classic":
        allowed = _classic_keywords()
        if allowed is not None:
            opts = {k: v for k, v in opts.items() if k in allowed}
    else:
        opts = {}  # ONNX packs take no classic keywords; only detector changes apply
    if detector and _runner_accepts_detector():
        opts["detector"] = detector
    return opts
