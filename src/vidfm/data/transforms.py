"""Video augmentation: parameters drawn once per clip and applied to every frame.

Why our own and not torchvision/kornia: torchvision does not import beside the pinned CPU
torch wheel, and kornia draws from the global RNG. Here every random transform takes an
explicit ``torch.Generator``, so a clip's augmentation is reproducible from a seed and
identical across its frames (a per-frame crop or flip would destroy the motion signal).

Clips are float tensors ``(T, C, H, W)`` in [0, 1]; batch-level MixUp/CutMix take
``(B, T, C, H, W)``. Temporal augmentation works on frame *indices* before decoding, so
only the frames that are kept are ever decoded.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError

KINETICS_MEAN = (0.485, 0.456, 0.406)
KINETICS_STD = (0.229, 0.224, 0.225)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def to_float_clip(frames) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 array/tensor -> ``(T, 3, H, W)`` float32 in [0, 1]."""
    t = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ConfigError(f"expected uint8 frames (T, H, W, 3), got shape {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def clips_from_arrays(videos, num_frames: int, size: int) -> torch.Tensor:
    """In-memory videos ``(N, T, H, W, 3)`` uint8 -> a model's input ``(N, num_frames, 3,
    size, size)`` float in [0, 1]: frames sampled uniformly, resized (antialiased bilinear)."""
    from vidfm.io.samplers import uniform_indices

    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3:
        raise ConfigError(f"expected videos (N, T, H, W, 3), got shape {videos.shape}")
    clips = torch.from_numpy(videos[:, uniform_indices(videos.shape[1], num_frames)]).permute(0, 1, 4, 2, 3).float().div(255.0)
    if clips.shape[-2:] != (size, size):
        n, t = clips.shape[:2]
        clips = F.interpolate(clips.flatten(0, 1), size=(size, size), mode="bilinear", antialias=True, align_corners=False).unflatten(0, (n, t))
    return clips


# ---------------------------------------------------------------------------------------
# Temporal (on indices)
# ---------------------------------------------------------------------------------------
class TemporalAugment:
    """Jitter each index by up to ±``jitter`` frames, change speed by a factor drawn from
    ``speed`` (indices stretched about their centre: >1 plays faster, covering more of the
    video), and reverse playback with probability ``reverse_p``. Counts are preserved."""

    def __init__(self, jitter: int = 3, speed: tuple[float, float] = (0.8, 1.2), reverse_p: float = 0.0):
        if jitter < 0 or not 0 < speed[0] <= speed[1] or not 0 <= reverse_p <= 1:
            raise ConfigError(f"bad temporal augmentation: jitter={jitter}, speed={speed}, reverse_p={reverse_p}")
        self.jitter, self.speed, self.reverse_p = jitter, speed, reverse_p

    def __call__(self, indices: Sequence[int], num_frames: int, g: torch.Generator) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.float64)
        factor = _uniform(g, *self.speed)
        centre = idx.mean()
        idx = centre + (idx - centre) * factor
        if self.jitter:
            idx = idx + torch.randint(-self.jitter, self.jitter + 1, (len(idx),), generator=g).numpy()
        idx = np.sort(np.clip(np.round(idx), 0, num_frames - 1)).astype(np.int64)
        if float(torch.rand((), generator=g)) < self.reverse_p:
            idx = idx[::-1].copy()
        return idx


