"""Camera motion without training for it (CamTrol's recipe, Hou et al. 2024, in 2D).

A model that has not learned to follow "as the camera pans left" from its captions can
still be given the motion: generate the clip, move a view window over its frames along
the world's own camera path (``vidfm.data.synthetic.camera_box``: the window is 0.8 of
the frame, as a world shot's crop is of its canvas), then re-noise the moved clip a
little and denoise it under the prompt (SDEdit) so the model repaints what resampling
blurred. The motion is there by construction; ``strength`` trades how much the model
may redraw (and so undo) against how sharp the frames come back. The default is no
repaint: on the world model a repaint at 0.3 undid most of the motion.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from vidfm.data.synthetic import CAMERA_MOTIONS, camera_box
from vidfm.errors import ConfigError

VIEW = 0.8  # the view window's share of the generated frame (a world shot: size / (size + 2 * size // 8))
CAMERA_CONTROLS = ("caption", "warp")


def move_camera(video: np.ndarray, camera: str) -> np.ndarray:
    """``video (T, H, W, 3)`` uint8 seen through a camera that moves by ``camera`` (a
    ``CAMERA_MOTIONS`` name; ``pan-left`` spelling accepted) over the clip: frame ``f``
    is the view window at progress ``f / (T - 1)``, resized back to (H, W)."""
    camera = camera.replace("-", "_")
    if camera not in CAMERA_MOTIONS:
        raise ConfigError(f"unknown camera motion {camera!r}; choose one of {', '.join(CAMERA_MOTIONS)}")
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ConfigError(f"expected a (T, H, W, 3) video, got shape {video.shape}")
    if camera == "static":
        return video.copy()
    t, h, w = video.shape[:3]
    # the view is VIEW of the frame; its margins are what pans and tilts travel through
    vw, vh = w * VIEW, h * VIEW
    out = np.empty_like(video)
    for f in range(t):
        x0, y0, x1, y1 = camera_box(camera, f / max(t - 1, 1), 1.0, (1 - VIEW) / (2 * VIEW))  # in view units
        box = (x0 * vw, y0 * vh, x1 * vw, y1 * vh)
        out[f] = np.asarray(Image.fromarray(video[f]).resize((w, h), Image.BICUBIC, box=box))
    return out


def generate_with_camera(pipe, prompt: str, camera: str, strength: float = 0.0, num_inference_steps: int = 25,
                         guidance_scale: float = 4.0, generator=None, video: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """One clip of ``prompt`` with ``camera`` motion by warping: ``pipe`` is a
    ``vidfm.editing.VideoEditPipeline`` (generation plus SDEdit); ``video`` an already generated clip to move (else one is
    generated). ``strength`` 0 returns the moved frames as they are."""
    import torch

    if not 0.0 <= strength < 1.0:
        raise ConfigError(f"--camera-strength must be in [0, 1), got {strength}")
    g = generator or torch.Generator().manual_seed(0)
    if video is None:
        video = pipe(prompt, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, generator=g, output_type="np").frames[0]
    moved = move_camera(video, camera)
    if strength == 0.0 or camera.replace("-", "_") == "static":
        return moved
    steps = max(num_inference_steps, math.ceil(1 / strength))  # at least one repaint step on a short schedule
    return pipe.edit_clip(moved, prompt, method="sdedit", strength=strength, num_inference_steps=steps,
                          guidance_scale=guidance_scale, generator=g).frames  # fmt: skip
