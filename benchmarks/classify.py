"""Classification on the synthetic world: every encoder family, and every adaptation method.

    python benchmarks/classify.py [--videos 600] [--epochs N] [--seeds 0 1 2] [--only families|adapt] [--json out.json]

1. Families: each tiny preset trained from scratch (batch 16, 8 frames at 64x64) on the
   world's train split with its own learning rate, for the same number of epochs
   (``--epochs``; without it each family gets the count it needs, which is not an equal
   budget), once per seed (initialisation, data order, augmentation); the best epoch on
   val is evaluated on test and on the held-out compositional split (colour-action pairs
   never seen in training). Reported: mean and standard deviation over the seeds.
2. Adaptation (transfer): R(2+1)D-tiny is trained on 6 source actions (the moves, grow,
   shrink), then adapted to the 6 other actions (rotate, change colour, bounce, appear,
   disappear, stay still) by each method with the same budget; a linear probe on a random
   encoder is the no-pre-training baseline.
Times are wall-clock on this machine, data decoding included.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from vidfm.data import WorldConfig, generate_world
from vidfm.data.datasets import SyntheticWorld, VideoDataset, classification_from_csv
from vidfm.tasks.classify import VideoClassifier, evaluate_classifier, train_classifier
from vidfm.training import TrainConfig

DATA = Path(__file__).parent / "_data"
FAMILIES = {  # preset: (learning rate, epochs). The transformers need more epochs than the
    # 3D CNNs: their loss sits on a plateau for the first ~10 before attention finds the object.
    # TSN has only a 2x2 grid per frame to see motion with; TSM sees it but learns slowly too.
    "r2plus1d-tiny": (3e-3, 10),
    "tsn-tiny": (3e-3, 30),
    "tsm-tiny": (3e-3, 30),
    "slowfast-tiny": (3e-3, 10),
    "timesformer-tiny": (1e-3, 20),
    "videomae-tiny": (1e-3, 30),
    "frame-tiny": (1e-3, 30),
}
SOURCE = ["move_left", "move_right", "move_up", "move_down", "grow", "shrink"]
TARGET = ["rotate", "change_colour", "bounce", "appear", "disappear", "stay_still"]


def world(n: int) -> Path:
    root = DATA / f"world_{n}"
    if not (root / "world.json").exists():
        generate_world(root, WorldConfig(videos=n, seed=0))
    return root


def evaluate(run: Path, dataset: VideoDataset) -> float:
    return evaluate_classifier(VideoClassifier.from_pretrained(run / "best"), dataset)["accuracy"]


def families(root: Path, epochs: int | None, out: Path, names=None, seeds=(0,)) -> dict:
    import numpy as np

    w = SyntheticWorld(root)
    kw = dict(num_frames=8, decode_size=(64, 64), sampler="segments")
    results = {}
    for name, (lr, family_epochs) in FAMILIES.items():
        if names and name not in names:
            continue
        runs = []
        for seed in seeds:
            run = out / name / f"seed{seed}"
            cfg = TrainConfig(output_dir=str(run), epochs=epochs or family_epochs, batch_size=16, lr=lr, seed=seed, checkpoint_every_steps=100)
            t0 = time.perf_counter()
            summary = train_classifier(root, name, train_config=cfg, resume=False)
            runs.append({"seed": seed, "val": summary["best"], "test": evaluate(run, w.classification("test", **kw)),
                         "compositional": evaluate(run, w.classification("compositional", **kw)), "train_seconds": time.perf_counter() - t0})  # fmt: skip
            print(f"  {name} seed {seed}: test {runs[-1]['test']:.3f}  compositional {runs[-1]['compositional']:.3f}  {runs[-1]['train_seconds'] / 60:.1f} min", flush=True)
        row = {"epochs": cfg.epochs, "lr": lr, "params": summary["params"]["total"], "runs": runs}
        for key in ("val", "test", "compositional", "train_seconds"):
            values = np.array([r[key] for r in runs])
            row[key], row[f"{key}_std"] = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        results[name] = row
        print(f"{name:<18} test {row['test']:.3f} ± {row['test_std']:.3f}  compositional {row['compositional']:.3f} ± {row['compositional_std']:.3f}  "
              f"val {row['val']:.3f}  {cfg.epochs} epochs  {row['train_seconds'] / 60:.1f} min/run  {row['params'] / 1e3:.0f}k params", flush=True)  # fmt: skip
    return results


def split_csvs(root: Path) -> Path:
    """Source/target CSVs (paths relative to the CSV folder) from the world's splits."""
    folder = root / "transfer"
    folder.mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        rows = list(csv.DictReader(open(root / "classification" / f"{split}.csv")))
        for name, labels in (("source", SOURCE), ("target", TARGET)):
            with open(folder / f"{name}_{split}.csv", "w") as f:
                f.write("path,label\n" + "".join(f"../{r['path']},{r['label']}\n" for r in rows if r["label"] in labels))
    return folder


