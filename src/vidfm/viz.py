"""Plots people look at: dataset statistics (more come with training curves)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def plot_world_stats(root) -> Path:
    """Bar chart of action labels per split and a histogram of video lengths -> ``stats.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(root)
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line]
    labels = [line for line in (root / "labels.txt").read_text().split() if line]
    splits = ["train", "val", "test", "compositional"]
    counts = {s: Counter(m["label"] for m in meta if m["split"] == s and m["label"]) for s in splits}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    bottom = [0] * len(labels)
    for s in splits:
        vals = [counts[s].get(lab, 0) for lab in labels]
        ax1.bar(labels, vals, bottom=bottom, label=s)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_title("action labels (single-shot videos) by split")
    ax1.tick_params(axis="x", rotation=45)
    ax1.legend()
    ax2.hist([m["num_frames"] / m["fps"] for m in meta], bins=12, color="gray")
    ax2.set_title("video length (s)")
    fig.tight_layout()
    out = root / "stats.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
