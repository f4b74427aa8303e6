"""One trainer for every objective, on ``accelerate``.

A task supplies ``loss_fn(model, batch) -> (loss, logs)`` and ``evaluate_fn(model, loader,
accelerator) -> metrics``; the trainer owns everything else: AdamW with warm-up + cosine
decay (no weight decay on biases and norms), gradient accumulation and clipping, bf16/fp16
autocast, gradient checkpointing, an EMA of the weights, early stopping on a validation
metric, atomic checkpoints every N steps with exact resume (data order, augmentation and
RNG state), JSONL metrics, a PNG of the curves and progress bars. Data-parallel training
works by launching the same script with ``accelerate launch`` or ``torchrun`` (gloo on CPU).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from vidfm.errors import ConfigError

CHECKPOINT = "checkpoint"


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    epochs: int = 10
    max_steps: int | None = None  # optimizer steps; stops early when reached
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False
    ema_decay: float | None = None
    eval_every_epochs: int = 1
    early_stopping_patience: int | None = None  # evaluations without improvement
    metric: str = "accuracy"
    metric_mode: str = "max"
    checkpoint_every_steps: int | None = None
    num_workers: int = 0
    seed: int = 0
    log_every_steps: int = 10
    extra: dict = field(default_factory=dict)  # task settings, saved with the run

    def validate(self) -> None:
        if self.epochs < 1 and not self.max_steps:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.metric_mode not in ("max", "min"):
            raise ConfigError(f"metric_mode must be max or min, got {self.metric_mode!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only; not on biases, norms, embeddings tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(("cls_token", "pos_embed", "time_embed")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_with_warmup(optimizer, warmup: int, total: int, min_ratio: float = 0.0):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        train_dataset: Dataset,
        loss_fn: Callable,
        val_dataset: Dataset | None = None,
        evaluate_fn: Callable | None = None,
        save_fn: Callable | None = None,
        collate_fn: Callable | None = None,
    ):
        config.validate()
        self.config, self.model = config, model
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.loss_fn, self.evaluate_fn, self.save_fn = loss_fn, evaluate_fn, save_fn
        self.collate_fn = collate_fn
        self.out = Path(config.output_dir)
        self.history: list[dict] = []

    # -- setup ---------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState, PartialState
        from accelerate.utils import DistributedDataParallelKwargs

        cpu = not torch.cuda.is_available()
        if not PartialState(cpu=cpu).use_distributed:  # cpu=True is what detects gloo multi-CPU runs
            # accelerate keeps one global state per process; a second Trainer in the same
            # process (a notebook, a benchmark) may want another precision or accumulation.
            AcceleratorState._reset_state()
            GradientState._reset_state()
        return Accelerator(
            mixed_precision=self.config.mixed_precision,
            gradient_accumulation_steps=self.config.grad_accum,
            cpu=cpu,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )

    def _loader(self, dataset, shuffle: bool, epoch: int = 0) -> DataLoader:
        g = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        sampler = RandomSampler(dataset, generator=g) if shuffle else None
        # The loader's own generator: otherwise each new iterator draws its base seed from the
        # global RNG, and a resumed run would replay dropout masks shifted by one draw.
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.config.seed * 1000 + epoch + 1),
            shuffle=False,
            num_workers=self.config.num_workers,
            collate_fn=self.collate_fn,
            drop_last=shuffle and len(dataset) > self.config.batch_size,
        )

    # -- the loop ------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> dict:
        cfg = self.config
        acc = self._accelerator()
        self.accelerator = acc
        _seed_everything(cfg.seed)
        if cfg.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.out.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = max(1, len(self._loader(self.train_dataset, True)) // (cfg.grad_accum * acc.num_processes))
        total = cfg.max_steps or steps_per_epoch * cfg.epochs
        optimizer = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        scheduler = cosine_with_warmup(optimizer, int(cfg.warmup_ratio * total), total, cfg.min_lr_ratio)
        model, optimizer = acc.prepare(self.model, optimizer)
        ema = None
        if cfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(acc.unwrap_model(model), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "bad_evals": 0, "stopped_early": False}
        if resume and _checkpoint_dir(self.out) is not None:
            state = self._load(acc, model, optimizer, scheduler, ema)
            acc.print(f"resumed from {self.out / CHECKPOINT} at step {state['step']} (epoch {state['epoch']})")
        elif acc.is_main_process:
            (self.out / "metrics.jsonl").write_text("")
            (self.out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
        self.history = _read_history(self.out)
        from tqdm.auto import tqdm

        started = time.perf_counter()
        running, n_running = 0.0, 0
        done = state["step"] >= total or state["stopped_early"]
        while not done:
            epoch = state["epoch"]
            if hasattr(self.train_dataset, "set_epoch"):
                self.train_dataset.set_epoch(epoch)
            loader = acc.prepare_data_loader(self._loader(self.train_dataset, True, epoch))
            skip = state["batch_in_epoch"]
            if skip:
                loader = acc.skip_first_batches(loader, skip)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not acc.is_local_main_process or None, leave=False, initial=skip, total=len(loader) + skip)
            model.train()
            for batch in bar:
                with acc.accumulate(model):
                    loss, logs = self.loss_fn(model, batch)
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm:
                        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state["batch_in_epoch"] += 1
                running += float(loss.detach())
                n_running += 1
                if not acc.sync_gradients:
                    continue
                scheduler.step()
                state["step"] += 1
                if ema is not None:
                    ema.update_parameters(acc.unwrap_model(model))
                if state["step"] % cfg.log_every_steps == 0 or state["step"] == total:
                    row = {"step": state["step"], "epoch": epoch, "train_loss": running / n_running, "lr": scheduler.get_last_lr()[0], **{k: float(v) for k, v in logs.items()}}
                    self._log(acc, row)
                    bar.set_postfix(loss=f"{row['train_loss']:.4f}")
                    running, n_running = 0.0, 0
                if cfg.checkpoint_every_steps and state["step"] % cfg.checkpoint_every_steps == 0:
                    self._save(acc, model, optimizer, scheduler, ema, state)
                if state["step"] >= total:
                    done = True
                    break
            epoch_finished = not done or state["batch_in_epoch"] >= len(loader) + skip
            if epoch_finished:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
            if (epoch_finished and state["epoch"] % cfg.eval_every_epochs == 0) or done:
                stop = self._evaluate(acc, model, ema, state)
                if stop:
                    state["stopped_early"] = done = True
            if state["epoch"] >= cfg.epochs and not cfg.max_steps:
                done = True
            self._save(acc, model, optimizer, scheduler, ema, state)
        acc.wait_for_everyone()
        summary = {
            "steps": state["step"],
            "epochs": state["epoch"],
            "best": state["best"],
            "stopped_early": state["stopped_early"],
            "seconds": time.perf_counter() - started,
            "history": self.history,
        }
        if acc.is_main_process:
            _plot_curves(self.history, self.out / "curves.png")
        self.model = acc.unwrap_model(model)
        return summary

    def _evaluate(self, acc, model, ema, state) -> bool:
        if self.val_dataset is None or self.evaluate_fn is None:
            if self.save_fn and acc.is_main_process:
                self.save_fn(self._weights_for_eval(acc, model, ema), self.out / "best")
            return False
        eval_model = self._weights_for_eval(acc, model, ema)
        eval_model.eval()
        loader = acc.prepare_data_loader(self._loader(self.val_dataset, False))
        with torch.no_grad():
            metrics = self.evaluate_fn(eval_model, loader, acc)
        row = {"step": state["step"], "epoch": state["epoch"], **{f"val_{k}": v for k, v in metrics.items() if np.isscalar(v)}}
        self._log(acc, row)
        value = metrics.get(self.config.metric)
        if value is None:
            raise ConfigError(f"evaluation returned no {self.config.metric!r}; it returned {sorted(metrics)}")
        better = state["best"] is None or (value > state["best"] if self.config.metric_mode == "max" else value < state["best"])
        if better:
            state["best"], state["bad_evals"] = float(value), 0
            if self.save_fn and acc.is_main_process:
                self.save_fn(eval_model, self.out / "best")
        else:
            state["bad_evals"] += 1
        patience = self.config.early_stopping_patience
        return patience is not None and state["bad_evals"] >= patience

    def _weights_for_eval(self, acc, model, ema):
        return ema.module if ema is not None else acc.unwrap_model(model)

    def _log(self, acc, row: dict) -> None:
        self.history.append(row)
        if acc.is_main_process:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self, acc, model, optimizer, scheduler, ema, state) -> None:
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return
        blob = {
            "model": acc.unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "state": dict(state),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        }
        atomic_save_dir(self.out / CHECKPOINT, lambda d: (torch.save(blob, d / "state.pt"), (d / "state.json").write_text(json.dumps(state))))

    def _load(self, acc, model, optimizer, scheduler, ema) -> dict:
        path = _checkpoint_dir(self.out)
        try:
            blob = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        except Exception as e:
            raise ConfigError(f"{path}: checkpoint is unreadable ({e}); delete it to start over") from None
        try:
            acc.unwrap_model(model).load_state_dict(blob["model"])
        except RuntimeError as e:
            raise ConfigError(f"{path}: checkpoint does not match this model ({str(e).splitlines()[0]})") from None
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        if ema is not None and blob["ema"] is not None:
            ema.load_state_dict(blob["ema"])
        torch.set_rng_state(blob["rng"]["torch"])
        np.random.set_state(blob["rng"]["numpy"])
        random.setstate(blob["rng"]["python"])
        return blob["state"]


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Switch on activation checkpointing in the outermost transformers or diffusers models
    inside ``model`` (the encoder of a classifier, a video denoiser)."""
    from diffusers.models.modeling_utils import ModelMixin
    from transformers import PreTrainedModel

    found = []
    for m in model.modules():
        if isinstance(m, (PreTrainedModel, ModelMixin)) and not any(m is not f and any(m is x for x in f.modules()) for f in found):
            found.append(m)
    if not found:
        raise ConfigError(f"{type(model).__name__} has no layers that support gradient checkpointing")
    for m in found:
        (getattr(m, "activation_checkpointing_enable", None) or getattr(m, "gradient_checkpointing_enable", None) or m.enable_gradient_checkpointing)()


def atomic_save_dir(final: Path, write: Callable[[Path], object]) -> None:
    """Write a folder so that a crash at any moment leaves either the old or the new one:
    fill ``final.tmp``, move the old folder aside, rename, then delete the old."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    for f in tmp.rglob("*"):  # make the bytes durable before the rename publishes them
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def model_folder(path, marker: str = "config.json") -> Path:
    """A training run folder stands for the model in its ``best/``: return ``path/best``
    when ``path`` itself lacks ``marker`` but ``best`` has it (or exists), else ``path``."""
    path = Path(path)
    if not (path / marker).exists() and (path / "best").is_dir():
        return path / "best"
    return path


def _checkpoint_dir(out: Path) -> Path | None:
    for name in (CHECKPOINT, CHECKPOINT + ".old"):  # .old survives a crash mid-swap
        if (out / name / "state.pt").exists():
            return out / name
    return None


def _read_history(out: Path) -> list[dict]:
    f = out / "metrics.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and every validation metric against the step, one panel each."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["train_loss"] + sorted({k for row in history for k in row if k.startswith("val_") and not k.endswith("_count")})
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
