"""Train a tiny per-frame ViT classifier (no BatchNorm: its statistics are per process) with vidfm's Trainer, in one process or sharded with
FSDP2 under torchrun (used by test_fsdp.py).

    python fsdp_train.py OUT [--fsdp] [--batch-size N] [--die-at-call K]

``--die-at-call K`` kills every process (os._exit) at the K-th call of the loss, as a
crash or a preempted node would."""

import argparse
import os
from pathlib import Path

import torch

from vidfm.models import build_encoder
from vidfm.training import TrainConfig, Trainer

STEPS, SAMPLES = 6, 48


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = build_encoder("frame-tiny", num_frames=4, image_size=32)
        self.head = torch.nn.Linear(self.encoder.output_dim, 5)

    def forward(self, video):
        return self.head(self.encoder(video).pooled)


def data():
    g = torch.Generator().manual_seed(1)
    videos, labels = torch.rand(SAMPLES, 4, 3, 32, 32, generator=g), torch.randint(0, 5, (SAMPLES,), generator=g)
    return [{"video": v, "label": y} for v, y in zip(videos, labels)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--fsdp", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--die-at-call", type=int)
    args = p.parse_args()
    torch.manual_seed(0)
    model = Classifier()
    calls = [0]

    def loss_fn(model, batch, generator):
        calls[0] += 1
        if calls[0] == args.die_at_call:
            os._exit(3)
        loss = torch.nn.functional.cross_entropy(model(batch["video"]), batch["label"])
        return loss, {}

    def save_fn(model, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(folder) / "model.pt")

    config = TrainConfig(output_dir=args.out, max_steps=STEPS, batch_size=args.batch_size, lr=1e-3, warmup_ratio=0.0,
                         checkpoint_every_steps=3, log_every_steps=1, fsdp=args.fsdp, bn_recalibration_batches=0)  # fmt: skip
    Trainer(model, config, data(), loss_fn, save_fn=save_fn).fit()


if __name__ == "__main__":
    main()
