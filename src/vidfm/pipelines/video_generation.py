"""Inference only: text / image / first+last frame -> video with a trained latent denoiser.

A pipeline folder (written by ``vidfm train denoiser``) holds ``vae/``, ``denoiser/``,
``scheduler/`` (the training scheduler's config; samplers are built from it) and
``pipeline.json`` (text encoder, clip geometry, objective). A LoRA run's folder holds only
``lora/`` and names its ``base`` pipeline.

Modes, all from one model (frames given as latents plus a mask, SPEC 8.5):
text -> video; ``image`` (first frame) -> video; ``image`` + ``last_image`` -> the frames in
between; ``extend`` continues a video from its last frame, window after window, for clips
longer than the model's own length.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidfm.errors import ConfigError
from vidfm.objectives.diffusion import frame_condition, null_text, sampling_scheduler

META = "pipeline.json"


def load_image(path, height: int, width: int) -> np.ndarray:
    """An RGB image file of exactly the pipeline's size -> (H, W, 3) uint8."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such image")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ConfigError(f"{path}: not a readable image ({e})") from None
    if img.mode != "RGB":
        raise ConfigError(f"{path}: image mode is {img.mode}, expected RGB (convert it, e.g. Image.convert('RGB'))")
    if img.size != (width, height):
        raise ConfigError(f"{path}: image is {img.size[0]}x{img.size[1]}, this model generates {width}x{height}; resize it first")
    return np.asarray(img)


def to_model_range(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(frames, copy=True)).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(B, 3, T, H, W) in [-1, 1] -> (B, T, H, W, 3) uint8."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 4, 1).cpu().numpy()


class VideoGenerationPipeline:
    def __init__(self, vae, denoiser, scheduler_config: dict, text_encoder, meta: dict):
        self.vae, self.denoiser, self.text_encoder = vae.eval(), denoiser.eval(), text_encoder.eval()
        self.scheduler_config, self.meta = dict(scheduler_config), meta

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> VideoGenerationPipeline:
        from vidfm.models.generative import load_denoiser, load_vae
        from vidfm.models.text import TextEncoder
        from vidfm.training import model_folder

        path = model_folder(Path(path), META)
        if not (path / META).exists():
            raise ConfigError(f"{path}: not a generation pipeline (no {META}); train one with 'vidfm train denoiser'")
        meta = json.loads((path / META).read_text())
        if "base" in meta:  # a LoRA run: the base pipeline plus its adapter, merged
            pipe = cls.from_pretrained(meta["base"], device, dtype)
            from vidfm.tasks.generate import load_lora

            load_lora(pipe.denoiser, path / "lora", merge=True)
            pipe.meta = {**pipe.meta, "lora": str(path)}
            return pipe
        sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        text = TextEncoder(meta["text_encoder"], max_length=meta.get("max_text_length", 32))
        pipe = cls(load_vae(path / "vae"), load_denoiser(path / "denoiser"), sched, text, meta)
        return pipe.to(device, dtype)

    def to(self, device, dtype: torch.dtype = torch.float32) -> VideoGenerationPipeline:
        self.device, self.dtype = torch.device(device), dtype
        self.vae.to(device)
        self.denoiser.to(device) if dtype == torch.float32 else self.denoiser.to(device, dtype)
        self.text_encoder.to(device)
        return self

    # -- pieces --------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            tokens, mask, _ = self.text_encoder(prompts)
        return tokens.to(self.dtype), mask

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        h, w = self.meta["height"], self.meta["width"]
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != (h, w, 3):
            raise ConfigError(f"an image for this model must be uint8 ({h}, {w}, 3), got {image.dtype} {image.shape}")
        with torch.no_grad():
            return self.vae.encode_latents(to_model_range(image[None]).to(self.device))

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        *,
        image: np.ndarray | None = None,
        last_image: np.ndarray | None = None,
        num_frames: int | None = None,
        steps: int = 25,
        guidance: float = 4.0,
        scheduler: str | None = None,
        seed: int = 0,
        num_videos: int = 1,
        progress: bool = False,
        tile_frames: int | None = None,
    ) -> np.ndarray:
        """-> (num_videos * len(prompts), T, H, W, 3) uint8. Same seed, same output."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if steps <= 0:
            raise ConfigError(f"steps must be > 0, got {steps}")
        if guidance < 0:
            raise ConfigError(f"guidance must be >= 0 (1 = no guidance, 0 = unconditional), got {guidance}")
        if last_image is not None and image is None:
            raise ConfigError("a last frame needs a first frame too (first+last-frame to video)")
        sched = sampling_scheduler(self.scheduler_config, scheduler or self.meta["default_scheduler"])
        num_frames = num_frames or self.meta["num_frames"]
        t, h, w = self.vae.latent_shape(num_frames, self.meta["height"], self.meta["width"])
        prompts = [p for p in prompts for _ in range(num_videos)]
        b, c = len(prompts), self.vae.config.latent_channels
        text, mask = self.encode_prompt(prompts)
        g = torch.Generator().manual_seed(seed)
        latents = torch.randn((b, c, t, h, w), generator=g).to(self.device, self.dtype) * getattr(sched, "init_noise_sigma", 1.0)
        cond = None
        if image is not None:
            first = self.encode_image(image).to(self.dtype).expand(b, -1, -1, -1, -1)
            last = self.encode_image(last_image).to(self.dtype).expand(b, -1, -1, -1, -1) if last_image is not None else None
            cond = frame_condition(latents, first, last)
        guided = guidance != 1.0
        if guided:
            nt, nm = null_text(b, text.shape[-1], self.device, self.dtype)
            pad = text.shape[1] - 1
            text = torch.cat([text, torch.cat([nt, nt.new_zeros(b, pad, nt.shape[-1])], 1)])
            mask = torch.cat([mask, torch.cat([nm, nm.new_zeros(b, pad)], 1)])
            cond = torch.cat([cond, cond]) if cond is not None else None
        sched.set_timesteps(steps)
        from tqdm.auto import tqdm

        for ts in tqdm(sched.timesteps, desc="denoising", disable=not progress, leave=False):
            x = sched.scale_model_input(latents, ts) if hasattr(sched, "scale_model_input") else latents
            x = torch.cat([x, x]) if guided else x
            tt = torch.full((x.shape[0],), float(ts), device=self.device)
            pred = self.denoiser(x, tt, text, mask, cond)
            if guided:
                pc, pu = pred.chunk(2)
                pred = pu + guidance * (pc - pu)
            latents = sched.step(pred, ts, latents, generator=g).prev_sample
        if image is not None:  # the causal VAE's first latent is the image's own latent
            latents[:, :, :1] = first
        video = self.vae.decode_latents(latents.float(), tile_frames=tile_frames)
        return to_uint8(video)

    def extend(self, frames: np.ndarray, prompt: str, windows: int = 1, **kwargs) -> np.ndarray:
        """Continue ``frames`` (T, H, W, 3) uint8 by ``windows`` generated windows, each one
        conditioned on the last frame so far (overlapping windows reusing the last frame)."""
        frames = np.asarray(frames)
        if windows < 1:
            raise ConfigError(f"windows must be >= 1, got {windows}")
        for k in range(windows):
            kwargs["seed"] = kwargs.get("seed", 0) + (k > 0)
            clip = self(prompt, image=frames[-1], **kwargs)[0]
            frames = np.concatenate([frames, clip[1:]])
        return frames
