"""Build and load the generation models (video VAE and denoisers) by preset name or folder.

Folders are diffusers-style (``config.json`` with ``_class_name`` +
``diffusion_pytorch_model.safetensors``), written by ``save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidfm.errors import ConfigError
from vidfm.models.dit import VideoDiT
from vidfm.models.unet3d import UNetPseudo3D
from vidfm.models.uvit import VideoUViT
from vidfm.models.vae import VAE_PRESETS, VideoVAE

DENOISERS = {"VideoDiT": VideoDiT, "VideoUViT": VideoUViT, "UNetPseudo3D": UNetPseudo3D}
DENOISER_PRESETS = {
    "dit-tiny": (VideoDiT, dict(width=192, depth=6, heads=6, patch_size=2)),
    "uvit-tiny": (VideoUViT, dict(width=192, depth=7, heads=6, patch_size=2)),
    "unet3d-tiny": (UNetPseudo3D, dict(channels=(64, 128), heads=4)),
    # paper-size settings (Latte-B-like DiT; a ModelScope-like UNet width)
    "dit-base": (VideoDiT, dict(width=768, depth=12, heads=12, patch_size=2, latent_channels=16)),
    "unet3d-base": (UNetPseudo3D, dict(channels=(320, 640, 1280), heads=8, latent_channels=16)),
}


def build_vae(name: str = "vae-tiny", **overrides) -> VideoVAE:
    if name not in VAE_PRESETS:
        raise ConfigError(f"unknown VAE preset {name!r}; choose one of {', '.join(VAE_PRESETS)}")
    return VideoVAE(**{**VAE_PRESETS[name], **overrides})


def build_denoiser(name: str = "dit-tiny", **overrides):
    if name not in DENOISER_PRESETS:
        raise ConfigError(f"unknown denoiser {name!r}; choose one of {', '.join(DENOISER_PRESETS)}")
    cls, kwargs = DENOISER_PRESETS[name]
    return cls(**{**kwargs, **overrides})


def _class_of(path: Path, allowed: dict) -> type:
    config = path / "config.json"
    if not config.exists():
        raise ConfigError(f"{path}: no config.json; not a saved model folder")
    try:
        name = json.loads(config.read_text()).get("_class_name")
    except json.JSONDecodeError as e:
        raise ConfigError(f"{config}: not valid JSON ({e})") from None
    if name not in allowed:
        raise ConfigError(f"{path}: holds a {name!r}, expected one of {', '.join(allowed)}")
    return allowed[name]


def load_vae(path) -> VideoVAE:
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such VAE folder")
    return _class_of(path, {"VideoVAE": VideoVAE}).from_pretrained(path).eval()


def load_denoiser(path):
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such denoiser folder")
    return _class_of(path, DENOISERS).from_pretrained(path).eval()