def adaptation(root: Path, epochs: int, out: Path) -> dict:
    folder = split_csvs(root)
    src = out / "source"
    cfg = TrainConfig(output_dir=str(src), epochs=epochs, batch_size=16, lr=3e-3, seed=0)
    train_classifier(folder / "source_train.csv", "r2plus1d-tiny", val=folder / "source_val.csv", train_config=cfg, resume=False)
    methods = [
        ("linear (random encoder)", "r2plus1d-tiny", "linear", {}, 1e-2),
        ("linear probe", str(src), "linear", {}, 1e-2),
        ("freeze lowest 2 stages", str(src), "freeze", {"blocks": 2}, 3e-3),
        ("LoRA r=8", str(src), "lora", {"rank": 8, "alpha": 16}, 3e-3),
        ("bottleneck adapters", str(src), "adapter", {}, 3e-3),
        ("full fine-tuning", str(src), "full", {}, 1e-3),
    ]
    results = {}
    for label, encoder, method, options, lr in methods:
        run = out / label.split(" ")[0].lower() / method
        cfg = TrainConfig(output_dir=str(run), epochs=max(2, epochs * 4 // 5), batch_size=16, lr=lr, seed=0)
        t0 = time.perf_counter()
        summary = train_classifier(folder / "target_train.csv", encoder, val=folder / "target_val.csv", train_config=cfg,
                                   adaptation=method, adaptation_options=options, resume=False)  # fmt: skip
        # label indices follow the trained model's class order (sorted CSV labels)
        records, _ = classification_from_csv(folder / "target_test.csv", classes=summary["classes"])
        test = VideoDataset(records, num_frames=8, decode_size=(64, 64), sampler="segments")
        row = {"test": evaluate(run, test), "trainable_percent": summary["params"]["percent"],
               "trainable": summary["params"]["trainable"], "train_seconds": time.perf_counter() - t0}  # fmt: skip
        results[label] = row
        print(f"{label:<26} test {row['test']:.3f}  trainable {row['trainable_percent']:6.2f} %  {row['train_seconds'] / 60:.1f} min", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=600)
    ap.add_argument("--epochs", type=int, help="epochs for every family (default: each family's own) and the adaptation runs (default 10)")
    ap.add_argument("--only", choices=["families", "adapt"])
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), help="run only these families")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="one training run per seed (families)")
    ap.add_argument("--json")
    args = ap.parse_args()
    root = world(args.videos)
    out = DATA / "runs"
    print(f"world {root} ({args.videos} videos), chance = 1/12 = 0.083 (families), 1/6 = 0.167 (adaptation)")
    results = {}
    if args.only in (None, "families"):
        results["families"] = families(root, args.epochs, out / "families", args.families, tuple(args.seeds))
    if args.only in (None, "adapt"):
        results["adaptation"] = adaptation(root, args.epochs or 10, out / "adapt")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
