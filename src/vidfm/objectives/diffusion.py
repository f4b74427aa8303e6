"""Diffusion training objectives on video latents, with diffusers' schedulers.

- ``epsilon`` / ``v_prediction``: DDPM forward process (``DDPMScheduler.add_noise``); the
  target is the noise or the velocity (``get_velocity``). Sample with DDPM or DDIM.
- ``flow``: rectified flow / flow matching, ``x_s = (1 - s) x0 + s * noise`` with target
  ``noise - x0`` and timestep ``1000 s``, the convention of diffusers'
  ``FlowMatchEulerDiscreteScheduler`` (sample with it).

Conditioning during training: the text is replaced by the null condition with probability
``text_dropout`` (classifier-free guidance), and a share of samples also gets its first
frame, or first and last frames, as given latents (image / first+last-frame to video).
An optional temporal-consistency term matches frame-to-frame differences of the predicted
clean latents to those of the real ones. ``snr_gamma`` turns on Min-SNR-gamma loss
weighting (Hang et al., 2023) for epsilon and v-prediction, as diffusers' training
scripts do: ``min(SNR, gamma) / SNR`` (epsilon) or ``/ (SNR + 1)`` (v).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError

PREDICTIONS = ("epsilon", "v_prediction", "flow")
SAMPLERS = {"epsilon": ("ddpm", "ddim", "dpm"), "v_prediction": ("ddpm", "ddim", "dpm"), "flow": ("euler",)}


def training_scheduler(prediction: str, num_train_timesteps: int = 1000):
    """The scheduler whose config is saved with the model (samplers are made from it)."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    if prediction == "flow":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=1.0)
    if prediction not in PREDICTIONS:
        raise ConfigError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    # "scaled_linear" as in Stable Diffusion / ModelScope; zero-terminal-SNR is not needed here
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction, clip_sample=False)


def sampling_scheduler(train_config: dict, name: str):
    """A diffusers sampler built ``from_config`` of the training scheduler; a sampler that
    does not fit the model's objective is refused."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
    )

    classes = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "euler": FlowMatchEulerDiscreteScheduler}
    if name not in classes:
        raise ConfigError(f"unknown scheduler {name!r}; choose one of {', '.join(classes)}")
    flow = train_config.get("_class_name") == "FlowMatchEulerDiscreteScheduler" or "shift" in train_config  # saved / live config
    prediction = "flow" if flow else train_config.get("prediction_type", "epsilon")
    if name not in SAMPLERS[prediction]:
        raise ConfigError(f"scheduler {name!r} does not fit a model trained with {prediction!r}; use {' or '.join(SAMPLERS[prediction])}")
    extra = {"timestep_spacing": "trailing"} if name in ("ddim", "dpm") else {}
    return classes[name].from_config(train_config, **extra)


def null_text(batch: int, dim: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The unconditional 'text': one zero token (what CFG guides away from)."""
    return torch.zeros(batch, 1, dim, device=device, dtype=dtype), torch.ones(batch, 1, dtype=torch.bool, device=device)


def frame_condition(latents: torch.Tensor, first: torch.Tensor | None, last: torch.Tensor | None, first_given=1.0, last_given=1.0) -> torch.Tensor:
    """``(B, C+1, T, h, w)``: given latent frames in their slots and a mask channel.
    ``first``/``last``: ``(B, C, 1, h, w)`` image latents or None; ``*_given``: 1, or a
    (B,) 0/1 tensor saying per sample whether that frame is given (training)."""
    b, c, t, h, w = latents.shape
    cond = latents.new_zeros(b, c + 1, t, h, w)
    for given, frame, slot in ((last_given, last, -1), (first_given, first, 0)):
        if frame is not None:
            g = torch.as_tensor(given, dtype=latents.dtype, device=latents.device).expand(b)
            cond[:, :c, slot], cond[:, c, slot] = frame[:, :, 0] * g.view(-1, 1, 1, 1), g.view(-1, 1, 1)
    return cond


