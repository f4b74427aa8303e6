"""Transfer learning: which parameters train, and what small modules are added.

Methods (``apply_adaptation(model, method, **options)`` on a model with ``.encoder`` and
``.head``; the head always trains):

- ``full``      everything trains.
- ``linear``    linear probe: the encoder is frozen and kept in eval mode (BatchNorm
                statistics and dropout fixed), only the head trains.
- ``freeze``    the stem/embeddings and the lowest ``blocks`` blocks are frozen.
- ``lora``      low-rank updates ``W + (alpha/r) B A`` on every linear and conv layer of the
                blocks, via ``peft`` (``rank``, ``alpha``, ``dropout``); mergeable.
- ``adapter``   bottleneck adapters after each block's MLP (Houlsby/Pfeiffer) or residual
                block (CNNs): ``y + up(act(down(y)))``, ``up`` zero-initialised.
- ``parallel``  parallel adapters beside each MLP (He et al.): ``mlp(x) + s * up(act(down(x)))``.
- ``prompt``    ``tokens`` learned tokens prepended to the sequence entering the first
                transformer block and removed after the last (VPT-shallow).
- ``prefix``    ``tokens`` learned keys/values prepended in every attention layer.

Adaptations save (only their own weights plus the head), load, merge (LoRA) and swap.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vidfm.adapt.lora import add_lora, merge_lora
from vidfm.errors import ConfigError
from vidfm.files import atomic_save_dir
from vidfm.models.cnn import ResBlock
from vidfm.models.common import Attention, Block, Mlp

METHODS = ("full", "linear", "freeze", "lora", "adapter", "parallel", "prompt", "prefix")
MODULE_METHODS = ("lora", "adapter", "parallel", "prompt", "prefix")  # those that add modules
_STEM_PREFIXES = ("patch_embed", "stem", "slow_stem", "fast_stem", "cls_token", "pos_embed", "time_embed", "laterals.0")


def trainable_parameters(model: nn.Module) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / max(total, 1)}


def adapt_encoder(encoder: nn.Module, method: str = "full", **options) -> nn.Module:
    """Apply an adaptation to a video encoder alone: add its modules and set which encoder
    parameters train. The spec is kept as ``encoder.adaptation`` so the encoder saves and
    loads as an ordinary encoder folder (``vidfm.models.save_encoder``)."""
    if method not in METHODS:
        raise ConfigError(f"unknown adaptation {method!r}; choose one of {', '.join(METHODS)}")
    carried = getattr(encoder, "adaptation", None)
    if carried and method in MODULE_METHODS:
        raise ConfigError(f"this encoder already carries a {carried['method']!r} adaptation; adapt it with full, linear or freeze:N")
    for p in encoder.parameters():
        p.requires_grad = method == "full"
    if method == "freeze":
        n = int(options.get("blocks", 0))
        blocks = list(getattr(encoder, "blocks", []))
        if not 0 <= n <= len(blocks):
            raise ConfigError(f"cannot freeze {n} blocks: the encoder has {len(blocks)}")
        frozen = {id(p) for b in blocks[:n] for p in b.parameters()}
        for name, p in encoder.named_parameters():
            p.requires_grad = not (id(p) in frozen or name.startswith(_STEM_PREFIXES) or name.startswith("image_tower.embeddings"))
    elif method == "lora":
        add_lora(encoder, int(options.get("rank", 8)), float(options.get("alpha", 16)), lora_targets(encoder), float(options.get("dropout", 0.0)))
    elif method in ("adapter", "parallel"):
        _inject_adapters(encoder, parallel=method == "parallel", **options)
    elif method == "prompt":
        _inject_prompts(encoder, int(options.get("tokens", 8)))
    elif method == "prefix":
        _inject_prefixes(encoder, int(options.get("tokens", 8)))
    if method in MODULE_METHODS:
        encoder.adaptation = {"method": method, **options}
    return encoder


def apply_adaptation(model: nn.Module, method: str = "full", **options) -> nn.Module:
    """Adapt ``model.encoder`` (see ``adapt_encoder``); the head always trains."""
    if getattr(model, "adaptation", None):
        raise ConfigError(f"model already has a {model.adaptation['method']!r} adaptation; start from a fresh model")
    adapt_encoder(model.encoder, method, **options)
    for p in model.head.parameters():
        p.requires_grad = True
    model.adaptation = {"method": method, **options}
    return model


def encoder_is_frozen(model: nn.Module) -> bool:
    """A linear probe keeps the whole encoder in eval mode (BatchNorm statistics, dropout)."""
    return bool(getattr(model, "adaptation", None)) and model.adaptation["method"] == "linear"


# -- LoRA (peft, via vidfm.adapt.lora) -----------------------------------------------------
def lora_targets(encoder: nn.Module) -> list[str]:
    """Every Linear / Conv2d / Conv3d inside the blocks (the stem and patch embedding stay
    as they are: they see raw pixels, and LoRA there rarely helps)."""
    out = []
    for name, m in encoder.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)) and not name.startswith(_STEM_PREFIXES):
            if "embeddings" in name or "shortcut" in name or name.startswith("image_tower.pooler"):
                continue
            out.append(name)
    return out


def merge_adaptation(model: nn.Module) -> nn.Module:
    """Fold LoRA updates into the base weights and remove the LoRA layers (outputs stay the
    same; inference costs nothing extra). Other methods add non-linear modules or tokens
    and cannot be folded."""
    method = (getattr(model, "adaptation", None) or {}).get("method")
    if method != "lora":
        raise ConfigError(f"only LoRA can be merged into the base weights (this model uses {method!r})")
    merge_lora(model.encoder)
    model.adaptation = model.encoder.adaptation = None
    for p in model.parameters():
        p.requires_grad = True
    return model


# -- adapters ------------------------------------------------------------------------------
class Adapter(nn.Module):
    """``down -> GELU -> up`` bottleneck; ``up`` starts at zero so the model is unchanged."""

    def __init__(self, dim: int, bottleneck: int, conv: bool = False):
        super().__init__()
        layer = (lambda a, b: nn.Conv3d(a, b, 1)) if conv else nn.Linear
        self.down, self.up = layer(dim, bottleneck), layer(bottleneck, dim)
        self.act = nn.GELU()
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class AdaptedModule(nn.Module):
    """Wraps a sublayer: sequential ``y + adapter(y)`` or parallel ``y + s * adapter(x)``."""

    def __init__(self, inner: nn.Module, adapter: Adapter, parallel: bool, scale: float):
        super().__init__()
        self.inner, self.adapter, self.parallel, self.scale = inner, adapter, parallel, scale

    def forward(self, x, *args, **kwargs):
        y = self.inner(x, *args, **kwargs)
        return y + self.scale * self.adapter(x if self.parallel else y)


def _inject_adapters(encoder: nn.Module, parallel: bool, bottleneck: int | None = None, scale: float = 1.0, **_) -> None:
    wrapped = 0
    for parent in list(encoder.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Mlp) or type(child).__name__.endswith("MLP"):
                dim = child.fc1.in_features
                size = bottleneck or max(4, dim // 8)
                setattr(parent, name, AdaptedModule(child, Adapter(dim, size), parallel, scale))
                wrapped += 1
            elif isinstance(child, ResBlock) and not parallel:
                dim = child.bn2.num_features
                setattr(parent, name, AdaptedModule(child, Adapter(dim, bottleneck or max(4, dim // 4), conv=True), False, scale))
                wrapped += 1
    if not wrapped:
        kind = "parallel adapters need transformer MLPs" if parallel else "no MLP or residual block found"
        raise ConfigError(f"cannot add adapters to {type(encoder).__name__}: {kind}")
    for name, p in encoder.named_parameters():
        p.requires_grad = ".adapter." in name


# -- prompt and prefix tuning --------------------------------------------------------------
def _plain_blocks(encoder: nn.Module) -> list[Block]:
    blocks = [b for b in getattr(encoder, "blocks", []) if isinstance(b, Block)]
    if not blocks:
        raise ConfigError(
            f"{type(encoder).__name__} has no plain transformer blocks; prompt/prefix tuning needs VideoMAE, "
            "joint-attention TimeSformer or a frame encoder with a temporal transformer"
        )
    return blocks


class PromptTokens(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(1, n, dim) * 0.02)


def _add_prompts(block: nn.Module, args):
    x = args[0]
    tokens = block.prompt_tuning.tokens  # read through the hooked module: deepcopy-safe (EMA copies)
    return (torch.cat([tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], 1),) + args[1:]


def _inject_prompts(encoder: nn.Module, n: int) -> None:
    blocks = _plain_blocks(encoder)
    dim = blocks[0].norm1.normalized_shape[0]
    blocks[0].prompt_tuning = PromptTokens(n, dim)  # lives on the block its hook reads it from

    def strip(_module, _args, out):
        return (out[0][:, n:], *out[1:]) if isinstance(out, tuple) else out[:, n:]

    blocks[0].register_forward_pre_hook(_add_prompts)
    blocks[-1].register_forward_hook(strip)
    for name, p in encoder.named_parameters():
        p.requires_grad = ".prompt_tuning." in name


class PrefixAttention(nn.Module):
    """Learned keys and values prepended to an attention layer's own."""

    def __init__(self, attn: Attention, n: int):
        super().__init__()
        dim = attn.to_out.in_features
        self.attn = attn
        self.prefix_k = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.prefix_v = nn.Parameter(torch.randn(1, n, dim) * 0.02)

    def forward(self, x: torch.Tensor, **kwargs):
        return self.attn(x, prefix=(self.prefix_k.to(x.dtype), self.prefix_v.to(x.dtype)), **kwargs)


