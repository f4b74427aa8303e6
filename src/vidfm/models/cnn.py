"""Convolutional video encoders: R(2+1)D, TSN (2D CNN + temporal modelling) and SlowFast.

They share one residual block whose convolution is chosen per family: factorised
(2+1)D (spatial 1xkxk then temporal kx1x1), plain 2D (per frame), or 3D with a temporal
kernel of 1 or 3 (SlowFast's slow pathway uses 1 in its early stages, as in the paper).
``blocks`` is the list of stages, bottom first, for freezing policies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vidfm.errors import ConfigError
from vidfm.models.common import (
    DropPath,
    EncoderOutput,
    VideoEncoder,
    VideoEncoderConfig,
    stochastic_depth_rates,
)


def conv2plus1d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Spatial 1x3x3 then temporal 3x1x1, with the paper's parameter-matching mid width."""
    mid = max(1, (cin * cout * 27) // (cin * 9 + 3 * cout))
    return nn.Sequential(
        nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


def conv3d(cin: int, cout: int, stride: int = 1, kt: int = 3, temporal_stride: bool = True) -> nn.Conv3d:
    st = stride if temporal_stride else 1
    return nn.Conv3d(cin, cout, (kt, 3, 3), (st, stride, stride), (kt // 2, 1, 1), bias=False)


def temporal_shift(x: torch.Tensor, fold_div: int = 8) -> torch.Tensor:
    """TSM (Lin et al., 2019): on (B, C, T, H, W), move 1/``fold_div`` of the channels one
    frame back in time and another 1/``fold_div`` one frame forward (zero-filled at the
    ends), so the per-frame 2D convolution that follows mixes neighbouring frames at no
    extra cost. This is what lets a 2D CNN see motion rather than only appearance."""
    f = x.shape[1] // fold_div
    out = torch.zeros_like(x)
    out[:, :f, :-1] = x[:, :f, 1:]  # from the next frame
    out[:, f : 2 * f, 1:] = x[:, f : 2 * f, :-1]  # from the previous frame
    out[:, 2 * f :] = x[:, 2 * f :]
    return out


class ResBlock(GradientCheckpointingLayer):
    """Basic residual block on (B, C, T, H, W) with a pluggable convolution. ``shift``
    applies TSM's temporal shift to the residual branch's input (the shortcut is untouched)."""

    def __init__(self, cin: int, cout: int, stride: int, kind: str, drop_path: float = 0.0, kt: int = 3, shift: bool = False):
        super().__init__()
        self.shift = shift
        if kind == "2plus1d":
            self.conv1, self.conv2 = conv2plus1d(cin, cout, stride), conv2plus1d(cout, cout)
            t_stride = stride
        elif kind == "3d":  # SlowFast: keep the time axis, kernel kt
            self.conv1, self.conv2 = conv3d(cin, cout, stride, kt, False), conv3d(cout, cout, 1, kt, False)
            t_stride = 1
        elif kind == "2d":
            self.conv1, self.conv2 = conv3d(cin, cout, stride, 1, False), conv3d(cout, cout, 1, 1, False)
            t_stride = 1
        else:
            raise ConfigError(f"unknown block kind {kind!r}")
        self.bn1, self.bn2 = nn.BatchNorm3d(cout), nn.BatchNorm3d(cout)
        self.drop_path = DropPath(drop_path)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv3d(cin, cout, 1, (t_stride, stride, stride), bias=False), nn.BatchNorm3d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(temporal_shift(x) if self.shift else x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(self.shortcut(x) + self.drop_path(y), inplace=True)


def make_stages(widths, layers, stem_width, kind, drop_path_rate, kts=None, shift: bool = False) -> nn.ModuleList:
    rates = iter(stochastic_depth_rates(drop_path_rate, sum(layers)))
    stages, cin = [], stem_width
    for i, (w, n) in enumerate(zip(widths, layers)):
        kt = kts[i] if kts else 3
        blocks = [ResBlock(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1, kind, next(rates), kt, shift) for j in range(n)]
        stages.append(nn.Sequential(*blocks))
        cin = w
    return nn.ModuleList(stages)


def _cnn_config_fields(self, widths, layers, stem_width, drop_path_rate):
    if len(widths) != len(layers) or not widths:
        raise ConfigError(f"widths {widths} and layers {layers} must be non-empty and of equal length")
    self.widths, self.layers, self.stem_width, self.drop_path_rate = list(widths), list(layers), stem_width, drop_path_rate


# ---------------------------------------------------------------------------------------
class R2Plus1DConfig(VideoEncoderConfig):
    model_type = "vidfm_r2plus1d"

    def __init__(self, widths=(16, 32, 64, 128), layers=(1, 1, 1, 1), stem_width=16, drop_path_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        _cnn_config_fields(self, widths, layers, stem_width, drop_path_rate)
        self.hidden_size = self.widths[-1]


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) feature map -> (B, T*H*W, C) tokens."""
    return rearrange(x, "b c t h w -> b (t h w) c")


class _StagedCNN(VideoEncoder):
    """A stem followed by ``blocks`` (stages) on (B, C, T, H, W)."""

    def features(self, video: torch.Tensor, output_hidden_states: bool = False):
        """The last feature map, and (with ``output_hidden_states``) the stem's and every
        stage's output as tokens, with their (t, h, w) grids."""
        self.check_video(video)
        x = self.stem(rearrange(video, "b t c h w -> b c t h w"))
        maps = [x]
        for stage in self.blocks:
            x = stage(x)
            maps.append(x)
        if not output_hidden_states:
            return x, None, None
        return x, tuple(as_tokens(m) for m in maps), tuple(tuple(m.shape[2:]) for m in maps)


class R2Plus1DEncoder(_StagedCNN):
    """R(2+1)D: every 3D convolution factorised into spatial 2D + temporal 1D (Tran et al.)."""

    config_class = R2Plus1DConfig

    def __init__(self, config: R2Plus1DConfig):
        super().__init__(config)
        c = config
        self.stem = nn.Sequential(
            nn.Conv3d(c.num_channels, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, c.stem_width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(c.stem_width),
            nn.ReLU(inplace=True),
        )
        self.blocks = make_stages(c.widths, c.layers, c.stem_width, "2plus1d", c.drop_path_rate)
        self.post_init()

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        x, hidden, grids = self.features(video, output_hidden_states)
        return EncoderOutput(tokens=as_tokens(x), pooled=x.mean((2, 3, 4)), hidden_states=hidden, grids=grids)


# ---------------------------------------------------------------------------------------
class TSNConfig(VideoEncoderConfig):
    model_type = "vidfm_tsn"

    def __init__(self, widths=(16, 32, 64, 128), layers=(1, 1, 1, 1), stem_width=16, temporal="tconv", spatial_grid=1,
                 temporal_shift=False, drop_path_rate=0.0, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        _cnn_config_fields(self, widths, layers, stem_width, drop_path_rate)
        if temporal not in ("avg", "tconv", "lstm"):
            raise ConfigError(f"TSN temporal modelling must be avg, tconv or lstm, got {temporal!r}")
        if spatial_grid < 1:
            raise ConfigError(f"spatial_grid must be >= 1, got {spatial_grid}")
        self.temporal = temporal
        self.spatial_grid = spatial_grid
        self.temporal_shift = temporal_shift
        self.hidden_size = self.widths[-1]


class TSNEncoder(_StagedCNN):
    """A 2D CNN applied to every frame, then temporal modelling over the frame features:
    ``avg`` (TSN's segmental consensus), ``tconv`` (residual temporal convolution) or
    ``lstm``. Tokens are the per-frame features (B, T, D).

    ``spatial_grid=1`` is classic TSN: one average per frame, which discards *where* things
    are, so translation (move left vs right) is invisible to the temporal model; the paper
    adds an optical-flow stream for motion. ``spatial_grid=g`` pools each frame to a g x g
    grid and projects it back to D, keeping coarse positions. ``temporal_shift=True`` makes
    it TSM: every residual block shifts part of its channels across neighbouring frames,
    so the 2D CNN itself sees motion (the ``tsm-tiny`` preset)."""

    config_class = TSNConfig

    def __init__(self, config: TSNConfig):
        super().__init__(config)
        c = config
        self.stem = nn.Sequential(
            nn.Conv3d(c.num_channels, c.stem_width, (1, 5, 5), (1, 2, 2), (0, 2, 2), bias=False),
            nn.BatchNorm3d(c.stem_width),
            nn.ReLU(inplace=True),
        )
        self.blocks = make_stages(c.widths, c.layers, c.stem_width, "2d", c.drop_path_rate, shift=c.temporal_shift)
        d = c.hidden_size
        g = c.spatial_grid
        self.grid_proj = nn.Linear(d * g * g, d) if g > 1 else None
        if c.temporal == "tconv":
            self.temporal = nn.Sequential(nn.Conv1d(d, d, 3, padding=1), nn.GELU(), nn.Conv1d(d, d, 3, padding=1))
        elif c.temporal == "lstm":
            self.temporal = nn.LSTM(d, d, batch_first=True)
        else:
            self.temporal = None
        self.post_init()

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        x, hidden, grids = self.features(video, output_hidden_states)
        if self.grid_proj is None:
            frames = rearrange(x.mean((3, 4)), "b c t -> b t c")
        else:
            g = self.config.spatial_grid
            pooled = F.adaptive_avg_pool3d(x, (x.shape[2], g, g))
            frames = self.grid_proj(rearrange(pooled, "b c t h w -> b t (c h w)"))
        if self.config.temporal == "tconv":
            frames = frames + rearrange(self.temporal(rearrange(frames, "b t c -> b c t")), "b c t -> b t c")
        elif self.config.temporal == "lstm":
            frames = self.temporal(frames)[0]
        if hidden:
            hidden, grids = hidden + (frames,), grids + ((frames.shape[1], 1, 1),)
        return EncoderOutput(tokens=frames, pooled=frames.mean(1), hidden_states=hidden, grids=grids)


# ---------------------------------------------------------------------------------------
class SlowFastConfig(VideoEncoderConfig):
    model_type = "vidfm_slowfast"

    def __init__(
        self,
        widths=(16, 32, 64, 128),
        layers=(1, 1, 1, 1),
        stem_width=16,
        alpha: int = 4,
        beta_inv: int = 8,
        slow_temporal_kernels=(1, 1, 3, 3),
        drop_path_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _cnn_config_fields(self, widths, layers, stem_width, drop_path_rate)
        if alpha < 1 or beta_inv < 1:
            raise ConfigError(f"SlowFast needs alpha >= 1 and beta_inv >= 1, got {alpha}, {beta_inv}")
        self.alpha, self.beta_inv = alpha, beta_inv
        self.slow_temporal_kernels = list(slow_temporal_kernels)[: len(self.widths)]
        self.hidden_size = self.widths[-1] + max(1, self.widths[-1] // beta_inv)


class SlowFastEncoder(VideoEncoder):
    """Two pathways (Feichtenhofer et al.): *slow* sees every ``alpha``-th frame with many
    channels, *fast* sees every frame with ``1/beta_inv`` of the channels; time-strided
    lateral convolutions feed fast into slow after the stem and each stage but the last.
    Tokens concatenate slow features with fast features pooled to the slow frame rate."""

    config_class = SlowFastConfig

    def __init__(self, config: SlowFastConfig):
        super().__init__(config)
        c = config
        fw = [max(1, w // c.beta_inv) for w in c.widths]
        fstem = max(1, c.stem_width // c.beta_inv)

        def stem(cout, kt):
            return nn.Sequential(
                nn.Conv3d(c.num_channels, cout, (kt, 5, 5), (1, 2, 2), (kt // 2, 2, 2), bias=False),
                nn.BatchNorm3d(cout),
                nn.ReLU(inplace=True),
            )

        def lateral(cin):
            return nn.Conv3d(cin, 2 * cin, (5, 1, 1), (c.alpha, 1, 1), (2, 0, 0), bias=False)

        self.slow_stem, self.fast_stem = stem(c.stem_width, 1), stem(fstem, 5)
        self.laterals = nn.ModuleList([lateral(fstem)] + [lateral(w) for w in fw[:-1]])
        slow_in = [c.stem_width + 2 * fstem] + [w + 2 * f for w, f in zip(c.widths[:-1], fw[:-1])]
        fast_stages = make_stages(fw, c.layers, fstem, "3d", c.drop_path_rate)
        pairs = []
        for i, (w, n) in enumerate(zip(c.widths, c.layers)):
            kt = c.slow_temporal_kernels[i] if i < len(c.slow_temporal_kernels) else 3
            stride = 1 if i == 0 else 2
            slow_stage = nn.Sequential(
                *[ResBlock(slow_in[i] if j == 0 else w, w, stride if j == 0 else 1, "3d", 0.0, kt) for j in range(n)]
            )
            pairs.append(nn.ModuleList([slow_stage, fast_stages[i]]))
        self.blocks = nn.ModuleList(pairs)  # stage i = (slow, fast)
        self.post_init()

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        """Hidden states are the slow pathway's stem and stage outputs, each with the fast
        pathway's features pooled to its grid and appended."""
        self.check_video(video)
        x = rearrange(video, "b t c h w -> b c t h w")
        t = x.shape[2]
        if t % self.config.alpha:
            raise ConfigError(f"SlowFast needs a frame count divisible by alpha={self.config.alpha}, got {t}")
        slow, fast = self.slow_stem(x[:, :, :: self.config.alpha]), self.fast_stem(x)

        def fused():
            return as_tokens(torch.cat([slow, F.adaptive_avg_pool3d(fast, slow.shape[2:])], 1))

        hidden, grids = ([fused()], [tuple(slow.shape[2:])]) if output_hidden_states else (None, None)
        for i, (s_stage, f_stage) in enumerate(self.blocks):
            slow = s_stage(torch.cat([slow, self.laterals[i](fast)], 1))
            fast = f_stage(fast)
            if hidden is not None:
                hidden.append(fused())
                grids.append(tuple(slow.shape[2:]))
        return EncoderOutput(tokens=fused(), pooled=torch.cat([slow.mean((2, 3, 4)), fast.mean((2, 3, 4))], 1),
                             hidden_states=tuple(hidden) if hidden else None, grids=tuple(grids) if grids else None)  # fmt: skip
