"""Video summaries under a length budget: short segments that cover the distinct scenes,
the most eventful moments first, without repeating themselves.

The video is cut into candidate windows of ``segment`` seconds. Each window has an
importance (its motion, as in ``highlights``) and a feature (the mean colour histogram or
model embedding of its frames). The distinct parts of the video are its shots (the
``histogram`` detector by default: fast, and exact on hard cuts). The budget (a share of
the duration) fixes how many windows fit. The selection runs in two steps:

1. One window per shot, the most important in it, longest shots first: coverage before
   anything else.
2. Then maximal marginal relevance: importance minus ``redundancy_weight`` times the
   window's highest similarity to what is already chosen.

The chosen windows, in time order with touching ones merged, are the summary. It is
written as an MP4 and a contact sheet. Against annotated events it is scored by coverage
(the share of events that some segment falls in) and redundancy (the share of segments
spent on an event already shown).
"""

from __future__ import annotations

import math

import numpy as np

from vidfm.errors import ConfigError
from vidfm.tasks.highlights import moment_grid, motion_profile, pool_to_moments


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _rescale(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def summarize(path, budget: float = 0.15, segment: float = 0.5, *, embedder=None, shots: str = "histogram", fps: float = 4.0,
              redundancy_weight: float = 0.5) -> dict:  # fmt: skip
    """``{path, duration, budget, segments: [{start, end, score}], shots, seconds}``."""
    from vidfm.shots import detect_shots
    from vidfm.shots.scenes import video_features

    if not 0 < budget <= 1:
        raise ConfigError(f"--budget is a share of the video's length, in (0, 1]; got {budget}")
    feats, times, _, duration = video_features(path, fps, embedder)
    found = detect_shots(path, shots).as_dict()["shots"]
    grid = moment_grid(duration, segment)
    m_times, change, _ = motion_profile(path)
    importance = _rescale(pool_to_moments(m_times, change, grid))
    unit = _unit(feats)
    window_feats = _unit(pool_to_moments(times, unit, grid))
    shot_of = np.searchsorted(np.array([sh["start"] for sh in found]), grid.mean(1), side="right") - 1
    count = _window_count(len(grid), budget, duration, segment)
    chosen: list[int] = []
    for k in sorted(range(len(found)), key=lambda k: found[k]["start"] - found[k]["end"]):  # longest first
        if len(chosen) == count:
            break
        inside = np.flatnonzero(shot_of == k)
        if len(inside):
            chosen.append(int(inside[np.argmax(importance[inside])]))
    while len(chosen) < count:
        similarity = (window_feats @ window_feats[chosen].T).max(1) if chosen else np.zeros(len(grid))
        gain = importance - redundancy_weight * similarity
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
    segments = []
    for i in sorted(set(chosen)):
        s, e = float(grid[i, 0]), float(grid[i, 1])
        if segments and s <= segments[-1]["end"] + 1e-6:
            segments[-1]["end"] = max(segments[-1]["end"], e)
            segments[-1]["score"] = max(segments[-1]["score"], float(importance[i]))
        else:
            segments.append({"start": round(s, 3), "end": round(e, 3), "score": float(importance[i])})
    total = sum(sg["end"] - sg["start"] for sg in segments)
    return {"path": str(path), "duration": duration, "budget": budget, "segments": segments, "shots": len(found), "seconds": total}


def _window_count(windows: int, budget: float, duration: float, segment: float) -> int:
    """How many ``segment``-long windows fit in ``budget`` of the video (at least one)."""
    return min(windows, max(1, math.floor(budget * duration / segment + 1e-9)))


def uniform_summary(duration: float, budget: float = 0.15, segment: float = 0.5) -> list[dict]:
    """The baseline: the same number of windows, evenly spaced."""
    grid = moment_grid(duration, segment)
    count = _window_count(len(grid), budget, duration, segment)
    picks = np.unique(np.round(np.linspace(0, len(grid) - 1, count + 2)[1:-1]).astype(int)) if count < len(grid) else np.arange(len(grid))
    return [{"start": float(grid[i, 0]), "end": float(grid[i, 1])} for i in picks]


def coverage_and_redundancy(segments: list[dict], events: list[tuple[float, float]]) -> dict:
    """coverage: share of events with a segment's centre inside; redundancy: share of
    segments spent on an event that an earlier segment already showed (or on no event)."""
    shown, repeats = set(), 0
    for sg in segments:
        centre = (sg["start"] + sg["end"]) / 2
        hit = next((k for k, (s, e) in enumerate(events) if s <= centre < e), None)
        if hit is None or hit in shown:
            repeats += 1
        else:
            shown.add(hit)
    return {"coverage": len(shown) / len(events) if events else float("nan"), "redundancy": repeats / len(segments) if segments else 0.0}


def write_summary(summary: dict, out, sheet=None) -> dict:
    """The segments joined into one MP4 (at the source's frame rate, with the source's sound
    cut to the same frames) and, optionally, a contact sheet with the middle frame of each
    segment."""
    from vidfm.io.audio import Audio, read_audio
    from vidfm.io.reader import VideoReader
    from vidfm.io.writer import save_contact_sheet, write_video

    with VideoReader(summary["path"]) as r:
        t = r.timestamps
        picks = [np.flatnonzero((t >= sg["start"] - 1e-9) & (t < sg["end"] - 1e-9)) for sg in summary["segments"]]
        frames = r.get_frames(np.concatenate(picks))
        fps = r.fps
    starts = np.cumsum([0] + [len(p) for p in picks])  # where each segment's frames begin in ``frames``
    middles = frames[[starts[k] + len(p) // 2 for k, p in enumerate(picks) if len(p)]] if sheet else None
    sound = read_audio(summary["path"])
    if sound is not None:  # each segment's sound spans exactly its frames, so the cuts stay in sync
        sound = Audio.join([sound.cut(t[p[0]], t[p[0]] + len(p) / fps) for p in picks if len(p)])
    written = {"video": str(write_video(out, frames, fps=fps, audio=sound))}
    if sheet:
        labels = [f"{sg['start']:.1f}-{sg['end']:.1f}s" for sg, p in zip(summary["segments"], picks) if len(p)]
        written["sheet"] = str(save_contact_sheet(sheet, middles, labels=labels))
    return written


__all__ = ["coverage_and_redundancy", "summarize", "uniform_summary", "write_summary"]
