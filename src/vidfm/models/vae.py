"""Causal video VAE: clips to a compact KL-regularised latent and back.

Causal in time, as in CogVideoX / Open-Sora-Plan: every temporal convolution pads only on the
past side (with copies of the first frame) and normalisation is per frame, so no frame ever
sees a later one. A clip of ``1 + k * r_t`` frames becomes ``1 + k`` latent frames
(``r_t`` = temporal factor); the first frame is encoded exactly as a still image would be,
which is what lets image-to-video condition on an image latent. Spatial compression is
``2 ** len(spatial_down)``.

Long or large videos decode in pieces (``tile_frames`` latent frames with causal context,
``tile_size`` latent pixels with blended overlaps) so memory stays bounded.

Shapes: ``video (B, 3, T, H, W)`` in [-1, 1]; latents ``(B, C, T', H', W')``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.diffusion_blocks import run_block


class CausalConv3d(nn.Module):
    """3D convolution that pads time only on the past side (replicating the first frame).

    Initialised as a per-frame 2D convolution (the weights for past frames start at zero,
    the usual way to inflate an image VAE): a freshly built VAE then starts as a per-frame
    autoencoder and learns what to take from the past, instead of starting out averaging
    neighbouring frames, which trains into reconstructions that drop small moving objects.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.time_pad = kernel - 1
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=(0, kernel // 2, kernel // 2))
        with torch.no_grad():
            current = self.conv.weight[:, :, -1:] * math.sqrt(kernel)  # keep the output variance of the full kernel
            self.conv.weight.zero_()
            self.conv.weight[:, :, -1:] = current

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame on its own (normalising across time would leak the future)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


def _groups(c: int) -> int:
    return math.gcd(c, 32)


class ResBlock3d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = FrameGroupNorm(_groups(cin), cin), CausalConv3d(cin, cout)
        self.norm2, self.conv2 = FrameGroupNorm(_groups(cout), cout), CausalConv3d(cout, cout)
        self.shortcut = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Downsample(nn.Module):
    """Halve H and W (strided conv) and/or time: the first frame stays, then pairs average."""

    def __init__(self, c: int, spatial: bool, temporal: bool):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.conv = CausalConv3d(c, c, stride=(1, 2, 2)) if spatial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            rest = x[:, :, 1:]
            rest = F.avg_pool3d(rest, (2, 1, 1)) if rest.shape[2] else rest
            x = torch.cat([x[:, :, :1], rest], dim=2)
        return self.conv(x) if self.conv is not None else x


class Upsample(nn.Module):
    def __init__(self, c: int, spatial: bool, temporal: bool):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.conv = CausalConv3d(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            x = torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(2, dim=2)], dim=2)
        if self.spatial:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return self.conv(x)


