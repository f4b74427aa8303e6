"""Does pre-training help? Each objective pre-trains an encoder on the synthetic world's
train videos (labels unused; captions for video-text), then every encoder — and the same
architecture from random initialisation — is judged with the same budget:

1. Linear probe: frozen features (8 frames spread over the video, 64x64), a logistic
   regression (scikit-learn) on all training labels, 5 per class and 3 per class (~10 %).
2. Few-label fine-tuning: full fine-tuning with 5 labelled clips per class and 3 per class
   (~10 % of the 336 training clips), same epochs and learning rate for random and
   pre-trained starts; the best epoch on val is scored.
3. The video-text model: text->video and video->text R@1/5/10 and zero-shot accuracy.
Accuracy on the test split and on the held-out compositional split (colour-action pairs
never seen in training). Chance is 1/12.

    python benchmarks/pretrain.py [--videos 600] [--json benchmarks/results/pretrain.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from classify import DATA, evaluate, world

from vidfm.data.datasets import SyntheticWorld, captions_from_jsonl
from vidfm.models import load_encoder, resolve_encoder
from vidfm.retrieval.embedder import Embedder
from vidfm.tasks.classify import train_classifier
from vidfm.tasks.pretrain import pretrain
from vidfm.tasks.retrieval import evaluate_retrieval, zero_shot_accuracy
from vidfm.training import TrainConfig

AUX = ["count", "size", "background"]  # world annotations independent of the action label
PRETRAIN = {  # name: (objective, encoder, epochs, lr, options)
    "mvm": ("mvm", "videomae-tiny", 15, 1.5e-3, {"mask_ratio": 0.9}),
    "simclr": ("simclr", "r2plus1d-tiny", 8, 2e-3, {"temperature": 0.1}),
    "moco": ("moco", "r2plus1d-tiny", 8, 2e-3, {"temperature": 0.1, "queue_size": 256, "momentum": 0.99}),
    "triplet": ("triplet", "r2plus1d-tiny", 8, 2e-3, {"margin": 0.2, "mining": "hard"}),
    "ae": ("ae", "r2plus1d-tiny", 8, 2e-3, {}),
    "vae-gan": ("vae", "r2plus1d-tiny", 8, 2e-3, {"adversarial_weight": 0.1, "adversarial_start": 24}),
    "simclr-aux": ("simclr", "r2plus1d-tiny", 8, 2e-3, {"temperature": 0.1, "attributes": AUX}),
    "simclr-aux-unc": ("simclr", "r2plus1d-tiny", 8, 2e-3, {"temperature": 0.1, "attributes": AUX, "loss_weighting": "uncertainty"}),
    "contrastive": ("contrastive", "r2plus1d-tiny", 16, 2e-3, {}),
    "contrastive-curriculum": ("contrastive", "r2plus1d-tiny", 16, 2e-3, {"curriculum": 8}),
}
FINETUNE_LR = {"r2plus1d-tiny": 3e-3, "videomae-tiny": 1e-3}


def run_pretraining(root: Path, out: Path, fresh: bool, smoke: bool = False, names: tuple[str, ...] | None = None) -> dict:
    times = {}
    for name, (objective, encoder, epochs, lr, options) in PRETRAIN.items():
        if names and name not in names:
            continue
        epochs = 1 if smoke else epochs
        run = out / name
        if (run / "best" / "config.json").exists() and not fresh:
            times[name] = json.loads((run / "seconds.json").read_text())["seconds"]
            continue
        cfg = TrainConfig(output_dir=str(run), epochs=epochs, batch_size=32, lr=lr, seed=0, checkpoint_every_steps=50)
        t0 = time.perf_counter()
        pretrain(root, objective, encoder, train_config=cfg, resume=not fresh, **options)
        times[name] = time.perf_counter() - t0
        (run / "seconds.json").write_text(json.dumps({"seconds": times[name]}))
        print(f"pre-trained {name:<12} ({encoder}, {epochs} epochs) in {times[name] / 60:.1f} min", flush=True)
    return times


def features(encoder, dataset) -> tuple[np.ndarray, np.ndarray]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    feats, labels = [], []
    encoder.eval()
    with torch.no_grad():
        for batch in loader:
            feats.append(encoder(batch["video"]).pooled.float().numpy())
            labels.append(batch["label"].numpy())
    return np.concatenate(feats), np.concatenate(labels)


def pick(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])


def linear_probe(encoder, w: SyntheticWorld) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kw = dict(num_frames=8, decode_size=(64, 64), sampler="segments")
    xtr, ytr = features(encoder, w.classification("train", **kw))
    evals = {s: features(encoder, w.classification(s, **kw)) for s in ("test", "compositional")}
    out = {}
    for label, per_class in (("all", None), ("5/class", 5), ("3/class", 3)):
        idx = pick(ytr, per_class)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5)).fit(xtr[idx], ytr[idx])
        out[label] = {s: float((clf.predict(x) == y).mean()) for s, (x, y) in evals.items()}
    return out


def fine_tune(root: Path, w: SyntheticWorld, encoder: str, family: str, per_class: int, run: Path, epochs: int = 15) -> dict:
    cfg = TrainConfig(output_dir=str(run), epochs=epochs, batch_size=8, lr=FINETUNE_LR[family], seed=0)
    t0 = time.perf_counter()
    train_classifier(root, encoder, train_config=cfg, limit_train=per_class, resume=False)
    kw = dict(num_frames=8, decode_size=(64, 64), sampler="segments")
    return {"test": evaluate(run, w.classification("test", **kw)), "compositional": evaluate(run, w.classification("compositional", **kw)),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=600)
    ap.add_argument("--fresh", action="store_true", help="pre-train again even if runs exist")
    ap.add_argument("--smoke", action="store_true", help="1 epoch everywhere: checks the script, measures nothing")
    ap.add_argument("--only", nargs="+", choices=list(PRETRAIN), help="pre-train and judge only these (beside random r2plus1d-tiny); "
                    "the rows join those already in --json")  # fmt: skip
    ap.add_argument("--json")
    args = ap.parse_args()
    root = world(args.videos)
    w = SyntheticWorld(root)
    out = DATA / "runs" / ("pretrain_smoke" if args.smoke else "pretrain")
    previous = json.loads(Path(args.json).read_text()) if args.only and args.json and Path(args.json).exists() else {}
    seconds = run_pretraining(root, out, args.fresh or args.smoke, args.smoke, names=tuple(args.only) if args.only else None)
    results = {**previous, "pretrain_seconds": {**previous.get("pretrain_seconds", {}), **seconds}, "encoders": previous.get("encoders", {})}

    starts = {  # name: (encoder to load or preset, family)
        "random r2plus1d-tiny": ("r2plus1d-tiny", "r2plus1d-tiny"),
        **{f"{n} {enc}": (str(out / n / "best"), enc) for n, (_, enc, *_) in PRETRAIN.items() if enc == "r2plus1d-tiny"},
        "random videomae-tiny": ("videomae-tiny", "videomae-tiny"),
        "mvm videomae-tiny": (str(out / "mvm" / "best"), "videomae-tiny"),
    }
    print(f"\n{'start':<28} {'probe all':>10} {'probe 5/c':>10} {'probe 3/c':>10} {'ft 5/c':>8} {'ft 3/c':>8}   (test / compositional; chance 0.083)")
    for name, (enc, family) in starts.items():
        if args.only and name.split()[0] not in (*args.only, "random") or (args.only and name == "random videomae-tiny"):
            continue
        torch.manual_seed(0)
        encoder = resolve_encoder(enc) if enc in FINETUNE_LR else load_encoder(enc)
        row = {"linear_probe": linear_probe(encoder, w)}
        for per_class in (5, 3):
            row[f"finetune_{per_class}_per_class"] = fine_tune(root, w, enc, family, per_class, out / "finetune" / name.replace(" ", "_") / str(per_class), 1 if args.smoke else 15)
        results["encoders"][name] = row
        p, f5, f3 = row["linear_probe"], row["finetune_5_per_class"], row["finetune_3_per_class"]
        cell = lambda d: f"{d['test']:.3f}/{d['compositional']:.3f}"  # noqa: E731
        print(f"{name:<28} {cell(p['all']):>10} {cell(p['5/class']):>10} {cell(p['3/class']):>10} {cell(f5):>8} {cell(f3):>8}", flush=True)

    video_text_runs = [n for n, spec in PRETRAIN.items() if spec[0] == "contrastive" and (not args.only or n in args.only)]
    for name in video_text_runs:
        vt = video_text_metrics(out / name, root, w, name)
        if name == "contrastive":
            results["video_text"] = vt
        results.setdefault("video_text_by_run", {})[name] = vt
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def video_text_metrics(run: Path, root: Path, w: SyntheticWorld, name: str) -> dict:
    from vidfm.data.datasets import classification_from_csv

    e = Embedder(run)
    vt = {}
    for split in ("test", "compositional"):
        metrics = evaluate_retrieval(e, captions_from_jsonl(root / "captions" / f"{split}.jsonl", root))
        records, _ = classification_from_csv(root / "classification" / f"{split}.csv", root, w.classes)
        metrics["zero_shot"] = zero_shot_accuracy(e, records, w.classes)
        vt[split] = metrics
        print(f"{name} {split:<14} t2v R@1/5/10 {metrics['t2v_R@1']:.3f}/{metrics['t2v_R@5']:.3f}/{metrics['t2v_R@10']:.3f} MdR {metrics['t2v_MdR']:.0f}"
              f"  v2t R@1/5/10 {metrics['v2t_R@1']:.3f}/{metrics['v2t_R@5']:.3f}/{metrics['v2t_R@10']:.3f} MdR {metrics['v2t_MdR']:.0f}"
              f"  zero-shot {metrics['zero_shot']['accuracy']:.3f} (top-5 {metrics['zero_shot']['top5']:.3f}) on {metrics['videos']} videos", flush=True)  # fmt: skip
    return vt


if __name__ == "__main__":
    main()
