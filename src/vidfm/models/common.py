"""Building blocks shared by the video encoders, and the one encoder interface.

Every encoder is a ``transformers.PreTrainedModel`` (config + ``save_pretrained`` /
``from_pretrained`` + gradient checkpointing + PEFT compatibility) whose forward is

    encoder(video: (B, T, C, H, W) float) -> EncoderOutput(tokens (B, N, D), pooled (B, D))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention


@dataclass
class EncoderOutput(ModelOutput):
    """``tokens``: (B, N, D) token features; ``pooled``: (B, D) one vector per clip.

    On request (``output_hidden_states`` / ``output_attentions``), as in transformers:
    ``hidden_states`` is the input of the first block then the output of every block,
    each (B, N_l, D_l) tokens (CNNs: each stage's feature map flattened to tokens);
    ``attentions`` the attention weights of every block, (B, heads, N, N).
    """

    tokens: torch.FloatTensor | None = None
    pooled: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    grids: tuple[tuple[int, int, int], ...] | None = None  # (t, h, w) of each hidden state's tokens


def run_blocks(blocks, x, output_hidden_states: bool = False, output_attentions: bool = False, **kwargs):
    """Apply transformer ``blocks`` in turn -> (x, hidden states or None, attentions or None)."""
    hidden = [x] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for block in blocks:
        if output_attentions:
            x, w = block(x, output_attentions=True, **kwargs)
            attentions.append(w)
        else:
            x = block(x, **kwargs)
        if hidden is not None:
            hidden.append(x)
    return x, (tuple(hidden) if hidden is not None else None), (tuple(attentions) if attentions is not None else None)


class VideoEncoderConfig(PretrainedConfig):
    """Fields every encoder config has; subclasses add their own."""

    def __init__(self, num_channels: int = 3, num_frames: int = 8, image_size: int = 64, **kwargs):
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.image_size = image_size
        super().__init__(**kwargs)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_video(video: torch.Tensor, mean, std) -> torch.Tensor:
    """(B, T, C, H, W) in [0, 1] -> standardised per channel. Models own this step so that
    every encoder takes the same [0, 1] input: without it a ViT sees content ~10x weaker
    than its position table and barely learns (measured: 0.13 vs 0.38 train accuracy)."""
    m = torch.tensor(mean, device=video.device, dtype=video.dtype).view(1, 1, -1, 1, 1)
    s = torch.tensor(std, device=video.device, dtype=video.dtype).view(1, 1, -1, 1, 1)
    return (video - m) / s


class ViTEncoderConfig(VideoEncoderConfig):
    """Fields shared by the transformer encoders (VideoMAE, TimeSformer), including the
    pixel statistics they normalise their [0, 1] input with."""

    def __init__(
        self,
        image_size: int = 64,
        patch_size: int = 8,
        num_frames: int = 8,
        num_channels: int = 3,
        hidden_size: int = 96,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 3,
        intermediate_size: int = 384,
        layer_norm_eps: float = 1e-6,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        initializer_range: float = 0.02,
        conv_stem: bool = False,
        pixel_mean=IMAGENET_MEAN,
        pixel_std=IMAGENET_STD,
        **kwargs,
    ):
        super().__init__(num_channels=num_channels, num_frames=num_frames, image_size=image_size, **kwargs)
        self.pixel_mean, self.pixel_std = list(pixel_mean), list(pixel_std)
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.initializer_range = initializer_range
        self.conv_stem = conv_stem


class VideoEncoder(PreTrainedModel):
    """Base class: subclasses set ``config_class`` and implement ``forward``.

    ``output_dim`` is the width of ``pooled``; ``blocks`` (a ModuleList, bottom first) is
    what freezing policies and adapters walk over.
    """

    main_input_name = "video"
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @property
    def output_dim(self) -> int:
        return self.config.hidden_size

    def check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[2] != self.config.num_channels:
            raise ConfigError(
                f"{type(self).__name__} expects video (B, T, {self.config.num_channels}, H, W), got {tuple(video.shape)}"
            )

    def check_patch_grid(self, height: int, width: int) -> None:
        """Patch embeddings would silently drop the pixels past the last whole patch."""
        p = self.config.patch_size
        if height % p or width % p:
            raise ConfigError(f"frames of {height}x{width} pixels do not divide into {p}x{p} patches; "
                              f"resize them to a multiple of {p} (e.g. {max(p, height // p * p)}x{max(p, width // p * p)})")  # fmt: skip

    def grid_tokens(self, out: EncoderOutput, layer: int = -1) -> torch.Tensor:
        """Hidden state ``layer`` (of a forward with ``output_hidden_states=True``) as a
        spatio-temporal grid ``(B, t, h, w, D)``: what a Video-LLM pools and projects per
        time slot."""
        if out.hidden_states is None or out.grids is None:
            raise ConfigError("grid_tokens needs the encoder's output with output_hidden_states=True")
        t, h, w = out.grids[layer]
        return rearrange(out.hidden_states[layer], "b (t h w) d -> b t h w d", t=t, h=h, w=w)

    #: MAE's initialisation for transformers trained from scratch: xavier-uniform linear
    #: layers, and the patch projection initialised as the linear map it is. With the
    #: default (normal, std 0.02) the tiny ViTs learned the 12 world actions far slower
    #: (videomae-tiny, 30 epochs: test 0.333 against 0.444; benchmarks/vit_recipe.py).
    xavier_init = False

    def _init_weights(self, module):
        patch_embed = getattr(self, "patch_embed", None)
        is_patch_projection = module is patch_embed or module is getattr(patch_embed, "proj", None)  # plain or ConvStem
        if self.xavier_init and is_patch_projection and isinstance(module, (nn.Conv2d, nn.Conv3d)):
            fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
        elif self.xavier_init and isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(module.weight, std=getattr(self.config, "initializer_range", 0.02))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvStem(nn.Module):
    """Early convolutions instead of one strided patch projection (Xiao et al., 2021:
    "Early convolutions help transformers see better"): 3x3 stride-2 convolutions per frame
    down to the patch grid, then a 1x1 (x ``tubelet`` in time) projection. Small ViTs
    trained from scratch on little data optimise far better with it.

    Takes ``(B, C, T, H, W)`` -> ``(B, D, T/tubelet, H/patch, W/patch)``, or frames
    ``(N, C, H, W)`` -> ``(N, D, H/patch, W/patch)`` when ``tubelet`` is 1."""

    def __init__(self, cin: int, dim: int, patch: int, tubelet: int = 1):
        super().__init__()
        n = int(math.log2(patch))
        if 2**n != patch:
            raise ConfigError(f"a convolutional stem needs a power-of-two patch size, got {patch}")
        layers, c = [], cin
        for i in range(n):
            co = max(16, dim // 2 ** (n - i))
            layers += [nn.Conv2d(c, co, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(co), nn.GELU()]
            c = co
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv3d(c, dim, (tubelet, 1, 1), stride=(tubelet, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return self.proj(self.convs(x).unsqueeze(2)).squeeze(2)
        b = x.shape[0]
        y = self.convs(rearrange(x, "b c t h w -> (b t) c h w"))
        return self.proj(rearrange(y, "(b t) c h w -> b c t h w", b=b))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(GradientCheckpointingLayer):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.
    Returns ``x``, or ``(x, attention weights)`` with ``output_attentions=True``."""

    def __init__(self, dim, heads, mlp_dim, qkv_bias="qkv", eps=1e-6, drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_dim, drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, output_attentions: bool = False):
        a = self.attn(self.norm1(x), output_attentions=output_attentions)
        a, weights = a if output_attentions else (a, None)
        x = x + self.drop_path(a)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, weights) if output_attentions else x


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine table of VideoMAE, ``(1, n_position, dim)``."""
    pos = np.arange(n_position)[:, None]
    j = np.arange(dim)[None, :]
    angles = pos / np.power(10000, 2 * (j // 2) / dim)
    table = np.where(j % 2 == 0, np.sin(angles), np.cos(angles))
    return torch.tensor(table, dtype=torch.float32)[None]


def resize_grid_embedding(table: torch.Tensor, old: tuple[int, ...], new: tuple[int, ...]) -> torch.Tensor:
    """Interpolate a (1, prod(old), D) position table laid out on grid ``old`` to grid
    ``new`` (1-3 dims), so a model trained on 16 frames runs on 8 or 32 instead of crashing."""
    if tuple(old) == tuple(new):
        return table
    d = table.shape[-1]
    grid = table.reshape(1, *old, d).movedim(-1, 1)
    mode = {1: "linear", 2: "bicubic", 3: "trilinear"}[len(old)]
    grid = F.interpolate(grid, size=tuple(new), mode=mode, align_corners=False)
    return grid.movedim(1, -1).reshape(1, -1, d)


def stochastic_depth_rates(rate: float, depth: int) -> list[float]:
    """Linearly increasing drop-path rates over ``depth`` blocks (the usual decay rule)."""
    return [float(x) for x in torch.linspace(0, rate, depth)] if depth else []


def load_transformers_checkpoint(name_or_path, model_type: str, prefix: str | None = None):
    """``(hf_config, state_dict)`` of a transformers checkpoint: a local folder (safetensors
    or .bin, task heads included) or a hub id. The base-model prefix (``videomae.``) is
    stripped so task and base checkpoints convert the same way."""
    from pathlib import Path

    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{name_or_path}: not a transformers checkpoint ({str(e).splitlines()[0]})") from None
    if hf_config.model_type != model_type:
        raise ConfigError(f"{name_or_path}: expected a {model_type} checkpoint, found model_type {hf_config.model_type!r}")
    hf_config.vidfm_pixel_stats = _preprocessor_stats(name_or_path)
    folder = Path(name_or_path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if files:
        from safetensors.torch import load_file

        state = {}
        for f in files:
            state.update(load_file(f))
    else:
        from transformers import AutoModel

        state = AutoModel.from_pretrained(str(name_or_path)).state_dict()
    strip = f"{prefix or model_type}."
    return hf_config, {k[len(strip):] if k.startswith(strip) else k: v for k, v in state.items()}


def vit_fields_from(hf_config) -> dict:
    """The ``ViTEncoderConfig`` fields of a transformers video-ViT config (plus the pixel
    statistics found beside the checkpoint)."""
    names = ("image_size", "patch_size", "num_frames", "num_channels", "hidden_size", "num_hidden_layers",
             "num_attention_heads", "intermediate_size", "layer_norm_eps")  # fmt: skip
    return {**{n: getattr(hf_config, n) for n in names}, **hf_config.vidfm_pixel_stats}


def _preprocessor_stats(name_or_path) -> dict:
    """The mean/std a checkpoint's own preprocessor normalises with (ImageNet if unknown)."""
    import json
    from pathlib import Path

    f = Path(name_or_path) / "preprocessor_config.json"
    if f.exists():
        cfg = json.loads(f.read_text())
        if "image_mean" in cfg and "image_std" in cfg:
            return {"pixel_mean": cfg["image_mean"], "pixel_std": cfg["image_std"]}
    return {"pixel_mean": IMAGENET_MEAN, "pixel_std": IMAGENET_STD}


def load_converted(model: nn.Module, state: dict, source, optional: set[str] = frozenset()) -> None:
    """Load converted weights, refusing anything that does not fit exactly."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in optional]
    if missing or unexpected:
        raise ConfigError(f"{source}: checkpoint does not fit this model (missing {missing[:5]}, unexpected {unexpected[:5]})")
