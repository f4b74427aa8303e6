"""Audio-visual sync, audio-visual classification and audio-driven generation."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.io.audio import read_audio, write_wav
from vidfm.tasks.sync import offset_accuracy, sync_curve, sync_scores


class CodeSync(torch.nn.Module):
    """A stand-in sync model with a known answer: a video window embeds the index written in
    its middle frame, an audio window the index in its middle step."""

    class config:
        frames, size = 5, 4

    @staticmethod
    def _code(values):
        return torch.nn.functional.one_hot(values.long() % 64, 64).float()

    def embed_video(self, video):  # (B, 3, 5, S, S)
        return self._code(video[:, 0, 2, 0, 0] * 255)

    def embed_audio(self, audio):  # (B, 5, D)
        return self._code(audio[:, 2, 0])


def coded_clip(t=30, pad=20):
    frames = torch.zeros(t, 4, 4, 3, dtype=torch.uint8)
    frames[:, 0, 0, 0] = torch.arange(t, dtype=torch.uint8)
    audio = torch.full((t + 2 * pad, 5, 8), -1.0)
    audio[pad : pad + t, 2, 0] = torch.arange(t, dtype=torch.float32)
    return frames, audio


def test_the_sweep_finds_the_shift_and_scores_it_as_syncnet_does():
    frames, audio = coded_clip()
    model = CodeSync()
    for k in (-7, -1, 0, 3, 12):
        shifted = torch.roll(audio, k, dims=0)  # the sound arrives k frames late
        curve = sync_curve(model, frames, shifted[20 - 15 : len(shifted) - 20 + 15], 15)
        s = sync_scores(curve)
        assert s["offset"] == k
        assert s["sync_d"] == pytest.approx(0.0) and s["sync_c"] == pytest.approx(np.median(curve))  # Sync-C = median - min
    res = offset_accuracy(model, [{"frames": frames, "audio": audio}], offsets=(-5, 0, 5))
    assert res["offset_acc"] == 1.0 and res["offset_error"] == 0.0 and res["trials"] == 3


def test_a_trained_sync_model_finds_injected_offsets(sound_world, tmp_path, capsys):
    code, out, _ = run(capsys, "train", "sync", sound_world, "--out", tmp_path / "sync", "--max-steps", "150", "--batch-size", "16",
                       "--lr", "2e-3", "--json")  # fmt: skip
    assert code == 0
    from vidfm.tasks.sync import MAX_OFFSET, load_clips, load_sync_model, sync_records

    model = load_sync_model(tmp_path / "sync")
    clips = load_clips(sync_records(sound_world, "train"), 32, 2 * MAX_OFFSET, model.config)
    clicks = [c for c in clips if any(abs(e - round(e)) < 1e-6 for e in c["events"])][:12]
    res = offset_accuracy(model, clicks, offsets=(-6, -2, 3, 8))
    assert res["offset_acc"] >= 0.75, res

    # the command: a video with its own sound, a separate sound file, a plot; bad inputs fail clearly
    meta = [json.loads(x) for x in (sound_world / "metadata.jsonl").read_text().splitlines()]
    bounce = next(m for m in meta if m["label"] == "bounce")
    video = sound_world / bounce["path"]
    code, out, _ = run(capsys, "sync", video, "--model", tmp_path / "sync", "--json", "--plot", tmp_path / "curve.png")
    result = json.loads(out)
    assert code == 0 and len(result["curve"]) == 31 and {"offset", "offset_seconds", "sync_c", "sync_d"} <= set(result)
    assert (tmp_path / "curve.png").stat().st_size > 5000
    late = read_audio(video).shift(0.5)  # four frames at 8 fps
    write_wav(tmp_path / "late.wav", late)
    code, out, _ = run(capsys, "sync", video, "--model", tmp_path / "sync", "--audio", tmp_path / "late.wav")
    assert code == 0 and "offset" in out and "Sync-C" in out
    silent = tmp_path / "silent.mp4"
    from vidfm.io import read_video, write_video

    write_video(silent, read_video(video), fps=8)
    code, out, err = run(capsys, "sync", silent, "--model", tmp_path / "sync")
    assert code == 1 and "has no audio track" in out and "Traceback" not in err
    code, _, err = run(capsys, "sync", video, "--model", tmp_path / "nope")
    assert code == 1 and "not a sync model" in err


def test_degradations_are_what_they_say(tmp_path):
    from vidfm.io.audio import Audio
    from vidfm.tasks.av_classify import NOISE_SNR_DB, degrade_frames, noisy

    tone = Audio((0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)[None], 16000)
    mixed = noisy(tone, NOISE_SNR_DB, seed=0)
    noise = mixed.samples - tone.samples
    snr = 10 * np.log10((tone.samples**2).mean() / (noise**2).mean())
    assert abs(snr - NOISE_SNR_DB) < 0.2
    video = torch.rand(2, 3, 4, 8, 8)
    bad = degrade_frames(video, torch.Generator().manual_seed(0))
    assert bad.shape == video.shape and 0.1 < (bad - 0.25 * video).mean() < 0.5  # 3/4 noise


def test_av_classifier_trains_and_reports_every_head(sound_world, tmp_path, capsys):
    code, out, _ = run(capsys, "train", "av-classify", sound_world, "--out", tmp_path / "av", "--max-steps", "4", "--batch-size", "8",
                       "--frames", "8", "--json")  # fmt: skip
    assert code == 0
    ev = json.loads(out)["best_eval"]
    for k in ("accuracy", "acc_audio", "acc_video", "acc_fused_video_degraded", "acc_video_degraded", "acc_fused_audio_degraded", "acc_audio_degraded"):
        assert 0.0 <= ev[k] <= 1.0


def test_with_audio_starts_as_the_text_only_model_and_both_fusions_listen():
    from vidfm.models.dit import with_audio
    from vidfm.models.generative import build_denoiser

    torch.manual_seed(0)
    base = build_denoiser("dit-tiny", latent_channels=4, text_dim=16, width=48, depth=2, heads=2).eval()
    torch.nn.init.normal_(base.proj_out.weight, std=0.05)
    x, t = torch.randn(2, 4, 3, 8, 8), torch.tensor([500.0, 100.0])
    text, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    sound = torch.randn(2, 3, 10, 32)
    for fusion in ("cross", "add"):
        model = with_audio(base, 32, 10, fusion).eval()
        assert torch.equal(model(x, t, text, mask, audio=sound), base(x, t, text, mask))  # zero-initialised
        open_audio_layers(model)  # as training would: now the sound changes the prediction
        changed = sound.clone()
        changed[:, 2] += 1.0
        assert not torch.allclose(model(x, t, text, mask, audio=sound), model(x, t, text, mask, audio=changed))
        assert not torch.allclose(model(x, t, text, mask, audio=sound), model(x, t, text, mask))  # no audio differs from some audio


def open_audio_layers(model) -> None:
    """Set the zero-initialised audio output projections to non-zero values."""
    if model.config.audio_fusion == "add":
        torch.nn.init.normal_(model.audio_add.weight, std=0.1)
    for block in model.blocks:
        if hasattr(block, "audio_attn"):
            torch.nn.init.normal_(block.audio_attn.to_out.weight, std=0.1)


def test_audio_driven_generation_end_to_end(sound_world, gen_runs, tmp_path, capsys):
    code, _, _ = run(capsys, "train", "denoiser", sound_world, "--vae", gen_runs / "vae", "--audio", "cross", "--out", tmp_path / "adg",
                     "--max-steps", "2", "--batch-size", "4", "--frames", "5")  # fmt: skip
    assert code == 0
    meta = [json.loads(x) for x in (sound_world / "metadata.jsonl").read_text().splitlines()]
    bounce = next(m for m in meta if m["label"] == "bounce")
    write_wav(tmp_path / "clicks.wav", read_audio(sound_world / bounce["path"]))
    code, out, _ = run(capsys, "generate", "a red circle bounces", "--model", tmp_path / "adg", "--audio", tmp_path / "clicks.wav",
                       "--out", tmp_path / "g.mp4", "--steps", "2", "--json")  # fmt: skip
    assert code == 0
    sound = read_audio(tmp_path / "g.mp4")
    assert sound is not None and abs(sound.duration - 5 / 8) < 0.1  # the clip's stretch of the sound is muxed in
    # the sound changes the video (same seed); a model without audio refuses it; bad files fail clearly
    from vidfm.io import read_video
    from vidfm.pipelines import VideoGenerationPipeline

    pipe = VideoGenerationPipeline.from_pretrained(tmp_path / "adg")
    open_audio_layers(pipe.denoiser)  # two steps barely move the zero-initialised projections
    sound = read_audio(sound_world / bounce["path"])
    a = pipe("a red circle bounces", audio=sound, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    b = pipe("a red circle bounces", audio=sound, audio_start=1.0, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames
    assert not np.array_equal(a, b)
    assert read_video(tmp_path / "g.mp4").shape[0] == 5
    code, _, err = run(capsys, "generate", "a red circle bounces", "--model", gen_runs / "den", "--audio", tmp_path / "clicks.wav", "--out", tmp_path / "x.mp4")
    assert code == 1 and "trained without audio" in err
    code, _, err = run(capsys, "generate", "x", "--model", tmp_path / "adg", "--audio", tmp_path / "clicks.wav", "--audio-start", "99", "--out", tmp_path / "x.mp4")
    assert code == 1 and "outside" in err


def test_sync_guidance_pulls_a_text_only_model_towards_the_sound(sound_world, gen_runs):
    from vidfm.editing import VideoEditPipeline
    from vidfm.models.audio_visual import SyncNet
    from vidfm.tasks.sync_guidance import generate_in_sync

    pipe = VideoEditPipeline.from_pretrained(gen_runs / "den")  # a text-only model
    torch.manual_seed(0)
    sync = SyncNet(size=16, width=8, embed_dim=16).eval()  # any differentiable aligner: guidance lowers what it measures
    meta = [json.loads(x) for x in (sound_world / "metadata.jsonl").read_text().splitlines()]
    sound = read_audio(sound_world / next(m for m in meta if m["label"] == "bounce")["path"])
    common = dict(num_videos=2, num_inference_steps=4, generator=None)
    plain, plain_loss = generate_in_sync(pipe, sync, "a red circle bounces", sound, scale=0.0, **common)
    guided, guided_loss = generate_in_sync(pipe, sync, "a red circle bounces", sound, scale=3.0, **common)
    assert plain.shape == guided.shape == (2, 5, 16, 16, 3) and plain.dtype == np.uint8
    assert all(g < p for g, p in zip(guided_loss, plain_loss)), (plain_loss, guided_loss)
    with pytest.raises(ConfigError, match="--sync-guidance must be >= 0"):
        generate_in_sync(pipe, sync, "x", sound, scale=-1.0)


def test_generate_with_sync_guidance_from_the_cli(sound_world, gen_runs, tmp_path, capsys):
    from vidfm.models.audio_visual import SyncNet

    torch.manual_seed(0)
    SyncNet(size=16, width=8, embed_dim=16).save_pretrained(tmp_path / "sync")
    meta = [json.loads(x) for x in (sound_world / "metadata.jsonl").read_text().splitlines()]
    write_wav(tmp_path / "clicks.wav", read_audio(sound_world / next(m for m in meta if m["label"] == "bounce")["path"]))
    args = ("a red circle bounces", "--model", gen_runs / "den", "--audio", tmp_path / "clicks.wav", "--steps", "3")
    code, out, err = run(capsys, "generate", *args, "--sync-model", tmp_path / "sync", "--out", tmp_path / "g.mp4", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["sync_guidance"]["scale"] == 1.0 and len(res["sync_guidance"]["misalignment"]) == 1
    assert read_audio(tmp_path / "g.mp4") is not None  # the sound is muxed in, as with an audio-trained model
    code, _, err = run(capsys, "generate", "x", "--model", gen_runs / "den", "--sync-model", tmp_path / "sync", "--out", tmp_path / "x.mp4")
    assert code == 1 and "give --audio too" in err
    code, _, err = run(capsys, "generate", *args, "--sync-model", tmp_path / "nope", "--out", tmp_path / "x.mp4")
    assert code == 1 and "not a sync model" in err and "Traceback" not in err
