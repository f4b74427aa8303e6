"""Shard a model over processes with PyTorch's own FSDP2 (``fully_shard``), for models
whose weights, gradients and optimizer state do not fit one process.

Why not accelerate's FSDP plugin: on CPU (gloo) accelerate silently falls back to DDP, so
a test on this machine would prove nothing; ``fully_shard`` shards the same way on CPU and
GPU. The Trainer uses this module when ``TrainConfig.fsdp`` is set and the script runs
under ``torchrun`` (``torchrun --nproc-per-node 2 -m vidfm train ... --fsdp``).

What gets sharded: every block of the model's top-level ``nn.ModuleList`` s (transformer
layers, DiT blocks), each its own FSDP unit (gathered just before it runs, freed after),
then the root for what is left (embeddings, heads). Checkpoints are sharded too
(``torch.distributed.checkpoint``: each rank writes its own shards, in parallel) and load
into one process without a process group (``load_sharded_checkpoint``); the ``best``
model is gathered into a full copy and saved the ordinary way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vidfm.errors import ConfigError

SHARDED_DIR = "sharded"  # inside a run's checkpoint folder


def shard_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The children of the outermost ``ModuleList`` s that hold parameters (the blocks)."""
    units, inside = [], set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, torch.nn.ModuleList):
            for child in module:
                if any(True for _ in child.parameters()):
                    units.append(child)
                    inside |= {id(m) for m in child.modules()}
    return units


class ShardedModel:
    """A model sharded in place, plus an empty (meta-device) skeleton of it for gathering a
    full copy to save."""

    def __init__(self, model: torch.nn.Module, mixed_precision: str = "no"):
        import torch.distributed as dist
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if not dist.is_available() or not dist.is_initialized():
            raise ConfigError("--fsdp shards the model over processes: launch with 'torchrun --nproc-per-node N -m vidfm train ...'")
        if mixed_precision == "fp16":
            raise ConfigError("--fsdp trains in fp32 or bf16 (--precision bf16); fp16 needs a gradient scaler FSDP2 does not have")
        self.rank = dist.get_rank()
        if self.rank == 0 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            import warnings

            warnings.warn("this model has BatchNorm layers: with FSDP (as with DDP) each process normalises with the statistics "
                          "of its own part of the batch, so training differs from one process with the whole batch", stacklevel=2)  # fmt: skip
        self.buffers = {n: b.clone() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in _non_persistent(model, n)}
        self.skeleton = _meta_copy(model)
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision == "bf16" else MixedPrecisionPolicy()
        for unit in shard_units(model):
            fully_shard(unit, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        self.model = model

    def full_copy(self) -> torch.nn.Module | None:
        """The whole model gathered on rank 0 (a collective: every rank must call it); None
        on the other ranks."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        state = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank != 0:
            return None
        full = self.skeleton.to_empty(device="cpu")
        full.load_state_dict(state)
        for name, value in self.buffers.items():
            _set_buffer(full, name, value)
        return full

    def save(self, optimizer, folder) -> None:
        """Model and optimizer state, each rank writing its shards into ``folder``."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(self.model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder))

    def load(self, optimizer, folder) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_state_dict,
            set_state_dict,
        )

        model_state, optim_state = get_state_dict(self.model, optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=str(folder))
        set_state_dict(self.model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def load_sharded_checkpoint(model: torch.nn.Module, checkpoint) -> torch.nn.Module:
    """Load the weights of a sharded checkpoint (a run folder, its ``checkpoint`` or the
    ``sharded`` folder itself) into an ordinary model in this one process."""
    import torch.distributed.checkpoint as dcp

    folder = Path(checkpoint)
    for candidate in (folder / "checkpoint" / SHARDED_DIR, folder / SHARDED_DIR, folder):
        if (candidate / ".metadata").exists():
            break
    else:
        raise ConfigError(f"{checkpoint}: no sharded (FSDP) checkpoint here")
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(candidate))
    model.load_state_dict(state["model"])
    return model


def _owner(model: torch.nn.Module, name: str) -> tuple[torch.nn.Module, str]:
    """The module holding the parameter or buffer ``name``, and its attribute name there."""
    owner_name, _, attr = name.rpartition(".")
    return (model.get_submodule(owner_name) if owner_name else model), attr


def _non_persistent(model: torch.nn.Module, name: str) -> set:
    return _owner(model, name)[0]._non_persistent_buffers_set


def _set_buffer(model: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    owner, attr = _owner(model, name)
    owner._buffers[attr] = value


def _meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model's structure with no storage (parameters on the meta device)."""
    import copy

    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad) for p in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo)


__all__ = ["SHARDED_DIR", "ShardedModel", "load_sharded_checkpoint", "shard_units"]
