"""One trainer for every objective, on ``accelerate``.

A task supplies ``loss_fn(model, batch, generator) -> (loss, logs)`` and
``evaluate_fn(model, loader, accelerator) -> metrics``; the trainer owns everything else:
AdamW with warm-up + cosine decay (transformers' schedule; no weight decay on biases and
norms), gradient accumulation and clipping, bf16/fp16 autocast, gradient checkpointing, an
EMA of the weights, early stopping on a validation metric, atomic checkpoints every N
steps with exact resume, JSONL metrics, a PNG of the curves and a progress bar.

Randomness: every draw a task makes (masks, noise, MixUp) comes from the ``generator``
the trainer passes to ``loss_fn``; it is checkpointed with the model, the optimizer and
every global RNG by accelerate's ``save_state``, so a resumed run continues exactly where
the killed one stopped. A run folder belongs to one configuration: resuming with other
settings is refused (``--fresh`` starts over).

BatchNorm: before every evaluation the running statistics of the BatchNorm layers that
train are recomputed over up to ``bn_recalibration_batches`` training batches (precise BN,
as in pycls / detectron2). The running averages lag the weights by many steps, and on a
short run they stay near their initial values: a model then collapses in eval mode
(every video gets the same features) although it is fine in train mode.

Data-parallel training works by launching the same script with ``accelerate launch`` or
``torchrun`` (gloo on CPU).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from vidfm.errors import ConfigError
from vidfm.files import atomic_write_text, publish_dir

CHECKPOINT = "checkpoint"
CONFIG_FILE = "train_config.json"
#: settings that may differ between a run and its resumption (they change no number)
RESUMABLE_CHANGES = ("num_workers", "log_every_steps", "checkpoint_every_steps", "output_dir")
SCHEDULE_LENGTH = ("max_steps", "epochs")  # may change on resume: the cosine is laid out again over the new length


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
    fsdp: bool = False  # shard weights, gradients and optimizer state over the torchrun processes (FSDP2)
    ema_decay: float | None = None
    eval_every_epochs: int = 1
    early_stopping_patience: int | None = None  # evaluations without improvement
    metric: str = "accuracy"
    metric_mode: str = "max"
    checkpoint_every_steps: int | None = None
    bn_recalibration_batches: int = 16  # precise BN before each evaluation (0 = off)
    num_workers: int = 0
    seed: int = 0
    log_every_steps: int = 10
    extra: dict = field(default_factory=dict)  # task settings, saved with the run

    def validate(self) -> None:
        def at_least(name, low, allow_none=False):
            v = getattr(self, name)
            if (v is None and not allow_none) or (v is not None and v < low):
                raise ConfigError(f"{name.replace('_', '-')} must be >= {low}, got {v}")

        if self.max_steps is None:
            at_least("epochs", 1)
        at_least("max_steps", 1, allow_none=True)
        for name in ("batch_size", "grad_accum", "eval_every_epochs", "log_every_steps"):
            at_least(name, 1)
        at_least("checkpoint_every_steps", 1, allow_none=True)
        at_least("early_stopping_patience", 1, allow_none=True)
        for name in ("weight_decay", "bn_recalibration_batches", "num_workers"):
            at_least(name, 0)
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"warmup must be in [0, 1) and min_lr_ratio in [0, 1], got {self.warmup_ratio}, {self.min_lr_ratio}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be positive (or None to disable clipping), got {self.max_grad_norm}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.metric_mode not in ("max", "min"):
            raise ConfigError(f"metric_mode must be max or min, got {self.metric_mode!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.fsdp and self.ema_decay:
            raise ConfigError("--ema keeps a full copy of the weights in every process; it cannot be combined with --fsdp")

    def as_dict(self) -> dict:
        """JSON-ready settings (paths and tuples as JSON would read them back)."""
        return json.loads(json.dumps(asdict(self), default=str))


def config_differences(saved: dict, current: dict) -> list[str]:
    """``name: saved -> current`` for every setting that differs (task settings included)."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if key in RESUMABLE_CHANGES + SCHEDULE_LENGTH:
            continue
        a, b = saved.get(key), current.get(key)
        if key == "extra":
            diffs += [d for d in config_differences(a or {}, b or {})]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only; not on biases, norms, embeddings tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(("cls_token", "pos_embed", "time_embed")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Stateful:
    """Adapts plain state (a dict, a ``torch.Generator``) to accelerate's checkpointing."""

    def __init__(self, obj):
        self.obj = obj

    def state_dict(self):
        return {"rng": self.obj.get_state()} if isinstance(self.obj, torch.Generator) else dict(self.obj)

    def load_state_dict(self, state):
        if isinstance(self.obj, torch.Generator):
            self.obj.set_state(state["rng"])
        else:
            self.obj.clear()
            self.obj.update(state)


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
        self.generator = torch.Generator().manual_seed(config.seed)

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
        from vidfm.data.datasets import collate_readable

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
            collate_fn=self.collate_fn or collate_readable,
            drop_last=shuffle and len(dataset) > self.config.batch_size,
        )

    def _check_resumable(self) -> dict:
        """A run folder holds one configuration; resuming under another is an error.
        Returns the saved settings ({} for a run that has none)."""
        saved_file = self.out / CONFIG_FILE
        if not saved_file.exists():
            return {}
        try:
            saved = json.loads(saved_file.read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"{saved_file}: corrupt; pass --fresh to start the run over") from None
        diffs = config_differences(saved, self.config.as_dict())
        if diffs:
            more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
            raise ConfigError(f"{self.out} holds a run with other settings ({'; '.join(diffs[:3])}{more}); "
                              "pass --fresh to start over there, or choose another --out")  # fmt: skip
        return saved

    def _note_new_length(self, acc, saved: dict, total: int, step: int) -> None:
        """A resumed run may be lengthened or shortened (--max-steps, --epochs): the learning
        rate then follows the cosine laid out over the new length from the current step, and
        the run's saved settings (``saved``, read by ``_check_resumable``) record the new length."""
        current = self.config.as_dict()
        changed = {k: (saved.get(k), current[k]) for k in SCHEDULE_LENGTH if k in saved and saved[k] != current[k]}
        if not changed:
            return
        acc.print("schedule length changed (" + "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
                  + f"): the learning rate follows a cosine over {total} steps from step {step}")  # fmt: skip
        if acc.is_main_process:
            atomic_write_text(self.out / CONFIG_FILE, json.dumps({**saved, **{k: b for k, (_, b) in changed.items()}}, indent=2))

    # -- the loop ------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> dict:
        cfg = self.config
        acc = self._accelerator()
        self.accelerator = acc
        _seed_everything(cfg.seed)
        if cfg.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        resuming = resume and _checkpoint_dir(self.out) is not None
        saved = self._check_resumable() if resuming else {}
        self.out.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = max(1, len(self._loader(self.train_dataset, True)) // (cfg.grad_accum * acc.num_processes))
        total = cfg.max_steps or steps_per_epoch * cfg.epochs
        from transformers import get_cosine_with_min_lr_schedule_with_warmup

        self.sharded = None
        if cfg.fsdp:  # FSDP2 shards in place before the optimizer sees the parameters; accelerate only splits the data
            from vidfm.training.fsdp import ShardedModel

            self.sharded = ShardedModel(self.model, cfg.mixed_precision)
        optimizer = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total, min_lr_rate=cfg.min_lr_ratio)
        model, optimizer = (self.model, optimizer) if self.sharded else acc.prepare(self.model, optimizer)
        self.optimizer = optimizer
        ema = None
        if cfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(acc.unwrap_model(model), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "bad_evals": 0, "stopped_early": False, "last_eval": {}, "best_eval": {}}
        acc.register_for_checkpointing(scheduler, Stateful(state), Stateful(self.generator), *([ema] if ema is not None else []))
        if resuming:
            self._load(acc)
            acc.print(f"resumed from {self.out / CHECKPOINT} at step {state['step']} (epoch {state['epoch']})")
            self._note_new_length(acc, saved, total, state["step"])
        elif acc.is_main_process:
            atomic_write_text(self.out / "metrics.jsonl", "")
            atomic_write_text(self.out / CONFIG_FILE, json.dumps(cfg.as_dict(), indent=2))
        self.history = _read_history(self.out, state["step"] if resuming else None)
        finished_before = state["step"] >= total or state["stopped_early"]
        started = time.perf_counter()
        running, n_running = 0.0, 0
        done = finished_before
        bar = self._progress(acc, total, state["step"])
        while not done:
            epoch = state["epoch"]
            if hasattr(self.train_dataset, "set_epoch"):
                self.train_dataset.set_epoch(epoch)
            loader = acc.prepare_data_loader(self._loader(self.train_dataset, True, epoch))
            skip = state["batch_in_epoch"]
            batches = acc.skip_first_batches(loader, skip) if skip else loader
            model.train()
            bar.set_description(f"epoch {epoch + 1}")
            for batch in batches:
                with acc.accumulate(model):
                    loss, logs = self.loss_fn(model, batch, self.generator)
                    acc.backward(loss)
                    if acc.sync_gradients:  # (accelerate's optimizer also skips the steps in between; FSDP's plain one needs this)
                        if cfg.max_grad_norm:
                            clip = torch.nn.utils.clip_grad_norm_ if self.sharded else acc.clip_grad_norm_
                            clip(model.parameters(), cfg.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                state["batch_in_epoch"] += 1
                running += float(loss.detach())
                n_running += 1
                if not acc.sync_gradients:
                    continue
                scheduler.step()
                state["step"] += 1
                bar.update(1)
                if ema is not None:
                    ema.update_parameters(acc.unwrap_model(model))
                if state["step"] % cfg.log_every_steps == 0 or state["step"] == total:
                    train_loss = running / n_running
                    if acc.num_processes > 1:  # the mean over every process's batches, not the main one's alone
                        train_loss = float(acc.reduce(torch.tensor(train_loss, device=acc.device), reduction="mean"))
                    row = {"step": state["step"], "epoch": epoch, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0], **{k: float(v) for k, v in logs.items()}}
                    self._log(acc, row)
                    bar.set_postfix(self._postfix(row["train_loss"], state), refresh=False)
                    running, n_running = 0.0, 0
                if cfg.checkpoint_every_steps and state["step"] % cfg.checkpoint_every_steps == 0:
                    self._save(acc)
                if state["step"] >= total:
                    done = True
                    break
            epoch_finished = not done or state["batch_in_epoch"] >= len(loader)
            if epoch_finished:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
            if (epoch_finished and state["epoch"] % cfg.eval_every_epochs == 0) or done:
                if self._evaluate(acc, model, ema, state):
                    state["stopped_early"] = done = True
                bar.set_postfix(self._postfix(running / n_running if n_running else None, state))
            if state["epoch"] >= cfg.epochs and not cfg.max_steps:
                done = True
            self._save(acc)
        bar.close()
        acc.wait_for_everyone()
        summary = {
            "steps": state["step"],
            "epochs": state["epoch"],
            "best": state["best"],
            "last_eval": dict(state["last_eval"]),
            "best_eval": dict(state["best_eval"]),
            "stopped_early": state["stopped_early"],
            "already_finished": finished_before,
            "seconds": time.perf_counter() - started,
            "history": self.history,
        }
        if acc.is_main_process and not finished_before:
            _plot_curves(self.history, self.out / "curves.png")
        self.model = acc.unwrap_model(model)
        return summary

    def _progress(self, acc, total: int, done: int):
        """One bar for the whole run (it stays on screen), with the loss and the latest
        validation score; hidden when stderr is not a terminal."""
        import sys

        from tqdm.auto import tqdm

        return tqdm(total=total, initial=done, unit="step", disable=(not acc.is_local_main_process) or None, file=sys.stderr, dynamic_ncols=True)

    def _postfix(self, loss: float | None, state: dict) -> dict:
        out = {} if loss is None else {"loss": f"{loss:.4f}"}
        value = state["last_eval"].get(self.config.metric)
        if value is not None:
            out[f"val_{self.config.metric}"] = f"{value:.4f}"
        return out

    def _evaluate(self, acc, model, ema, state) -> bool:
        eval_model = self._weights_for_eval(acc, model, ema)
        self._recalibrate_batchnorm(acc, eval_model)
        if self.val_dataset is None or self.evaluate_fn is None:
            self._save_best(acc, eval_model)
            return False
        eval_model.eval()
        loader = acc.prepare_data_loader(self._loader(self.val_dataset, False))
        with torch.no_grad():
            metrics = self.evaluate_fn(eval_model, loader, acc)
        scalars = {k: float(v) for k, v in metrics.items() if np.isscalar(v)}
        state["last_eval"] = scalars
        self._log(acc, {"step": state["step"], "epoch": state["epoch"], **{f"val_{k}": v for k, v in scalars.items()}})
        value = metrics.get(self.config.metric)
        if value is None:
            raise ConfigError(f"evaluation returned no {self.config.metric!r}; it returned {sorted(metrics)}")
        better = state["best"] is None or (value > state["best"] if self.config.metric_mode == "max" else value < state["best"])
        if better:
            state["best"], state["bad_evals"] = float(value), 0
            state["best_eval"] = scalars
            self._save_best(acc, eval_model)
        else:
            state["bad_evals"] += 1
        patience = self.config.early_stopping_patience
        return patience is not None and state["bad_evals"] >= patience

    def _save_best(self, acc, model) -> None:
        """``save_fn`` on the main process; a sharded model is first gathered whole there."""
        if not self.save_fn:
            return
        if self.sharded is not None:
            model = self.sharded.full_copy()  # every rank takes part
        if acc.is_main_process:
            self.save_fn(model, self.out / "best")

    @torch.no_grad()
    def _recalibrate_batchnorm(self, acc, model) -> None:
        """Recompute the population statistics of the BatchNorm layers that train (those a
        frozen encoder keeps in eval mode are left alone) over a fixed set of training
        batches, as one cumulative average."""
        n = self.config.bn_recalibration_batches
        model.train()
        layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
        if not n or not layers:
            return
        model.eval()  # dropout off, and objectives see eval mode (MoCo leaves its queue alone)
        momenta = [m.momentum for m in layers]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        loader = acc.prepare_data_loader(self._loader(self.train_dataset, True, epoch=-1))  # the same batches every time
        g = torch.Generator().manual_seed(self.config.seed)
        for k, batch in enumerate(loader):
            if k == n:
                break
            self.loss_fn(model, batch, g)
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum

    def _weights_for_eval(self, acc, model, ema):
        return ema.module if ema is not None else acc.unwrap_model(model)

    def _log(self, acc, row: dict) -> None:
        self.history.append(row)
        if acc.is_main_process:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self, acc) -> None:
        """accelerate's state (model, optimizer, every RNG, the scheduler, the EMA, the
        trainer's state and generator), published atomically as ``OUT/checkpoint``."""
        import shutil

        tmp = self.out / (CHECKPOINT + ".tmp")
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=False)  # tied weights (an LM head) survive a pickle, not safetensors
        if self.sharded is not None:  # accelerate saved the RNGs, the scheduler and the state; the shards go beside them
            from vidfm.training.fsdp import SHARDED_DIR

            acc.wait_for_everyone()
            self.sharded.save(self.optimizer, tmp / SHARDED_DIR)
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / "state.json").write_text(json.dumps(self._state_for_humans(acc), default=str))
            publish_dir(tmp, self.out / CHECKPOINT)
        acc.wait_for_everyone()

    def _state_for_humans(self, acc) -> dict:
        for obj in acc._custom_objects:
            if isinstance(obj, Stateful) and isinstance(obj.obj, dict):
                return dict(obj.obj)
        return {}

    def _load(self, acc) -> None:
        path = _checkpoint_dir(self.out)
        if (path / "state.pt").exists():
            raise ConfigError(f"{path}: a checkpoint from an older vidfm that cannot be resumed; pass --fresh to start over")
        try:
            acc.load_state(str(path))
            if self.sharded is not None:
                from vidfm.training.fsdp import SHARDED_DIR

                if not (path / SHARDED_DIR).exists():
                    raise ConfigError(f"{path}: not an --fsdp checkpoint")
                self.sharded.load(self.optimizer, path / SHARDED_DIR)
        except Exception as e:  # noqa: BLE001 - unreadable, truncated or foreign: all mean "cannot resume"
            raise ConfigError(f"{path}: cannot resume from this checkpoint ({str(e).splitlines()[0][:160]}); pass --fresh to start over") from None


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


def _checkpoint_dir(out: Path) -> Path | None:
    for name in (CHECKPOINT, CHECKPOINT + ".old"):  # .old survives a crash mid-swap
        if (out / name / "state.json").exists() or (out / name / "state.pt").exists():
            return out / name
    return None


def _read_history(out: Path, up_to_step: int | None = None) -> list[dict]:
    """The logged rows; on resume, rows logged after the checkpoint (replayed now) are
    dropped from the file so nothing is counted twice."""
    f = out / "metrics.jsonl"
    rows = [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []
    if up_to_step is not None and any(r.get("step", 0) > up_to_step for r in rows):
        rows = [r for r in rows if r.get("step", 0) <= up_to_step]
        atomic_write_text(f, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
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
