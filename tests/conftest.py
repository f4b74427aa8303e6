"""Fixtures that build real video files (no downloads): coded videos whose frame index is
burned into the pixels, so every read can be checked frame-exactly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import settings

# Property tests check behaviour, not speed: no per-example deadline (a loaded CI machine
# would otherwise fail them at random).
settings.register_profile("vidfm", deadline=None)
settings.load_profile("vidfm")

from vidfm.data.synthetic import burn_frame_code
from vidfm.io.writer import write_video


def coded_clip(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Frames whose top strip encodes their index and whose body changes every frame."""
    rng = np.random.default_rng(seed)
    clip = np.zeros((n, h, w, 3), np.uint8)
    base = (rng.random((h, w, 3)) * 120).astype(np.uint8)
    for i in range(n):
        clip[i] = np.roll(base, i, axis=1)
        burn_frame_code(clip[i], i)
    return clip


def make_coded_video(path, n=60, fps=8, gop=8, h=64, w=64, rotation=0, faststart=False) -> Path:
    return write_video(path, coded_clip(n, h, w), fps=fps, gop=gop, rotation=rotation, faststart=faststart)


def make_vfr_video(path, times_ms) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            a = np.zeros((64, 64, 3), np.uint8)
            burn_frame_code(a, i)
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Path(path)


def _mux_silence(container, stream, n_frames: int) -> None:
    for i in range(n_frames):
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate, fr.pts = 16000, i * 1024
        for p in stream.encode(fr):
            container.mux(p)


def make_audio_only(path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        _mux_silence(c, s, 8)
        for p in s.encode():
            c.mux(p)
    return Path(path)


def make_video_with_audio(path, n=24, fps=8) -> Path:
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=16000)
        for i, frame in enumerate(coded_clip(n)):
            for p in v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        _mux_silence(c, a, int(n / fps * 16000 / 1024))
        for s in (v, a):
            for p in s.encode():
                c.mux(p)
    return Path(path)


def make_zero_frame(path) -> Path:
    """A container with a video stream and no frames (AVI keeps the empty stream)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        c.start_encoding()
    return Path(path)


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "coded": make_coded_video(d / "coded.mp4", n=60, gop=8),
        "rot90": make_coded_video(d / "rot90.mp4", n=12, h=48, w=64, rotation=90),
        "rot270": make_coded_video(d / "rot270.mp4", n=12, h=48, w=64, rotation=270),
        "rot180": make_coded_video(d / "rot180.mp4", n=12, h=48, w=64, rotation=180),
        "vfr": make_vfr_video(d / "vfr.mp4", [0, 33, 66, 100, 300, 320, 340, 700, 710, 720, 1000]),
        "audio_only": make_audio_only(d / "audio.m4a"),
        "with_audio": make_video_with_audio(d / "with_audio.mp4"),
        "zero_frames": make_zero_frame(d / "zero.avi"),
        "webm": write_video(d / "coded.webm", coded_clip(20), fps=8),
    }
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    out["empty"] = empty
    text = d / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    out["text"] = text
    data = out["coded"].read_bytes()
    trunc = d / "truncated.mp4"
    trunc.write_bytes(data[: len(data) // 2])
    out["truncated"] = trunc
    damaged = bytearray(data)
    k = len(data) // 2
    damaged[k : k + 3000] = b"\0" * 3000
    (d / "damaged.mp4").write_bytes(bytes(damaged))
    out["damaged"] = d / "damaged.mp4"
    faststart = d / "faststart.mp4"
    make_coded_video(faststart, n=50, faststart=True)
    fs = faststart.read_bytes()
    (d / "faststart_truncated.mp4").write_bytes(fs[: int(len(fs) * 0.6)])
    out["faststart_truncated"] = d / "faststart_truncated.mp4"
    return out


@pytest.fixture(scope="session")
def video_text_dir(tmp_path_factory) -> Path:
    """An (untrained) video-text model saved like a pre-training run saves one."""
    import torch

    from vidfm.models import build_encoder
    from vidfm.models.text import TextEncoder
    from vidfm.objectives import VideoTextModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vt") / "model"
    VideoTextModel(build_encoder("r2plus1d-tiny", num_frames=4, image_size=32), TextEncoder("minilm"), embed_dim=32).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """A 40-video synthetic world (single-shot), shared by the task tests."""
    from vidfm.data import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(root, WorldConfig(videos=40, seed=2, multishot_fraction=0.0))
    return root


@pytest.fixture(scope="session")
def gen_runs(world, tmp_path_factory):
    """A tiny VAE and DiT trained for a few steps on the test world (through the CLI)."""
    from vidfm.cli.main import main

    d = tmp_path_factory.mktemp("gen")
    assert main(["train", "vae", str(world), "--out", str(d / "vae"), "--max-steps", "3", "--batch-size", "4", "--size", "16", "--frames", "5"]) == 0
    assert main(["train", "denoiser", str(world), "--vae", str(d / "vae"), "--out", str(d / "den"), "--max-steps", "3",
                 "--batch-size", "4", "--frames", "5", "--checkpoint-every", "2"]) == 0  # fmt: skip
    return d


@pytest.fixture(scope="session")
def sound_world(tmp_path_factory) -> Path:
    """A 36-video single-shot world with sound (``--audio``)."""
    from vidfm.data import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("sound_world")
    generate_world(root, WorldConfig(videos=36, seed=4, multishot_fraction=0.0, audio=True))
    return root
