"""Inference only: text / image / first+last frame -> video with a trained latent denoiser.

``VideoGenerationPipeline`` is a ``diffusers.DiffusionPipeline``: its components (``vae``,
``denoiser``, ``scheduler``) are registered modules, so ``save_pretrained`` writes
``model_index.json`` plus one folder per component and ``from_pretrained`` reads it back;
``__call__`` takes a ``generator``, initial ``latents``, an ``output_type`` and a
``callback_on_step_end``, and returns a ``VideoPipelineOutput``. The text tower is not a
component: the pipeline's config names it (``"minilm"``: the bundled all-MiniLM-L6-v2, or a
folder), so a pipeline folder does not carry a 90 MB copy of it.

A LoRA run's folder holds only ``lora/`` (peft format) and ``base.json`` naming the base
pipeline; folders written by earlier vidfm versions (``pipeline.json`` beside ``vae/``,
``denoiser/``, ``scheduler/``) still load.

Modes, all from one model (frames given as latents plus a mask channel):
text -> video; ``image`` (first frame) -> video; ``image`` + ``last_image`` -> the frames in
between; ``extend`` continues a video from its last frame, window after window. Given
frames are *honoured*, not only suggested: their latent slots are held at the given
latents (noised to the current step, as diffusers' inpainting pipelines do), so the first
output frame is the VAE's reconstruction of the image and the last one that of the last
image, up to the decoder's causal context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from vidfm.errors import ConfigError
from vidfm.objectives.diffusion import frame_condition, null_text, sampling_scheduler

LEGACY_META = "pipeline.json"
LORA_BASE = "base.json"
OUTPUT_TYPES = ("np", "pt", "pil", "latent")


@dataclass
class VideoPipelineOutput(BaseOutput):
    """``frames``: ``(B, T, H, W, 3)`` uint8 (``"np"``), ``(B, T, 3, H, W)`` float in [0, 1]
    (``"pt"``), a list of lists of PIL images (``"pil"``) or the latents (``"latent"``)."""

    frames: np.ndarray | torch.Tensor | list


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


class VideoGenerationPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "denoiser->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, vae, denoiser, scheduler, text_encoder_id: str = "minilm", max_text_length: int = 32, num_frames: int = 9,
                 height: int = 32, width: int = 32, fps: int = 8, prediction: str = "flow", default_scheduler: str = "euler"):  # fmt: skip
        super().__init__()
        self.register_modules(vae=vae, denoiser=denoiser, scheduler=scheduler)
        self.register_to_config(text_encoder_id=text_encoder_id, max_text_length=max_text_length, num_frames=num_frames, height=height,
                                width=width, fps=fps, prediction=prediction, default_scheduler=default_scheduler)  # fmt: skip
        self._text_encoder = None

    # -- the text tower (named in the config, loaded on first use) -------------------------
    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from vidfm.models.text import TextEncoder

            self._text_encoder = TextEncoder(self.config.text_encoder_id, max_length=self.config.max_text_length).eval().to(self.device)
        return self._text_encoder

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        if self._text_encoder is not None:
            self._text_encoder.to(self.device)
        return self

    @property
    def meta(self) -> dict:
        """The clip geometry and objective (what older code read from ``pipeline.json``)."""
        return {k: self.config[k] for k in ("text_encoder_id", "num_frames", "height", "width", "fps", "prediction", "default_scheduler")}

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path, **kwargs) -> VideoGenerationPipeline:
        """A pipeline folder (or a run folder: its ``best/``), a LoRA run on top of one, or
        a folder written by an older vidfm. ``torch_dtype`` and the other diffusers loading
        options pass through."""
        from vidfm.files import model_folder

        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: not a generation pipeline (no such folder)")
        folder = next((f for f in (path, path / "best") if any((f / m).exists() for m in ("model_index.json", LORA_BASE, LEGACY_META))), None)
        if folder is None:
            raise ConfigError(f"{model_folder(path)}: not a generation pipeline (no model_index.json); train one with 'vidfm train denoiser'")
        if (folder / "lora").is_dir():
            return cls._from_lora_run(folder, **kwargs)
        if not (folder / "model_index.json").exists():
            return cls._from_legacy(folder)
        for part in ("vae", "denoiser", "scheduler"):
            if not (folder / part).is_dir():
                raise ConfigError(f"{folder}: the pipeline is incomplete (no {part}/ folder)")
        _import_components(folder)
        try:
            return super().from_pretrained(str(folder), **kwargs)
        except (OSError, ValueError, KeyError, json.JSONDecodeError, AttributeError) as e:
            raise ConfigError(f"{folder}: cannot load this pipeline ({str(e).splitlines()[0][:160]})") from None

    @classmethod
    def _from_lora_run(cls, folder: Path, **kwargs) -> VideoGenerationPipeline:
        from vidfm.adapt.lora import load_lora

        base = _read_json(folder / LORA_BASE if (folder / LORA_BASE).exists() else folder / LEGACY_META).get("base")
        if not base:
            raise ConfigError(f"{folder}: a LoRA run without the path of its base pipeline")
        pipe = cls.from_pretrained(base, **kwargs)
        load_lora(pipe.denoiser, folder / "lora", merge=True)
        pipe.lora = str(folder)
        return pipe

    @classmethod
    def _from_legacy(cls, folder: Path) -> VideoGenerationPipeline:
        """Folders written before the pipeline was a DiffusionPipeline."""
        from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

        from vidfm.models.generative import load_denoiser, load_vae

        meta = _read_json(folder / LEGACY_META)
        sched_file = folder / "scheduler" / "scheduler_config.json"
        if not sched_file.exists():
            raise ConfigError(f"{folder}: the pipeline is incomplete (no scheduler/scheduler_config.json)")
        sched_config = _read_json(sched_file)
        scheduler_cls = FlowMatchEulerDiscreteScheduler if sched_config.get("_class_name") == "FlowMatchEulerDiscreteScheduler" else DDPMScheduler
        try:
            return cls(load_vae(folder / "vae"), load_denoiser(folder / "denoiser"), scheduler_cls.from_config(sched_config),
                       text_encoder_id=meta["text_encoder"], max_text_length=meta.get("max_text_length", 32), num_frames=meta["num_frames"],
                       height=meta["height"], width=meta["width"], fps=meta["fps"], prediction=meta["prediction"],
                       default_scheduler=meta["default_scheduler"])  # fmt: skip
        except KeyError as e:
            raise ConfigError(f"{folder / LEGACY_META}: missing {e}") from None

    # -- pieces ----------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            tokens, mask, _ = self.text_encoder(prompts)
        return tokens.to(_dtype(self.denoiser)), mask

    def encode_image(self, image: np.ndarray, repeat: int = 1) -> torch.Tensor:
        """An (H, W, 3) uint8 image, or a batch (B, H, W, 3) of them (one per video) -> the
        latent of a still clip of ``1 + (repeat - 1)`` copies of it (``repeat`` = 1: the
        image latent; the VAE's temporal factor + 1: the latent of a last group of frames
        that all show it)."""
        h, w = self.config.height, self.config.width
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape[-3:] != (h, w, 3) or image.ndim not in (3, 4):
            raise ConfigError(f"an image for this model must be uint8 ({h}, {w}, 3) or a batch of them, got {image.dtype} {image.shape}")
        batch = image if image.ndim == 4 else image[None]
        with torch.no_grad():
            clips = torch.cat([to_model_range(np.repeat(im[None], repeat, 0)) for im in batch]).to(self.device)
            return self.vae.encode_latents(clips)[:, :, -1:]

    def check_inputs(self, prompts, image, last_image, steps, guidance, output_type) -> None:
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ConfigError("the prompt is empty; describe the video, e.g. 'a small red circle moves left'")
        if steps <= 0:
            raise ConfigError(f"num_inference_steps must be > 0, got {steps}")
        if guidance < 0:
            raise ConfigError(f"guidance_scale must be >= 0 (1 = no guidance, 0 = unconditional), got {guidance}")
        if last_image is not None and image is None:
            raise ConfigError("a last frame needs a first frame too (first+last-frame to video)")
        if output_type not in OUTPUT_TYPES:
            raise ConfigError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")

    def audio_features(self, audio, num_frames: int, start: float, batch: int, dtype) -> torch.Tensor:
        """``(batch, latent frames, K, D)`` denoiser audio for ``num_frames`` from ``start`` s."""
        from vidfm.data.audio import AUDIO_RATE, latent_audio_features
        from vidfm.io.audio import Audio, load_audio

        if not self.denoiser.config.get("audio_dim"):
            raise ConfigError("this pipeline's denoiser was trained without audio; train one with 'vidfm train denoiser --audio cross'")
        sound = audio if isinstance(audio, Audio) else load_audio(audio, rate=AUDIO_RATE)
        feats = latent_audio_features(sound, num_frames, self.config.fps, self.vae.temporal_factor, start)
        return feats.to(self.device, dtype).unsqueeze(0).expand(batch, -1, -1, -1)

    # -- one denoising step's prediction (shared with the editing pipelines) ---------------
    def with_null_text(self, text: torch.Tensor, mask: torch.Tensor, guidance_scale: float, null: torch.Tensor | None = None):
        """Append the unconditional text (``null``: ``(B, 1, D)``, default the zero token) to
        the batch when classifier-free guidance is on: ``[conditional; unconditional]``."""
        if guidance_scale == 1.0:
            return text, mask
        b = text.shape[0]
        nt, nm = null_text(b, text.shape[-1], text.device, text.dtype)
        nt = nt if null is None else null.to(text.dtype).expand(b, -1, -1)
        pad = text.shape[1] - 1
        return (torch.cat([text, torch.cat([nt, nt.new_zeros(b, pad, nt.shape[-1])], 1)]),
                torch.cat([mask, torch.cat([nm, nm.new_zeros(b, pad)], 1)]))  # fmt: skip

    def predict(self, latents, ts, text, mask, cond, guidance_scale: float, sched=None, audio=None) -> torch.Tensor:
        """The denoiser's (guided) prediction for ``latents`` at timestep ``ts``; ``text`` /
        ``mask`` come from ``with_null_text`` (twice the batch when guided). ``audio``
        (``latent_audio_features`` per video) conditions the guided half; the unconditional
        half has neither text nor audio."""
        guided = text.shape[0] == 2 * latents.shape[0]
        x = sched.scale_model_input(latents, ts) if hasattr(sched, "scale_model_input") else latents
        x = torch.cat([x, x]) if guided else x
        cond = torch.cat([cond, cond]) if guided and cond is not None else cond
        extra = {}
        if audio is not None:
            extra["audio"] = torch.cat([audio, torch.zeros_like(audio)]) if guided else audio
        pred = self.denoiser(x, torch.full((x.shape[0],), float(ts), device=x.device), text, mask, cond, **extra)
        if guided:
            pc, pu = pred.chunk(2)
            pred = pu + guidance_scale * (pc - pu)
        return pred

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image: np.ndarray | None = None,
        last_image: np.ndarray | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        scheduler: str | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        tile_frames: int | None = None,
        progress: bool = False,
        audio=None,
        audio_start: float = 0.0,
    ):
        """Generate ``num_videos_per_prompt`` clips per prompt. The same ``generator`` seed
        gives the same video. ``latents`` replaces the initial noise ``(B, C, t, h, w)``;
        ``scheduler`` picks a sampler (``euler`` for flow models; ``ddpm``, ``ddim``,
        ``dpm`` for epsilon/v models); ``callback_on_step_end(pipe, i, t, tensors)`` may
        return ``{"latents": ...}`` to change them. ``audio`` (a ``vidfm.io.audio.Audio`` or
        a sound file) drives a denoiser trained with audio: the clip follows the sound from
        ``audio_start`` seconds."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        self.check_inputs(prompts, image, last_image, num_inference_steps, guidance_scale, output_type)
        from diffusers.utils.torch_utils import randn_tensor

        cfg = self.config
        sched = sampling_scheduler(self.scheduler.config, scheduler or cfg.default_scheduler)
        t, h, w = self.vae.latent_shape(num_frames or cfg.num_frames, cfg.height, cfg.width)
        prompts = [p for p in prompts for _ in range(num_videos_per_prompt)]
        b, c = len(prompts), self.vae.config.latent_channels
        dtype = _dtype(self.denoiser)
        text, mask = self.encode_prompt(prompts)
        shape = (b, c, t, h, w)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype) * getattr(sched, "init_noise_sigma", 1.0)
        elif tuple(latents.shape) != shape:
            raise ConfigError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(self.device, dtype)
        known, known_mask, cond = None, None, None
        if image is not None:
            for given in (image, last_image):
                if given is not None and np.asarray(given).ndim == 4 and len(given) != b:
                    raise ConfigError(f"a batch of {len(given)} images for {b} videos; give one image or one per video")
            first = self.encode_image(image).to(dtype).expand(b, -1, -1, -1, -1)
            last = self.encode_image(last_image).to(dtype).expand(b, -1, -1, -1, -1) if last_image is not None else None
            cond = frame_condition(latents, first, last)
            known = torch.zeros_like(latents)
            known_mask = torch.zeros(1, 1, t, 1, 1, device=self.device, dtype=dtype)
            known[:, :, :1], known_mask[:, :, 0] = first, 1
            if last is not None:
                known[:, :, -1:] = self.encode_image(last_image, repeat=1 + self.vae.temporal_factor).to(dtype).expand(b, -1, -1, -1, -1)
                known_mask[:, :, -1] = 1
            known_noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        sound = self.audio_features(audio, num_frames or cfg.num_frames, audio_start, b, dtype) if audio is not None else None
        text, mask = self.with_null_text(text, mask, guidance_scale)
        sched.set_timesteps(num_inference_steps, device=self.device)
        timesteps = sched.timesteps
        bar = self.progress_bar(total=len(timesteps)) if progress else None
        for i, ts in enumerate(timesteps):
            pred = self.predict(latents, ts, text, mask, cond, guidance_scale, sched, sound)
            latents = sched.step(pred, ts, latents, generator=generator).prev_sample
            if known is not None:  # hold the given frames' slots at their latents, noised to the next step
                held = known if i + 1 == len(timesteps) else _noised(sched, known, known_noise, timesteps[i + 1])
                latents = known_mask * held + (1 - known_mask) * latents
            if callback_on_step_end is not None:
                latents = (callback_on_step_end(self, i, ts, {"latents": latents}) or {}).get("latents", latents)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        if output_type == "latent":
            frames = latents
        else:
            video = self.vae.decode_latents(latents.float(), tile_frames=tile_frames)
            frames = _convert(video, output_type)
        return VideoPipelineOutput(frames=frames) if return_dict else (frames,)

    def extend(self, frames: np.ndarray, prompt: str, windows: int = 1, generator: torch.Generator | None = None, **kwargs) -> np.ndarray:
        """Continue ``frames`` (T, H, W, 3) uint8 by ``windows`` generated windows, each one
        conditioned on the last frame so far (overlapping windows reusing the last frame)."""
        frames = np.asarray(frames)
        if windows < 1:
            raise ConfigError(f"windows must be >= 1, got {windows}")
        for _ in range(windows):
            clip = self(prompt, image=frames[-1], generator=generator, output_type="np", **kwargs).frames[0]
            frames = np.concatenate([frames, clip[1:]])
        return frames


