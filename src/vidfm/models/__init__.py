"""Video encoders: one interface, ``encoder(video) -> EncoderOutput(tokens, pooled)``.

``build_encoder("videomae-tiny")`` makes a fresh model from a named preset (tiny ones train
on a CPU in minutes; the others match the papers); ``load_encoder(path)`` opens a saved
vidfm encoder, a transformers VideoMAE / TimeSformer checkpoint, or an image tower
(CLIP / SigLIP / ViT) wrapped as a frame encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidfm.errors import ConfigError
from vidfm.models.cnn import (
    R2Plus1DConfig,
    R2Plus1DEncoder,
    SlowFastConfig,
    SlowFastEncoder,
    TSNConfig,
    TSNEncoder,
)
from vidfm.models.common import EncoderOutput, VideoEncoder
from vidfm.models.frame_encoder import FrameEncoder, FrameEncoderConfig
from vidfm.models.timesformer import TimeSformerConfig, TimeSformerEncoder
from vidfm.models.videomae import VideoMAEConfig, VideoMAEEncoder

ENCODER_CLASSES: dict[str, type[VideoEncoder]] = {
    cls.config_class.model_type: cls
    for cls in (R2Plus1DEncoder, TSNEncoder, SlowFastEncoder, TimeSformerEncoder, VideoMAEEncoder, FrameEncoder)
}

_VIT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
PRESETS: dict[str, tuple[type, dict]] = {
    # tiny: 64x64 clips of 8 frames, a few hundred thousand parameters, CPU-trainable
    "r2plus1d-tiny": (R2Plus1DConfig, {}),
    "tsn-tiny": (TSNConfig, {"spatial_grid": 2}),  # keeps coarse positions (see TSNEncoder)
    "tsm-tiny": (TSNConfig, {"temporal_shift": True, "temporal": "avg"}),  # TSN's 2D CNN + temporal shift
    "slowfast-tiny": (SlowFastConfig, {"alpha": 4, "beta_inv": 4}),
    "timesformer-tiny": (TimeSformerConfig, {"conv_stem": True}),  # ViTs this small learn far faster with it
    "videomae-tiny": (VideoMAEConfig, {"conv_stem": True}),
    "frame-tiny": (FrameEncoderConfig, {"temporal": "transformer"}),
    # paper sizes
    "r2plus1d-18": (R2Plus1DConfig, dict(widths=(64, 128, 256, 512), layers=(2, 2, 2, 2), stem_width=64, num_frames=16, image_size=112)),
    "tsn-resnet18": (TSNConfig, dict(widths=(64, 128, 256, 512), layers=(2, 2, 2, 2), stem_width=64, temporal="avg", image_size=224)),
    "tsm-resnet18": (TSNConfig, dict(widths=(64, 128, 256, 512), layers=(2, 2, 2, 2), stem_width=64, temporal="avg", temporal_shift=True, image_size=224)),
    "slowfast-r18-4x16": (SlowFastConfig, dict(widths=(64, 128, 256, 512), layers=(2, 2, 2, 2), stem_width=64, alpha=8, beta_inv=8, num_frames=32, image_size=224)),
    "timesformer-base": (TimeSformerConfig, dict(image_size=224, patch_size=16, num_frames=8, **_VIT_BASE)),
    "videomae-small": (VideoMAEConfig, dict(image_size=224, patch_size=16, num_frames=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536)),
    "videomae-base": (VideoMAEConfig, dict(image_size=224, patch_size=16, num_frames=16, layer_norm_eps=1e-12, **_VIT_BASE)),
}


def build_encoder(name: str, **overrides) -> VideoEncoder:
    """A freshly initialised encoder from a preset name; ``overrides`` change config fields
    (e.g. ``num_frames=16``, ``drop_path_rate=0.1``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown encoder {name!r}; choose one of: {', '.join(PRESETS)}")
    config_cls, kwargs = PRESETS[name]
    config = config_cls(**{**kwargs, **overrides})
    return ENCODER_CLASSES[config_cls.model_type](config)


ADAPTATION = "adaptation.json"


def save_encoder(encoder: VideoEncoder, folder) -> None:
    """Write ``encoder`` into ``folder`` as an ordinary encoder folder: ``config.json`` and
    ``model.safetensors``, plus ``adaptation.json`` when it carries an adaptation that adds
    modules (LoRA, adapters, prompts, prefixes), so ``load_encoder`` rebuilds it exactly."""
    from safetensors.torch import save_file

    folder = Path(folder)
    spec = getattr(encoder, "adaptation", None)
    if not spec:
        encoder.save_pretrained(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    encoder.config.save_pretrained(folder)
    save_file({k: v.detach().contiguous().clone() for k, v in encoder.state_dict().items()}, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / ADAPTATION).write_text(json.dumps(spec, indent=2))


def load_encoder(path, merge_lora: bool = True, **kwargs) -> VideoEncoder:
    """Open an encoder folder: vidfm's own (any run folder stands for its ``best/``; a
    classifier's or a pre-training run's folder is one too), transformers
    VideoMAE/TimeSformer, or an image tower (CLIP, SigLIP, ViT) which becomes a
    ``FrameEncoder``. An encoder saved with an adaptation gets it back; LoRA is folded into
    the weights unless ``merge_lora=False``."""
    from vidfm.files import model_folder

    folder = model_folder(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a model folder" + (" (it is a file)" if folder.exists() else " (not found)"))
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise ConfigError(f"{folder}: no config.json; expected a saved encoder folder")
    try:
        model_type = json.loads(cfg_file.read_text()).get("model_type", "")
    except json.JSONDecodeError:
        raise ConfigError(f"{cfg_file}: not valid JSON") from None
    if model_type in ENCODER_CLASSES:
        return _load_vidfm_encoder(folder, ENCODER_CLASSES[model_type], merge_lora, **kwargs)
    if model_type == "videomae":
        return VideoMAEEncoder.from_transformers(folder, **kwargs)
    if model_type == "timesformer":
        return TimeSformerEncoder.from_transformers(folder, **kwargs)
    if model_type in ("clip", "clip_vision_model", "siglip", "siglip_vision_model", "vit", "dinov2"):
        return FrameEncoder.from_image_tower(folder, **kwargs)
    raise ConfigError(f"{folder}: model_type {model_type!r} is not a video encoder vidfm can load")


def _load_vidfm_encoder(folder: Path, cls: type[VideoEncoder], merge_lora: bool, **kwargs) -> VideoEncoder:
    """Load strictly: a checkpoint that does not fit is refused instead of leaving layers
    newly initialised. Folders written before the attention modules were unified (fused
    ``qkv``) are converted on the way in."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from vidfm.models.attention import has_old_attention_keys, upgrade_attention_keys

    weights = folder / "model.safetensors"
    try:
        with safe_open(str(weights), "pt") as f:
            keys = list(f.keys())
    except Exception as e:  # noqa: BLE001 - missing, truncated or not safetensors at all
        raise ConfigError(f"{weights}: missing or unreadable ({str(e).splitlines()[0][:100]})") from None
    spec = json.loads((folder / ADAPTATION).read_text()) if (folder / ADAPTATION).exists() else None
    if spec or has_old_attention_keys(keys):  # written by save_encoder / an older vidfm: in-memory key names
        model = cls(cls.config_class.from_pretrained(str(folder), **kwargs))
        if spec:
            from vidfm.adapt import adapt_encoder

            adapt_encoder(model, **spec)
        try:
            model.load_state_dict(upgrade_attention_keys(load_file(weights)))
        except RuntimeError as e:
            raise ConfigError(f"{folder}: weights do not match its config.json ({_first_problem(e)})") from None
    else:
        try:
            model, info = cls.from_pretrained(str(folder), output_loading_info=True, **kwargs)
        except RuntimeError as e:
            raise ConfigError(f"{folder}: weights do not match its config.json ({_first_problem(e)})") from None
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if problems:
            raise ConfigError(f"{folder}: weights do not match its config.json ({'; '.join(f'{k} {sorted(v)[:3]}' for k, v in problems.items())})")
    if spec and spec["method"] == "lora" and merge_lora:
        from vidfm.adapt.lora import merge_lora as fold

        fold(model)
        model.adaptation = None
    return model.eval()


def _first_problem(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0])[:160]


def resolve_encoder(name_or_path: str, **overrides) -> VideoEncoder:
    """A preset name builds a fresh model; anything else is treated as a folder to load."""
    if name_or_path in PRESETS:
        return build_encoder(name_or_path, **overrides)
    if Path(name_or_path).exists():
        return load_encoder(name_or_path)
    raise ConfigError(f"unknown encoder {name_or_path!r}: not a preset ({', '.join(PRESETS)}) and not a folder")


__all__ = [
    "ENCODER_CLASSES",
    "PRESETS",
    "EncoderOutput",
    "FrameEncoder",
    "R2Plus1DEncoder",
    "SlowFastEncoder",
    "TSNEncoder",
    "TimeSformerEncoder",
    "VideoEncoder",
    "VideoMAEEncoder",
    "build_encoder",
    "load_encoder",
    "resolve_encoder",
    "save_encoder",
]
