"""Highlight detection: a saliency score for every moment of a video, QVHighlights-style.

A video is cut into moments of ``clip`` seconds (the last one ends at the video's end).
Each moment is scored by one of three sources:

* ``motion``: how much the picture changes (mean absolute difference of consecutive
  frames sampled at up to 8 fps, small and grey; single-sample spikes, i.e. cuts, are
  removed). No model, no query.
* ``query``: cosine similarity between each moment's embedding and a sentence, with a
  video-text model (``vidfm pretrain --objective contrastive``).
* ``grounding``: a trained grounding model's belief that each moment lies inside the
  moment the sentence describes. Its candidate-segment probabilities are summed over the
  segments that cover each clip.

Scores are reported as QVHighlights reports them: mAP of the moment ranking against the
moments inside the annotated interval, and HIT@1, whether the top moment is inside it.
"""

from __future__ import annotations

import numpy as np

from vidfm.errors import ConfigError

METHODS = ("motion", "query", "grounding")
MOTION_FPS = 8.0


def moment_grid(duration: float, clip: float) -> np.ndarray:
    """(M, 2) start/end seconds: back-to-back moments of ``clip`` seconds, the last one
    moved back to end at ``duration`` (one moment when the video is shorter)."""
    if clip <= 0:
        raise ConfigError(f"--clip must be positive, got {clip}")
    if duration <= clip:
        return np.array([[0.0, duration]])
    starts = list(np.arange(0.0, duration - clip + 1e-6, clip))
    if starts[-1] + clip < duration - 1e-6:
        starts.append(duration - clip)
    return np.array([[s, s + clip] for s in starts])


def motion_profile(path, fps: float = MOTION_FPS, size: int = 32) -> tuple[np.ndarray, np.ndarray, float]:
    """(times, change, duration): the mean absolute difference (0..1) between each sampled
    frame and the one before it (the first frame repeats the second's value)."""
    from vidfm.io.reader import VideoReader
    from vidfm.io.samplers import fps_indices

    with VideoReader(path, size=(size, size)) as r:
        idx = fps_indices(dst_fps=fps, timestamps=r.timestamps) if len(r) > 1 else np.zeros(1, dtype=int)
        frames = r.get_frames(idx).astype(np.float32).mean(-1) / 255.0
        times, duration = r.timestamps[idx], r.duration
    diff = np.abs(np.diff(frames, axis=0)).mean((1, 2)) if len(frames) > 1 else np.zeros(0)
    change = np.concatenate([diff[:1], diff]) if len(diff) else np.zeros(1)
    return times, despike(change), duration


def despike(change: np.ndarray) -> np.ndarray:
    """A cut is one huge difference between two quiet ones; motion lasts. Each value is
    capped at the larger of its neighbours, so cuts vanish and movement stays."""
    if len(change) < 3:
        return change
    padded = np.concatenate([change[:1], change, change[-1:]])
    return np.minimum(change, np.maximum(padded[:-2], padded[2:]))


