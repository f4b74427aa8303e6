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
    if args.json:
        Path(args.json).write_text(json.dumps({"episodes": args.episodes, "queries": args.queries, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
