"""Semantic scenes and keyframes from any per-frame features, with SceneTilling (VideoLLaMB).

SceneTilling, exactly as VideoLLaMB defines it: ``s[i] = cos(f[i], f[i+1])`` for i < T-1;
from each i walk left while s keeps rising (``s[j-1] >= s[j]``) to its left peak ``lp``,
and right likewise to ``rp``; ``depth[i] = lp + rp - 2 s[i]``. Boundaries are the i with
``depth[i] > mean(depth) + alpha * std(depth)`` (alpha 0.5), at most 15 (the deepest
kept), or the ``k`` deepest when ``k`` is given; T-1 always closes the last segment. The
streaming variant scores ``depth[i] = lp - s[i]`` (left side only), so it can decide at
frame i+1 without seeing the future. A boundary i ends a segment at frame i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidfm.errors import ConfigError

MAX_BOUNDARIES = 15


def adjacent_similarity(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ConfigError(f"features must be (frames, dims), got shape {f.shape}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return (f[:-1] * f[1:]).sum(1)


def left_peak(sim, i: int) -> float:
    """Walk left from ``i`` while the similarity keeps rising; the highest value reached."""
    lp = sim[i]
    for j in range(i - 1, -1, -1):
        if sim[j] >= lp:
            lp = sim[j]
        else:
            break
    return lp


def depth_scores(sim: np.ndarray, streaming: bool = False) -> np.ndarray:
    n = len(sim)
    depth = np.zeros(n)
    for i in range(n):
        lp = left_peak(sim, i)
        if streaming:
            depth[i] = lp - sim[i]
            continue
        rp = sim[i]
        for j in range(i + 1, n):
            if sim[j] >= rp:
                rp = sim[j]
            else:
                break
        depth[i] = lp + rp - 2 * sim[i]
    return depth


def scene_tilling(features, k: int | None = None, alpha: float = 0.5, max_boundaries: int = MAX_BOUNDARIES, streaming: bool = False) -> list[int]:
    """Segment end frames (sorted, the last is always T-1) for (T, d) ``features``."""
    t = len(features)
    if t == 0:
        raise ConfigError("no frames to segment")
    if t == 1:
        return [0]
    if k is not None and k < 0:
        raise ConfigError(f"k must be >= 0, got {k}")
    depth = depth_scores(adjacent_similarity(features), streaming)
    if k is not None:
        chosen = np.argsort(-depth, kind="stable")[: min(k, len(depth))]
    else:
        above = np.flatnonzero(depth > depth.mean() + alpha * depth.std())
        chosen = above[np.argsort(-depth[above], kind="stable")][:max_boundaries]
    return sorted({int(i) for i in chosen} | {t - 1})


def segments_from_ends(ends: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for e in ends:
        out.append((start, e))
        start = e + 1
    return out


def representative_frames(features, segments) -> list[int]:
    """Per segment, the frame whose feature is closest (cosine) to the segment's mean."""
    f = np.asarray(features, dtype=np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    picks = []
    for s, e in segments:
        centre = f[s : e + 1].mean(0)
        picks.append(s + int(np.argmax(f[s : e + 1] @ centre)))
    return picks


@dataclass
class Scenes:
    path: str
    times: np.ndarray  # seconds of each sampled frame
    frame_indices: np.ndarray  # video frame index of each sample
    segments: list[tuple[int, int]]  # inclusive ranges over the samples
    keyframes: list[int]  # one sample index per segment
    duration: float  # seconds: the last scene ends here

    def as_dict(self) -> dict:
        """Scenes tile the video: each ends where the next starts, the last at its end."""
        ends = [float(self.times[e + 1]) for _, e in self.segments[:-1]] + [self.duration]
        return {
            "path": self.path,
            "duration": self.duration,
            "scenes": [
                {"start": float(self.times[s]), "end": end, "keyframe_time": float(self.times[k]), "keyframe_frame": int(self.frame_indices[k])}
                for (s, _), end, k in zip(self.segments, ends, self.keyframes)
            ],
        }


def video_features(path, fps: float = 2.0, embedder=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(features (T, d), times, frame indices, duration) of frames sampled at ``fps``:
    colour histograms, or the embedding of each 1/fps-second window by ``embedder`` (any
    object with ``read(path, window=...)`` and ``encode_clips``, e.g. vidfm's ``Embedder``)."""
    if fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    from vidfm.io.reader import VideoReader

    if embedder is not None:
        import torch

        segs, clips = embedder.read(path, window=1.0 / fps)
        feats = embedder.encode_clips(torch.stack(clips))
        with VideoReader(path) as r:
            duration = r.duration
        return feats, np.array([s.start for s in segs]), np.array([int(s.indices[0]) for s in segs]), duration
    from vidfm.io.samplers import fps_indices
    from vidfm.shots.detect import colour_histograms

    with VideoReader(path, size=(36, 64)) as r:
        idx = fps_indices(dst_fps=fps, timestamps=r.timestamps) if len(r) > 1 else np.zeros(1, dtype=int)
        return colour_histograms(r.get_frames(idx)), r.timestamps[idx], idx, r.duration


def detect_scenes(path, *, k: int | None = None, alpha: float = 0.5, fps: float = 2.0, embedder=None, streaming: bool = False) -> Scenes:
    feats, times, idx, duration = video_features(path, fps, embedder)
    segments = segments_from_ends(scene_tilling(feats, k=k, alpha=alpha, streaming=streaming))
    return Scenes(str(path), times, idx, segments, representative_frames(feats, segments), duration)


class StreamingSceneTilling:
    """SceneTilling decided online, one frame at a time, in bounded memory.

    Depth is the streaming variant's left-side depth ``lp - s[i]``; the threshold is
    ``mean + alpha * std`` of the depths seen so far (running, Welford) instead of over the
    whole video, so a boundary is final the moment frame ``i + 1`` arrives. Early on those
    statistics have seen only the small wobble inside one scene, so a depth must also pass
    ``min_depth`` (in cosine similarity). The left walk looks back at most ``window``
    similarities, and a scene is at least ``min_frames`` long.
    ``push(feature)`` returns the index of the frame that ends a scene, or None.
    """

    def __init__(self, alpha: float = 0.5, min_frames: int = 2, min_depth: float = 0.05, window: int = 64):
        self.alpha, self.min_frames, self.min_depth = alpha, min_frames, min_depth
        self.sims: list[float] = []
        self.window = window
        self.prev = None
        self.frame = -1
        self.scene_start = 0
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def push(self, feature) -> int | None:
        f = np.asarray(feature, dtype=np.float64).ravel()
        f = f / max(float(np.linalg.norm(f)), 1e-12)
        self.frame += 1
        prev, self.prev = self.prev, f
        if prev is None:
            return None
        s = float(prev @ f)  # similarity between frame-1 and frame
        self.sims = (self.sims + [s])[-self.window :]
        depth = left_peak(self.sims, len(self.sims) - 1) - s
        self.n += 1
        delta = depth - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (depth - self.mean)
        std = (self.m2 / self.n) ** 0.5
        end = self.frame - 1
        if depth > max(self.min_depth, self.mean + self.alpha * std) and end - self.scene_start + 1 >= self.min_frames:
            self.scene_start = self.frame
            self.sims = []  # the left walk does not cross a boundary
            return end
        return None