class _Coder(nn.Module):
    """Encoder (``down=True``) or decoder: conv in, ``levels`` x (res blocks + resample), out."""

    def __init__(self, cin: int, cout: int, channels: tuple[int, ...], blocks: int, spatial: tuple[bool, ...], temporal: tuple[bool, ...], down: bool):
        super().__init__()
        chans = list(channels) if down else list(reversed(channels))
        flags = list(zip(spatial, temporal)) if down else list(reversed(list(zip(spatial, temporal))))
        self.conv_in = CausalConv3d(cin, chans[0])
        self.levels = nn.ModuleList()
        c = chans[0]
        for i, co in enumerate(chans):
            level = nn.Module()
            level.blocks = nn.ModuleList([ResBlock3d(c if j == 0 else co, co) for j in range(blocks)])
            c = co
            s, t = flags[i] if i < len(flags) else (False, False)
            level.resample = (Downsample if down else Upsample)(c, s, t) if (s or t) else nn.Identity()
            self.levels.append(level)
        mid = c if down else chans[0]  # the bottleneck: after the encoder's levels, before the decoder's
        self.mid = nn.Sequential(ResBlock3d(mid, mid), ResBlock3d(mid, mid))
        self.norm_out = FrameGroupNorm(_groups(c), c)
        self.conv_out = CausalConv3d(c, cout)
        self.down = down
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        if not self.down:
            x = self.mid(x)
        for level in self.levels:
            for block in level.blocks:
                x = run_block(self, block, x)
            x = level.resample(x)
        if self.down:
            x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class VideoVAE(ModelMixin, ConfigMixin):
    """KL video autoencoder with causal temporal compression.

    ``spatial_down`` / ``temporal_down`` say, per level, whether that level halves space /
    time; e.g. ``(True, True)`` and ``(True, False)`` give x4 spatial and x2 temporal.
    ``scaling_factor`` (set after training to 1 / std of the latents) brings latents to unit
    variance for the denoiser, as in Stable Diffusion.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 4,
        channels: tuple[int, ...] = (32, 64),
        blocks_per_level: int = 1,
        spatial_down: tuple[bool, ...] = (True, True),
        temporal_down: tuple[bool, ...] = (True, False),
        scaling_factor: float = 1.0,
        patch_size: int = 1,
    ):
        super().__init__()
        if not (len(channels) == len(spatial_down) == len(temporal_down)):
            raise ConfigError("channels, spatial_down and temporal_down need one entry per level")
        if patch_size < 1:
            raise ConfigError(f"patch_size must be >= 1, got {patch_size}")
        pixels = in_channels * patch_size**2  # channels after folding each p x p patch into one position
        self.encoder = _Coder(pixels, 2 * latent_channels, tuple(channels), blocks_per_level, tuple(spatial_down), tuple(temporal_down), down=True)
        self.decoder = _Coder(latent_channels, pixels, tuple(channels), blocks_per_level, tuple(spatial_down), tuple(temporal_down), down=False)

    # -- geometry ------------------------------------------------------------------------
    @property
    def spatial_factor(self) -> int:
        return self.config.patch_size * 2 ** sum(map(bool, self.config.spatial_down))

    def _patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Fold p x p pixel patches into channels (LTX-Video style): the full-resolution
        convolutions, most of a small VAE's cost, then run at 1/p of the size."""
        p = self.config.patch_size
        return rearrange(video, "b c t (h p1) (w p2) -> b (c p1 p2) t h w", p1=p, p2=p)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return rearrange(x, "b (c p1 p2) t h w -> b c t (h p1) (w p2)", p1=p, p2=p)

    def _decode_whole(self, z: torch.Tensor) -> torch.Tensor:
        return self._unpatchify(self.decoder(z))

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(map(bool, self.config.temporal_down))

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        self.check_size(frames, height, width)
        return 1 + (frames - 1) // self.temporal_factor, height // self.spatial_factor, width // self.spatial_factor

    def num_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_factor

    def check_size(self, frames: int, height: int, width: int) -> None:
        s, t = self.spatial_factor, self.temporal_factor
        if height % s or width % s:
            raise ConfigError(f"height and width must be divisible by the VAE's spatial factor {s}, got {height}x{width}")
        if frames < 1 or (frames - 1) % t:
            raise ConfigError(f"frames must be 1 + a multiple of the VAE's temporal factor {t} (e.g. {1 + 2 * t}), got {frames}")

    # -- encode / decode -----------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> DiagonalGaussianDistribution:
        """``video (B, 3, T, H, W)`` in [-1, 1] -> posterior over latents (unscaled)."""
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ConfigError(f"expected video (B, {self.config.in_channels}, T, H, W), got {tuple(video.shape)}")
        self.check_size(*video.shape[2:])
        return DiagonalGaussianDistribution(self.encoder(self._patchify(video)))

    @property
    def decode_context(self) -> int:
        """How many earlier latent frames any decoded frame depends on (the decoder's causal
        receptive field): with that much context, decoding in time chunks is exact."""
        lookback, rate = 0.0, 1
        d = self.decoder
        for m in [*d.conv_in.modules(), *d.mid.modules(), *d.levels.modules(), *d.conv_out.modules()]:  # run order
            if isinstance(m, Upsample) and m.temporal:
                rate *= 2
            if isinstance(m, CausalConv3d):
                lookback += m.time_pad / rate
        return math.ceil(lookback)

    def decode(self, z: torch.Tensor, tile_frames: int | None = None, tile_size: int | None = None) -> torch.Tensor:
        """Latents (unscaled) -> video in [-1, 1]. ``tile_frames`` decodes that many latent
        frames at a time, each chunk with ``decode_context`` earlier ones whose output is
        dropped (exact); ``tile_size`` decodes spatial tiles of that many latent pixels with
        blended overlaps (approximate at the seams)."""
        if tile_frames and z.shape[2] > tile_frames:
            return self._decode_in_time(z, tile_frames, tile_size, self.decode_context)
        if tile_size and max(z.shape[-2:]) > tile_size:
            return self._decode_tiles(z, tile_size)
        return self._decode_whole(z)

    def _decode_in_time(self, z, tile_frames, tile_size, context):
        r = self.temporal_factor
        parts = [self.decode(z[:, :, :tile_frames], tile_size=tile_size)]
        for start in range(tile_frames, z.shape[2], tile_frames):
            lo = max(0, start - context)
            out = self.decode(z[:, :, lo : start + tile_frames], tile_size=tile_size)
            parts.append(out[:, :, 1 + (start - lo - 1) * r :])  # keep only frames of latents >= start
        return torch.cat(parts, dim=2)

    def _decode_tiles(self, z: torch.Tensor, tile: int) -> torch.Tensor:
        s = self.spatial_factor
        overlap = max(1, tile // 4)
        step = tile - overlap
        h, w = z.shape[-2:]
        out = torch.zeros(z.shape[0], self.config.in_channels, self.num_frames(z.shape[2]), h * s, w * s, dtype=z.dtype, device=z.device)
        weight = torch.zeros(1, 1, 1, h * s, w * s, dtype=z.dtype, device=z.device)
        ramp = torch.linspace(0.05, 1.0, overlap * s, device=z.device, dtype=z.dtype)
        for y in range(0, max(h - overlap, 1), step):
            for x in range(0, max(w - overlap, 1), step):
                y0, x0 = min(y, max(h - tile, 0)), min(x, max(w - tile, 0))
                piece = self._decode_whole(z[..., y0 : y0 + tile, x0 : x0 + tile])
                ph, pw = piece.shape[-2:]
                wy, wx = torch.ones(ph, device=z.device, dtype=z.dtype), torch.ones(pw, device=z.device, dtype=z.dtype)
                if y0 > 0:
                    wy[: len(ramp)] = ramp
                if y0 + tile < h:
                    wy[-len(ramp) :] = torch.minimum(wy[-len(ramp) :], ramp.flip(0))
                if x0 > 0:
                    wx[: len(ramp)] = ramp
                if x0 + tile < w:
                    wx[-len(ramp) :] = torch.minimum(wx[-len(ramp) :], ramp.flip(0))
                m = (wy[:, None] * wx[None, :])[None, None, None]
                out[..., y0 * s : y0 * s + ph, x0 * s : x0 * s + pw] += piece * m
                weight[..., y0 * s : y0 * s + ph, x0 * s : x0 * s + pw] += m
        return out / weight

    def forward(self, video: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None):
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.decode(z), posterior

    # -- scaled latents, what the denoiser sees ------------------------------------------
    def encode_latents(self, video: torch.Tensor) -> torch.Tensor:
        return self.encode(video).mode() * self.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, **tiling) -> torch.Tensor:
        return self.decode(latents / self.config.scaling_factor, **tiling)


VAE_PRESETS = {
    # x4 space (2x2 patches folded into channels, then one strided conv), x2 time:
    # 9 frames at 32x32 -> 5 x 8 x 8 latents (CPU scale)
    "vae-tiny": dict(channels=(32, 64), patch_size=2, spatial_down=(True, False), temporal_down=(True, False), latent_channels=4),
    # x2 space, x2 time: 9 frames at 32x32 -> 5 x 16 x 16 latents; objects a few pixels
    # wide keep their colour and shape (x4 blurs them), at ~2.5x the cost per step
    "vae-tiny-x2": dict(channels=(32, 64), patch_size=2, spatial_down=(False, False), temporal_down=(True, False), latent_channels=4),
    # x8 space, x4 time, the usual size of open video VAEs
    "vae-base": dict(channels=(128, 256, 512, 512), spatial_down=(True, True, True, False), temporal_down=(True, True, False, False), blocks_per_level=2, latent_channels=16),
}
