"""Video metadata without decoding the whole file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import av

from vidfm.errors import VideoDecodeError
from vidfm.io.reader import VideoReader


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` reports. ``width``/``height`` are as displayed (after rotation)."""

    path: str
    frames: int
    fps: float  # average frame rate: frames / duration
    real_fps: float  # the stream's base rate (r_frame_rate); differs from fps on VFR files
    duration: float  # seconds
    width: int
    height: int
    rotation: int  # counter-clockwise degrees applied for display
    codec: str
    pix_fmt: str
    bit_rate: int  # bits/s of the video stream (container rate when the stream has none)
    has_audio: bool
    variable_frame_rate: bool
    audio_codec: str = ""  # the first audio track's codec, sample rate and channels ("" / 0 without one)
    audio_rate: int = 0
    audio_channels: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def probe(path: str | os.PathLike, *, count_frames: bool = True) -> VideoInfo:
    """Read a video's metadata; decodes only its first frame (to learn rotation and prove
    the stream decodes). Frames are counted from packets when ``count_frames`` (exact, also
    for containers whose header has no count); otherwise the header's count is trusted.
    """
    with VideoReader(path) as reader:
        stream, container = reader._stream, reader._container
        has_audio = bool(container.streams.audio)
        sound = container.streams.audio[0].codec_context if has_audio else None
        codec = stream.codec_context.name
        pix_fmt = stream.codec_context.pix_fmt or ""
        base = float(stream.base_rate) if stream.base_rate else 0.0
        header_frames = stream.frames or 0
        bit_rate = stream.bit_rate or container.bit_rate or 0
        first = reader.get_frames([0])[0]
        rotation = reader.rotation
        if count_frames or not header_frames:
            frames = len(reader)
            duration = reader.duration
            deltas = reader.timestamps[1:] - reader.timestamps[:-1]
            vfr = bool(len(deltas) > 1 and (deltas.max() - deltas.min()) > 0.5 * deltas.mean())
        else:
            frames = header_frames
            if stream.duration is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                raise VideoDecodeError(path, "duration unknown; probe again with count_frames=True")
            vfr = False
    fps = frames / duration if duration > 0 else reader.fps
    return VideoInfo(
        path=str(path),
        frames=frames,
        fps=round(fps, 6),
        real_fps=round(base, 6),
        duration=round(duration, 6),
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        rotation=rotation,
        codec=codec,
        pix_fmt=pix_fmt,
        bit_rate=int(bit_rate),
        has_audio=has_audio,
        variable_frame_rate=vfr,
        audio_codec=sound.name if sound else "",
        audio_rate=int(sound.sample_rate or 0) if sound else 0,
        audio_channels=int(sound.layout.nb_channels) if sound else 0,
    )
