"""Audio-visual networks: a SyncNet-style sync model and an audio-visual action classifier.

SyncNet (Chung & Zisserman, 2016) embeds a 5-frame video window and the audio under it in
one space, so that the audio that belongs to the frames is nearest; sweeping the audio
against the video then finds the offset. Here the video tower is a small 3D CNN over RGB
and frame differences (what moves is what sounds), the audio tower a 2D CNN over the
frame-aligned log-mel window (``vidfm.data.audio.align_to_frames``); both end L2-normalised.

Shapes: ``video (B, 3, 5, S, S)`` float in [0, 1]; ``audio (B, 5, D)`` frame-aligned
features (``D = channels x steps_per_frame x n_mels``); embeddings ``(B, E)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from vidfm.data.audio import SILENCE_DB


def normalise_log_mel(x: torch.Tensor) -> torch.Tensor:
    """Log-mel with silence at 0 and speech-level sounds near 1..2."""
    return (x - SILENCE_DB) / 4.0


def _conv3d(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


def _conv2d(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VideoTower(nn.Module):
    """(B, 3, T, S, S) -> (B, E): RGB and its frame differences, spatial strides only, so
    the timing inside the window survives to the last layer."""

    def __init__(self, frames: int, width: int, embed_dim: int):
        super().__init__()
        self.convs = nn.Sequential(_conv3d(6, width, (1, 2, 2)), _conv3d(width, 2 * width, (1, 2, 2)), _conv3d(2 * width, 2 * width, (1, 2, 2)))
        self.pool = nn.AdaptiveAvgPool3d((frames, 2, 2))
        self.proj = nn.Linear(2 * width * frames * 4, embed_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        diff = torch.cat([torch.zeros_like(video[:, :, :1]), video.diff(dim=2)], dim=2)
        x = self.pool(self.convs(torch.cat([video, diff * 4.0], dim=1)))
        return self.proj(x.flatten(1))


class AudioTower(nn.Module):
    """(B, T, C * steps * n_mels) -> (B, E): the window as a (C, T * steps, n_mels) image."""

    def __init__(self, channels: int, steps_per_frame: int, n_mels: int, frames: int, width: int, embed_dim: int):
        super().__init__()
        self.channels, self.steps, self.n_mels = channels, steps_per_frame, n_mels
        self.convs = nn.Sequential(_conv2d(channels, width, (1, 2)), _conv2d(width, 2 * width, (1, 2)), _conv2d(2 * width, 2 * width, (2, 2)))
        self.pool = nn.AdaptiveAvgPool2d((frames, 2))
        self.proj = nn.Linear(2 * width * frames * 2, embed_dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = rearrange(audio, "b t (c s m) -> b c (t s) m", c=self.channels, s=self.steps, m=self.n_mels)
        return self.proj(self.pool(self.convs(normalise_log_mel(x))).flatten(1))


class SyncNet(ModelMixin, ConfigMixin):
    """Embeds a video window and an audio window; the matching pair is nearest."""

    @register_to_config
    def __init__(self, frames: int = 5, size: int = 32, channels: int = 2, steps_per_frame: int = 4, n_mels: int = 40,
                 width: int = 32, embed_dim: int = 128, fps: float = 8.0, sample_rate: int = 16000):  # fmt: skip
        super().__init__()
        self.video_tower = VideoTower(frames, width, embed_dim)
        self.audio_tower = AudioTower(channels, steps_per_frame, n_mels, frames, width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.3))  # exp -> 10: CLIP-style temperature

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_tower(video), dim=-1)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_tower(audio), dim=-1)


class AVClassifier(ModelMixin, ConfigMixin):
    """Action from sound, from frames, or both (late fusion of the two towers' pooled
    embeddings). Each modality has its own head as well, so one model reports all three;
    trained with modality dropout so the fused head copes when one input is degraded."""

    @register_to_config
    def __init__(self, num_classes: int = 12, frames: int = 16, channels: int = 2, steps_per_frame: int = 4, n_mels: int = 40,
                 width: int = 32, embed_dim: int = 128, labels: tuple = ()):  # fmt: skip
        super().__init__()
        self.video_tower = VideoTower(frames, width, embed_dim)
        self.audio_tower = AudioTower(channels, steps_per_frame, n_mels, frames, width, embed_dim)
        self.video_head = nn.Linear(embed_dim, num_classes)
        self.audio_head = nn.Linear(embed_dim, num_classes)
        self.fused_head = nn.Sequential(nn.Linear(2 * embed_dim, embed_dim), nn.ReLU(inplace=True), nn.Linear(embed_dim, num_classes))

    def forward(self, video: torch.Tensor, audio: torch.Tensor, drop_video: torch.Tensor | None = None, drop_audio: torch.Tensor | None = None) -> dict:
        """video (B, 3, T, S, S), audio (B, T, D) (the whole clip, one aligned step per
        frame); ``drop_*`` (B,) bool zero that modality's embedding for the fused head."""
        v, a = self.video_tower(video), self.audio_tower(audio)
        vf = v if drop_video is None else v * (~drop_video).float()[:, None]
        af = a if drop_audio is None else a * (~drop_audio).float()[:, None]
        return {"video": self.video_head(v), "audio": self.audio_head(a), "fused": self.fused_head(torch.cat([vf, af], dim=1))}
