"""Pseudo-3D UNet (Make-A-Video / ModelScope T2V style).

Every spatial layer works on frames independently (2D conv, spatial self-attention,
cross-attention to text) and is followed by a temporal layer (1D conv over time,
attention over frames at each position). Temporal layers start as the identity
(zero-initialised output), so spatial weights pre-trained on images can be loaded first
(multi-stage: images, then video).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention
from vidfm.models.diffusion_blocks import (
    Conditioning,
    check_sample,
    frame_conditioned_input,
    input_channels,
    rope_3d,
    run_block,
)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(c, 32), c)


class ResBlockP3D(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.temporal = nn.Conv1d(cout, cout, 3)  # padded in forward: both sides, or the past only
        nn.init.zeros_(self.temporal.weight)
        nn.init.zeros_(self.temporal.bias)

    def forward(self, x, temb, frames: int):  # x: (B*T, C, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb)).repeat_interleave(frames, 0)[:, :, None, None]
        h = self.shortcut(x) + self.conv2(F.silu(self.norm2(h)))
        seq = rearrange(h, "(b t) c y x -> (b y x) c t", t=frames)
        seq = seq + self.temporal(F.pad(seq, (2, 0) if self.causal else (1, 1), mode="replicate"))
        return rearrange(seq, "(b y x) c t -> (b t) c y x", y=h.shape[-2], x=h.shape[-1])


class TransformerP3D(nn.Module):
    """Spatial self-attention, cross-attention to text, then temporal attention."""

    def __init__(self, c: int, heads: int, causal: bool):
        super().__init__()
        self.causal = causal
        self.norm = _norm(c)
        self.norm1, self.attn = nn.LayerNorm(c), Attention(c, heads)
        self.norm2, self.cross = nn.LayerNorm(c), Attention(c, heads)
        self.norm3, self.attn_t = nn.LayerNorm(c), Attention(c, heads)
        self.norm4, self.ff = nn.LayerNorm(c), nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
        nn.init.zeros_(self.attn_t.to_out.weight)
        nn.init.zeros_(self.attn_t.to_out.bias)

    def forward(self, x, text, text_mask, frames: int):
        y_, x_ = x.shape[-2:]
        h = rearrange(self.norm(x), "bt c y x -> bt (y x) c")
        h = h + self.attn(self.norm1(h))
        h = h + self.cross(self.norm2(h), context=text, mask=text_mask[:, None, None, :])
        h = rearrange(h, "(b t) s c -> (b s) t c", t=frames)
        rope = rope_3d(h.shape[-1] // self.attn_t.heads, frames, 1, 1, h.device)
        h = h + self.attn_t(self.norm3(h), rope=rope, is_causal=self.causal)
        h = h + self.ff(self.norm4(h))
        return x + rearrange(h, "(b s) t c -> (b t) c s", s=y_ * x_).reshape(x.shape[0], -1, y_, x_)


class UNetPseudo3D(ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        text_dim: int = 384,
        channels: tuple[int, ...] = (64, 128),
        heads: int = 4,
        attention: str = "full",
        frame_conditioning: bool = True,
    ):
        super().__init__()
        if attention not in ("full", "causal"):
            raise ConfigError(f"the pseudo-3D UNet's temporal attention is 'full' or 'causal', got {attention!r}")
        temb = 4 * channels[0]
        self.cond = Conditioning(temb, text_dim)
        self.text_to_levels = nn.ModuleList([nn.Linear(temb, c) for c in channels])
        causal = attention == "causal"
        self.conv_in = nn.Conv2d(input_channels(latent_channels, frame_conditioning), channels[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = channels[0]
        for i, co in enumerate(channels):
            self.down.append(nn.ModuleList([ResBlockP3D(c, co, temb, causal), TransformerP3D(co, heads, causal)]))
            self.downsample.append(nn.Conv2d(co, co, 3, stride=2, padding=1) if i < len(channels) - 1 else nn.Identity())
            c = co
        self.mid = nn.ModuleList([ResBlockP3D(c, c, temb, causal), TransformerP3D(c, heads, causal), ResBlockP3D(c, c, temb, causal)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, co in reversed(list(enumerate(channels))):
            self.up.append(nn.ModuleList([ResBlockP3D(c + co, co, temb, causal), TransformerP3D(co, heads, causal)]))
            self.upsample.append(nn.Conv2d(co, channels[i - 1], 3, padding=1) if i > 0 else nn.Identity())
            c = channels[i - 1] if i > 0 else co
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.gradient_checkpointing = False

    def forward(self, sample, timestep, text, text_mask, cond=None):
        cfg = self.config
        check_sample(sample, cfg.latent_channels, text, text_mask)
        b, _, T, H, W = sample.shape
        if H % 2 ** (len(cfg.channels) - 1) or W % 2 ** (len(cfg.channels) - 1):
            raise ConfigError(f"latents {H}x{W} must be divisible by {2 ** (len(cfg.channels) - 1)} for this UNet")
        temb, text_tokens = self.cond(timestep, text, text_mask)
        per_frame = [proj(text_tokens).repeat_interleave(T, 0) for proj in self.text_to_levels]
        mask = text_mask.bool().repeat_interleave(T, 0)
        x = rearrange(frame_conditioned_input(sample, cond, cfg.frame_conditioning), "b c t h w -> (b t) c h w")
        x = self.conv_in(x)
        skips = []
        for i, ((res, attn), down) in enumerate(zip(self.down, self.downsample)):
            x = run_block(self, attn, run_block(self, res, x, temb, T), per_frame[i], mask, T)
            skips.append(x)
            x = down(x)
        res1, attn, res2 = self.mid
        x = run_block(self, res2, run_block(self, attn, run_block(self, res1, x, temb, T), per_frame[-1], mask, T), temb, T)
        n = len(cfg.channels)
        for j, ((res, attn), up) in enumerate(zip(self.up, self.upsample)):
            level = n - 1 - j
            x = run_block(self, attn, run_block(self, res, torch.cat([x, skips.pop()], dim=1), temb, T), per_frame[level], mask, T)
            if level > 0:
                x = up(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = self.conv_out(F.silu(self.norm_out(x)))
        return rearrange(x, "(b t) c h w -> b c t h w", b=b)
