"""Connectors: visual tokens -> language-model embeddings.

* ``mlp``: two linear layers with GELU (LLaVA-1.5's projector), after a LayerNorm; one
  output token per input token.
* ``qformer``: learned queries that attend to each other, then to the visual tokens
  (BLIP-2's Q-Former); ``num_queries`` output tokens whatever the input length.
* ``perceiver``: learned latents that attend to the visual tokens concatenated with
  themselves (Flamingo's Perceiver resampler); ``num_queries`` output tokens.

All take ``(B, N, D_vision)`` and return ``(B, N_out, D_lm)``. ``pool_grid`` shrinks a
frame's token grid 2x2 (average, max or bilinear) to fit a token budget.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention
from vidfm.models.common import Mlp

CONNECTORS = ("mlp", "qformer", "perceiver")
POOLS = ("none", "avg", "max", "bilinear")


def pool_grid(x: torch.Tensor, kind: str = "avg", stride: int = 2) -> torch.Tensor:
    """(B, h, w, D) -> (B, ceil(h/stride), ceil(w/stride), D). ``bilinear`` resizes (as
    LLaVA-NeXT-Video does), ``avg``/``max`` pool windows (``ceil_mode``, so odd grids keep
    their last row)."""
    if kind == "none" or stride == 1:
        return x
    if kind not in POOLS:
        raise ConfigError(f"unknown pooling {kind!r}; choose one of {', '.join(POOLS)}")
    h, w = x.shape[1:3]
    y = rearrange(x, "b h w d -> b d h w")
    if kind == "bilinear":
        y = F.interpolate(y, size=(-(-h // stride), -(-w // stride)), mode="bilinear", align_corners=False)
    elif kind == "avg":
        y = F.avg_pool2d(y, stride, stride, ceil_mode=True)
    else:
        y = F.max_pool2d(y, stride, stride, ceil_mode=True)
    return rearrange(y, "b d h w -> b h w d")


def pooled_size(h: int, w: int, kind: str, stride: int) -> tuple[int, int]:
    return (h, w) if kind == "none" or stride == 1 else (-(-h // stride), -(-w // stride))


class MLPProjector(nn.Module):
    """LayerNorm, then Linear-GELU-Linear. The norm makes the connector indifferent to the
    scale of the encoder's features (BLIP-2 normalises its vision features the same way)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.fc1, self.fc2 = nn.Linear(dim_in, dim_out), nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class _QueryLayer(nn.Module):
    """Queries: self-attention (optional), cross-attention to the visual tokens, MLP."""

    def __init__(self, dim: int, context_dim: int, heads: int, self_attention: bool):
        super().__init__()
        self.self_attn = Attention(dim, heads) if self_attention else None
        self.norm_self = nn.LayerNorm(dim) if self_attention else None
        self.norm_q, self.norm_ctx = nn.LayerNorm(dim), nn.LayerNorm(context_dim)
        self.cross = Attention(dim, heads, context_dim=context_dim)
        self.norm_mlp, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, q: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.self_attn is not None:
            q = q + self.self_attn(self.norm_self(q))
        q = q + self.cross(self.norm_q(q), context=self.norm_ctx(context))
        return q + self.mlp(self.norm_mlp(q))


class QueryResampler(nn.Module):
    """Learned queries read a variable number of visual tokens into a fixed number.
    ``kind="qformer"``: queries attend to each other, then to the tokens (BLIP-2).
    ``kind="perceiver"``: latents attend to the tokens and to themselves in one
    cross-attention over the concatenation (Flamingo)."""

    def __init__(self, dim_in: int, dim_out: int, num_queries: int = 16, layers: int = 2, width: int | None = None, heads: int = 4, kind: str = "qformer"):
        super().__init__()
        if kind not in ("qformer", "perceiver"):
            raise ConfigError(f"unknown resampler {kind!r}")
        if num_queries < 1 or layers < 1:
            raise ConfigError(f"a {kind} needs at least one query and one layer, got {num_queries} and {layers}")
        width = width or max(64, (dim_in // heads) * heads)
        self.kind = kind
        self.queries = nn.Parameter(torch.randn(1, num_queries, width) * 0.02)
        self.norm_in, self.proj_in = nn.LayerNorm(dim_in), nn.Linear(dim_in, width)
        self.layers = nn.ModuleList(_QueryLayer(width, width, heads, self_attention=kind == "qformer") for _ in range(layers))
        self.norm_out, self.proj_out = nn.LayerNorm(width), nn.Linear(width, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.proj_in(self.norm_in(x))
        q = self.queries.expand(x.shape[0], -1, -1).to(context.dtype)
        for layer in self.layers:
            q = layer(q, torch.cat([context, q], 1) if self.kind == "perceiver" else context)
        return self.proj_out(self.norm_out(q))


def build_connector(kind: str, dim_in: int, dim_out: int, num_queries: int = 16, layers: int = 2) -> nn.Module:
    if kind == "mlp":
        return MLPProjector(dim_in, dim_out)
    if kind in ("qformer", "perceiver"):
        return QueryResampler(dim_in, dim_out, num_queries=num_queries, layers=layers, kind=kind)
    raise ConfigError(f"unknown connector {kind!r}; choose one of {', '.join(CONNECTORS)}")
