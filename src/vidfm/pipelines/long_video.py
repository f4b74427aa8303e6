"""Beyond one clip: long videos and storyboards from a clip-length generation pipeline.

Long video (SPEC §8.5): a model trained on T-frame clips makes longer videos three ways,
so their drift can be compared (``benchmarks/generation.py --parts drift``):

- ``windows``: each new window is conditioned on the last frame so far (``extend``); errors
  of every hop pass on to the next.
- ``shared-noise``: the same, but every window starts from the same initial noise
  (FreeNoise-style noise re-use): the windows share their randomness, so appearance has
  less room to wander.
- ``keyframes``: one pass of windows at the coarse level gives keyframes, then first+last
  frame generation fills in between every pair: the chain of hops is T-1 times shorter.

Storyboard (SPEC §8.6): a list of shot prompts -> one video of shots joined by cuts. A shot
with ``"same_object": true`` starts from the previous shot's initial noise, which keeps
its object's look and place; other shots get fresh noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidfm.data.synthetic import CAMERA_MOTIONS, camera_phrase
from vidfm.errors import ConfigError
from vidfm.pipelines.camera import generate_with_camera

LONG_METHODS = ("windows", "shared-noise", "keyframes")
CAMERA_CHOICES = tuple(m.replace("_", "-") for m in CAMERA_MOTIONS)  # how the CLI and storyboards spell them


def with_camera(prompt: str, camera: str | None) -> str:
    """The prompt with the world captions' camera phrase (``pan-left`` -> '... as the camera
    pans left'); ``static`` or None leaves it unchanged."""
    if camera is None or camera == "static":
        return prompt
    if camera not in CAMERA_CHOICES:
        raise ConfigError(f"unknown camera motion {camera!r}; choose one of {', '.join(CAMERA_CHOICES)}")
    return f"{prompt} as the camera {camera_phrase(camera.replace('-', '_'))}"


def _noise(pipe, batch: int, seed_gen: torch.Generator, num_frames: int | None = None) -> torch.Tensor:
    t, h, w = pipe.vae.latent_shape(num_frames or pipe.config.num_frames, pipe.config.height, pipe.config.width)
    return torch.randn((batch, pipe.vae.config.latent_channels, t, h, w), generator=seed_gen)


