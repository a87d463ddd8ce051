"""Per-frame plot of the gate's metrics (matplotlib, Agg, PNG bytes)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd


def preload() -> None:
    """Import matplotlib's pyplot (Agg) now, ~0.5 s of the report's time: a runner that forks task
    processes calls this once in the parent (facefactory.commands.order.PREWARM)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot  # noqa: F401 - imported only to load it once, in the parent process


def metrics_png(df: pd.DataFrame, chunks: list[dict], min_id: float, min_psnr: float,
                failures: list[dict] | None = None) -> bytes:
    """Two stacked panels over the frame index: calibrated id cosine and PSNR, with thresholds.

    Chunk boundaries are shaded alternately; failing frames are marked red.
    """
    preload()
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True, dpi=100)
    d = df.sort_values("frame")
    for ax in (ax1, ax2):
        for k, c in enumerate(chunks):
            if k % 2:
                ax.axvspan(c["start"] - 0.5, c["end"] - 0.5, color="0.93", lw=0)
    m = d[d["id_cosine"].notna()]  # identity is measured on a sample of frames: join the measured ones
    ax1.plot(m["frame"], m["id_cosine"], lw=1.2, marker=".", ms=4, color="tab:blue",
             label="calibrated id cosine (gate, measured frames)")
    if m["id_cosine_raw"].notna().any():
        ax1.plot(m["frame"], m["id_cosine_raw"], lw=0.8, color="tab:gray", alpha=0.7, label="raw cosine (reference)")
    ax1.axhline(min_id, color="tab:red", ls="--", lw=1, label=f"min_id_cosine {min_id}")
    ax1.set_ylabel("identity cosine")
    lo = np.nanmin([d["id_cosine"].min(), min_id, 1.0]) if d["id_cosine"].notna().any() else min_id
    ax1.set_ylim(min(lo - 0.05, 0.5), 1.02)
    ax2.plot(d["frame"], d["psnr_outside_db"], lw=1.2, color="tab:green", label="PSNR outside face")
    ax2.axhline(min_psnr, color="tab:red", ls="--", lw=1, label=f"min_psnr_db {min_psnr}")
    ax2.set_ylabel("PSNR (dB)")
    ax2.set_xlabel("frame")
    bad = [f for f in (failures or []) if f.get("metric") in ("id_cosine", "psnr_outside_db")
           and isinstance(f.get("value"), (int, float))]
    for metric, ax in (("id_cosine", ax1), ("psnr_outside_db", ax2)):
        pts = [(f["frame"], f["value"]) for f in bad if f["metric"] == metric]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=14, color="tab:red", zorder=3, label="failing frame")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8, ncol=4)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
