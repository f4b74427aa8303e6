"""Few-shot on frozen features: prototypes against a linear probe on the same episodes.

    python benchmarks/fewshot.py --json benchmarks/results/fewshot.json

Data: the val + test videos of the 600-video world (144 clips, 12 per action; no encoder
below saw their labels). Encoders (all r2plus1d-tiny, 8 frames at 64x64):
* random initialisation (the floor);
* contrastive pre-training on the world's train videos, no labels
  (``benchmarks/_data/runs/pretrain/contrastive``);
* supervised on the train split's labels (``benchmarks/_data/runs/compress/r2plus1d-tiny``):
  the same 12 actions, so a ceiling rather than a novel-class result.
600 episodes per setting, 5 queries per class, the same episodes for both classifiers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vidfm.data.datasets import DataSource, VideoDataset
from vidfm.models import build_encoder, load_encoder, save_encoder
from vidfm.tasks.fewshot import encode_clips, few_shot_eval

ROOT = Path(__file__).parent / "_data"
WORLD = ROOT / "world_600"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--episodic", action="store_true", help="also fine-tune episodically on 7 base actions and test on the 5 novel ones")
    ap.add_argument("--epochs", type=int, default=3, help="--episodic: epochs of 100 episodes")
    ap.add_argument("--json")
    args = ap.parse_args()
    source = DataSource(WORLD)
    classes = source.world().classes
    records = source.classification("val", classes)[0] + source.classification("test", classes)[0]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        random_dir = Path(tmp) / "random"
        save_encoder(build_encoder("r2plus1d-tiny"), random_dir)
        encoders = {"random init": random_dir, "contrastive (no labels)": ROOT / "runs" / "pretrain" / "contrastive",
                    "supervised (same classes)": ROOT / "runs" / "compress" / "r2plus1d-tiny"}  # fmt: skip
        results = {}
        for name, path in encoders.items():
            encoder = load_encoder(path)
            ds = VideoDataset(records, num_frames=encoder.config.num_frames, decode_size=(encoder.config.image_size,) * 2, sampler="segments")
            t0 = time.time()
            feats, labels = encode_clips(encoder, ds)
            results[name] = {"videos": len(labels), "encode_seconds": round(time.time() - t0, 1)}
            for spec in ("5way-1shot", "5way-5shot"):
                r = few_shot_eval(feats, labels, spec, args.episodes, args.queries)
                results[name][spec] = {k: r[k] for k in ("prototypes", "linear_probe")}
                print(f"{name:<26} {spec}: prototypes {r['prototypes']['accuracy']:.1%} ± {r['prototypes']['ci95']:.1%}   "
                      f"linear probe {r['linear_probe']['accuracy']:.1%} ± {r['linear_probe']['ci95']:.1%}")  # fmt: skip
    report = {"episodes": args.episodes, "queries": args.queries, "results": results}
    if args.episodic:
        report["episodic"] = episodic(args, source, classes)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


NOVEL = ("bounce", "rotate", "shrink", "move_up", "disappear")


def episodic(args, source, classes) -> dict:
    """Episodic fine-tuning of the contrastive encoder on 7 base actions (train split, 5-way
    5-shot episodes), without and with consistency regularisation; then 5-way episodes on
    the 5 novel actions it never trained on (val + test videos, 12 per class)."""
    from vidfm.tasks.fewshot import episodic_finetune
    from vidfm.training import TrainConfig

    base = [c for c in classes if c not in NOVEL]
    novel = {classes.index(c) for c in NOVEL}
    records = [r for r in source.classification("val", classes)[0] + source.classification("test", classes)[0] if r["label"] in novel]
    start = ROOT / "runs" / "pretrain" / "contrastive"
    runs = {"contrastive, frozen": start}
    for name, consistency in (("+ episodic fine-tuning", 0.0), ("+ episodic + consistency", 1.0)):
        out = ROOT / "runs" / "fewshot" / ("episodic_consistency" if consistency else "episodic")
        cfg = TrainConfig(output_dir=str(out), epochs=args.epochs, batch_size=1, lr=1e-4, seed=0, checkpoint_every_steps=50)
        t0 = time.time()
        summary = episodic_finetune(load_encoder(start), WORLD, train_config=cfg, spec="5way-5shot", classes=base, queries=5,
                                    episodes=100, consistency=consistency)  # fmt: skip
        print(f"{name}: {summary['steps']} episodes in {time.time() - t0:.0f} s, best val episode accuracy {summary['best']}", flush=True)
        runs[name] = out / "best"
    out = {"base": base, "novel": list(NOVEL)}
    for name, path in runs.items():
        encoder = load_encoder(path)
        ds = VideoDataset(records, num_frames=encoder.config.num_frames, decode_size=(encoder.config.image_size,) * 2, sampler="segments")
        feats, labels = encode_clips(encoder, ds)
        out[name] = {"videos": len(labels)}
        for spec in ("5way-1shot", "5way-5shot"):
            r = few_shot_eval(feats, labels, spec, args.episodes, args.queries)
            out[name][spec] = {k: r[k] for k in ("prototypes", "linear_probe")}
            print(f"novel classes, {name:<26} {spec}: prototypes {r['prototypes']['accuracy']:.1%} ± {r['prototypes']['ci95']:.1%}   "
                  f"linear probe {r['linear_probe']['accuracy']:.1%} ± {r['linear_probe']['ci95']:.1%}", flush=True)  # fmt: skip
    return out


if __name__ == "__main__":
    main()