@dataclass
class DiffusionObjective:
    prediction: str = "flow"
    text_dropout: float = 0.1
    first_frame_prob: float = 0.25  # share of samples given their first frame
    first_last_prob: float = 0.25  # share given first and last frames
    temporal_weight: float = 0.0  # temporal-consistency loss weight
    snr_gamma: float | None = None  # Min-SNR-gamma weighting (epsilon / v only)
    audio_dropout: float = 0.1  # share of samples without their audio (besides those without text: no audio either)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"unknown prediction {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if self.snr_gamma is not None and (self.prediction == "flow" or self.snr_gamma <= 0):
            raise ConfigError("--snr-gamma needs --prediction epsilon or v_prediction and a value > 0 (5 is usual)")
        if not 0 <= self.text_dropout <= 1 or self.first_frame_prob + self.first_last_prob > 1:
            raise ConfigError("text_dropout must be in [0, 1] and first_frame_prob + first_last_prob <= 1")
        self.scheduler = training_scheduler(self.prediction)

    def noisy(self, x0: torch.Tensor, noise: torch.Tensor, u: torch.Tensor):
        """``u`` in [0, 1) per sample -> (noisy latents, timesteps, target)."""
        if self.prediction == "flow":
            s = u.view(-1, 1, 1, 1, 1)
            return (1 - s) * x0 + s * noise, u * self.scheduler.config.num_train_timesteps, noise - x0
        t = (u * self.scheduler.config.num_train_timesteps).long().clamp(max=self.scheduler.config.num_train_timesteps - 1)
        xt = self.scheduler.add_noise(x0, noise, t)
        target = noise if self.prediction == "epsilon" else self.scheduler.get_velocity(x0, noise, t)
        return xt, t.float(), target

    def predicted_x0(self, xt, t, pred):
        if self.prediction == "flow":
            return xt - (t / self.scheduler.config.num_train_timesteps).view(-1, 1, 1, 1, 1) * pred
        a = self.scheduler.alphas_cumprod.to(xt.device)[t.long()].view(-1, 1, 1, 1, 1)
        if self.prediction == "epsilon":
            return (xt - (1 - a).sqrt() * pred) / a.sqrt()
        return a.sqrt() * xt - (1 - a).sqrt() * pred

    def conditions(self, batch: dict, g: torch.Generator):
        x0, text, mask = batch["latents"], batch["text"], batch["text_mask"]
        b = x0.shape[0]
        drop = torch.rand(b, generator=g) < self.text_dropout
        if drop.any():
            nt, nm = null_text(int(drop.sum()), text.shape[-1], text.device, text.dtype)
            text, mask = text.clone(), mask.clone()
            text[drop], mask[drop] = 0.0, False
            text[drop, :1], mask[drop, :1] = nt, nm
        r = torch.rand(b, generator=g).to(x0.device)
        gf = (r < self.first_frame_prob + self.first_last_prob).to(x0.dtype)
        gl = (r < self.first_last_prob).to(x0.dtype)
        cond = frame_condition(x0, x0[:, :, :1], batch["last"], gf, gl)
        audio = batch.get("audio")
        if audio is not None:  # unconditional = neither text nor audio; some keep the text only
            silent = drop | (torch.rand(b, generator=g) < self.audio_dropout)
            audio = audio * (~silent).to(audio.device, audio.dtype).view(-1, 1, 1, 1)
        return text, mask, cond, audio

    def __call__(self, model, batch: dict, g: torch.Generator):
        """-> (loss, logs). ``batch``: latents (B,C,T,h,w), last (B,C,1,h,w), text, text_mask;
        every draw (noise, timesteps, dropped captions, given frames) comes from ``g``."""
        x0 = batch["latents"]
        noise = torch.randn(x0.shape, generator=g).to(x0)
        u = torch.rand(x0.shape[0], generator=g).to(x0.device)
        xt, t, target = self.noisy(x0, noise, u)
        text, mask, cond, audio = self.conditions(batch, g)
        pred = model(xt, t, text, mask, cond, **({"audio": audio} if audio is not None else {}))
        per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
        logs = {"mse": float(per_sample.mean().detach())}
        if self.snr_gamma is not None:
            from diffusers.training_utils import compute_snr

            snr = compute_snr(self.scheduler, t.long()).to(per_sample)
            weight = snr.clamp(max=self.snr_gamma) / (snr if self.prediction == "epsilon" else snr + 1)
            per_sample = per_sample * weight
        loss = per_sample.mean()
        if self.temporal_weight > 0 and x0.shape[2] > 1:
            x0_hat = self.predicted_x0(xt, t, pred.float())
            tc = F.mse_loss(x0_hat.diff(dim=2), x0.float().diff(dim=2))
            loss = loss + self.temporal_weight * tc
            logs["temporal"] = float(tc.detach())
        return loss, logs
