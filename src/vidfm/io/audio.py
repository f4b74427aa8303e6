"""The audio track of a video: read it (any codec FFmpeg decodes), keep it when a video is
cut or re-written.

Samples are float32 ``(channels, samples)`` in [-1, 1] at the track's own rate; ``Audio``
carries them with their rate so a time range can be cut out exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from vidfm.errors import VideoDecodeError


@dataclass
class Audio:
    samples: np.ndarray  # (channels, n) float32 in [-1, 1]
    rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.rate

    def to_mono(self) -> "Audio":
        return Audio(self.samples.mean(0, keepdims=True), self.rate)

    def shift(self, seconds: float) -> "Audio":
        """The same track delayed by ``seconds`` (negative: advanced), silence filled in and
        the length kept: how a known audio-video offset is injected."""
        n = int(round(seconds * self.rate))
        out = np.zeros_like(self.samples)
        if n >= 0:
            out[:, n:] = self.samples[:, : max(0, self.samples.shape[1] - n)]
        else:
            out[:, : max(0, self.samples.shape[1] + n)] = self.samples[:, -n:]
        return Audio(out, self.rate)

    @staticmethod
    def join(parts: "list[Audio]") -> "Audio":
        """The parts one after another (same rate and channels)."""
        if not parts or len({(p.rate, p.channels) for p in parts}) != 1:
            raise ValueError("joining audio needs at least one part, all of one rate and channel count")
        return Audio(np.concatenate([p.samples for p in parts], axis=1), parts[0].rate)

    def cut(self, start: float, end: float) -> "Audio":
        """The samples from ``start`` to ``end`` seconds (clipped to the track)."""
        a, b = (max(0, min(self.samples.shape[1], int(round(t * self.rate)))) for t in (start, end))
        return Audio(self.samples[:, a:b], self.rate)


def read_audio(path, mono: bool = False, rate: int | None = None) -> Audio | None:
    """The first audio track of ``path`` decoded to float32, or ``None`` if it has none.
    Stereo stays stereo unless ``mono`` (more channels are down-mixed to stereo); ``rate``
    resamples (FFmpeg's resampler) to that many samples per second."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoDecodeError(path, f"cannot open ({e})") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        layout = "mono" if mono or stream.codec_context.layout.nb_channels == 1 else "stereo"
        if rate is not None and rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        rate = rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"the audio track is damaged ({e})") from None
    channels = 1 if layout == "mono" else 2
    samples = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((channels, 0), np.float32)
    return Audio(samples, rate)


def load_audio(path, mono: bool = False, rate: int | None = None) -> Audio:
    """Audio from a sound file (WAV, MP3, FLAC, ...) or a video's track; a clear error when
    there is none (``read_audio`` returns ``None`` instead)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise VideoDecodeError(path, "no such file")
    audio = read_audio(path, mono=mono, rate=rate)
    if audio is None:
        raise VideoDecodeError(path, "has no audio track")
    if audio.samples.shape[1] == 0:
        raise VideoDecodeError(path, "the audio track is empty")
    return audio


def write_wav(path, audio: Audio) -> None:
    """16-bit PCM WAV (written atomically)."""
    from vidfm.files import atomic_file

    layout = "mono" if audio.channels == 1 else "stereo"
    with atomic_file(path) as tmp:
        with av.open(str(tmp), mode="w", format="wav") as container:
            stream = container.add_stream("pcm_s16le", rate=audio.rate, layout=layout)
            mux_audio(container, stream, audio)


def add_audio_stream(container, audio: Audio, codec: str):
    """An output stream for ``audio`` (add it before anything is muxed)."""
    return container.add_stream(codec, rate=audio.rate, layout="mono" if audio.channels == 1 else "stereo")


def mux_audio(container, stream, audio: Audio) -> None:
    """Encode ``audio`` into ``stream`` of an open output ``container``."""
    layout = "mono" if audio.channels == 1 else "stereo"
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=audio.rate)
    step = stream.codec_context.frame_size or 1024
    pts = 0
    for s in range(0, audio.samples.shape[1], step):
        chunk = np.ascontiguousarray(audio.samples[:, s : s + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = audio.rate, pts
        pts += chunk.shape[1]
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