def long_video(pipe, prompt: str | list[str], num_frames: int, method: str = "windows", seed: int = 0, **kwargs) -> np.ndarray:
    """A ``(num_frames, H, W, 3)`` uint8 video of ``prompt`` by ``method`` (``LONG_METHODS``),
    or ``(B, num_frames, H, W, 3)`` for a list of prompts (made together, in batches);
    ``kwargs`` go to every pipeline call (steps, guidance, scheduler)."""
    if method not in LONG_METHODS:
        raise ConfigError(f"unknown long-video method {method!r}; choose one of {', '.join(LONG_METHODS)}")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    clip = pipe.config.num_frames
    if num_frames < clip:
        raise ConfigError(f"a long video needs at least the model's {clip} frames, got {num_frames}")
    g = torch.Generator().manual_seed(seed)
    hop = clip - 1
    if method == "keyframes":
        # keyframes: enough coarse windows that every in-between pair adds hop frames
        pairs = -(-(num_frames - 1) // hop)
        keys = _windows(pipe, prompts, pairs + 1, g, shared=False, **kwargs)
        frames = [keys[:, :1]]
        for k in range(pairs):
            mid = pipe(prompts, image=keys[:, k], last_image=keys[:, k + 1], generator=g, output_type="np", **kwargs).frames
            frames.append(mid[:, 1:])
        videos = np.concatenate(frames, axis=1)[:, :num_frames]
    else:
        videos = _windows(pipe, prompts, num_frames, g, shared=method == "shared-noise", **kwargs)
    return videos[0] if isinstance(prompt, str) else videos


def _windows(pipe, prompts: list[str], num_frames: int, g: torch.Generator, shared: bool, **kwargs) -> np.ndarray:
    noise = _noise(pipe, len(prompts), g)
    video = pipe(prompts, latents=noise, generator=g, output_type="np", **kwargs).frames
    while video.shape[1] < num_frames:
        latents = noise if shared else _noise(pipe, len(prompts), g)
        nxt = pipe(prompts, image=video[:, -1], latents=latents, generator=g, output_type="np", **kwargs).frames
        video = np.concatenate([video, nxt[:, 1:]], axis=1)
    return video[:, :num_frames]


# -- storyboards ---------------------------------------------------------------------------
def read_storyboard(path) -> list[dict]:
    """``board.json``: a list of shots, or ``{"shots": [...]}``; each shot
    ``{"prompt", "windows"?: 1, "camera"?: "pan-left", "seed"?: int, "same_object"?: bool}``.
    Mistakes are named with the file and the shot."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such storyboard")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    shots = data.get("shots") if isinstance(data, dict) else data
    if not isinstance(shots, list) or not shots:
        raise ConfigError(f"{path}: a storyboard is a non-empty list of shots (or {{\"shots\": [...]}})")
    known = {"prompt", "windows", "camera", "seed", "same_object"}
    for k, shot in enumerate(shots, 1):
        if not isinstance(shot, dict) or not isinstance(shot.get("prompt"), str) or not shot["prompt"].strip():
            raise ConfigError(f"{path}: shot {k} needs a non-empty \"prompt\"")
        if set(shot) - known:
            raise ConfigError(f"{path}: shot {k} has unknown keys {sorted(set(shot) - known)}; known: {sorted(known)}")
        if not isinstance(shot.get("windows", 1), int) or shot.get("windows", 1) < 1:
            raise ConfigError(f"{path}: shot {k}: \"windows\" must be an integer >= 1")
        if shot.get("camera") is not None and shot["camera"] not in CAMERA_CHOICES:
            raise ConfigError(f"{path}: shot {k}: unknown camera {shot['camera']!r}; choose one of {', '.join(CAMERA_CHOICES)}")
        if shot.get("same_object") and k == 1:
            raise ConfigError(f"{path}: shot 1 cannot keep the object of a previous shot (\"same_object\")")
    return shots


def storyboard(pipe, shots: list[dict], seed: int = 0, camera_control: str = "caption", camera_strength: float = 0.0,
               **kwargs) -> tuple[np.ndarray, list[tuple[int, int]]]:  # fmt: skip
    """One video of the shots joined by cuts, and each shot's (first, last) frame. A shot's
    camera is asked for in its prompt (``camera_control="caption"``) or made by warping
    (``"warp"``: ``pipe`` must be a ``VideoEditPipeline``; see ``vidfm.pipelines.camera``)."""
    video, ranges, noise = [], [], None
    pos = 0
    for k, shot in enumerate(shots):
        g = torch.Generator().manual_seed(int(shot.get("seed", seed + k)))
        if noise is None or not shot.get("same_object"):
            noise = _noise(pipe, 1, g)
        warp = camera_control == "warp" and shot.get("camera") not in (None, "static")
        if warp and shot.get("windows", 1) > 1:
            raise ConfigError(f"shot {k + 1}: a warped camera moves one clip; give it \"windows\": 1 or use camera_control 'caption'")
        prompt = shot["prompt"] if warp else with_camera(shot["prompt"], shot.get("camera"))
        clip = pipe(prompt, latents=noise.clone(), generator=g, output_type="np", **kwargs).frames[0]
        if warp:
            clip = generate_with_camera(pipe, prompt, shot["camera"], camera_strength, kwargs.get("num_inference_steps", 25),
                                        kwargs.get("guidance_scale", 4.0), g, video=clip)  # fmt: skip
        if shot.get("windows", 1) > 1:
            clip = pipe.extend(clip, prompt, windows=shot["windows"] - 1, generator=g, **kwargs)
        video.append(clip)
        ranges.append((pos, pos + len(clip) - 1))
        pos += len(clip)
    return np.concatenate(video), ranges
