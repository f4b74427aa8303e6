"""Frame encoder: any Hugging Face image tower applied to every frame, then time.

Wraps a CLIP / SigLIP / ViT vision model (loaded from a local folder, or a hub id when
online) and models time over the per-frame vectors with mean pooling or a small temporal
transformer (learned time positions). The tower's own config is stored inside ours, so
``save_pretrained`` / ``from_pretrained`` round-trip without the original folder.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from transformers import AutoConfig, AutoModel

from vidfm.errors import ConfigError
from vidfm.models.common import (
    Block,
    EncoderOutput,
    VideoEncoder,
    VideoEncoderConfig,
    normalize_video,
    resize_grid_embedding,
    run_blocks,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FrameEncoderConfig(VideoEncoderConfig):
    model_type = "vidfm_frame_encoder"

    def __init__(
        self,
        vision_config: dict | None = None,
        temporal: str = "mean",
        temporal_layers: int = 1,
        temporal_heads: int = 4,
        pixel_mean=CLIP_MEAN,
        pixel_std=CLIP_STD,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if temporal not in ("mean", "transformer"):
            raise ConfigError(f"frame encoder temporal modelling must be 'mean' or 'transformer', got {temporal!r}")
        self.vision_config = vision_config or {
            "model_type": "vit", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "image_size": 64, "patch_size": 8,
        }  # fmt: skip
        self.temporal = temporal
        self.temporal_layers = temporal_layers
        self.temporal_heads = temporal_heads
        self.pixel_mean, self.pixel_std = list(pixel_mean), list(pixel_std)
        self.hidden_size = self.vision_config["hidden_size"]


def _vision_config(d: dict):
    d = dict(d)
    return AutoConfig.for_model(d.pop("model_type"), **d)


class FrameEncoder(VideoEncoder):
    config_class = FrameEncoderConfig
    xavier_init = True

    def __init__(self, config: FrameEncoderConfig, image_tower: nn.Module | None = None):
        super().__init__(config)
        pretrained = {k: v.clone() for k, v in image_tower.state_dict().items()} if image_tower is not None else None
        self.image_tower = image_tower if image_tower is not None else AutoModel.from_config(_vision_config(config.vision_config))
        d = config.hidden_size
        if config.temporal == "transformer":
            self.time_embed = nn.Parameter(torch.zeros(1, config.num_frames, d))
            self.blocks = nn.ModuleList(Block(d, config.temporal_heads, 4 * d) for _ in range(config.temporal_layers))
        else:
            self.blocks = nn.ModuleList()
        self.post_init()
        if pretrained is not None:  # post_init re-initialises every submodule; restore the tower
            self.image_tower.load_state_dict(pretrained)

    @classmethod
    def from_image_tower(cls, name_or_path, temporal: str = "mean", num_frames: int = 8, **kwargs) -> "FrameEncoder":
        """Wrap a pretrained image tower: a CLIP/SigLIP model folder (its vision half is
        taken) or a vision-only model (CLIPVisionModel, SiglipVisionModel, ViTModel...)."""
        try:
            tower = AutoModel.from_pretrained(str(name_or_path))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{name_or_path}: cannot load an image tower ({str(e).splitlines()[0]})") from None
        if hasattr(tower, "vision_model") and hasattr(tower, "text_model"):  # full CLIP/SigLIP
            vc = tower.config.vision_config
            vision_cls = type(tower).__name__.replace("Model", "VisionModel")
            import transformers

            vision = getattr(transformers, vision_cls)(vc)
            src = {k.split("vision_model.", 1)[1]: v for k, v in tower.state_dict().items() if k.startswith("vision_model.")}
            prefix = "vision_model." if any(k.startswith("vision_model.") for k in vision.state_dict()) else ""
            vision.load_state_dict({prefix + k: v for k, v in src.items()})
            tower = vision
        vc = tower.config.to_dict()
        is_clip = "clip" in vc.get("model_type", "")
        config = FrameEncoderConfig(
            vision_config=vc,
            temporal=temporal,
            num_frames=num_frames,
            image_size=vc.get("image_size", 224),
            pixel_mean=CLIP_MEAN if is_clip else (0.5, 0.5, 0.5),
            pixel_std=CLIP_STD if is_clip else (0.5, 0.5, 0.5),
            **kwargs,
        )
        return cls(config, image_tower=tower)

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) in [0, 1] -> (B, T, D) one vector per frame."""
        self.check_video(video)
        b = video.shape[0]
        x = rearrange(normalize_video(video, self.config.pixel_mean, self.config.pixel_std), "b t c h w -> (b t) c h w")
        kwargs = {}
        if x.shape[-1] != self.config.vision_config.get("image_size", x.shape[-1]):
            kwargs["interpolate_pos_encoding"] = True
        out = self.image_tower(pixel_values=x, **kwargs)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state[:, 0]
        return rearrange(pooled, "(b t) d -> b t d", b=b)

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        """Tokens are one vector per frame; hidden states and attentions are those of the
        temporal transformer (the per-frame vectors first)."""
        x = self.frame_features(video)
        if self.config.temporal == "transformer":
            x = x + resize_grid_embedding(self.time_embed, (self.config.num_frames,), (x.shape[1],))
        x, hidden, attentions = run_blocks(self.blocks, x, output_hidden_states, output_attentions)
        grids = ((x.shape[1], 1, 1),) * len(hidden) if hidden else None
        return EncoderOutput(tokens=x, pooled=x.mean(1), hidden_states=hidden, attentions=attentions, grids=grids)
