"""Write clips as MP4 (H.264), WebM (VP9) or GIF, and frames as a contact-sheet PNG."""

from __future__ import annotations

import math
import os
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw

from vidfm.errors import ConfigError
from vidfm.files import atomic_file

_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9"}


def to_uint8_frames(clip) -> np.ndarray:
    """Accept ``(T, H, W, 3)`` uint8 or a float tensor/array ``(T, C, H, W)`` / ``(T, H, W, C)``
    in [0, 1] and return ``(T, H, W, 3)`` uint8 (grayscale is repeated to RGB)."""
    arr = clip.detach().cpu().numpy() if hasattr(clip, "detach") else np.asarray(clip)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ConfigError(f"a clip must have 4 dimensions (T, H, W, C) or (T, C, H, W), got shape {arr.shape}")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ConfigError(f"a clip needs at least one RGB frame, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def write_video(
    path: str | os.PathLike,
    clip,
    fps: float = 8.0,
    *,
    crf: int = 18,
    gop: int | None = None,
    rotation: int = 0,
    faststart: bool = True,
    options: dict | None = None,
    audio=None,
) -> Path:
    """Write ``clip`` to ``path``; the suffix picks the format (.mp4/.mkv/.mov/.webm/.gif).

    Odd frame sizes are padded by one edge pixel for yuv420p codecs. ``faststart`` puts the
    MP4 index first so browsers can play while downloading. ``options`` go to the encoder.
    ``audio`` (a ``vidfm.io.audio.Audio``) is muxed beside the video (AAC; Opus in WebM).
    The file appears atomically: it is written beside its destination, then renamed.
    ``clip`` may also be an iterator of ``(H, W, 3)`` frames, encoded as they come (memory
    does not grow with the length: long videos).
    """
    path = Path(path)
    frames = _frames(clip)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return write_gif(path, np.stack(list(frames)), fps)
    if suffix not in _CODECS:
        raise ConfigError(f"{path}: unsupported output format {suffix!r}; use .mp4, .mkv, .mov, .webm or .gif")
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    first = next(frames, None)
    if first is None:
        raise ConfigError(f"{path}: no frames to write")
    h, w = first.shape[:2]
    pad_h, pad_w = h % 2, w % 2
    with atomic_file(path) as tmp:
        rate = _as_rate(fps)
        muxer = {"movflags": "faststart"} if faststart and suffix in (".mp4", ".mov") else {}
        with av.open(str(tmp), mode="w", options=muxer) as container:
            stream = container.add_stream(_CODECS[suffix], rate=rate)
            stream.width, stream.height = w + pad_w, h + pad_h
            stream.pix_fmt = "yuv420p"
            opts = {"crf": str(crf)}
            if suffix == ".webm":
                opts = {"crf": str(crf + 12), "b": "0", "deadline": "realtime", "cpu-used": "8"}
            if gop:
                stream.codec_context.gop_size = int(gop)
            stream.options = {**opts, **(options or {})}
            if rotation:
                stream.set_display_rotation(rotation)
            sound = audio is not None and audio.samples.shape[1] > 0
            if sound:
                from vidfm.io.audio import add_audio_stream, mux_audio

                audio_stream = add_audio_stream(container, audio, "libopus" if suffix == ".webm" else "aac")
            for arr in chain([first], frames):
                if arr.shape[:2] != (h, w):
                    raise ConfigError(f"{path}: frame of size {arr.shape[1]}x{arr.shape[0]} in a {w}x{h} video")
                if pad_h or pad_w:
                    arr = np.pad(arr, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if sound:
                mux_audio(container, audio_stream, audio)
    return path


def _frames(clip) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames of a whole clip, or of an iterator of frames, one at a time."""
    if isinstance(clip, Iterator):
        return (to_uint8_frames(f[None])[0] for f in clip)
    return iter(to_uint8_frames(clip))


def _as_rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def write_gif(path: str | os.PathLike, clip, fps: float = 8.0, *, loop: int = 0) -> Path:
    path = Path(path)
    frames = to_uint8_frames(clip)
    images = [Image.fromarray(f) for f in frames]
    with atomic_file(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=max(int(round(1000 / fps)), 20), loop=loop)
    return path


def contact_sheet(
    frames,
    *,
    columns: int | None = None,
    labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    scale: int = 1,
    pad: int = 2,
) -> Image.Image:
    """Tile frames in a grid (optionally captioned) so a person can see a clip at a glance.
    ``labels``: one short caption under each frame (cut to the frame's width);
    ``row_labels``: one line above each row, as wide as the sheet (e.g. a whole prompt)."""
    arr = to_uint8_frames(frames)
    n, h, w = arr.shape[:3]
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n * h / w))))
    rows = math.ceil(n / cols)
    h2, w2 = h * scale, w * scale
    label_h = 12 if labels else 0
    row_h = 12 if row_labels else 0
    title_h = 14 if title else 0
    sheet = Image.new("RGB", (cols * (w2 + pad) + pad, title_h + rows * (h2 + label_h + row_h + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 1), title, fill=(235, 235, 235))
    for k in range(n):
        r, c = divmod(k, cols)
        x, y = pad + c * (w2 + pad), title_h + pad + r * (h2 + label_h + row_h + pad) + row_h
        if row_labels and c == 0 and r < len(row_labels):
            draw.text((pad, y - row_h), str(row_labels[r])[: max(4, sheet.width // 6)], fill=(235, 235, 235))
        img = Image.fromarray(arr[k])
        if scale != 1:
            img = img.resize((w2, h2), Image.NEAREST)
        sheet.paste(img, (x, y))
        if labels:
            draw.text((x + 1, y + h2), str(labels[k])[: max(4, w2 // 6)], fill=(200, 200, 200))
    return sheet


def save_contact_sheet(path: str | os.PathLike, frames, **kwargs) -> Path:
    path = Path(path)
    sheet = contact_sheet(frames, **kwargs)
    with atomic_file(path) as tmp:
        sheet.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return path
