"""Turn videos (whole, or windows of long ones) and sentences into unit vectors with one
saved model: a video-text model (text and video queries) or any video encoder (video
queries only). ``fingerprint`` identifies the exact weights, so an index can refuse
queries embedded by another model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.data.transforms import to_float_clip
from vidfm.errors import ConfigError
from vidfm.files import fingerprint_folder
from vidfm.io.reader import VideoReader
from vidfm.io.samplers import uniform_indices


@dataclass
class Segment:
    """A time range of a video to embed (``end`` is exclusive, seconds)."""

    path: str
    start: float
    end: float
    indices: np.ndarray


class Embedder:
    def __init__(self, path, device: str = "cpu", lexicon: bool = True):
        """``lexicon``: rewrite queries in Chinese, Japanese, Spanish, French or German
        into English with the built-in lexicon (``vidfm.data.lexicon``) before the text
        tower sees them; turn it off for a multilingual text tower."""
        from vidfm.files import model_folder
        from vidfm.models import load_encoder
        from vidfm.objectives.video_text import META, VideoTextModel

        if not Path(path).exists():
            raise ConfigError(f"{path}: model folder not found")
        folder = model_folder(path)
        self.folder, self.device, self.lexicon = folder, device, lexicon
        if (folder / META).exists():
            self.video_text = VideoTextModel.from_pretrained(folder).to(device).eval()
            self.encoder = self.video_text.video_encoder
        else:
            self.video_text = None
            self.encoder = load_encoder(folder).to(device).eval()
        self.fingerprint = fingerprint_folder(folder)
        self.num_frames = self.encoder.config.num_frames
        self.image_size = self.encoder.config.image_size
        self.dim = self.video_text.embed_dim if self.video_text else self.encoder.output_dim

    @property
    def has_text(self) -> bool:
        return self.video_text is not None

    @torch.no_grad()
    def encode_clips(self, clips: torch.Tensor) -> np.ndarray:
        clips = clips.to(self.device)
        if self.video_text is not None:
            out = self.video_text.encode_video(clips)
        else:
            out = F.normalize(self.encoder(clips).pooled.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def embed_arrays(self, videos, batch_size: int = 32) -> np.ndarray:
        """(N, E) for in-memory videos ``(N, T, H, W, 3)`` uint8 (generated clips): the
        model's frame count sampled uniformly, resized to its input size."""
        from vidfm.data.transforms import clips_from_arrays

        return np.concatenate([self.encode_clips(clips_from_arrays(videos[s : s + batch_size], self.num_frames, self.image_size))
                               for s in range(0, len(videos), batch_size)])  # fmt: skip

    @torch.no_grad()
    def encode_text(self, texts) -> np.ndarray:
        if self.video_text is None:
            raise ConfigError(f"{self.folder}: this model has no text tower; search with --video, or use a video-text model")
        texts = list(texts) if not isinstance(texts, str) else [texts]
        if self.lexicon:
            from vidfm.data.lexicon import to_english

            texts = [to_english(t).text or t for t in texts]
        return self.video_text.encode_text(texts).cpu().numpy().astype(np.float32)

    # -- reading videos ------------------------------------------------------------------
    def open(self, path) -> VideoReader:
        """A reader that decodes straight to the model's frame size."""
        return VideoReader(path, size=(self.image_size, self.image_size))

    def segments(self, reader: VideoReader, window: float | None = None, stride: float | None = None, shots: str | None = None) -> list[Segment]:
        """The whole video as one segment, windows of ``window`` seconds every ``stride``
        (default: the window; the last window ends at the video's end), or one segment per
        shot found by the ``shots`` detector (``histogram``, ``transnetv2``, ...)."""
        path, n, t, duration = str(reader.path), len(reader), reader.timestamps, reader.duration
        if shots:
            from vidfm.shots import detect_shots

            found = detect_shots(path, shots)
            return [
                Segment(path, float(t[a]), float(t[b + 1]) if b + 1 < n else duration, a + uniform_indices(b - a + 1, self.num_frames))
                for a, b in found.ranges
            ]
        if not window or duration <= window:
            return [Segment(path, 0.0, duration, uniform_indices(n, self.num_frames))]
        stride = stride or window
        starts = list(np.arange(0.0, duration - window + 1e-6, stride))
        if starts[-1] + window < duration - 1e-6:
            starts.append(duration - window)
        out = []
        for s in starts:
            idx = np.flatnonzero((t >= s - 1e-9) & (t < s + window - 1e-9))
            if len(idx) == 0:
                continue
            out.append(Segment(path, float(s), float(s + window), idx[uniform_indices(len(idx), self.num_frames)]))
        return out

    def load_clips(self, reader: VideoReader, segments: list[Segment]) -> list[torch.Tensor]:
        """Clips of segments of the reader's video, decoded in one pass (each GOP once)."""
        if not segments:
            return []
        frames = reader.get_frames(np.concatenate([s.indices for s in segments]))
        bounds = np.cumsum([0] + [len(s.indices) for s in segments])
        return [to_float_clip(frames[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def read(self, path, window: float | None = None, stride: float | None = None, shots: str | None = None):
        """``(segments, clips)`` of one video with a single open and demux of the file."""
        with self.open(path) as r:
            segs = self.segments(r, window, stride, shots)
            return segs, self.load_clips(r, segs)

    def embed_video(self, path) -> np.ndarray:
        """One (E,) vector for a whole video file (a query clip)."""
        return self.encode_clips(self.read(path)[1][0][None])[0]


__all__ = ["Embedder", "Segment"]
