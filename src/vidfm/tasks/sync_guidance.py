"""Sound-driven generation with any text-to-video model, steered by the sync model.

Training-free guidance with an audio-visual aligner (Xing et al., "Seeing and Hearing",
CVPR 2024, steer a video model with ImageBind; here the aligner is vidfm's SyncNet-style
model, which knows *when* things happen). At each of the first ``until`` share of the
deterministic sampling steps (Euler for flow, DDIM for epsilon / v) the clean clip the
model predicts is decoded, the sync model scores every frame's 5-frame window against
the sound at the true time and at ``shifts`` frames either side (the cross-entropy it
was trained with), and the predicted clean latents take one gradient step down that
loss before the step to the next noise level (MPGD's manifold-preserving form: the
gradient is taken on the clean estimate, not through the denoiser). ``scale`` 0 is
plain sampling on the same grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError
from vidfm.io.audio import Audio
from vidfm.models.audio_visual import SyncNet
from vidfm.tasks.sync import clip_audio_features


def sync_misalignment(sync: SyncNet, video: torch.Tensor, audio_emb: torch.Tensor, shifts: int) -> torch.Tensor:
    """Per clip, the sync model's cross-entropy of "the sound is on time" against the same
    sound ``-shifts .. shifts`` frames off. ``video (B, 3, T, S, S)`` in [0, 1];
    ``audio_emb (T + 2 * shifts, E)`` the embedded padded audio. Lower = in sync."""
    b, _, t = video.shape[:3]
    half = sync.config.frames // 2
    idx = (torch.arange(t)[:, None] + torch.arange(-half, half + 1)[None]).clamp(0, t - 1)  # (T, frames)
    windows = video[:, :, idx].permute(0, 2, 1, 3, 4, 5).flatten(0, 1)  # (B*T, 3, frames, S, S)
    v = sync.embed_video(windows).view(b, t, -1)
    cand = torch.stack([audio_emb[shifts + d : shifts + d + t] for d in range(-shifts, shifts + 1)], 1)  # (T, 2s+1, E)
    logits = sync.logit_scale.exp().clamp(max=100) * torch.einsum("bte,tke->btk", v, cand)
    target = torch.full((b * t,), shifts, dtype=torch.long)  # the unshifted candidate
    return F.cross_entropy(logits.flatten(0, 1), target, reduction="none").view(b, t).mean(1)


def generate_in_sync(pipe, sync: SyncNet, prompt: str, audio: Audio, *, scale: float = 1.0, shifts: int = 4, until: float = 0.6,
                     fps: float | None = None, num_videos: int = 1, num_inference_steps: int = 25, guidance_scale: float = 4.0,
                     generator: torch.Generator | None = None) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """``num_videos`` clips of ``prompt`` whose motion is pulled into sync with ``audio``
    (cut to the clip's start; ``fps`` the clip's frame rate, default the model's).
    ``pipe``: a ``vidfm.editing.VideoEditPipeline`` (its deterministic grid). Returns the
    clips (B, T, H, W, 3) uint8 and each clip's final misalignment."""
    from vidfm.editing.pipeline import Levels

    if scale < 0:
        raise ConfigError(f"--sync-guidance must be >= 0, got {scale}")
    if not 0.0 < until <= 1.0:
        raise ConfigError(f"the guided share of the steps must be in (0, 1], got {until}")
    cfg = pipe.config
    fps = fps or cfg.fps
    size = sync.config.size
    levels = Levels(pipe, num_inference_steps)
    t, h, w = pipe.vae.latent_shape(cfg.num_frames, cfg.height, cfg.width)
    g = generator or torch.Generator().manual_seed(0)
    latents = torch.randn((num_videos, pipe.vae.config.latent_channels, t, h, w), generator=g).to(pipe.device)
    text, mask = pipe.with_null_text(*pipe.encode_prompt([prompt] * num_videos), guidance_scale)
    with torch.no_grad():
        audio_emb = sync.embed_audio(clip_audio_features(audio, cfg.num_frames, fps, shifts, sync.config).float())
    # a denoiser trained with audio hears it as well
    heard = pipe.audio_features(audio, cfg.num_frames, 0.0, num_videos, latents.dtype) if pipe.denoiser.config.get("audio_dim") else None

    def misalignment(x0: torch.Tensor) -> torch.Tensor:
        video = (pipe.vae.decode_latents(x0.float()).clamp(-1, 1) + 1) / 2  # (B, 3, T, H, W) in [0, 1]
        if (cfg.height, cfg.width) != (size, size):
            video = F.interpolate(video, size=(video.shape[2], size, size), mode="trilinear", align_corners=False)
        return sync_misalignment(sync, video, audio_emb, shifts)

    guided_steps = int(round(until * levels.n))
    for level in range(levels.n):
        with torch.no_grad():
            pred = pipe.predict(latents, levels.model_t[level], text, mask, None, guidance_scale, audio=heard)
            x0, eps = levels._x0_eps(latents, pred, level)
        if scale > 0 and level < guided_steps:
            x0 = x0.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(misalignment(x0).sum(), x0)
            rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1, 1)
            x0 = (x0 - scale * x0.flatten(1).std(1).view(-1, 1, 1, 1, 1) * grad / rms * 0.1).detach()  # a step of 0.1*scale latent std
        latents = levels.noise_to(x0, eps, level + 1)
    with torch.no_grad():
        final = misalignment(latents).tolist()
        frames = pipe.decode(latents)
    return frames, final
