"""U-ViT for video latents (Bao et al.): the timestep, the text tokens and the latent patches
are all tokens of one transformer; the first half of the blocks feeds the second half
through long skip connections (concatenate, then a linear layer), and a 3x3 convolution
smooths the output patches. Patches carry 3D RoPE; the conditioning tokens are unrotated.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention
from vidfm.models.diffusion_blocks import (
    ATTENTION_MODES,
    Conditioning,
    FeedForward,
    check_sample,
    frame_conditioned_input,
    frame_mask,
    input_channels,
    rope_3d,
    run_block,
    sincos_3d,
)


class UViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, skip: bool, mlp_ratio: float = 4.0):
        super().__init__()
        self.skip = nn.Linear(2 * dim, dim) if skip else None
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.ff = nn.LayerNorm(dim), FeedForward(dim, mlp_ratio)

    def forward(self, x, mask, rope, skip=None):
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x), mask=mask, rope=rope)
        return x + self.ff(self.norm2(x))


class VideoUViT(ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        text_dim: int = 384,
        width: int = 192,
        depth: int = 7,
        heads: int = 4,
        patch_size: int = 1,
        attention: str = "full",
        frame_conditioning: bool = True,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if attention not in ("full", "causal", "sparse_causal"):
            raise ConfigError(f"U-ViT supports attention full, causal or sparse_causal, got {attention!r} (of {', '.join(ATTENTION_MODES)})")
        if depth < 3 or depth % 2 == 0:
            raise ConfigError(f"U-ViT depth must be odd and >= 3 (in-blocks, a middle block, out-blocks), got {depth}")
        p = patch_size
        self.patch_embed = nn.Conv3d(input_channels(latent_channels, frame_conditioning), width, (1, p, p), stride=(1, p, p))
        self.cond = Conditioning(width, text_dim)
        half = depth // 2
        self.in_blocks = nn.ModuleList([UViTBlock(width, heads, False, mlp_ratio) for _ in range(half)])
        self.mid_block = UViTBlock(width, heads, False, mlp_ratio)
        self.out_blocks = nn.ModuleList([UViTBlock(width, heads, True, mlp_ratio) for _ in range(half)])
        self.norm_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, p * p * latent_channels)
        self.conv_out = nn.Conv3d(latent_channels, latent_channels, (1, 3, 3), padding=(0, 1, 1))
        self.gradient_checkpointing = False

    def forward(self, sample, timestep, text, text_mask, cond=None):
        cfg = self.config
        check_sample(sample, cfg.latent_channels, text, text_mask)
        b, _, T, H, W = sample.shape
        p = cfg.patch_size
        if H % p or W % p:
            raise ConfigError(f"latents {H}x{W} are not divisible by the patch size {p}")
        x = self.patch_embed(frame_conditioned_input(sample, cond, cfg.frame_conditioning))
        t, h, w = x.shape[2:]
        patches = rearrange(x, "b d t h w -> b (t h w) d") + sincos_3d(cfg.width, t, h, w, x.device).to(x.dtype)
        c, text_tokens = self.cond(timestep, text, text_mask)
        x = torch.cat([c[:, None], text_tokens, patches], dim=1)
        n_cond = 1 + text_tokens.shape[1]
        # keys: padding text tokens are hidden; patch-to-patch follows the attention mode;
        # every patch sees the conditioning tokens. Under a causal mode the conditioning
        # tokens see only each other, or they would carry later frames to earlier ones.
        n = x.shape[1]
        mask = torch.ones(b, 1, n, n, dtype=torch.bool, device=x.device)
        mask[:, 0, :, 1:n_cond] = text_mask[:, None, :].bool()
        temporal = frame_mask(cfg.attention, t, h * w, x.device)
        if temporal is not None:
            mask[:, 0, n_cond:, n_cond:] &= temporal
            mask[:, 0, :n_cond, n_cond:] = False
        rope = rope_3d(cfg.width // cfg.heads, t, h, w, x.device)
        skips = []
        for block in self.in_blocks:
            x = run_block(self, block, x, mask, rope)
            skips.append(x)
        x = run_block(self, self.mid_block, x, mask, rope)
        for block in self.out_blocks:
            x = run_block(self, block, x, mask, rope, skips.pop())
        x = self.proj_out(self.norm_out(x[:, n_cond:]))
        x = rearrange(x, "b (t h w) (p1 p2 c) -> b c t (h p1) (w p2)", t=t, h=h, w=w, p1=p, p2=p)
        return self.conv_out(x)
