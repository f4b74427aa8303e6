"""TimeSformer: per-frame patches, and blocks with divided space-time attention.

Each block first attends over time (each patch position with itself in the other frames),
then over space (each frame's patches plus the class token), then an MLP — far cheaper than
joint attention over all T*H*W tokens. Tokens are ordered patch-major, frame-minor, with a
class token first, as in the paper and in transformers' ``TimesformerModel``, whose
checkpoints ``TimeSformerEncoder.from_transformers(folder)`` loads.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vidfm.errors import ConfigError
from vidfm.models.common import (
    Attention,
    Block,
    ConvStem,
    DropPath,
    EncoderOutput,
    Mlp,
    VideoEncoder,
    ViTEncoderConfig,
    load_converted,
    load_transformers_checkpoint,
    normalize_video,
    resize_grid_embedding,
    run_blocks,
    stochastic_depth_rates,
    vit_fields_from,
)

ATTENTION_TYPES = ("divided_space_time", "joint_space_time")


class TimeSformerConfig(ViTEncoderConfig):
    model_type = "vidfm_timesformer"

    def __init__(self, qkv_bias: bool = True, attention_type: str = "divided_space_time", **kwargs):
        super().__init__(**kwargs)
        if attention_type not in ATTENTION_TYPES:
            raise ConfigError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        self.qkv_bias = qkv_bias
        self.attention_type = attention_type


class DividedBlock(GradientCheckpointingLayer):
    """Temporal attention -> spatial attention (class token shared by all frames) -> MLP."""

    def __init__(self, c: TimeSformerConfig, drop_path: float):
        super().__init__()
        bias = "qkv" if c.qkv_bias else "none"
        d, eps = c.hidden_size, c.layer_norm_eps
        self.temporal_norm = nn.LayerNorm(d, eps=eps)
        self.temporal_attn = Attention(d, c.num_attention_heads, bias=bias, attn_drop=c.attention_probs_dropout_prob, proj_drop=c.hidden_dropout_prob)
        self.temporal_fc = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, c.num_attention_heads, bias=bias, attn_drop=c.attention_probs_dropout_prob, proj_drop=c.hidden_dropout_prob)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = Mlp(d, c.intermediate_size, c.hidden_dropout_prob)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, t: int, output_attentions: bool = False):
        """Returns ``x``, or ``(x, spatial attention weights (B*T, heads, 1+P, 1+P))``."""
        cls, patches = x[:, :1], x[:, 1:]
        b = x.shape[0]
        xt = rearrange(patches, "b (p t) d -> (b p) t d", t=t)
        res_t = self.drop_path(self.temporal_attn(self.temporal_norm(xt)))
        patches = patches + self.temporal_fc(rearrange(res_t, "(b p) t d -> b (p t) d", b=b))
        xs = rearrange(patches, "b (p t) d -> (b t) p d", t=t)
        xs = torch.cat([cls.repeat_interleave(t, dim=0), xs], dim=1)
        res_s = self.attn(self.norm1(xs), output_attentions=output_attentions)
        res_s, weights = res_s if output_attentions else (res_s, None)
        res_s = self.drop_path(res_s)
        cls_res = rearrange(res_s[:, :1], "(b t) 1 d -> b t d", b=b).mean(1, keepdim=True)
        patch_res = rearrange(res_s[:, 1:], "(b t) p d -> b (p t) d", b=b)
        x = torch.cat([cls, patches], 1) + torch.cat([cls_res, patch_res], 1)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, weights) if output_attentions else x


class TimeSformerEncoder(VideoEncoder):
    config_class = TimeSformerConfig
    xavier_init = True

    def __init__(self, config: TimeSformerConfig):
        super().__init__(config)
        c = config
        g = c.image_size // c.patch_size
        if getattr(c, "conv_stem", False):
            self.patch_embed = ConvStem(c.num_channels, c.hidden_size, c.patch_size)
        else:
            self.patch_embed = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g + 1, c.hidden_size))
        self.time_embed = nn.Parameter(torch.zeros(1, c.num_frames, c.hidden_size))
        self.drop = nn.Dropout(c.hidden_dropout_prob)
        rates = stochastic_depth_rates(c.drop_path_rate, c.num_hidden_layers)
        if c.attention_type == "divided_space_time":
            self.blocks = nn.ModuleList(DividedBlock(c, rates[i]) for i in range(c.num_hidden_layers))
        else:
            self.blocks = nn.ModuleList(
                Block(c.hidden_size, c.num_attention_heads, c.intermediate_size, "qkv" if c.qkv_bias else "none",
                      c.layer_norm_eps, c.hidden_dropout_prob, c.attention_probs_dropout_prob, rates[i])  # fmt: skip
                for i in range(c.num_hidden_layers)
            )
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self:
            for p in (self.cls_token, self.pos_embed, self.time_embed):
                nn.init.trunc_normal_(p, std=self.config.initializer_range)

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        self.check_video(video)
        b, t, _, h, w = video.shape
        c = self.config
        self.check_patch_grid(h, w)
        video = normalize_video(video, c.pixel_mean, c.pixel_std)
        x = self.patch_embed(rearrange(video, "b t c h w -> (b t) c h w"))
        gh, gw = x.shape[-2:]
        x = rearrange(x, "bt d h w -> bt (h w) d")
        g0 = c.image_size // c.patch_size
        pos = self.pos_embed
        patch_pos = resize_grid_embedding(pos[:, 1:], (g0, g0), (gh, gw))
        x = self.drop(x + patch_pos)
        cls = self.cls_token + pos[:, :1]
        x = rearrange(x, "(b t) p d -> (b p) t d", b=b)
        x = self.drop(x + resize_grid_embedding(self.time_embed, (c.num_frames,), (t,)))
        x = rearrange(x, "(b p) t d -> b (p t) d", b=b)
        x = torch.cat([cls.expand(b, -1, -1), x], dim=1)
        divided = {"t": t} if c.attention_type == "divided_space_time" else {}
        x, hidden, attentions = run_blocks(self.blocks, x, output_hidden_states, output_attentions, **divided)
        x = self.norm(x)
        grids = ((t, gh, gw),) * len(hidden) if hidden else None
        return EncoderOutput(tokens=x, pooled=x[:, 0], hidden_states=hidden, attentions=attentions, grids=grids)

    def grid_tokens(self, out: EncoderOutput, layer: int = -1) -> torch.Tensor:
        """Tokens are a class token, then patch-major, frame-minor: drop the class token."""
        if out.hidden_states is None or out.grids is None:
            raise ConfigError("grid_tokens needs the encoder's output with output_hidden_states=True")
        t, h, w = out.grids[layer]
        return rearrange(out.hidden_states[layer][:, 1:], "b (h w t) d -> b t h w d", t=t, h=h, w=w)

    @classmethod
    def from_transformers(cls, name_or_path, **overrides) -> "TimeSformerEncoder":
        hf_config, hf = load_transformers_checkpoint(name_or_path, "timesformer")
        config = TimeSformerConfig(**vit_fields_from(hf_config), qkv_bias=hf_config.qkv_bias, attention_type=hf_config.attention_type)
        config.update(overrides)
        model = cls(config)
        load_converted(model, convert_timesformer_state(hf, config.num_hidden_layers), name_or_path)
        return model


def convert_timesformer_state(hf: dict, layers: int) -> dict:
    """Rename a transformers ``TimesformerModel`` state dict to ``TimeSformerEncoder`` keys."""
    out = {
        "cls_token": hf["embeddings.cls_token"],
        "pos_embed": hf["embeddings.position_embeddings"],
        "patch_embed.weight": hf["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.bias": hf["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hf["layernorm.weight"],
        "norm.bias": hf["layernorm.bias"],
    }
    if "embeddings.time_embeddings" in hf:
        out["time_embed"] = hf["embeddings.time_embeddings"]
    names = {
        "attention.output.dense": "attn.to_out",
        "temporal_attention.output.dense": "temporal_attn.to_out",
        "temporal_layernorm": "temporal_norm",
        "temporal_dense": "temporal_fc",
        "layernorm_before": "norm1",
        "layernorm_after": "norm2",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
    }
    for i in range(layers):
        for fused, attn in (("attention.attention.qkv", "attn"), ("temporal_attention.attention.qkv", "temporal_attn")):
            for kind in ("weight", "bias"):  # transformers keeps one fused qkv projection
                key = f"encoder.layer.{i}.{fused}.{kind}"
                if key in hf:
                    for to, chunk in zip(("to_q", "to_k", "to_v"), hf[key].chunk(3)):
                        out[f"blocks.{i}.{attn}.{to}.{kind}"] = chunk
        for a, b in names.items():
            for kind in ("weight", "bias"):
                key = f"encoder.layer.{i}.{a}.{kind}"
                if key in hf:
                    out[f"blocks.{i}.{b}.{kind}"] = hf[key]
    return out
