"""Frame samplers: pure functions from a video's length (or timestamps) to frame indices.

They never open files, so they are cheap to test and compose; a reader then decodes exactly
the returned indices. Every sampler returns a 1-D ``int64`` array of valid indices
(``0 <= i < num_frames``), sorted ascending. Videos shorter than what is asked for are
handled by *repeating* frames (indices repeat, counts stay exact) — never by padding with
indices that do not exist.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vidfm.errors import ConfigError

SAMPLERS = ("uniform", "random", "segments", "fps", "windows", "keyframes")


def _check(num_frames: int, **counts: int) -> None:
    if num_frames < 1:
        raise ConfigError(f"cannot sample from a video with {num_frames} frames")
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def uniform_indices(num_frames: int, num: int) -> np.ndarray:
    """``num`` frames spread evenly over the whole video: the centre of each of ``num``
    equal slices. Short videos repeat frames."""
    _check(num_frames, num=num)
    idx = np.floor((np.arange(num) + 0.5) * num_frames / num).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def random_clip_indices(
    num_frames: int, num: int, stride: int = 1, jitter: int = 3, rng=None
) -> np.ndarray:
    """A clip of ``num`` frames ``stride`` apart starting at a random frame, each index then
    moved by up to ±``jitter`` frames (clipped to the video and re-sorted). Training-time
    sampling: different every call, reproducible from ``rng``/seed."""
    _check(num_frames, num=num, stride=stride)
    if jitter < 0:
        raise ConfigError(f"jitter must be >= 0, got {jitter}")
    g = _rng(rng)
    span = (num - 1) * stride + 1
    if span > num_frames:  # squeeze the clip into the video
        base = uniform_indices(num_frames, num)
    else:
        start = int(g.integers(0, num_frames - span + 1))
        base = start + np.arange(num, dtype=np.int64) * stride
    if jitter:
        base = base + g.integers(-jitter, jitter + 1, size=num)
    return np.sort(np.clip(base, 0, num_frames - 1)).astype(np.int64)


def segment_indices(
    num_frames: int, num_segments: int, frames_per_segment: int = 1, *, train: bool = False, rng=None
) -> np.ndarray:
    """TSN / VideoGPT+ segment sampling: split the video into ``num_segments`` equal parts
    and take ``frames_per_segment`` consecutive-ish frames from each — at a random place in
    training, centred in evaluation. Returns ``num_segments * frames_per_segment`` indices."""
    _check(num_frames, num_segments=num_segments, frames_per_segment=frames_per_segment)
    g = _rng(rng) if train else None
    edges = np.linspace(0, num_frames, num_segments + 1)
    out = []
    for k in range(num_segments):
        lo, hi = edges[k], edges[k + 1]
        seg_len = hi - lo
        if g is not None:
            offsets = np.sort(g.uniform(0, seg_len, size=frames_per_segment))
        else:
            offsets = (np.arange(frames_per_segment) + 0.5) * seg_len / frames_per_segment
        out.append(np.floor(lo + offsets))
    idx = np.concatenate(out).astype(np.int64)
    return np.sort(np.clip(idx, 0, num_frames - 1))


def fps_indices(
    num_frames: int | None = None,
    src_fps: float | None = None,
    dst_fps: float = 1.0,
    *,
    timestamps: Sequence[float] | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Resample to ``dst_fps`` (e.g. 30 → 5 fps): for each output time ``k / dst_fps`` the
    frame on screen then. Give ``timestamps`` (seconds, one per frame) for variable frame
    rate files; otherwise ``num_frames`` and ``src_fps``. ``max_frames`` then thins the
    result uniformly (the VideoGPT+ "1 fps, then at most N" recipe)."""
    if dst_fps <= 0:
        raise ConfigError(f"target fps must be positive, got {dst_fps}")
    if timestamps is None:
        if num_frames is None or not src_fps or src_fps <= 0:
            raise ConfigError("fps_indices needs timestamps, or num_frames and a positive src_fps")
        _check(num_frames)
        ts = np.arange(num_frames) / float(src_fps)
        end = num_frames / float(src_fps)
    else:
        ts = np.asarray(timestamps, dtype=np.float64)
        _check(len(ts))
        if np.any(np.diff(ts) < 0):
            raise ConfigError("timestamps must be non-decreasing")
        step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0 / dst_fps
        end = ts[-1] + step
    n_out = max(1, int(np.ceil((end - ts[0]) * dst_fps - 1e-9)))
    targets = ts[0] + np.arange(n_out) / dst_fps
    idx = np.searchsorted(ts, targets + 1e-9, side="right") - 1
    idx = np.clip(idx, 0, len(ts) - 1).astype(np.int64)
    if max_frames is not None and len(idx) > max_frames:
        idx = idx[uniform_indices(len(idx), max_frames)]
    return idx


def window_indices(num_frames: int, window: int, stride: int | None = None, overlap: int = 0) -> list[np.ndarray]:
    """Dense sliding windows of ``window`` consecutive frames, each starting ``stride``
    (default ``window - overlap``) after the previous. The last window is aligned to the end
    so every frame is covered; a video shorter than a window gives one window that repeats
    its last frame."""
    _check(num_frames, window=window)
    step = stride if stride is not None else window - overlap
    if step < 1:
        raise ConfigError(f"window stride must be >= 1 (window={window}, overlap={overlap})")
    if num_frames <= window:
        return [np.minimum(np.arange(window), num_frames - 1).astype(np.int64)]
    starts = list(range(0, num_frames - window + 1, step))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [np.arange(s, s + window, dtype=np.int64) for s in starts]


def keyframe_sample(keyframes: Sequence[int], num: int | None = None) -> np.ndarray:
    """Keyframe-only sampling (cheapest to decode: no frame depends on another). ``num``
    picks that many keyframes evenly; fewer keyframes than ``num`` repeat."""
    kf = np.unique(np.asarray(keyframes, dtype=np.int64))
    if kf.size == 0:
        raise ConfigError("the video reports no keyframes")
    if num is None:
        return kf
    return kf[uniform_indices(len(kf), num)]
