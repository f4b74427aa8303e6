"""Highlights and summaries on clips whose answer is known by construction."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.io.reader import VideoReader
from vidfm.io.writer import write_video
from vidfm.retrieval.embedder import Embedder
from vidfm.tasks.highlights import (
    average_precision,
    highlights,
    hit_at_1,
    moment_grid,
    relevant_moments,
)
from vidfm.tasks.summarize import (
    coverage_and_redundancy,
    summarize,
    uniform_summary,
    write_summary,
)

FPS = 8


def solid(colour, n, size=32):
    return np.tile(np.array(colour, np.uint8), (n, size, size, 1))


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    """5 s on a grey background; a white square moves only from 2 s to 3 s."""
    frames = solid((90, 90, 90), 5 * FPS)
    for k in range(2 * FPS, 3 * FPS):
        x = 2 + 3 * (k - 2 * FPS)
        frames[k, 10:18, x : x + 8] = 255
    frames[3 * FPS :, 10:18, 26:34] = 255  # it stays where it stopped
    return write_video(tmp_path_factory.mktemp("hl") / "moving.mp4", frames, fps=FPS)


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory):
    """Cuts between a 8 s blue shot, a 1 s red shot and a 3 s green shot."""
    frames = np.concatenate([solid((30, 60, 200), 8 * FPS), solid((210, 40, 40), FPS), solid((40, 180, 60), 3 * FPS)])
    return write_video(tmp_path_factory.mktemp("sum") / "three_shots.mp4", frames, fps=FPS)


def test_ranking_metrics_on_a_hand_built_case():
    scores, relevant = np.array([0.9, 0.1, 0.8, 0.2]), np.array([True, False, False, True])
    assert average_precision(scores, relevant) == pytest.approx((1 + 2 / 3) / 2)
    assert hit_at_1(scores, relevant) == 1.0 and hit_at_1(-scores, relevant) == 0.0
    assert np.isnan(average_precision(scores, np.zeros(4, bool)))
    grid = moment_grid(5.0, 2.0)
    assert grid.tolist() == [[0, 2], [2, 4], [3, 5]] and moment_grid(1.5, 2.0).tolist() == [[0, 1.5]]
    assert relevant_moments(grid, [(1.0, 3.0)]).tolist() == [True, True, False]  # at least half inside


def test_motion_finds_the_only_moment_that_moves(moving):
    result = highlights(moving, "motion", clip=1.0, top=1)
    assert len(result["moments"]) == 5 and result["top"][0]["start"] == 2.0
    grid = np.array([[m["start"], m["end"]] for m in result["moments"]])
    scores = np.array([m["score"] for m in result["moments"]])
    assert average_precision(scores, relevant_moments(grid, [(2.0, 3.0)])) == 1.0


class ColourEmbedder(Embedder):
    """A known-answer video-text model: a clip's vector is its mean colour; 'red' is red."""

    def __init__(self):
        self.num_frames, self.image_size = 2, 16

    def encode_clips(self, clips):
        v = clips.mean((1, 3, 4))
        return torch.nn.functional.normalize(v, dim=-1).numpy()

    def encode_text(self, texts):
        return np.array([[1.0, 0.0, 0.0] if "red" in t else [0.0, 0.0, 1.0] for t in texts])


def test_a_query_picks_the_moment_it_describes(three_shots):
    result = highlights(three_shots, "query", query="something red", scorer=ColourEmbedder(), clip=1.0, top=1)
    assert result["top"][0]["start"] == 8.0
    with pytest.raises(Exception, match="--query"):
        highlights(three_shots, "query", scorer=ColourEmbedder())


def test_the_summary_covers_every_shot_within_its_budget(three_shots, tmp_path):
    summary = summarize(three_shots, budget=0.15, segment=0.5)
    assert summary["shots"] == 3 and summary["seconds"] <= 0.15 * 12 + 1e-6
    shots = [(0.0, 8.0), (8.0, 9.0), (9.0, 12.0)]
    assert coverage_and_redundancy(summary["segments"], shots) == {"coverage": 1.0, "redundancy": 0.0}
    assert coverage_and_redundancy(uniform_summary(12.0, 0.15, 0.5), shots)["coverage"] < 1.0  # evenly spaced misses the short shot
    written = write_summary(summary, tmp_path / "s.mp4", tmp_path / "s.png")
    with VideoReader(written["video"]) as r:
        assert len(r) == round(summary["seconds"] * FPS)
    assert (tmp_path / "s.png").stat().st_size > 0


def test_the_commands(moving, three_shots, tmp_path, capsys):
    code, out, err = run(capsys, "highlights", moving, "--clip", "1", "--top", "2", "--plot", tmp_path / "h.png", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["top"][0]["start"] == 2.0 and (tmp_path / "h.png").stat().st_size > 0
    code, out, err = run(capsys, "summarize", three_shots, "--out", tmp_path / "s.mp4")
    assert code == 0, err
    assert "3 shots" in out and (tmp_path / "s.png").exists()
    for argv, message in ((["highlights", tmp_path / "missing.mp4"], "not found"), (["highlights", moving, "--method", "query", "--query", "x"], "--model"),
                          (["summarize", three_shots, "--out", tmp_path / "x.mp4", "--budget", "0"], "--budget")):  # fmt: skip
        code, _, err = run(capsys, *argv)
        assert code == 1 and message in err


def test_the_summary_keeps_each_segments_own_sound(tmp_path):
    from vidfm.io.audio import Audio, read_audio

    rate, tones = 16000, (220.0, 880.0, 440.0)  # one tone per shot
    lengths = (8, 1, 3)
    frames = np.concatenate([solid(c, s * FPS) for c, s in zip(((30, 60, 200), (210, 40, 40), (40, 180, 60)), lengths)])
    wave = np.concatenate([0.5 * np.sin(2 * np.pi * f * np.arange(s * rate) / rate) for f, s in zip(tones, lengths)]).astype(np.float32)
    video = write_video(tmp_path / "toned.mp4", frames, fps=FPS, audio=Audio(wave[None], rate))
    summary = summarize(video, budget=0.15, segment=0.5)
    written = write_summary(summary, tmp_path / "s.mp4")
    sound = read_audio(written["video"], mono=True, rate=rate)
    assert sound is not None and abs(sound.duration - summary["seconds"]) < 0.1
    offset = 0.0
    for sg in summary["segments"]:
        length = sg["end"] - sg["start"]
        part = sound.cut(offset + 0.1 * length, offset + 0.9 * length).samples[0]
        peak = np.fft.rfftfreq(len(part), 1 / rate)[np.abs(np.fft.rfft(part)).argmax()]
        expected = tones[0 if sg["start"] < 8 else 1 if sg["start"] < 9 else 2]
        assert abs(peak - expected) < 20, (sg, peak)
        offset += length
