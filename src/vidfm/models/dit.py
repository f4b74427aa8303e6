"""DiT for video latents (Peebles & Xie; Latte / Open-Sora style).

Spatio-temporal latent patches -> transformer blocks with adaLN-zero timestep (+ pooled
text) modulation, cross-attention to the text tokens and 3D RoPE -> patches back. The
``attention`` setting picks the temporal pattern: ``full`` spatio-temporal, ``causal``,
``sparse_causal`` (first + previous frame) or ``divided`` (spatial attention within each
frame, then temporal-only attention across frames at each position, as in Latte).

Audio (``audio_dim > 0``; SPEC 8.8): frame-aligned audio features packed per latent frame
(``vidfm.data.audio.pack_to_latent_frames``: ``(B, t, K, audio_dim)``) condition the
video either by ``cross`` attention in every block (the tokens of latent frame ``t`` are
queries, that frame's ``K`` audio tokens keys and values; Hallo / EchoMimic style) or
``add`` (the frame's pooled audio added to each of its tokens at the input). Both start
at zero (a zero output projection, as adaLN-zero and ControlNet start), so a text-only
checkpoint loads unchanged and learns to listen (``with_audio``). Missing audio is all zeros (features are log-mel / 4,
which is never all zero: silence is -2).
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
    cross_mask,
    frame_conditioned_input,
    frame_mask,
    input_channels,
    modulate,
    rope_3d,
    run_block,
    sincos_3d,
)  # fmt: skip

AUDIO_FUSIONS = ("cross", "add")


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, divided: bool, mlp_ratio: float = 4.0, audio_cross: bool = False):
        super().__init__()
        if audio_cross:
            self.norm_audio = nn.LayerNorm(dim, eps=1e-6)
            self.audio_attn = Attention(dim, heads)
            # zero output projection, not a zero gate: its gradient is non-zero from the first step
            # (a zero gate would also zero the gradient of the attention behind it: nothing learns)
            nn.init.zeros_(self.audio_attn.to_out.weight)
            nn.init.zeros_(self.audio_attn.to_out.bias)
        self.divided = divided
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        if divided:
            self.norm_t = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.attn_t = Attention(dim, heads)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, (9 if divided else 6) * dim))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-zero: every block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c, text, text_mask, grid, mask, rope, rope_s, rope_t, audio=None):
        mods = self.ada(c).chunk(9 if self.divided else 6, dim=1)
        t, h, w = grid
        if self.divided:
            y = rearrange(modulate(self.norm1(x), mods[0], mods[1]), "b (t s) d -> (b t) s d", t=t)
            y = rearrange(self.attn(y, rope=rope_s), "(b t) s d -> b (t s) d", t=t)
            x = x + mods[2].unsqueeze(1) * y
            y = rearrange(modulate(self.norm_t(x), mods[6], mods[7]), "b (t s) d -> (b s) t d", t=t)
            y = rearrange(self.attn_t(y, rope=rope_t), "(b s) t d -> b (t s) d", s=h * w)
            x = x + mods[8].unsqueeze(1) * y
        else:
            x = x + mods[2].unsqueeze(1) * self.attn(modulate(self.norm1(x), mods[0], mods[1]), mask=mask, rope=rope)
        x = x + self.cross(self.norm_cross(x), context=text, mask=cross_mask(text_mask))
        if audio is not None and hasattr(self, "audio_attn"):  # per latent frame: its tokens attend to its audio
            y = rearrange(self.norm_audio(x), "b (t s) d -> (b t) s d", t=t)
            y = self.audio_attn(y, context=rearrange(audio, "b t k d -> (b t) k d"))
            x = x + rearrange(y, "(b t) s d -> b (t s) d", t=t)
        return x + mods[5].unsqueeze(1) * self.ff(modulate(self.norm2(x), mods[3], mods[4]))


class VideoDiT(ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        text_dim: int = 384,
        width: int = 192,
        depth: int = 6,
        heads: int = 4,
        patch_size: int = 1,
        patch_size_t: int = 1,
        attention: str = "full",
        frame_conditioning: bool = True,
        mlp_ratio: float = 4.0,
        audio_dim: int = 0,
        audio_tokens: int = 0,
        audio_fusion: str = "cross",
    ):
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ConfigError(f"unknown attention mode {attention!r}; choose one of {', '.join(ATTENTION_MODES)}")
        if audio_dim and (audio_fusion not in AUDIO_FUSIONS or audio_tokens < 1 or patch_size_t != 1):
            raise ConfigError(f"audio needs audio_fusion in {AUDIO_FUSIONS}, audio_tokens >= 1 and patch_size_t 1")
        p, pt = patch_size, patch_size_t
        self.patch_embed = nn.Conv3d(input_channels(latent_channels, frame_conditioning), width, (pt, p, p), stride=(pt, p, p))
        self.cond = Conditioning(width, text_dim)
        cross_audio = bool(audio_dim) and audio_fusion == "cross"
        self.blocks = nn.ModuleList([DiTBlock(width, heads, attention == "divided", mlp_ratio, cross_audio) for _ in range(depth)])
        if audio_dim:
            self.audio_proj = nn.Sequential(nn.Linear(audio_dim, width), nn.GELU(approximate="tanh"), nn.Linear(width, width))
            self.audio_pos = nn.Parameter(torch.randn(audio_tokens, width) * 0.02)
            if audio_fusion == "add":
                self.audio_add = nn.Linear(width, width)
                nn.init.zeros_(self.audio_add.weight)
                nn.init.zeros_(self.audio_add.bias)
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.proj_out = nn.Linear(width, pt * p * p * latent_channels)
        for m in (self.ada_out[1], self.proj_out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.gradient_checkpointing = False

    def forward(self, sample, timestep, text, text_mask, cond=None, audio=None):
        """``audio``: ``(B, t, K, audio_dim)`` per latent frame (see the module docstring);
        ``None`` = no audio (zeros)."""
        cfg = self.config
        check_sample(sample, cfg.latent_channels, text, text_mask)
        b, _, T, H, W = sample.shape
        p, pt = cfg.patch_size, cfg.patch_size_t
        if T % pt or H % p or W % p:
            raise ConfigError(f"latents {T}x{H}x{W} are not divisible by the patch size {pt}x{p}x{p}")
        x = self.patch_embed(frame_conditioned_input(sample, cond, cfg.frame_conditioning))
        grid = x.shape[2:]
        x = rearrange(x, "b d t h w -> b (t h w) d") + sincos_3d(cfg.width, *grid, x.device).to(x.dtype)
        c, text_tokens = self.cond(timestep, text, text_mask)
        audio_tokens = self._audio_tokens(audio, b, grid[0], x) if cfg.audio_dim else None
        if audio is not None and not cfg.audio_dim:
            raise ConfigError("this denoiser was trained without audio; it cannot take an --audio track")
        if audio_tokens is not None and cfg.audio_fusion == "add":
            x = x + rearrange(self.audio_add(audio_tokens.mean(2)), "b t d -> b t 1 d").expand(-1, -1, grid[1] * grid[2], -1).flatten(1, 2)
            audio_tokens = None
        head_dim = cfg.width // cfg.heads
        t, h, w = grid
        rope = rope_3d(head_dim, t, h, w, x.device)
        rope_s, rope_t = rope_3d(head_dim, 1, h, w, x.device), rope_3d(head_dim, t, 1, 1, x.device)
        mask = frame_mask(cfg.attention, t, h * w, x.device) if cfg.attention != "divided" else None
        for block in self.blocks:
            x = run_block(self, block, x, c, text_tokens, text_mask, grid, mask, rope, rope_s, rope_t, audio_tokens)
        shift, scale = self.ada_out(c).chunk(2, dim=1)
        x = self.proj_out(modulate(self.norm_out(x), shift, scale))
        return rearrange(x, "b (t h w) (pt p1 p2 c) -> b c (t pt) (h p1) (w p2)", t=t, h=h, w=w, pt=pt, p1=p, p2=p)

    def _audio_tokens(self, audio, b: int, t: int, x):
        cfg = self.config
        if audio is None:
            audio = x.new_zeros(b, t, cfg.audio_tokens, cfg.audio_dim)
        if audio.shape != (b, t, cfg.audio_tokens, cfg.audio_dim):
            raise ConfigError(f"audio features {tuple(audio.shape)} do not fit: expected {(b, t, cfg.audio_tokens, cfg.audio_dim)} (batch, latent frames, tokens, dims)")
        return self.audio_proj(audio.to(x.dtype)) + self.audio_pos


def with_audio(denoiser: VideoDiT, audio_dim: int, audio_tokens: int, fusion: str = "cross") -> VideoDiT:
    """A copy of a text-only ``denoiser`` that also takes audio: the same weights, the new
    audio layers at zero, so it starts out generating exactly what the original did."""
    if not isinstance(denoiser, VideoDiT):
        raise ConfigError(f"audio conditioning is built for the DiT; got a {type(denoiser).__name__}")
    config = {k: v for k, v in denoiser.config.items() if not k.startswith("_")}
    model = VideoDiT(**{**config, "audio_dim": audio_dim, "audio_tokens": audio_tokens, "audio_fusion": fusion})
    missing, unexpected = model.load_state_dict(denoiser.state_dict(), strict=False)
    if unexpected or any("audio" not in k for k in missing):
        raise ConfigError(f"cannot add audio to this denoiser: weights {unexpected or missing} do not match")
    return model
