"""The one attention module of vidfm: encoders, denoisers and connectors all use it.

``Attention`` holds the projections (``to_q``, ``to_k``, ``to_v``, ``to_out``: diffusers'
names, so LoRA targets and editing hooks read the same everywhere) and hands the
computation to a *processor*, as diffusers does: ``attn.set_processor(p)`` swaps it, and
a model's ``attn_processors`` / ``set_attn_processor`` (diffusers' ``AttentionMixin``)
reach every layer. Editing methods (prompt-to-prompt, attention injection) are processors.

Dispatch: PyTorch SDPA by default; the eager path (explicit softmax) when the attention
weights are asked for (``output_attentions=True``), since SDPA never materialises them.

Tensors: ``x (B, N, D)``; ``context (B, M, D_ctx)`` for cross-attention; ``mask`` a bool
(True = may attend) or additive float mask broadcastable to ``(B, heads, N, M)``;
``rope`` a ``(cos, sin)`` table applied to the last positions of q and k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError

BIAS_MODES = ("qkv", "qv", "none")


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate pairs of channels of ``x (B, heads, N, d)``; tokens before the table's
    length (text or time tokens placed first) are not rotated."""
    cos, sin = rope
    n = cos.shape[0]
    head, tail = x[..., : x.shape[-2] - n, :], x[..., x.shape[-2] - n :, :]
    pairs = tail.float().reshape(*tail.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)
    return torch.cat([head, rotated], dim=-2)


def attend(q, k, v, mask=None, is_causal: bool = False, dropout: float = 0.0, output_attentions: bool = False):
    """``softmax(q k^T / sqrt(d) + mask) v`` on (B, h, N, d) tensors -> (out, weights or None).
    SDPA unless the weights are wanted."""
    if not output_attentions:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal), None
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if is_causal:
        n, m = scores.shape[-2:]
        scores = scores.masked_fill(~torch.ones(n, m, dtype=torch.bool, device=q.device).tril(m - n), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.float().softmax(-1).to(q.dtype)
    out = F.dropout(weights, dropout) @ v if dropout else weights @ v
    return out, weights


class AttnProcessor:
    """The default computation: project, split heads, RoPE, optional prefix keys/values
    (prefix tuning), attention, merge heads, output projection."""

    def __call__(self, attn: "Attention", hidden_states, encoder_hidden_states=None, attention_mask=None, *,
                 rope=None, is_causal=False, prefix=None, output_attentions=False):  # fmt: skip
        q, k, v = attn.qkv(hidden_states, encoder_hidden_states)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if prefix is not None:
            pk, pv = (rearrange(p, "b n (h d) -> b h n d", h=attn.heads).expand(k.shape[0], -1, -1, -1).to(k.dtype) for p in prefix)
            k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        out, weights = attend(q, k, v, attention_mask, is_causal, attn.attn_drop if attn.training else 0.0, output_attentions)
        return attn.out(out), weights


class Attention(nn.Module):
    """Multi-head self- or cross-attention.

    ``bias``: ``"qkv"`` (bias on all three projections), ``"qv"`` (VideoMAE: no key bias)
    or ``"none"``. ``forward`` returns the output, or ``(output, weights)`` with
    ``output_attentions=True``.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, bias: str = "qkv", attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by {heads} heads")
        if bias not in BIAS_MODES:
            raise ConfigError(f"attention bias must be one of {BIAS_MODES}, got {bias!r}")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias != "none")
        self.to_k = nn.Linear(context_dim or dim, dim, bias=bias == "qkv")
        self.to_v = nn.Linear(context_dim or dim, dim, bias=bias != "none")
        self.to_out = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.processor = AttnProcessor()

    # diffusers' processor interface (``AttentionMixin`` finds these)
    def set_processor(self, processor) -> None:
        self.processor = processor

    def get_processor(self, return_deprecated_lora: bool = False):
        return self.processor

    def qkv(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Projected queries, keys and values, split into heads: three (B, h, N, d)."""
        ctx = x if context is None else context
        return (rearrange(p, "b n (h d) -> b h n d", h=self.heads) for p in (self.to_q(x), self.to_k(ctx), self.to_v(ctx)))

    def out(self, heads_out: torch.Tensor) -> torch.Tensor:
        """(B, h, N, d) -> (B, N, D) through the output projection."""
        return self.proj_drop(self.to_out(rearrange(heads_out, "b h n d -> b n (h d)")))

    def forward(self, x, context=None, mask=None, rope=None, is_causal: bool = False, prefix=None, output_attentions: bool = False):
        out, weights = self.processor(self, x, context, mask, rope=rope, is_causal=is_causal, prefix=prefix, output_attentions=output_attentions)
        return (out, weights) if output_attentions else out


def upgrade_attention_keys(state: dict) -> dict:
    """State dicts saved before the attention modules were unified (fused ``qkv``,
    ``q_bias``/``v_bias``, ``proj``) -> today's ``to_q``/``to_k``/``to_v``/``to_out``."""
    out = {}
    for key, value in state.items():
        head, _, name = key.rpartition(".")
        parent, _, leaf = head.rpartition(".")
        if head.endswith("qkv") and name in ("weight", "bias"):
            base = head[: -len("qkv")]
            for part, chunk in zip(("to_q", "to_k", "to_v"), value.chunk(3)):
                out[f"{base}{part}.{name}"] = chunk
        elif name in ("q_bias", "v_bias"):
            out[f"{head}.{'to_q' if name == 'q_bias' else 'to_v'}.bias"] = value
        elif leaf == "proj" and (f"{parent}.qkv.weight" in state or f"{parent}.q_bias" in state):
            out[f"{parent}.to_out.{name}"] = value
        else:
            out[key] = value
    return out


def has_old_attention_keys(keys) -> bool:
    return any(k.endswith((".qkv.weight", ".q_bias")) for k in keys)