def pool_to_moments(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The mean of the ``values`` (N, ...) sampled at ``times`` inside each moment (the
    nearest sample when a moment holds none): (moments, ...)."""
    out = np.empty((len(grid),) + values.shape[1:])
    for k, (s, e) in enumerate(grid):
        inside = (times >= s - 1e-9) & (times < e - 1e-9)
        out[k] = values[inside].mean(0) if inside.any() else values[np.argmin(np.abs(times - (s + e) / 2))]
    return out


def motion_saliency(path, clip: float) -> tuple[np.ndarray, np.ndarray]:
    times, change, duration = motion_profile(path)
    grid = moment_grid(duration, clip)
    return grid, pool_to_moments(times, change, grid)


def query_saliency(embedder, path, query: str, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each moment's clip embedding to the sentence."""
    import torch

    from vidfm.io.samplers import uniform_indices
    from vidfm.retrieval.embedder import Segment

    with embedder.open(path) as reader:
        grid, t = moment_grid(reader.duration, clip), reader.timestamps
        segments = []
        for s, e in grid:
            idx = np.flatnonzero((t >= s - 1e-9) & (t < e - 1e-9))
            idx = idx if len(idx) else np.array([int(np.argmin(np.abs(t - s)))])
            segments.append(Segment(str(path), float(s), float(e), idx[uniform_indices(len(idx), embedder.num_frames)]))
        clips = embedder.load_clips(reader, segments)
    vectors = np.concatenate([embedder.encode_clips(torch.stack(clips[k : k + 32])) for k in range(0, len(clips), 32)])
    return grid, vectors @ embedder.encode_text([query])[0]


def grounding_saliency(grounder, path, query: str, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip of the grounding model: the probability mass of the candidate segments
    that contain it; pooled to the moment grid by time."""
    import torch

    from vidfm.tasks.ground import clip_features

    model = grounder.model
    with torch.no_grad():
        feats, duration = clip_features(grounder.embedder, path, model.num_clips, grounder.meta["window_frames"])
        probs = model(feats[None], [query])["candidate_logits"].sigmoid()[0].numpy()
    n = model.num_clips
    i, j = np.triu_indices(n)
    per_clip = np.array([probs[(i <= c) & (j >= c)].sum() for c in range(n)]) / max(probs.sum(), 1e-12)
    grid = moment_grid(duration, clip)
    centres = (np.arange(n) + 0.5) / n * duration
    return grid, pool_to_moments(centres, per_clip, grid)


def saliency(path, method: str = "motion", *, query: str | None = None, scorer=None, clip: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(grid (M, 2), scores (M,)) by ``method``; ``scorer`` is the video-text ``Embedder``
    (query) or the ``Grounder`` (grounding)."""
    if method not in METHODS:
        raise ConfigError(f"unknown highlight method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "motion":
        return motion_saliency(path, clip)
    if not query or not query.strip():
        raise ConfigError(f"--method {method} scores moments against a sentence: give --query")
    if scorer is None:
        raise ConfigError(f"--method {method} needs --model ({'a video-text model' if method == 'query' else 'a grounding model'})")
    return (query_saliency if method == "query" else grounding_saliency)(scorer, path, query, clip)


def highlights(path, method: str = "motion", *, query: str | None = None, scorer=None, clip: float = 2.0, top: int = 5) -> dict:
    """Every moment with its score, and the ``top`` moments, best first."""
    grid, scores = saliency(path, method, query=query, scorer=scorer, clip=clip)
    moments = [{"start": round(float(s), 3), "end": round(float(e), 3), "score": float(v)} for (s, e), v in zip(grid, scores)]
    order = np.argsort(-scores, kind="stable")[:top]
    return {"path": str(path), "method": method, "query": query, "clip": clip, "moments": moments, "top": [moments[i] for i in order]}


def relevant_moments(grid: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    """True for moments at least half inside one of the annotated intervals."""
    out = np.zeros(len(grid), dtype=bool)
    for s, e in intervals:
        overlap = np.clip(np.minimum(grid[:, 1], e) - np.maximum(grid[:, 0], s), 0, None)
        out |= overlap >= 0.5 * (grid[:, 1] - grid[:, 0]) - 1e-9
    return out


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of ranking moments by score (ties keep time order); NaN with nothing relevant."""
    relevant = np.asarray(relevant, dtype=bool)
    if not relevant.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = relevant[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def hit_at_1(scores: np.ndarray, relevant: np.ndarray) -> float:
    return float(np.asarray(relevant)[int(np.argmax(scores))])


def evaluate_highlights(records: list[dict], method: str, *, scorer=None, clip: float = 0.5, progress=None) -> dict:
    """mAP and HIT@1 over grounding-style records ``{path, sentence, start, end}`` (one
    query per video and sentence; several intervals of one sentence are one highlight)."""
    from vidfm.errors import VideoDecodeError

    queries: dict[tuple[str, str], list] = {}
    for r in records:
        queries.setdefault((r["path"], r["sentence"]), []).append((r["start"], r["end"]))
    aps, hits, skipped, random_aps, random_hits = [], [], [], [], []
    rng = np.random.default_rng(0)
    items = list(queries.items())
    for (path, sentence), intervals in progress(items) if progress else items:
        try:
            grid, scores = saliency(path, method, query=sentence, scorer=scorer, clip=clip)
        except VideoDecodeError:
            skipped.append(path)
            continue
        relevant = relevant_moments(grid, intervals)
        if not relevant.any() or relevant.all():  # nothing to rank
            continue
        aps.append(average_precision(scores, relevant))
        hits.append(hit_at_1(scores, relevant))
        random_aps.append(np.mean([average_precision(rng.random(len(grid)), relevant) for _ in range(20)]))
        random_hits.append(relevant.mean())  # a random pick's chance of landing inside

    def mean(values):
        return float(np.mean(values)) if values else float("nan")

    return {"method": method, "mAP": mean(aps), "HIT@1": mean(hits), "random_mAP": mean(random_aps), "random_HIT@1": mean(random_hits),
            "queries": len(aps), "skipped": skipped}  # fmt: skip


__all__ = ["METHODS", "average_precision", "evaluate_highlights", "highlights", "hit_at_1", "moment_grid", "relevant_moments", "saliency"]
