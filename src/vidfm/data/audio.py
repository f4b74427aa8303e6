"""Audio features for video models: log-mel spectrograms, and the alignment to video frames
that audio-driven generators (Hallo, EchoMimic, SadTalker) use.

Log-mel is computed in PyTorch (``torch.stft`` and transformers' mel filter bank): the
torchaudio wheel does not load beside this CPU torch, and nothing here needs it.

Alignment, as the anchors do it: features are resampled to ``ceil(seconds x fps)`` steps
(one per video frame), each frame takes a window of +-2 frames around it, and for a causal
video VAE that compresses time by ``f`` the frames are packed per latent frame (the first
latent frame holds frame 0 alone, each later one ``f`` frames). One difference, and why:
the anchors interpolate 50 Hz wav2vec features to 25 fps linearly; at the world's 8 fps a
linear sample of a 100 Hz spectrogram would skip a 10 ms click, so each frame here keeps
``steps_per_frame`` area-averaged sub-steps instead of one sampled point.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError
from vidfm.io.audio import Audio

SILENCE_DB = -8.0  # natural-log floor of the mel power: what zero samples give


def log_mel(audio: Audio, n_mels: int = 40, hop_seconds: float = 0.01, window_seconds: float = 0.025, fmin: float = 50.0) -> torch.Tensor:
    """``(channels, steps, n_mels)`` natural-log mel power, one step per ``hop_seconds``
    (centred frames, Hann window), floored at ``SILENCE_DB``."""
    from transformers.audio_utils import mel_filter_bank

    hop = max(1, int(round(hop_seconds * audio.rate)))
    win = max(hop, int(round(window_seconds * audio.rate)))
    n_fft = 1 << (win - 1).bit_length()
    filters = torch.from_numpy(
        mel_filter_bank(n_fft // 2 + 1, n_mels, fmin, audio.rate / 2, audio.rate, norm="slaney", mel_scale="slaney")
    ).float()  # (freq, n_mels)
    x = torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32))
    if x.shape[1] < n_fft:
        x = F.pad(x, (0, n_fft - x.shape[1]))
    spec = torch.stft(x, n_fft, hop, win, torch.hann_window(win), center=True, pad_mode="constant", return_complex=True)
    power = spec.abs().pow(2).transpose(1, 2) @ filters  # (C, steps, n_mels)
    return power.clamp(min=math.exp(SILENCE_DB)).log()


def frames_for(seconds: float, fps: float) -> int:
    """How many video frames ``seconds`` of audio covers: ``ceil(seconds x fps)``."""
    return max(1, math.ceil(round(seconds * fps, 6)))


def align_to_frames(features: torch.Tensor, num_frames: int, steps_per_frame: int = 4, window: int = 2) -> torch.Tensor:
    """Per video frame, the audio around it.

    features: ``(C, S, D)`` (e.g. ``log_mel``) covering the same time span as the frames.
    Returns ``(num_frames, 2 * window + 1, C * steps_per_frame * D)``: for frame ``i`` the
    features of frames ``i - window .. i + window`` (edge frames repeated, as the anchors
    pad), each frame's ``steps_per_frame`` sub-steps area-averaged so no short sound is lost.
    """
    if features.ndim != 3:
        raise ConfigError(f"audio features must be (channels, steps, dims), got {tuple(features.shape)}")
    c, s, d = features.shape
    x = features.permute(0, 2, 1).reshape(1, c * d, s)
    x = F.interpolate(x, size=num_frames * steps_per_frame, mode="area") if s >= num_frames * steps_per_frame else \
        F.interpolate(x, size=num_frames * steps_per_frame, mode="linear", align_corners=False)  # fmt: skip
    per_frame = x.reshape(c, d, num_frames, steps_per_frame).permute(2, 0, 3, 1).reshape(num_frames, -1)
    idx = (torch.arange(num_frames)[:, None] + torch.arange(-window, window + 1)[None]).clamp(0, num_frames - 1)
    return per_frame[idx]


def pack_to_latent_frames(aligned: torch.Tensor, temporal_factor: int) -> torch.Tensor:
    """``(T, K, D)`` frame-aligned features -> ``(1 + (T - 1) / f, f * K, D)``: the tokens each
    latent frame of a causal VAE (first frame kept alone, then ``f`` frames per latent)
    attends to. The first latent frame's single frame is repeated ``f`` times."""
    t = aligned.shape[0]
    f = temporal_factor
    if f < 1 or (t - 1) % f:
        raise ConfigError(f"{t} frames do not pack into latent frames of {f} (need 1 + a multiple of {f})")
    first = aligned[:1].repeat(f, 1, 1).reshape(1, f * aligned.shape[1], -1)
    rest = aligned[1:].reshape((t - 1) // f, f * aligned.shape[1], -1)
    return torch.cat([first, rest])


def frame_features(audio: Audio, num_frames: int, fps: float, start: float = 0.0, *, n_mels: int = 40, steps_per_frame: int = 4,
                   window: int = 2, channels: int = 2) -> torch.Tensor:
    """``align_to_frames`` of the audio under ``num_frames`` frames from ``start`` seconds,
    as ``channels`` channels (stereo keeps where a sound is; mono is down-mixed, and a mono
    track is duplicated for stereo). Missing audio past the end is silence."""
    if channels not in (1, 2):
        raise ConfigError(f"channels must be 1 or 2, got {channels}")
    samples = audio.samples if audio.channels == channels else (
        audio.samples.mean(0, keepdims=True) if channels == 1 else np.repeat(audio.samples[:1], 2, 0))  # fmt: skip
    a = int(round(start * audio.rate))
    n = int(round(num_frames / fps * audio.rate))
    clip = np.zeros((channels, n), np.float32)
    part = samples[:, max(a, 0) : max(a, 0) + n - max(-a, 0)]
    clip[:, max(-a, 0) : max(-a, 0) + part.shape[1]] = part
    return align_to_frames(log_mel(Audio(clip, audio.rate), n_mels=n_mels), num_frames, steps_per_frame, window)


AUDIO_RATE = 16000  # what the world is rendered at and audio models resample to
DENOISER_AUDIO_DIM = 2 * 4 * 40  # stereo x steps_per_frame x n_mels: frame_features' defaults


def latent_audio_features(audio: Audio, num_frames: int, fps: float, temporal_factor: int, start: float = 0.0) -> torch.Tensor:
    """What an audio-conditioned denoiser takes for a clip of ``num_frames`` frames from
    ``start`` s: ``(latent frames, temporal_factor x 5, DENOISER_AUDIO_DIM)``, log-mel / 4
    (so silence is -2 and all zeros can mean "no audio")."""
    return pack_to_latent_frames(frame_features(audio, num_frames, fps, start), temporal_factor) / 4.0
