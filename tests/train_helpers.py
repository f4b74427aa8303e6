"""A tiny, fast training setup shared by the trainer tests (also run in subprocesses)."""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch.utils.data import Dataset

from vidfm.models import build_encoder
from vidfm.tasks.classify import VideoClassifier, evaluate_fn_for, make_loss_fn
from vidfm.training import TrainConfig, Trainer


class RandomClips(Dataset):
    """Deterministic clips whose label is readable from the pixels (mean brightness)."""

    def __init__(self, n=48, frames=4, size=32, classes=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % classes
        self.videos = torch.rand(n, frames, 3, size, size, generator=g) * 0.5 + self.labels.view(-1, 1, 1, 1, 1) * 0.25

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"video": self.videos[i], "label": self.labels[i]}


def make_trainer(out, encoder="videomae-tiny", kill_at_step=None, loss_options=None, encoder_options=None, interrupt_at_step=None, **overrides):
    torch.manual_seed(0)
    extra = {"hidden_dropout_prob": 0.1} if encoder.startswith("videomae") else {}
    enc = build_encoder(encoder, num_frames=4, image_size=32, **extra, **(encoder_options or {}))
    model = VideoClassifier(enc, ["a", "b", "c"], dropout=0.2)
    cfg = TrainConfig(output_dir=str(out), epochs=3, batch_size=8, lr=3e-3, checkpoint_every_steps=4, log_every_steps=2, seed=0)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    loss_fn = make_loss_fn(3, **(loss_options or {"label_smoothing": 0.1}))
    calls = {"n": 0}

    def killing_loss(model, batch, g):
        calls["n"] += model.training  # BatchNorm recalibration runs the loss in eval mode
        if kill_at_step is not None and calls["n"] > kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no finally blocks
        if interrupt_at_step is not None and calls["n"] > interrupt_at_step:
            raise KeyboardInterrupt
        return loss_fn(model, batch, g)

    return Trainer(model, cfg, RandomClips(), killing_loss, val_dataset=RandomClips(12, seed=1), evaluate_fn=evaluate_fn_for(3),
                   save_fn=lambda m, p: m.save_pretrained(p))  # fmt: skip


if __name__ == "__main__":  # python train_helpers.py OUT [KILL_AT_STEP]
    out = sys.argv[1]
    kill = int(sys.argv[2]) if len(sys.argv) > 2 else None
    make_trainer(out, kill_at_step=kill).fit()
