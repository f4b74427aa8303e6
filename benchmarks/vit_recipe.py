"""Why the tiny ViT presets start from MAE's init and have a convolutional stem: an ablation.

    python benchmarks/vit_recipe.py [--epochs 30] [--recipes NAME ...] [--json out.json]

Each recipe trains videomae-tiny from scratch on world_600's train split, with the same
seed and data. Clips are decoded once into memory; 8 frames are taken by segment sampling
(a random frame per segment for training, the middle one for evaluation) and augmented by
the same transform `vidfm train classify` uses on a world (random resized crop, colour
jitter, no flips). Training uses AdamW (weight decay 0.05), batch 16, one warm-up epoch
then cosine decay, and gradient clipping at 1. The epoch with the best validation accuracy
is evaluated on test and on the compositional split; chance is 1/12.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidfm.data.transforms import to_float_clip, train_transform
from vidfm.io.reader import read_video
from vidfm.io.samplers import segment_indices
from vidfm.models import build_encoder

WORLD = Path(__file__).parent / "_data" / "world_600"
RECIPES = {  # name: (encoder overrides, learning rate, PyTorch/transformers-style init)
    "normal(0.02) init, patch projection": ({"conv_stem": False}, 1e-3, True),
    "MAE init, patch projection": ({"conv_stem": False}, 1e-3, False),
    "MAE init, patch projection, lr 2e-3": ({"conv_stem": False}, 2e-3, False),
    "MAE init, conv stem (the preset)": ({}, 1e-3, False),
}


def load_split(split: str, classes: list[str]):
    rows = list(csv.DictReader(open(WORLD / "classification" / f"{split}.csv")))
    videos = [read_video(WORLD / r["path"]) for r in rows]  # (T, H, W, 3) uint8
    return videos, torch.tensor([classes.index(r["label"]) for r in rows])


TRAIN_TF = train_transform(64, scale=(0.7, 1.0), flip=False, occlusion=False)  # as `vidfm train classify` on a world


def clips(videos, idx, g: torch.Generator | None, frames: int = 8) -> torch.Tensor:
    """(B, T, C, H, W) in [0, 1]: segment-sampled frames, augmented when a generator is
    given (training; the frame choice then draws from it too)."""
    out = []
    for i in idx:
        v = videos[i]
        rng = int(torch.randint(0, 2**31, (), generator=g)) if g is not None else None
        clip = to_float_clip(v[segment_indices(v.shape[0], frames, train=g is not None, rng=rng)])
        out.append(TRAIN_TF(clip, g) if g is not None else clip)
    return torch.stack(out)


def normal_init(encoder: nn.Module) -> None:
    """The init the presets had before: normal(0.02) for every linear and patch projection."""
    for m in encoder.modules():
        if isinstance(m, nn.Linear) or m is encoder.patch_embed:
            nn.init.trunc_normal_(m.weight, std=0.02)


@torch.no_grad()
def accuracy(encoder, head, data) -> float:
    encoder.eval()
    videos, labels = data
    hits = sum((head(encoder(clips(videos, range(s, min(s + 32, len(videos))), None)).pooled).argmax(-1) == labels[s : s + 32]).sum().item()
               for s in range(0, len(videos), 32))  # fmt: skip
    encoder.train()
    return hits / len(videos)


def run(overrides: dict, lr: float, old_init: bool, data: dict, epochs: int, batch: int = 16) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    encoder = build_encoder("videomae-tiny", **overrides)
    if old_init:
        normal_init(encoder)
    head = nn.Linear(encoder.output_dim, 12)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    videos, labels = data["train"]
    per_epoch = len(videos) // batch
    total, warm = per_epoch * epochs, per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    t0, best, curve = time.perf_counter(), {"val": -1.0}, []
    for epoch in range(epochs):
        order = torch.randperm(len(videos), generator=g).tolist()
        for s in range(per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            loss = F.cross_entropy(head(encoder(clips(videos, idx, g)).pooled), labels[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
        val = accuracy(encoder, head, data["val"])
        curve.append(round(val, 3))
        if val >= best["val"]:
            best = {"val": val, "test": accuracy(encoder, head, data["test"]), "compositional": accuracy(encoder, head, data["compositional"]), "epoch": epoch + 1}
    return {**best, "val_curve": curve, "lr": lr, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    ap.add_argument("--json")
    args = ap.parse_args()
    classes = (WORLD / "labels.txt").read_text().split()
    data = {s: load_split(s, classes) for s in ("train", "val", "test", "compositional")}
    results = {}
    for name in args.recipes:
        row = results[name] = run(*RECIPES[name], data, args.epochs)
        print(f"{name:<40} test {row['test']:.3f}  compositional {row['compositional']:.3f}  val {row['val']:.3f} "
              f"(epoch {row['epoch']})  {row['seconds'] / 60:.1f} min", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
