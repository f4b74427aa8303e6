"""Cut a video into one file per shot (re-encoded with vidfm's writer, frame-exact)."""

from __future__ import annotations

from pathlib import Path

from vidfm.io.reader import VideoReader
from vidfm.io.writer import write_video
from vidfm.shots.detect import Shots


def split_shots(shots: Shots, out_dir, suffix: str = ".mp4", progress=None, stem: str | None = None) -> list[Path]:
    """Write ``out_dir/<stem>_shot_NNN.mp4`` for every shot (``stem``: the video's file stem
    unless given); returns the paths. Each file is
    written atomically by ``write_video``; the source is read once, in order, and its audio
    track (if any) is cut to each shot's time range and kept."""
    from vidfm.io.audio import read_audio

    audio = read_audio(shots.path)
    spans = {k: (d["start"], d["end"]) for k, d in enumerate(shots.as_dict()["shots"])}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or Path(shots.path).stem
    fps = shots.fps or 25.0
    paths, current, k = [], [], 0
    ranges = list(shots.ranges)
    bar = progress(total=shots.num_frames) if progress else None
    with VideoReader(shots.path) as reader:
        for i, frame in enumerate(reader):
            if bar:
                bar.update(1)
            if k < len(ranges) and ranges[k][0] <= i <= ranges[k][1]:
                current.append(frame)
            if k < len(ranges) and i == ranges[k][1]:
                sound = audio.cut(*spans[k]) if audio is not None else None
                paths.append(write_video(out_dir / f"{stem}_shot_{k + 1:03d}{suffix}", current, fps=fps, audio=sound))
                current, k = [], k + 1
    if bar:
        bar.close()
    return paths
