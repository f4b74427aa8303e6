"""Audio: the track round-trips through vidfm's writers and reader, features align to frames
as the anchors align them, and the world's sounds happen where its events do."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.data.audio import (
    SILENCE_DB,
    align_to_frames,
    frame_features,
    frames_for,
    log_mel,
    pack_to_latent_frames,
)
from vidfm.errors import ConfigError, VideoDecodeError
from vidfm.io.audio import Audio, load_audio, read_audio, write_wav
from vidfm.io.writer import write_video


def chirp(seconds=2.0, rate=16000, stereo=True):
    t = np.arange(int(seconds * rate)) / rate
    left = 0.4 * np.sin(2 * np.pi * (200 * t + 150 * t * t))  # 200 -> 800 Hz over 2 s
    right = 0.2 * np.sin(2 * np.pi * 440 * t)
    return Audio(np.stack([left, right] if stereo else [left]).astype(np.float32), rate)


def lag_and_corr(a: np.ndarray, b: np.ndarray, max_lag: int = 1000):
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    scores = [np.dot(a[max(0, -k) : n - max(0, k)], b[max(0, k) : n - max(0, -k)]) for k in range(-max_lag, max_lag + 1)]
    k = int(np.argmax(scores))
    return k - max_lag, scores[k] / np.sqrt((a * a).sum() * (b * b).sum())


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_audio_round_trips_through_the_writers_and_reader(tmp_path, suffix):
    sound = chirp()
    frames = np.zeros((16, 32, 32, 3), np.uint8)
    path = write_video(tmp_path / f"v{suffix}", frames, fps=8, audio=sound)
    back = read_audio(path, rate=16000)  # Opus (WebM) runs at 48 kHz: resampled back
    assert back.rate == 16000 and back.channels == 2
    assert abs(back.duration - sound.duration) < 0.1
    for ch in range(2):  # no delay, the same waveform, and left stays left
        lag, corr = lag_and_corr(sound.samples[ch], back.samples[ch])
        assert abs(lag) <= 2 and corr > 0.95, (suffix, ch, lag, corr)
    assert read_audio(path, mono=True).channels == 1


def test_wav_files_load_and_bad_sound_files_say_what_is_wrong(tmp_path, videos):
    sound = chirp(stereo=False)
    write_wav(tmp_path / "tone.wav", sound)
    back = load_audio(tmp_path / "tone.wav", rate=8000)
    assert back.rate == 8000 and back.channels == 1 and abs(back.duration - 2.0) < 0.01
    with pytest.raises(VideoDecodeError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(VideoDecodeError, match="has no audio track"):
        load_audio(videos["coded"])
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    with pytest.raises(VideoDecodeError, match="junk.wav"):
        load_audio(tmp_path / "junk.wav")


def test_probe_reports_the_audio_track(videos, capsys):
    code, out, _ = run(capsys, "probe", videos["with_audio"])
    assert code == 0 and "aac 16000 Hz, 2 ch" in out
    code, out, _ = run(capsys, "probe", videos["coded"], "--json")
    info = json.loads(out)
    assert not info["has_audio"] and info["audio_rate"] == 0


def test_log_mel_puts_energy_at_the_right_time_and_pitch():
    rate = 16000
    x = np.zeros((1, rate), np.float32)
    t = np.arange(1600) / rate
    x[0, 8000:9600] = 0.5 * np.sin(2 * np.pi * 1000 * t)  # 1 kHz from 0.5 to 0.6 s
    mel = log_mel(Audio(x, rate), n_mels=40)
    assert mel.shape == (1, 101, 40)  # 10 ms hop, centred frames
    loud = mel[0].max(dim=1).values > SILENCE_DB + 1
    assert loud[:45].sum() == 0 and loud[52:58].all() and loud[66:].sum() == 0
    high = log_mel(Audio(x * 0 + np.sin(2 * np.pi * 4000 * np.arange(rate) / rate).astype(np.float32), rate))
    assert int(high[0, 50].argmax()) > int(mel[0, 55].argmax())  # a higher pitch lands in a higher band


def test_features_align_to_frames_with_a_window_and_pack_to_latent_frames():
    assert frames_for(2.0, 8) == 16 and frames_for(2.01, 8) == 17 and frames_for(1 / 3, 30) == 10
    # features that count their own step: frame i's sub-steps average to known values
    steps, spf = 64, 4
    feats = torch.arange(steps, dtype=torch.float32).view(1, steps, 1)
    aligned = align_to_frames(feats, 16, steps_per_frame=spf, window=2)
    assert aligned.shape == (16, 5, spf)
    assert torch.equal(aligned[5, 2], torch.tensor([20.0, 21, 22, 23]))  # frame 5 itself
    assert torch.equal(aligned[5, 0], aligned[3, 2]) and torch.equal(aligned[5, 4], aligned[7, 2])  # +-2 frames
    assert torch.equal(aligned[0, 0], aligned[0, 2]) and torch.equal(aligned[15, 4], aligned[15, 2])  # edges repeat
    # a 10 ms click between samples of a linear resampling is still seen (area average)
    click = torch.full((1, 200, 1), SILENCE_DB)
    click[0, 101] = 0.0
    seen = align_to_frames(click, 8, steps_per_frame=1, window=0)
    assert seen[4, 0, 0] > SILENCE_DB  # 101 of 200 steps -> frame 4 of 8
    packed = pack_to_latent_frames(aligned[:9], 4)
    assert packed.shape == (3, 20, spf)
    assert torch.equal(packed[0, :5], aligned[0]) and torch.equal(packed[0, 15:], aligned[0])  # first frame kept alone
    assert torch.equal(packed[1], aligned[1:5].reshape(20, spf)) and torch.equal(packed[2, 15:], aligned[8])
    with pytest.raises(ConfigError, match="do not pack"):
        pack_to_latent_frames(aligned[:8], 4)


def test_frame_features_cut_the_audio_under_the_frames():
    rate, fps = 16000, 8
    x = np.zeros((2, 4 * rate), np.float32)
    x[1, 2 * rate : 2 * rate + 400] = 0.8  # a burst at 2.0 s, right channel only
    audio = Audio(x, rate)
    f = frame_features(audio, 9, fps, start=1.5)  # frames at 1.5 .. 2.5 s: the burst is frame 4
    loud = f[:, 2].view(9, 2, 4, 40).amax(dim=(2, 3)) > SILENCE_DB + 1
    assert loud[:, 0].sum() == 0 and loud[4, 1] and loud[:3, 1].sum() == 0
    assert frame_features(audio, 9, fps, start=3.5).shape == (9, 5, 320)  # past the end: silence, same shape
    assert frame_features(audio, 9, fps, channels=1).shape == (9, 5, 160)


def test_a_world_with_sound_clicks_where_the_ball_lands(tmp_path, capsys):
    from vidfm.data.synthetic import COLOURS
    from vidfm.io import read_video

    code, _, _ = run(capsys, "synth", tmp_path / "w", "--videos", "36", "--audio", "--seed", "3", "--multishot-fraction", "0.1")
    assert code == 0
    metas = [json.loads(line) for line in (tmp_path / "w" / "metadata.jsonl").read_text().splitlines()]
    assert all("sound_events" in m for m in metas)
    bounces = [m for m in metas if m["label"] == "bounce"]
    assert bounces
    for m in bounces:
        clicks = [e for e in m["sound_events"] if e["kind"] == "click"]
        assert len(clicks) == 3
        audio = read_audio(tmp_path / "w" / m["path"], mono=True)
        env = np.abs(audio.samples[0])
        frames = read_video(tmp_path / "w" / m["path"])
        colour = np.array(COLOURS[m["shots"][0]["objects"][0]["colour"]])
        ys = np.array([np.nonzero(np.abs(f.astype(int) - colour).sum(-1) < 60)[0].mean() for f in frames])  # centroid height
        for c in clicks:  # the click is in the sound, and at that frame the object is down on its ground line
            s = int(c["time"] * audio.rate)
            assert env[s : s + 200].max() > 0.3 and env[max(0, s - 800) : s - 100].max() < 0.1
            lo, hi = int(np.floor(c["frame"])), min(int(np.ceil(c["frame"])), len(ys) - 1)
            around = ys[max(0, lo - 2) : hi + 3]
            assert max(ys[lo], ys[hi]) >= around.max() - 0.5  # lowest point (image y grows downward)
        assert ys.max() - ys.min() > 5  # and in between it is in the air
    silent = [m for m in metas if m["label"] == "stay_still"]
    assert silent and np.abs(read_audio(tmp_path / "w" / silent[0]["path"]).samples).max() < 0.01
    moving = [m for m in metas if m["label"] == "move_right"][0]
    audio = read_audio(tmp_path / "w" / moving["path"])
    ev = [e for e in moving["sound_events"] if e["kind"] == "tone_move_right"][0]
    a, b = int(ev["start"] * audio.rate), int(ev["end"] * audio.rate)
    first, last = audio.samples[:, a : a + (b - a) // 4], audio.samples[:, b - (b - a) // 4 : b]
    pan = lambda x: np.abs(x[1]).mean() / np.abs(x).mean()  # noqa: E731 - share of the right channel
    assert pan(last) > pan(first) + 0.1  # the sound follows the object to the right
    # the default world stays silent: nothing changes for existing users
    code, _, _ = run(capsys, "synth", tmp_path / "quiet", "--videos", "4")
    assert code == 0 and read_audio(next((tmp_path / "quiet" / "videos").glob("*.mp4"))) is None
