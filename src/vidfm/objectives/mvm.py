"""Masked video modelling (VideoMAE): hide most tubes, reconstruct their pixels.

Tube masking hides the same spatial patches in every temporal slice (ratio 0.9 by
default), so a patch cannot be copied from its neighbour in time. The encoder sees only
the visible tokens; a light decoder (its own width and depth) receives them plus a shared
mask token at every hidden position and predicts each hidden tubelet's pixels, normalised
per patch (mean/std per channel) as in the paper, under an MSE loss.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.common import Block, sinusoid_table
from vidfm.models.videomae import VideoMAEEncoder


def tube_mask(batch: int, grid: tuple[int, int, int], ratio: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """(B, t*h*w) bool, True = hidden; the same ``round(ratio*h*w)`` spatial positions are
    hidden in every temporal slice of a sample (different per sample)."""
    if not 0 < ratio < 1:
        raise ConfigError(f"mask ratio must be in (0, 1), got {ratio}")
    t, h, w = grid
    n_hide = min(h * w - 1, max(1, round(ratio * h * w)))
    noise = torch.rand(batch, h * w, generator=generator)
    hidden = torch.zeros(batch, h * w, dtype=torch.bool)
    hidden.scatter_(1, noise.argsort(1)[:, :n_hide], True)
    return hidden.repeat(1, t).to(device)  # t-major token order, like the encoder's


def patchify_targets(video: torch.Tensor, tubelet: int, patch: int, normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, N, tubelet*patch*patch*C) targets in the encoder's token order,
    each patch standardised per channel when ``normalize``."""
    x = rearrange(video, "b (t p0) c (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tubelet, p1=patch, p2=patch)
    if normalize:
        x = (x - x.mean(-2, keepdim=True)) / (x.var(-2, unbiased=True, keepdim=True) + eps).sqrt()
    return rearrange(x, "b n p c -> b n (p c)")


class MaskedVideoModel(nn.Module):
    """A ``VideoMAEEncoder`` plus a light decoder; ``forward(video)`` returns the loss."""

    def __init__(self, encoder: VideoMAEEncoder, mask_ratio: float = 0.9, decoder_dim: int | None = None,
                 decoder_depth: int = 2, decoder_heads: int | None = None, normalize_target: bool = True):  # fmt: skip
        super().__init__()
        if not isinstance(encoder, VideoMAEEncoder):
            raise ConfigError(f"masked video modelling needs a tubelet ViT encoder (videomae-*), got {type(encoder).__name__}")
        tube_mask(1, (1, 2, 2), mask_ratio)  # validates the ratio early
        c = encoder.config
        dim = decoder_dim or max(32, c.hidden_size // 2)
        heads = decoder_heads or max(1, dim // 32)
        self.encoder, self.mask_ratio, self.normalize_target = encoder, mask_ratio, normalize_target
        self.encoder_to_decoder = nn.Linear(c.hidden_size, dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.ModuleList(Block(dim, heads, 4 * dim, "qkv", 1e-6) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c.tubelet_size * c.patch_size**2 * c.num_channels)
        self.decoder_dim = dim

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pred, target, mask = self.reconstruct(video, mask)
        return ((pred - target[mask].reshape(pred.shape)) ** 2).mean()

    def reconstruct(self, video: torch.Tensor, mask: torch.Tensor | None = None):
        """(predictions for hidden tokens (B, M, P), all targets (B, N, P), mask (B, N))."""
        c = self.encoder.config
        b, t, _, h, w = video.shape
        grid = c.grid(t, h, w)
        if mask is None:
            mask = tube_mask(b, grid, self.mask_ratio, device=video.device)
        visible = self.encoder(video, mask).tokens  # (B, N_vis, D)
        x = self.encoder_to_decoder(visible)
        pos = sinusoid_table(math.prod(grid), self.decoder_dim).to(x)
        n = math.prod(grid)
        full = self.mask_token.expand(b, n, -1).clone()
        full[~mask] = x.reshape(-1, x.shape[-1])
        full = full + pos
        for block in self.decoder:
            full = block(full)
        pred = self.head(self.decoder_norm(full[mask].reshape(b, -1, full.shape[-1])))
        target = patchify_targets(video, c.tubelet_size, c.patch_size, self.normalize_target)
        return pred, target, mask


@torch.no_grad()
def reconstruction_frames(model: MaskedVideoModel, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows of (original, what the encoder saw, reconstruction) frames for one clip
    (1, T, C, H, W) in [0, 1]: predictions are mapped back to pixels with each hidden
    patch's true mean/std, the usual way VideoMAE reconstructions are shown."""
    c = model.encoder.config
    tub, p = c.tubelet_size, c.patch_size
    pred, _, mask = model.reconstruct(video, mask)
    raw = patchify_targets(video, tub, p, normalize=False)  # (1, N, P*C)
    patches = raw.view(*raw.shape[:2], -1, c.num_channels)
    mean, std = patches.mean(-2, keepdim=True), (patches.var(-2, unbiased=True, keepdim=True) + 1e-6).sqrt()
    filled = patches.clone()
    hidden = pred.view(1, -1, patches.shape[2], c.num_channels) * std[mask][None] + mean[mask][None]
    filled[mask] = hidden[0]
    seen = patches.clone()
    seen[mask] = 0.5  # grey where the encoder saw nothing
    _, t, _, h, w = video.shape

    def unpatch(x):
        return rearrange(x, "b (t h w) (p0 p1 p2) c -> b (t p0) c (h p1) (w p2)", t=t // tub, h=h // p, w=w // p, p0=tub, p1=p, p2=p)

    return torch.cat([video[0], unpatch(seen)[0], unpatch(filled)[0].clamp(0, 1)])
