"""Temporal grounding on the synthetic world: both heads against prior-only baselines.

Features: the video-text encoder from ``benchmarks/pretrain.py`` (R(2+1)D-tiny + MiniLM,
contrastive); the grounding model trains on the world's grounding train split and is
selected on val. Baselines that never look at the video or the sentence:
* whole video: predict [0, duration];
* prior: the mean normalised (start, end) of the training annotations.
R@1 at IoU 0.3/0.5/0.7 and mIoU on the test split and the held-out compositional split.

    python benchmarks/ground.py [--features RUN] [--json benchmarks/results/ground.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from classify import DATA, world

from vidfm.data.datasets import DataSource
from vidfm.io.reader import VideoReader
from vidfm.metrics.grounding import grounding_metrics
from vidfm.tasks.ground import Grounder, train_grounding
from vidfm.training import TrainConfig


def durations(records) -> np.ndarray:
    cache = {}
    for r in records:
        if r["path"] not in cache:
            with VideoReader(r["path"]) as reader:
                cache[r["path"]] = reader.duration
    return np.array([cache[r["path"]] for r in records])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=600)
    ap.add_argument("--features", default=str(DATA / "runs" / "pretrain" / "contrastive"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--json")
    args = ap.parse_args()
    root = world(args.videos)
    run = DATA / "runs" / "ground"
    t0 = time.perf_counter()
    summary = train_grounding(root, args.features, train_config=TrainConfig(output_dir=str(run), epochs=args.epochs, batch_size=32, lr=1e-3, seed=0), resume=False)
    train_seconds = time.perf_counter() - t0
    train = DataSource(root).grounding("train")
    d = durations(train)
    prior = np.mean([[r["start"] / x, r["end"] / x] for r, x in zip(train, d)], 0)
    g = Grounder(run)
    results = {"train_seconds": train_seconds, "train_sentences": summary["train_sentences"], "prior_normalised": prior.tolist()}
    print(f"trained in {train_seconds / 60:.1f} min on {summary['train_sentences']} sentences (features + 15 epochs); prior segment {prior.round(3).tolist()}")
    for split in ("test", "compositional"):
        records = DataSource(root).grounding(split)
        dur = durations(records)
        gt = np.array([[r["start"], r["end"]] for r in records])
        rows = {
            "whole video": grounding_metrics(np.stack([np.zeros_like(dur), dur], 1), gt),
            "prior": grounding_metrics(prior[None] * dur[:, None], gt),
        }
        m = g.evaluate(records)
        for head in ("candidates", "regression"):
            rows[f"vidfm {head}"] = {k.split("_", 1)[1]: v for k, v in m.items() if k.startswith(head)}
        results[split] = rows
        for name, r in rows.items():
            print(f"{split:<14} {name:<18} R@1 IoU0.3 {r['R@1,IoU=0.3']:.3f}  IoU0.5 {r['R@1,IoU=0.5']:.3f}  IoU0.7 {r['R@1,IoU=0.7']:.3f}  mIoU {r['mIoU']:.3f}  ({len(records)} sentences)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
