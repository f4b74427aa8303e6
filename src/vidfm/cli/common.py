"""Small helpers shared by command modules."""

from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar on stderr (hidden when stderr is not a terminal, e.g. in CI logs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, file=sys.stderr)


def add_train_options(p, lr: float = 1e-3, epochs: int = 10) -> None:
    """The trainer's options, shared by every ``train``/``pretrain`` command."""
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of all steps (default 0.1)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--clip-grad", type=float, default=1.0, help="max gradient norm (0 disables)")
    p.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"], help="mixed precision")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward to save memory")
    p.add_argument("--ema", type=float, help="EMA decay of the weights, e.g. 0.999 (evaluation uses the EMA)")
    p.add_argument("--early-stop", type=int, help="stop after this many evaluations without improvement")
    p.add_argument("--checkpoint-every", type=int, default=50, help="save a resumable checkpoint every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in OUT and start over")


def train_config_from(args):
    from vidfm.training import TrainConfig

    return TrainConfig(
        output_dir=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_ratio=args.warmup, grad_accum=args.grad_accum,
        max_grad_norm=args.clip_grad or None, mixed_precision=args.precision, gradient_checkpointing=args.grad_checkpointing,
        ema_decay=args.ema, early_stopping_patience=args.early_stop, checkpoint_every_steps=args.checkpoint_every, seed=args.seed,
    )  # fmt: skip
