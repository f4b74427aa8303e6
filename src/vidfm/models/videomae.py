"""VideoMAE / ViViT-style video ViT: tubelet patch embedding + a plain transformer.

The video is cut into tubelets (``tubelet_size`` frames x ``patch_size`` x ``patch_size``
pixels) by one strided Conv3d; a fixed sine/cosine table gives positions (interpolated for
other frame counts or sizes). ``forward(video, mask)`` drops masked tokens before the
encoder — what masked video modelling needs (the encoder only sees the visible 10 %).

``VideoMAEEncoder.from_transformers(folder)`` loads a Hugging Face ``VideoMAEModel`` /
``VideoMAEForVideoClassification`` / ``VideoMAEForPreTraining`` checkpoint from a local folder
(or a hub id when online) into this module; outputs match transformers' own.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.common import (
    Block,
    ConvStem,
    EncoderOutput,
    VideoEncoder,
    ViTEncoderConfig,
    load_converted,
    load_transformers_checkpoint,
    normalize_video,
    resize_grid_embedding,
    run_blocks,
    sinusoid_table,
    stochastic_depth_rates,
    vit_fields_from,
)


class VideoMAEConfig(ViTEncoderConfig):
    model_type = "vidfm_videomae"

    def __init__(
        self,
        tubelet_size: int = 2,
        qkv_bias: str = "qv",
        use_mean_pooling: bool = True,
        pool_norm_eps: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tubelet_size = tubelet_size
        self.qkv_bias = qkv_bias
        self.use_mean_pooling = use_mean_pooling
        self.pool_norm_eps = pool_norm_eps

    def grid(self, num_frames: int | None = None, height: int | None = None, width: int | None = None):
        t = (num_frames or self.num_frames) // self.tubelet_size
        return t, (height or self.image_size) // self.patch_size, (width or self.image_size) // self.patch_size


class VideoMAEEncoder(VideoEncoder):
    config_class = VideoMAEConfig
    xavier_init = True

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        c = config
        p, tub = c.patch_size, c.tubelet_size
        if getattr(c, "conv_stem", False):
            self.patch_embed = ConvStem(c.num_channels, c.hidden_size, p, tub)
        else:
            self.patch_embed = nn.Conv3d(c.num_channels, c.hidden_size, (tub, p, p), stride=(tub, p, p))
        rates = stochastic_depth_rates(c.drop_path_rate, c.num_hidden_layers)
        self.blocks = nn.ModuleList(
            Block(
                c.hidden_size, c.num_attention_heads, c.intermediate_size, c.qkv_bias, c.layer_norm_eps,
                c.hidden_dropout_prob, c.attention_probs_dropout_prob, rates[i],
            )  # fmt: skip
            for i in range(c.num_hidden_layers)
        )
        self.norm = nn.Identity() if c.use_mean_pooling else nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.fc_norm = nn.LayerNorm(c.hidden_size, eps=c.pool_norm_eps) if c.use_mean_pooling else nn.Identity()
        self.post_init()

    def embed(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, N, D) tubelet tokens with positions, N = t*h*w (t-major).
        With a convolutional stem, the pixels of ``mask``ed tubelets are blanked first: the
        stem's receptive field crosses patch borders, and visible tokens must not see them."""
        self.check_video(video)
        b, t, _, h, w = video.shape
        c = self.config
        if t % c.tubelet_size:
            raise ConfigError(f"frame count {t} is not a multiple of the tubelet size {c.tubelet_size}")
        self.check_patch_grid(h, w)
        video = normalize_video(video, c.pixel_mean, c.pixel_std)
        if mask is not None and isinstance(self.patch_embed, ConvStem):
            visible = repeat((~mask).to(video.dtype), "b (t h w) -> b (t p0) 1 (h p1) (w p2)",
                             t=t // c.tubelet_size, h=h // c.patch_size, p0=c.tubelet_size, p1=c.patch_size, p2=c.patch_size)  # fmt: skip
            video = video * visible  # 0 is the mean colour after normalisation
        x = self.patch_embed(rearrange(video, "b t c h w -> b c t h w"))
        grid = tuple(x.shape[2:])
        x = rearrange(x, "b d t h w -> b (t h w) d")
        return x + self.position_table(grid).to(device=x.device, dtype=x.dtype)

    def position_table(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Fixed sine/cosine positions for a (t, h, w) token grid, interpolated from the
        configured grid when they differ; cached (not a buffer: it is derived, not learned)."""
        cache = self.__dict__.setdefault("_pos_cache", {})
        if grid not in cache:
            base = self.config.grid()
            table = sinusoid_table(math.prod(base), self.config.hidden_size)
            cache[grid] = resize_grid_embedding(table, base, grid)
        return cache[grid]

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> EncoderOutput:  # fmt: skip
        """``mask``: optional (B, N) bool, True = hidden token (same count per sample)."""
        x = self.embed(video, mask)
        if mask is not None:
            x = x[~mask].reshape(x.shape[0], -1, x.shape[-1])
        x, hidden, attentions = run_blocks(self.blocks, x, output_hidden_states, output_attentions)
        x = self.norm(x)
        grids = (self.config.grid(*[video.shape[i] for i in (1, 3, 4)]),) * len(hidden) if hidden and mask is None else None
        return EncoderOutput(tokens=x, pooled=self.fc_norm(x.mean(1)), hidden_states=hidden, attentions=attentions, grids=grids)

    # -- Hugging Face checkpoints ------------------------------------------------------
    @classmethod
    def from_transformers(cls, name_or_path, **overrides) -> "VideoMAEEncoder":
        hf_config, hf_state = load_transformers_checkpoint(name_or_path, "videomae")
        config = VideoMAEConfig(
            **vit_fields_from(hf_config),
            tubelet_size=hf_config.tubelet_size,
            qkv_bias="qv" if getattr(hf_config, "qv_bias", getattr(hf_config, "qkv_bias", True)) else "none",
            use_mean_pooling=hf_config.use_mean_pooling,
        )
        config.update(overrides)
        model = cls(config)
        state = convert_videomae_state(hf_state, config.num_hidden_layers, qv_bias=config.qkv_bias == "qv")
        if config.use_mean_pooling and "fc_norm.weight" in hf_state:  # classification checkpoints
            state["fc_norm.weight"], state["fc_norm.bias"] = hf_state["fc_norm.weight"], hf_state["fc_norm.bias"]
        load_converted(model, state, name_or_path, optional={"fc_norm.weight", "fc_norm.bias"})
        return model


def convert_videomae_state(hf: dict, layers: int, qv_bias: bool = True) -> dict:
    """Rename a transformers ``VideoMAEModel`` state dict to ``VideoMAEEncoder`` keys."""
    out = {
        "patch_embed.weight": hf["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.bias": hf["embeddings.patch_embeddings.projection.bias"],
    }
    for i in range(layers):
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        att = src + "attention.attention."
        for n, to in (("query", "to_q"), ("key", "to_k"), ("value", "to_v")):
            out[f"{dst}attn.{to}.weight"] = hf[att + n + ".weight"]
        if qv_bias:  # on disk these are q_bias/v_bias (original layout); in memory query/value.bias
            out[dst + "attn.to_q.bias"] = hf.get(att + "q_bias", hf.get(att + "query.bias"))
            out[dst + "attn.to_v.bias"] = hf.get(att + "v_bias", hf.get(att + "value.bias"))
        pairs = {
            "attention.output.dense": "attn.to_out",
            "layernorm_before": "norm1",
            "layernorm_after": "norm2",
            "intermediate.dense": "mlp.fc1",
            "output.dense": "mlp.fc2",
        }
        for a, b in pairs.items():
            out[dst + b + ".weight"] = hf[src + a + ".weight"]
            out[dst + b + ".bias"] = hf[src + a + ".bias"]
    if "layernorm.weight" in hf:
        out["norm.weight"], out["norm.bias"] = hf["layernorm.weight"], hf["layernorm.bias"]
    return out