# ---------------------------------------------------------------------------------------
# Spatial and photometric (on clips)
# ---------------------------------------------------------------------------------------
class Resize:
    """Resize the short side to ``size`` (int) or to exactly ``(h, w)``."""

    def __init__(self, size: int | tuple[int, int]):
        self.size = size

    def __call__(self, clip: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        if isinstance(self.size, int):
            s = self.size / min(h, w)
            out = (max(1, round(h * s)), max(1, round(w * s)))
        else:
            out = tuple(self.size)
        if out == (h, w):
            return clip
        return F.interpolate(clip, size=out, mode="bilinear", align_corners=False, antialias=True)


class CenterCrop:
    def __init__(self, size: int | tuple[int, int]):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, clip: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        top, left = (h - ch) // 2, (w - cw) // 2
        return clip[..., top : top + ch, left : left + cw]


class RandomResizedCrop:
    """One box per clip (area ``scale`` x aspect ``ratio`` of the frame), resized to ``size``."""

    def __init__(self, size: int | tuple[int, int], scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = scale, ratio

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        h, w = clip.shape[-2:]
        for _ in range(10):
            area = h * w * _uniform(g, *self.scale)
            aspect = math.exp(_uniform(g, math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (), generator=g))
                left = int(torch.randint(0, w - cw + 1, (), generator=g))
                break
        else:
            ch, cw, top, left = h, w, 0, 0
        crop = clip[..., top : top + ch, left : left + cw]
        return F.interpolate(crop, size=self.size, mode="bilinear", align_corners=False, antialias=True)


class HorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return clip.flip(-1) if float(torch.rand((), generator=g)) < self.p else clip


class ColorJitter:
    """Brightness, contrast and saturation each scaled by a factor in [1-x, 1+x] (default
    ±15 %), the same factors for the whole clip."""

    def __init__(self, brightness: float = 0.15, contrast: float = 0.15, saturation: float = 0.15):
        self.b, self.c, self.s = brightness, contrast, saturation

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        out = clip * _uniform(g, 1 - self.b, 1 + self.b)
        mean = out.mean(dim=(-3, -2, -1), keepdim=True)
        out = (out - mean) * _uniform(g, 1 - self.c, 1 + self.c) + mean
        grey = (out * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(-3, keepdim=True)
        out = (out - grey) * _uniform(g, 1 - self.s, 1 + self.s) + grey
        return out.clamp(0.0, 1.0)


class ElasticDeform:
    """A smooth random displacement field (``alpha`` pixels, smoothness ``sigma`` pixels),
    one field for every frame of the clip."""

    def __init__(self, alpha: float = 4.0, sigma: float = 6.0, p: float = 1.0):
        self.alpha, self.sigma, self.p = alpha, sigma, p

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if float(torch.rand((), generator=g)) >= self.p:
            return clip
        t, c, h, w = clip.shape
        coarse = (max(2, round(h / self.sigma)), max(2, round(w / self.sigma)))
        field = torch.rand((1, 2, *coarse), generator=g) * 2 - 1
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)
        field = field * torch.tensor([2 * self.alpha / w, 2 * self.alpha / h]).view(1, 2, 1, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        grid = torch.stack([xs, ys], dim=-1)[None] + field.permute(0, 2, 3, 1)
        return F.grid_sample(clip, grid.expand(t, -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=True)


class Occlusion:
    """Blank one rectangle (up to ``max_area`` of the frame, default 20 %) at the same place
    in every frame, filled with ``value`` or the clip mean."""

    def __init__(self, max_area: float = 0.2, min_area: float = 0.02, p: float = 0.5, value: float | None = None):
        if not 0 < min_area <= max_area <= 1:
            raise ConfigError(f"occlusion area must satisfy 0 < min <= max <= 1, got {min_area}, {max_area}")
        self.min_area, self.max_area, self.p, self.value = min_area, max_area, p, value

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if float(torch.rand((), generator=g)) >= self.p:
            return clip
        h, w = clip.shape[-2:]
        area = h * w * _uniform(g, self.min_area, self.max_area)
        aspect = math.exp(_uniform(g, math.log(0.5), math.log(2.0)))
        ch = min(h, max(1, int(math.sqrt(area / aspect))))
        cw = min(w, max(1, int(area / ch)))
        top = int(torch.randint(0, h - ch + 1, (), generator=g))
        left = int(torch.randint(0, w - cw + 1, (), generator=g))
        out = clip.clone()
        out[..., top : top + ch, left : left + cw] = clip.mean() if self.value is None else self.value
        return out


class FrameDropout:
    """Modality dropout for video: blank each frame with probability ``p`` (at least one
    frame is kept), so a model learns not to rely on every frame being present."""

    def __init__(self, p: float = 0.1, value: float = 0.0):
        self.p, self.value = p, value

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        drop = torch.rand(clip.shape[0], generator=g) < self.p
        if drop.all():
            drop[int(torch.randint(0, clip.shape[0], (), generator=g))] = False
        out = clip.clone()
        out[drop] = self.value
        return out


class Normalize:
    def __init__(self, mean=KINETICS_MEAN, std=KINETICS_STD):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, clip: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        return (clip - self.mean) / self.std


class Compose:
    """Apply transforms in order with one generator, so a seed fixes the whole pipeline."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, clip: torch.Tensor, g: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
        if g is None:
            g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        for t in self.transforms:
            clip = t(clip, g)
        return clip


def train_transform(
    size: int = 64, *, scale=(0.6, 1.0), flip: bool = True, occlusion: bool = True, elastic: bool = False, normalize: bool = False
) -> Compose:
    """A sensible default training pipeline for clips of side ``size``. Turn ``flip`` off
    when labels have a left/right direction."""
    ts = [RandomResizedCrop(size, scale=scale)] + ([HorizontalFlip()] if flip else []) + [ColorJitter()]
    if elastic:
        ts.append(ElasticDeform())
    if occlusion:
        ts.append(Occlusion())
    if normalize:
        ts.append(Normalize())
    return Compose(ts)


def eval_transform(size: int = 64, *, normalize: bool = False) -> Compose:
    ts = [Resize(size), CenterCrop(size)] + ([Normalize()] if normalize else [])
    return Compose(ts)


# ---------------------------------------------------------------------------------------
# Batch mixing
# ---------------------------------------------------------------------------------------
def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if labels.ndim == 2:
        return labels.float()
    return F.one_hot(labels.long(), num_classes).float()


def mixup(videos: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 0.8, g: torch.Generator | None = None):
    """MixUp: ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)``; labels
    become the same mixture of one-hot vectors. Returns ``(videos, soft_labels, lam)``."""
    g = g or torch.Generator().manual_seed(0)
    lam = _beta(alpha, g)
    perm = torch.randperm(videos.shape[0], generator=g)
    y = _one_hot(labels, num_classes)
    return lam * videos + (1 - lam) * videos[perm], lam * y + (1 - lam) * y[perm], lam


def cutmix(videos: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 1.0, g: torch.Generator | None = None):
    """CutMix: paste one box (the same in every frame) from a shuffled partner clip; labels
    are mixed by the box's area. Returns ``(videos, soft_labels, lam)``."""
    g = g or torch.Generator().manual_seed(0)
    lam = _beta(alpha, g)
    h, w = videos.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(0, h, (), generator=g)), int(torch.randint(0, w, (), generator=g))
    top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    left, right = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    perm = torch.randperm(videos.shape[0], generator=g)
    out = videos.clone()
    out[..., top:bottom, left:right] = videos[perm][..., top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (h * w)
    y = _one_hot(labels, num_classes)
    return out, lam * y + (1 - lam) * y[perm], lam


def _beta(alpha: float, g: torch.Generator) -> float:
    """Beta(alpha, alpha) drawn by numpy seeded from ``g``, so mixing is reproducible."""
    seed = int(torch.randint(0, 2**31 - 1, (), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
