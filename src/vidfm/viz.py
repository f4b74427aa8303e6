"""Plots people look at: dataset statistics (more come with training curves)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np


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


def plot_shot_timeline(shots, path, thumbs: int = 12) -> Path:
    """Thumbnails of each shot's middle frame above the per-frame transition score (if the
    detector gives one), with every transition marked -> a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidfm.io.reader import VideoReader

    ranges = shots.ranges
    shown = ranges if len(ranges) <= thumbs else [ranges[i] for i in np.linspace(0, len(ranges) - 1, thumbs).round().astype(int)]
    with VideoReader(shots.path) as r:  # native size: imshow keeps the aspect ratio
        images = r.get_frames([(s + e) // 2 for s, e in shown])
    fig = plt.figure(figsize=(max(8, 1.6 * len(shown)), 4.2))
    grid = fig.add_gridspec(2, len(shown), height_ratios=[1, 1.2])
    for k, ((s, e), img) in enumerate(zip(shown, images)):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(img)
        ax.set_title(f"{shots.time(s):.1f}-{shots.time(e):.1f}s", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    t = np.array([shots.time(i) for i in range(shots.num_frames)])
    if shots.scores is not None:
        ax.plot(t, shots.scores, lw=0.8, color="k", label="transition score")
    for tr in shots.transitions:
        colour = "tab:red" if tr["kind"] == "cut" else "tab:orange"
        ax.axvspan(shots.time(tr["from_frame"]), shots.time(tr["to_frame"]), color=colour, alpha=0.6)
    ax.set_xlim(0, t[-1] if len(t) else 1)
    ax.set_xlabel("seconds")
    ax.set_title(f"{len(ranges)} shots: cuts red, gradual transitions orange", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_sync_curve(result: dict, path) -> Path:
    """Mean audio-video embedding distance against the audio shift (``vidfm sync``), the
    chosen offset marked: a sharp single dip is a confident sync, a flat line none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = np.array(result["curve"])
    k = (len(curve) - 1) // 2
    shifts = np.arange(-k, k + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(shifts, curve, "o-", ms=3, color="k")
    ax.axvline(result["offset"], color="tab:red", lw=1)
    ax.axhline(np.median(curve), color="gray", lw=0.8, ls="--")
    ax.set_xlabel("audio shift (frames; positive = sound late)")
    ax.set_ylabel("mean distance")
    ax.set_title(f"{Path(result['video']).name}: offset {result['offset']:+d}  Sync-C {result['sync_c']:.3f}  Sync-D {result['sync_d']:.3f}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_highlights(result: dict, path) -> Path:
    """The saliency of every moment as bars over time, the top moments highlighted, with a
    thumbnail of each top moment above -> a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidfm.io.reader import VideoReader

    top = result["top"]
    with VideoReader(result["path"]) as r:
        t = r.timestamps
        images = r.get_frames([int(np.argmin(np.abs(t - (m["start"] + m["end"]) / 2))) for m in top])
    fig = plt.figure(figsize=(max(8, 1.8 * len(top)), 4.2))
    grid = fig.add_gridspec(2, max(1, len(top)), height_ratios=[1, 1.2])
    for k, (m, img) in enumerate(zip(top, images)):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(img)
        ax.set_title(f"#{k + 1} {m['start']:.1f}-{m['end']:.1f}s", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    best = {(m["start"], m["end"]) for m in top}
    for m in result["moments"]:
        ax.bar(m["start"], m["score"], width=m["end"] - m["start"], align="edge",
               color="tab:red" if (m["start"], m["end"]) in best else "tab:gray", edgecolor="white", linewidth=0.3)  # fmt: skip
    ax.set_xlabel("seconds")
    ax.set_ylabel("saliency")
    what = f" for '{result['query']}'" if result.get("query") and result["method"] != "motion" else ""
    ax.set_title(f"highlights by {result['method']}{what}; the top {len(top)} in red", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