def _dtype(module) -> torch.dtype:
    return getattr(module, "dtype", None) or next((p.dtype for p in module.parameters()), torch.float32)


def _noised(sched, clean: torch.Tensor, noise: torch.Tensor, timestep) -> torch.Tensor:
    """``clean`` noised to ``timestep`` the way ``sched`` defines the forward process."""
    ts = torch.as_tensor(timestep).reshape(1).to(clean.device)
    if hasattr(sched, "scale_noise"):  # flow matching: (1 - sigma) x0 + sigma noise
        return sched.scale_noise(clean, ts, noise)
    return sched.add_noise(clean, noise, ts.long())


def _convert(video: torch.Tensor, output_type: str):
    """(B, 3, T, H, W) in [-1, 1] -> the requested output."""
    if output_type == "pt":
        return video.clamp(-1, 1).add(1).div(2).permute(0, 2, 1, 3, 4)
    frames = to_uint8(video)
    if output_type == "pil":
        from PIL import Image

        return [[Image.fromarray(f) for f in clip] for clip in frames]
    return frames


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg})") from None


def _import_components(folder: Path) -> None:
    """diffusers only builds components from libraries already imported: import the vidfm
    modules ``model_index.json`` names (a fresh process may not have loaded them yet)."""
    import importlib

    for value in _read_json(folder / "model_index.json").values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("vidfm."):
            try:
                importlib.import_module(value[0])
            except ImportError:
                raise ConfigError(f"{folder}: model_index.json names {value[0]}, which this vidfm does not have") from None
