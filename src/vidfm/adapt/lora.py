"""LoRA for every vidfm model (video encoders, denoisers), through ``peft``, saved in
peft's own format: ``adapter_config.json`` + ``adapter_model.safetensors`` with keys as a
``PeftModel`` writes them (``base_model.model.<module>.lora_A.weight``), so an adapter
made here opens with ``PeftModel.from_pretrained`` and the other way round.

``W' = W + (alpha / r) B A``: ``add_lora`` wraps the target layers and freezes everything
else; ``merge_lora`` folds the update into the base weights and removes the wrappers.
Models that carry peft's mixins (transformers ``PreTrainedModel``, diffusers
``ModelMixin`` + ``PeftAdapterMixin``) also answer their library's own calls
(``fuse_lora``, ``unfuse_lora``...): ``add_lora`` registers its config as ``peft_config``
like their ``add_adapter`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from vidfm.errors import ConfigError
from vidfm.files import atomic_save_dir

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."


def add_lora(module: nn.Module, rank: int, alpha: float | None = None, targets: list[str] | None = None, dropout: float = 0.0,
             trainable_tokens: list[int] | None = None) -> nn.Module:  # fmt: skip
    """Wrap ``targets`` (module names or name suffixes) in LoRA layers; only LoRA trains.
    ``trainable_tokens``: also train these rows of the input (and tied output) embedding,
    e.g. a token added to the vocabulary (peft's ``trainable_token_indices``)."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
    if not targets:
        raise ConfigError(f"{type(module).__name__}: no layers to put LoRA on")
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha or rank), lora_dropout=float(dropout), target_modules=list(targets),
                        trainable_token_indices=list(trainable_tokens) if trainable_tokens else None)  # fmt: skip
    inject_adapter_in_model(config, module)
    module.peft_config = {"default": config}  # where the libraries' own adapter calls look
    for name, p in module.named_parameters():
        p.requires_grad = "lora_" in name or "trainable_tokens_delta" in name
    return module


def has_lora(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in module.modules())


def lora_config(module: nn.Module):
    config = getattr(module, "peft_config", {}).get("default")
    if config is None:
        raise ConfigError(f"{type(module).__name__} carries no LoRA")
    return config


def save_lora(module: nn.Module, folder) -> Path:
    """Write the LoRA weights of ``module`` in peft's format (atomically)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = lora_config(module)
    state = {PREFIX + k: v.detach().contiguous() for k, v in get_peft_model_state_dict(module).items()}

    def write(d: Path):
        config.save_pretrained(str(d))
        save_file(state, d / WEIGHTS, metadata={"format": "pt"})

    return atomic_save_dir(Path(folder), write)


def read_lora_config(folder) -> dict:
    folder = Path(folder)
    try:
        return json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no {CONFIG}; not a saved LoRA") from None
    except json.JSONDecodeError:
        raise ConfigError(f"{folder / CONFIG}: not valid JSON") from None


def load_lora(module: nn.Module, folder, merge: bool = False) -> nn.Module:
    """Add the LoRA saved in ``folder`` (peft format) to ``module`` and load its weights;
    ``merge`` folds it into the base weights at once. Weights that do not fit are refused."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = read_lora_config(folder)
    targets = spec.get("target_modules")
    add_lora(module, spec.get("r", 8), spec.get("lora_alpha"), sorted(targets) if isinstance(targets, (list, set)) else targets,
             spec.get("lora_dropout", 0.0), spec.get("trainable_token_indices"))  # fmt: skip
    try:
        state = load_file(folder / WEIGHTS)
    except (FileNotFoundError, OSError) as e:
        raise ConfigError(f"{folder / WEIGHTS}: cannot read LoRA weights ({e})") from None
    state = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in state.items()}
    result = set_peft_model_state_dict(module, state)
    own = {k for k in module.state_dict() if "lora_" in k}
    missing = [k for k in own if k.replace(".default", "") not in state]
    if spec.get("trainable_token_indices") and not any("trainable_tokens_delta" in k for k in state):
        missing.append("trainable_tokens_delta (the trained vocabulary rows)")  # a tied head shares the embedding's
    if getattr(result, "unexpected_keys", None) or missing:
        raise ConfigError(f"{folder}: LoRA weights do not fit this model (unexpected {list(result.unexpected_keys)[:3]}, missing {missing[:3]})")
    if merge:
        merge_lora(module)
    return module


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base layer and put the base layer back in place:
    the outputs stay the same and inference costs nothing extra."""
    from peft.tuners.lora import LoraLayer
    from peft.utils.other import TrainableTokensWrapper

    for name, layer in list(module.named_modules()):
        if isinstance(layer, TrainableTokensWrapper):  # trained vocabulary rows, written into the embedding
            parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            setattr(parent, name.rsplit(".", 1)[-1], layer.unload_and_optionally_merge_module(merge=True, safe_merge=False, adapter_names=None))
        elif isinstance(layer, LoraLayer):
            layer.merge()
            parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            setattr(parent, name.rsplit(".", 1)[-1], layer.get_base_layer())
    module.__dict__.pop("peft_config", None)
    return module
