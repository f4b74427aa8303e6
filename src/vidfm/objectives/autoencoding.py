"""Autoencoding pre-training: the encoder's one pooled vector per clip must be enough to
redraw the clip, so it has to keep what is where and how it moves.

* ``ae``: pooled vector -> a small 3D decoder (the generation VAE's residual and
  upsampling blocks) -> the clip at ``target_size`` (L1 loss against the input, area-resized).
* ``vae``: the same through a diagonal-Gaussian bottleneck (reparameterised sample in
  training, mean in evaluation) with a KL term (weight ``kl_weight``, per latent element).
* An optional adversarial term (``adversarial_weight > 0``): a small 3D patch discriminator
  scores overlapping space-time patches, trained with the hinge loss (Geometric GAN; the
  VQGAN/SD-VAE recipe) after ``adversarial_start`` training forward passes (micro-batches);
  the reconstruction sharpens where L1 alone averages. Both players train in one backward
  pass and share the optimizer: the discriminator sees a detached reconstruction, and the
  generator's term goes through the discriminator with its weights detached, so neither
  player's gradient moves the other's weights. ``forward`` returns the reconstruction loss
  and the adversarial loss apart, so a loss weighting can scale the first and leave the
  second (which can be negative, and trains the discriminator) alone.

Downstream, only the encoder is kept (its pooled output, before the bottleneck).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from vidfm.errors import ConfigError
from vidfm.models.common import VideoEncoder
from vidfm.models.vae import ResBlock3d, Upsample


class ClipDecoder(nn.Module):
    """(B, L) -> (B, T, 3, S, S) in [0, 1]: a (T, 4, 4) seed grid doubled in space up to S."""

    def __init__(self, latent_dim: int, num_frames: int, size: int, channels: int = 32):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ConfigError(f"the autoencoder's target size must be a power of two >= 8, got {size}")
        self.num_frames, self.channels = num_frames, channels
        self.seed = nn.Linear(latent_dim, channels * num_frames * 16)
        stages = []
        for _ in range((size // 4).bit_length() - 1):
            stages += [ResBlock3d(channels, channels), Upsample(channels, spatial=True, temporal=False)]
        self.body = nn.Sequential(*stages, ResBlock3d(channels, channels), nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv3d(channels, 3, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.seed(z).view(z.shape[0], self.channels, self.num_frames, 4, 4)
        return torch.sigmoid(self.body(x)).transpose(1, 2)  # (B, T, 3, S, S)


class PatchDiscriminator3d(nn.Module):
    """Space-time patch logits for (B, T, 3, H, W) clips in [0, 1]: strided 3D convolutions,
    each output scoring one overlapping patch (PatchGAN in 3D)."""

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()
        mods, c_in = [], 3
        for i in range(layers):
            c_out = channels * 2**i
            mods += [nn.Conv3d(c_in, c_out, (3, 4, 4), stride=(1, 2, 2) if i == 0 else (2 if i == 1 else 1, 2, 2), padding=1),
                     nn.GroupNorm(8, c_out) if i else nn.Identity(), nn.LeakyReLU(0.2)]  # fmt: skip
            c_in = c_out
        self.net = nn.Sequential(*mods, nn.Conv3d(c_in, 1, 3, padding=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.net(video.transpose(1, 2) * 2 - 1)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss: real patches above +1, fakes below -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


class AutoencodingVideoModel(nn.Module):
    """``forward(video) -> (reconstruction loss, adversarial loss, parts)`` for ``variational``
    False (``ae``) or True (``vae``); the training loss is the sum of the two."""

    def __init__(self, encoder: VideoEncoder, num_frames: int, variational: bool = False, latent_dim: int | None = None,
                 target_size: int = 32, kl_weight: float = 1e-3, adversarial_weight: float = 0.0, adversarial_start: int = 0):  # fmt: skip
        super().__init__()
        if kl_weight < 0 or adversarial_weight < 0 or adversarial_start < 0:
            raise ConfigError("kl_weight, adversarial_weight and adversarial_start must be >= 0")
        latent_dim = latent_dim or encoder.output_dim
        self.encoder, self.variational, self.target_size = encoder, variational, target_size
        self.kl_weight, self.adversarial_weight, self.adversarial_start = kl_weight, adversarial_weight, adversarial_start
        self.bottleneck = nn.Linear(encoder.output_dim, 2 * latent_dim if variational else latent_dim)
        self.decoder = ClipDecoder(latent_dim, num_frames, target_size)
        self.discriminator = PatchDiscriminator3d() if adversarial_weight > 0 else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def target(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        small = F.interpolate(video.flatten(0, 1), size=(self.target_size,) * 2, mode="area")
        return small.view(b, t, *small.shape[1:])

    def reconstruct(self, video: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction, KL per latent element or None)."""
        h = self.bottleneck(self.encoder(video).pooled)
        if not self.variational:
            return self.decoder(h), None
        mean, logvar = h.chunk(2, dim=-1)
        logvar = logvar.clamp(-30, 20)
        z = mean
        if self.training:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)  # a CPU generator, any device
            z = mean + (0.5 * logvar).exp() * noise
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return self.decoder(z), kl

    def forward(self, video: torch.Tensor, generator: torch.Generator | None = None):
        recon, kl = self.reconstruct(video, generator)
        target = self.target(video).to(recon.dtype)
        parts = {"l1": F.l1_loss(recon, target)}
        loss, adversarial = parts["l1"], recon.new_zeros(())
        if kl is not None:
            parts["kl"] = kl
            loss = loss + self.kl_weight * kl
        if self.discriminator is not None and self.training:
            if int(self.step) >= self.adversarial_start:
                frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
                parts["g_adv"] = hinge_g_loss(functional_call(self.discriminator, frozen, (recon,)))
                parts["d_hinge"] = hinge_d_loss(self.discriminator(target), self.discriminator(recon.detach()))
                adversarial = self.adversarial_weight * parts["g_adv"] + parts["d_hinge"]
            self.step += 1
        return loss, adversarial, parts


@torch.no_grad()
def autoencoder_frames(model: AutoencodingVideoModel, video: torch.Tensor) -> torch.Tensor:
    """Rows (target, reconstruction) of one clip (1, T, C, H, W): what a person checks."""
    model.eval()
    video = video.to(next(model.parameters()).device)
    recon, _ = model.reconstruct(video)
    return torch.cat([model.target(video)[0], recon[0].clamp(0, 1)]).cpu()