def _inject_prefixes(encoder: nn.Module, n: int) -> None:
    for block in _plain_blocks(encoder):
        block.attn = PrefixAttention(block.attn, n)
    for name, p in encoder.named_parameters():
        p.requires_grad = ".prefix_" in name


# -- save / load / swap --------------------------------------------------------------------
def save_adaptation(model: nn.Module, path) -> Path:
    """Write only what the adaptation trains (plus the head, and every BatchNorm layer's
    running statistics: they adapt to the new data even where the weights are frozen, and
    without them a loaded adapter would not reproduce the trained model) and how to
    rebuild it."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.named_parameters() if v.requires_grad}
    for name, m in model.named_modules():  # BatchNorm statistics move in training, frozen weights or not
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            state.update({f"{name}.{k}": v.detach().clone() for k, v in m.named_buffers(recurse=False)})

    def write(d: Path):
        save_file(state, d / "adapter.safetensors")
        (d / "adapter.json").write_text(json.dumps(model.adaptation or {"method": "full"}, indent=2))

    return atomic_save_dir(Path(path), write)


def load_adaptation(model: nn.Module, path) -> nn.Module:
    """Apply the saved adaptation to ``model`` (a base model, or one already carrying the
    same kind of adaptation - then this swaps the adapter weights) and load its weights."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "adapter.json").exists():
        raise ConfigError(f"{path}: no adapter.json; not a saved adaptation")
    spec = json.loads((path / "adapter.json").read_text())
    current = getattr(model, "adaptation", None)
    if current and current != spec:
        raise ConfigError(f"{path}: adaptation {spec} does not fit this model's {current}; load it into a fresh base model")
    if not current:
        apply_adaptation(model, **spec)
    state = load_file(path / "adapter.safetensors")
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise ConfigError(f"{path}: adapter weights do not fit this model ({bad[:3]})")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    return model
