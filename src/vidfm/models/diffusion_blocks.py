"""Pieces every video denoiser shares: attention with 3D RoPE and temporal masks, timestep
and text conditioning, frame conditioning for image/first+last-frame to video.

The denoiser interface (all three families)::

    denoiser(sample, timestep, text, text_mask, cond=None) -> prediction
    sample, prediction: (B, C, T, H, W) latents   timestep: (B,) in [0, 1000)
    text: (B, L, D_text) token features           text_mask: (B, L) bool, True = real token
    cond: (B, C + 1, T, H, W) given-frame latents + a mask channel (1 where a frame is given)

Attention is vidfm's one ``Attention`` module (``vidfm.models.attention``): diffusers' names
(``to_q``, ``to_k``, ``to_v``, ``to_out``) and processors, so LoRA targets and editing
hooks read the same as there.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from vidfm.errors import ConfigError

ATTENTION_MODES = ("full", "causal", "sparse_causal", "divided")


def frame_mask(mode: str, frames: int, tokens_per_frame: int, device=None) -> torch.Tensor | None:
    """Boolean (N, N) mask over t-major tokens; True = may attend. ``full`` -> None.

    ``causal``: a frame sees itself and earlier frames; ``sparse_causal`` (Tune-A-Video):
    the first frame, the previous one and itself."""
    if mode == "full":
        return None
    f = torch.arange(frames, device=device)
    if mode == "causal":
        allowed = f[:, None] >= f[None, :]
    elif mode == "sparse_causal":
        allowed = (f[None, :] == 0) | (f[None, :] == f[:, None]) | (f[None, :] == f[:, None] - 1)
    else:
        raise ConfigError(f"unknown attention mode {mode!r}; choose one of {', '.join(ATTENTION_MODES)}")
    return allowed.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)


def rope_3d(head_dim: int, t: int, h: int, w: int, device=None, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (t*h*w, head_dim/2) for rotary position embedding over (t, h, w):
    the head dimension is split into three even parts, one per axis."""
    dh = dw = 2 * (head_dim // 6)
    dt = head_dim - dh - dw
    if dt % 2 or dt <= 0:
        raise ConfigError(f"head dimension {head_dim} cannot be split for 3D RoPE (needs an even size >= 6)")
    angles = []
    grids = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    for pos, d in zip(grids, (dt, dh, dw)):
        freqs = theta ** (-torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)
        angles.append(pos.reshape(-1, 1).float() * freqs[None])
    a = torch.cat(angles, dim=1)
    return a.cos(), a.sin()


def sincos_3d(dim: int, t: int, h: int, w: int, device=None) -> torch.Tensor:
    """Fixed absolute positions (t*h*w, dim): sine/cosine of t, h and w on three slices of
    the width. RoPE alone only tells attention relative offsets; a video generator also
    needs to know which frame is first (the causal VAE's first latent is an image) and
    where in the frame a token sits. (diffusers' ``get_3d_sincos_pos_embed`` gives time a
    quarter of the width instead of a third; switching would move every trained model's
    positions, so this stays.)"""
    parts = [2 * (dim // 6), 2 * (dim // 6)]
    parts = [dim - sum(parts)] + parts
    grids = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    out = []
    for pos, d in zip(grids, parts):
        freqs = 10000.0 ** (-torch.arange(0, d // 2, device=device, dtype=torch.float32) / max(d // 2, 1))
        a = pos.reshape(-1, 1).float() * freqs[None]
        out += [a.sin(), a.cos()] + ([torch.zeros_like(a[:, :1])] if d % 2 else [])
    return torch.cat(out, dim=1)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: float = 4.0):
        super().__init__(nn.Linear(dim, int(dim * mult)), nn.GELU(approximate="tanh"), nn.Linear(int(dim * mult), dim))


class Conditioning(nn.Module):
    """Timestep embedding (diffusers' sinusoidal + MLP) plus the masked mean of the text,
    giving one vector ``c (B, D)`` for adaLN; and the text tokens projected to ``D``."""

    def __init__(self, dim: int, text_dim: int):
        super().__init__()
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, dim)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.pooled_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, timestep, text, text_mask):
        timestep = timestep.expand(text.shape[0]) if timestep.ndim == 0 else timestep
        t = self.time_embed(self.time_proj(timestep.flatten().float()).to(text.dtype))
        m = text_mask.to(text.dtype).unsqueeze(-1)
        pooled = (text * m).sum(1) / m.sum(1).clamp(min=1)
        return t + self.pooled_proj(pooled), self.text_proj(text)


def input_channels(latent_channels: int, frame_conditioning: bool) -> int:
    """Noisy latents, plus given-frame latents and their mask when frame-conditioned."""
    return 2 * latent_channels + 1 if frame_conditioning else latent_channels


def run_block(owner: nn.Module, block, *args):
    """``block(*args)``, recomputing activations in backward when ``owner`` has gradient
    checkpointing on (diffusers' ``enable_gradient_checkpointing`` sets the flag)."""
    if owner.gradient_checkpointing and owner.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
    return block(*args)


def cross_mask(text_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B, 1, 1, L) for SDPA."""
    return text_mask[:, None, None, :].bool()


def frame_conditioned_input(sample: torch.Tensor, cond: torch.Tensor | None, enabled: bool) -> torch.Tensor:
    """Concatenate given-frame latents and their mask to the noisy latents (as FLF2V models do); zeros
    when nothing is given, so one model serves text-, image- and first+last-frame-to-video."""
    if not enabled:
        if cond is not None:
            raise ConfigError("this denoiser was built without frame conditioning; it cannot take a first/last frame")
        return sample
    if cond is None:
        b, c, t, h, w = sample.shape
        cond = sample.new_zeros(b, c + 1, t, h, w)
    if cond.shape[0] != sample.shape[0] or cond.shape[2:] != sample.shape[2:] or cond.shape[1] != sample.shape[1] + 1:
        raise ConfigError(f"frame condition of shape {tuple(cond.shape)} does not fit latents {tuple(sample.shape)}")
    return torch.cat([sample, cond], dim=1)


def check_sample(sample: torch.Tensor, channels: int, text: torch.Tensor, text_mask: torch.Tensor) -> None:
    if sample.ndim != 5 or sample.shape[1] != channels:
        raise ConfigError(f"expected latents (B, {channels}, T, H, W), got {tuple(sample.shape)}")
    if text.ndim != 3 or text.shape[0] != sample.shape[0] or text_mask.shape != text.shape[:2]:
        raise ConfigError(f"text {tuple(text.shape)} / mask {tuple(text_mask.shape)} do not fit a batch of {sample.shape[0]}")


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
