"""Frame-exact video reading on PyAV.

Why a frame index: containers give timestamps, not frame numbers, and seeking lands on a
keyframe. On first random access the reader demuxes the video stream once (packets only, no
decoding) and sorts the presentation timestamps; frame ``i`` is the ``i``-th timestamp. A
request for frame ``i`` seeks to the keyframe that opens its group of pictures, decodes
forward and matches by pts, so variable-frame-rate files and B-frame reordering are handled.
Batch requests decode each group of pictures once, however many of its frames are wanted.

Decoded frames are returned as ``uint8`` arrays ``(H, W, 3)`` in RGB, already rotated the way
a player would show them (phone videos carry a display matrix instead of rotated pixels).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidfm.errors import VideoDecodeError

_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, RuntimeError)


def open_container(path: str | os.PathLike):
    """Open ``path`` with PyAV and return ``(container, video_stream)``.

    Raises ``VideoDecodeError`` naming the file for every way the file can be unusable,
    checked before FFmpeg sees it where possible so the message says what is wrong.
    """
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(p, "file not found")
    if p.is_dir():
        raise VideoDecodeError(p, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "file is empty (0 bytes)")
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise VideoDecodeError(p, f"not a readable video container ({_ffmpeg_reason(e)})") from None
    except OSError as e:
        raise VideoDecodeError(p, f"cannot open ({e.strerror or e})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        if not kinds:
            raise VideoDecodeError(p, "contains no streams (an empty or unfinished recording)")
        raise VideoDecodeError(p, f"has no video stream (only {', '.join(kinds)})")
    return container, container.streams.video[0]


def _ffmpeg_reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(":")[0].strip() if msg else type(e).__name__


@dataclass(frozen=True)
class FrameIndex:
    """Presentation-order timeline of a video stream, built by demuxing once.

    ``pts[i]`` is frame ``i``'s timestamp (stream time base); ``key_pos`` holds the frame
    positions of keyframes and ``key_seek`` the timestamp to seek to for each of them: the
    keyframe's pts (the MP4 demuxer corrects for the B-frame delay itself, so seeking to a
    keyframe's dts would land one group early; demuxers that land late are handled by the
    reader stepping back a group).
    """

    pts: np.ndarray
    key_pos: np.ndarray
    key_seek: np.ndarray
    time_base: float
    start_pts: int

    def __len__(self) -> int:
        return len(self.pts)

    @cached_property  # derived once; the index itself never changes
    def seconds(self) -> np.ndarray:
        return (self.pts - self.start_pts) * self.time_base

    def gop_of(self, i: int) -> int:
        """Ordinal of the keyframe group that frame ``i`` belongs to."""
        return max(int(np.searchsorted(self.key_pos, i, side="right")) - 1, 0)


def build_frame_index(container, stream, path) -> FrameIndex:
    pts_list, keys = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                raise VideoDecodeError(path, "packets carry no timestamps; random access is impossible")
            pts_list.append(ts)
            keys.append(packet.is_keyframe)
    except av.error.FFmpegError as e:
        raise VideoDecodeError(path, f"corrupt or truncated while reading packets ({_ffmpeg_reason(e)})") from None
    if not pts_list:
        raise VideoDecodeError(path, "contains no video frames")
    declared = stream.frames or 0
    if declared and len(pts_list) < declared:
        raise VideoDecodeError(
            path, f"truncated: the header declares {declared} frames but only {len(pts_list)} are present"
        )
    order = np.argsort(np.asarray(pts_list, dtype=np.int64), kind="stable")
    pts = np.asarray(pts_list, dtype=np.int64)[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    key_pos, key_seek = [], []
    for packet_i, is_key in enumerate(keys):
        if is_key:
            key_pos.append(int(rank[packet_i]))
            key_seek.append(int(pts_list[packet_i]))
    if not key_pos or key_pos[0] != 0:
        # No keyframe flags (some raw streams): treat the start as the only entry point.
        key_pos.insert(0, 0)
        key_seek.insert(0, int(pts[0]))
    kp = np.asarray(key_pos)
    ks = np.asarray(key_seek)
    sort = np.argsort(kp, kind="stable")
    start = stream.start_time if stream.start_time is not None else int(pts[0])
    return FrameIndex(pts, kp[sort], ks[sort], float(stream.time_base), int(min(start, pts[0])))


class VideoReader:
    """Random and sequential access to the frames of one video file.

    Args:
        path: video file (any container/codec FFmpeg reads).
        size: ``(height, width)`` to resize to while decoding (after rotation), or None.
        threads: decoder threads; 0 lets FFmpeg choose (frame + slice threading).
        strict: raise on frames FFmpeg marks corrupt instead of returning concealed garbage.
        interpolation: swscale filter for ``size`` (``BILINEAR``, ``BICUBIC`` = the ffmpeg
            command line's default, ``AREA``, ...).

    ``reader[i]`` and ``get_frames([...])`` return ``uint8`` arrays ``(H, W, 3)`` /
    ``(N, H, W, 3)``; iterating yields every frame in order with constant memory.
    Use as a context manager, or call ``close()``.
    """

    def __init__(self, path, *, size: tuple[int, int] | None = None, threads: int = 0, strict: bool = True, interpolation: str = "BILINEAR"):
        self.path = Path(path)
        self.size = size
        self.interpolation = interpolation
        self.strict = strict
        self._container, self._stream = open_container(self.path)
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self._index: FrameIndex | None = None
        self._rotation: int | None = None
        self._decoder: Iterator | None = None
        self._last_pos = -1
        self._touched = False  # has anything moved the demuxer since open?
        self._reformatter = VideoReformatter()  # reused: keeps one scaler context warm
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.fps = float(rate) if rate else 0.0

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if self._container is not None:
            self._decoder = None
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- metadata ------------------------------------------------------------------------
    @property
    def index(self) -> FrameIndex:
        if self._index is None:
            if self._touched:
                self._container.seek(0, backward=True)
            self._touched = True
            self._index = build_frame_index(self._container, self._stream, self.path)
            self._decoder = None
        return self._index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation time of each frame in seconds from the stream start."""
        return self.index.seconds

    @property
    def keyframe_indices(self) -> np.ndarray:
        return self.index.key_pos.copy()

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one."""
        t = self.timestamps
        step = float(np.median(np.diff(t))) if len(t) > 1 else (1.0 / self.fps if self.fps else 0.0)
        return float(t[-1] + step)

    @property
    def rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0, 90, 180, 270)."""
        if self._rotation is None:
            self.get_frames([0])  # rotation is side data on decoded frames
        return self._rotation

    # -- random access -------------------------------------------------------------------
    def __getitem__(self, i: int) -> np.ndarray:
        return self.get_frames([i])[0]

    def get_frame_at(self, seconds: float) -> np.ndarray:
        """The frame on screen at ``seconds`` (the last one whose timestamp is <= it)."""
        return self.get_frames([self.index_at(seconds)])[0]

    def index_at(self, seconds: float) -> int:
        t = self.timestamps
        return min(max(int(np.searchsorted(t, seconds + 1e-9, side="right")) - 1, 0), len(t) - 1)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as ``(N, H, W, 3)`` uint8.

        Each needed stretch of the file is decoded once: wanted frames are visited in
        presentation order, and the reader only seeks when the next one lies in a later
        group of pictures than the current decode position.
        """
        if self._container is None:
            raise ValueError(f"{self.path}: the reader is closed")
        n = len(self)
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError("get_frames needs at least one index")
        for i in idx:
            if not -n <= i < n:
                raise IndexError(f"{self.path}: frame {i} out of range (video has {n} frames)")
        idx = [i % n for i in idx]
        wanted = sorted(set(idx))
        decoded: dict[int, np.ndarray] = {}
        for i in wanted:
            decoded[i] = self._frame_array(self._decode_position(i))
        return np.stack([decoded[i] for i in idx])

    def _decode_position(self, i: int):
        index = self.index
        target = int(index.pts[i])
        same_gop = self._decoder is not None and self._last_pos < i and index.gop_of(i) == index.gop_of(
            max(self._last_pos, 0)
        )
        gop = index.gop_of(i)
        attempts = 0
        while True:
            if not same_gop:
                self._seek_to_gop(gop)
            frame = self._decode_until(target, i)
            if frame is not None:
                self._last_pos = i
                return frame
            # Open-GOP leading frames need the previous group; step back once per attempt.
            attempts += 1
            same_gop = False
            if gop == 0 or attempts > 2:
                self._decoder = None
                raise VideoDecodeError(self.path, f"frame {i} could not be decoded (file corrupt or truncated)")
            gop -= 1

    def _seek_to_gop(self, gop: int) -> None:
        seek_ts = int(self.index.key_seek[gop])
        try:
            self._container.seek(seek_ts, stream=self._stream, backward=True, any_frame=False)
            self._touched = True
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"seek failed ({_ffmpeg_reason(e)})") from None
        self._decoder = self._container.decode(self._stream)
        self._last_pos = -1

    def _decode_until(self, target_pts: int, i: int):
        try:
            for frame in self._decoder:
                if frame.pts is None:
                    continue
                if frame.pts == target_pts:
                    self._check_corrupt(frame, i)
                    return frame
                if frame.pts > target_pts:
                    return None
        except av.error.FFmpegError as e:
            self._decoder = None
            raise VideoDecodeError(self.path, f"decoding frame {i} failed ({_ffmpeg_reason(e)})") from None
        self._decoder = None
        return None

    def _check_corrupt(self, frame, i: int) -> None:
        if self.strict and frame.is_corrupt:
            raise VideoDecodeError(self.path, f"frame {i} is corrupt (decoder reported damaged data)")

    # -- sequential access ---------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_frames()

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Decode frames ``start:stop:step`` in order, holding one frame at a time.

        Starting at 0 needs no frame index, so a single pass over a long file never demuxes
        it twice.
        """
        if step < 1:
            raise ValueError("step must be >= 1")
        pos, first_pts = start, None
        if start > 0:
            self._seek_to_gop(self.index.gop_of(start))
            first_pts = int(self.index.pts[start])
        else:
            if self._touched:
                self._container.seek(0, backward=True)
            self._decoder = self._container.decode(self._stream)
        self._touched = True
        decoder, self._decoder = self._decoder, None
        try:
            for frame in decoder:
                if first_pts is not None:
                    if frame.pts is None or frame.pts < first_pts:
                        continue
                    first_pts = None
                if stop is not None and pos >= stop:
                    break
                if (pos - start) % step == 0:
                    self._check_corrupt(frame, pos)
                    yield self._frame_array(frame)
                pos += 1
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"decoding frame {pos} failed ({_ffmpeg_reason(e)})") from None
        if pos == start == 0:
            raise VideoDecodeError(self.path, "contains no decodable video frames")

    def stream(self, fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """``(seconds, frame)`` in presentation order, decoding as it goes with one frame held
        and no frame index (memory does not grow with the video's length): every frame, or
        with ``fps`` the first frame at or after each ``1/fps`` tick. For long videos and live
        processing; B-frames come out in presentation order from the decoder."""
        if fps is not None and fps <= 0:
            raise ValueError("fps must be positive")
        if self._touched:
            self._container.seek(0, backward=True)
        self._touched = True
        decoder, self._decoder = self._container.decode(self._stream), None
        tb = float(self._stream.time_base)
        start, next_tick, pos = self._stream.start_time, 0.0, 0
        try:
            for frame in decoder:
                if frame.pts is None:
                    continue
                if start is None:
                    start = frame.pts
                t = (frame.pts - start) * tb
                pos += 1
                if fps is not None:
                    if t + 1e-6 < next_tick:
                        continue
                    next_tick = (np.floor(t * fps + 1e-6) + 1) / fps
                self._check_corrupt(frame, pos - 1)
                yield float(t), self._frame_array(frame)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(self.path, f"decoding frame {pos} failed ({_ffmpeg_reason(e)})") from None
        if pos == 0:
            raise VideoDecodeError(self.path, "contains no decodable video frames")

    # -- conversion ----------------------------------------------------------------------
    def _frame_array(self, frame) -> np.ndarray:
        if self._rotation is None:  # display matrix is per stream; read it once
            self._rotation = int(round(frame.rotation or 0)) % 360
        k = self._rotation // 90
        if self.size is not None:
            h, w = self.size
            if k % 2:  # resize in stored orientation, so swap the target
                h, w = w, h
            frame = self._reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation=self.interpolation)
        else:
            frame = self._reformatter.reformat(frame, format="rgb24")
        arr = frame.to_ndarray()
        if k:
            arr = np.ascontiguousarray(np.rot90(arr, k))
        return arr


def read_video(path, indices: Sequence[int] | None = None, *, size=None) -> np.ndarray:
    """Convenience: the frames at ``indices`` (all frames if None) as ``(N, H, W, 3)`` uint8."""
    with VideoReader(path, size=size) as reader:
        if indices is None:
            return np.stack(list(reader))
        return reader.get_frames(indices)
