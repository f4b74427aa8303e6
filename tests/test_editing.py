"""Video editing: the steps and inversion, masks, attention injection, windows, time
ranges, flow propagation, drag, exact edit pairs and the ``vidfm edit`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError


@pytest.fixture(scope="module")
def pipe(gen_runs):
    from vidfm.editing import VideoEditPipeline

    return VideoEditPipeline.from_pretrained(gen_runs / "den")


@pytest.fixture(scope="module")
def clip(pipe):
    """A clip at the tiny model's size (5 frames, 16x16): a red square moving right on grey."""
    n, s = pipe.config.num_frames, pipe.config.height
    v = np.full((n, s, s, 3), 60, np.uint8)
    for k in range(n):
        v[k, 6:10, 2 + 2 * k : 6 + 2 * k] = (230, 30, 30)
    return v


# -- the deterministic steps agree with diffusers' ----------------------------------------------
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_steps_match_diffusers_schedulers_both_ways(prediction):
    from diffusers import DDIMInverseScheduler

    from vidfm.editing.pipeline import Levels
    from vidfm.objectives.diffusion import sampling_scheduler, training_scheduler

    cfg = dict(training_scheduler(prediction).config)
    fake = type("P", (), {"config": type("C", (), {"prediction": prediction})(), "scheduler": type("S", (), {"config": cfg})()})()
    levels = Levels(fake, 25)
    ddim = sampling_scheduler(cfg, "ddim")
    ddim.set_timesteps(25)
    inverse = DDIMInverseScheduler.from_config(cfg, timestep_spacing="trailing")
    inverse.set_timesteps(25)
    g = torch.Generator().manual_seed(0)
    x, pred = torch.randn(1, 4, 3, 4, 4, generator=g), torch.randn(1, 4, 3, 4, 4, generator=g)
    for i in (0, 7, 24):
        ours = levels.move(pred, x, i, i + 1)
        theirs = ddim.step(pred, ddim.timesteps[i], x, eta=0.0).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-5)
    # the inverse scheduler's step at timestep t goes from t - 1000 // N up to t: our level i+1 -> i
    for i in (0, 12, 24):
        t = inverse.timesteps[24 - i]
        assert int(t) == int(ddim.timesteps[i])
        assert torch.allclose(levels.move(pred, x, i + 1, i), inverse.step(pred, t, x).prev_sample, atol=1e-5)


def test_flow_levels_match_the_euler_scheduler_and_invert_a_straight_path():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from vidfm.editing.pipeline import Levels
    from vidfm.objectives.diffusion import training_scheduler

    cfg = dict(training_scheduler("flow").config)
    fake = type("P", (), {"config": type("C", (), {"prediction": "flow"})(), "scheduler": type("S", (), {"config": cfg})()})()
    levels = Levels(fake, 10)
    euler = FlowMatchEulerDiscreteScheduler.from_config(cfg)
    euler.set_timesteps(10)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)
    x = levels.noise_to(x0, noise, 0)
    assert torch.allclose(levels.move(noise - x0, x, 0, 1), euler.step(noise - x0, euler.timesteps[0], x).prev_sample, atol=1e-5)
    # with the true velocity the path is straight: inversion from clean lands on the noise exactly
    y = x0
    for level in range(9, -1, -1):
        y = levels.move(noise - x0, y, level + 1, level)
    assert torch.allclose(y, noise, atol=1e-4)
    assert levels.start(0.6) == 10 - 6 and levels.start(1.0) == 0  # diffusers' img2img start


# -- one clip ------------------------------------------------------------------------------------
def test_sdedit_is_reproducible_and_a_mask_keeps_the_rest_exactly(pipe, clip):
    a = pipe.edit_clip(clip, "a blue square moves right", strength=0.8, num_inference_steps=4)
    b = pipe.edit_clip(clip, "a blue square moves right", strength=0.8, num_inference_steps=4)
    assert a.frames.shape == clip.shape and a.frames.dtype == np.uint8 and np.array_equal(a.frames, b.frames)
    mask = np.zeros(clip.shape[:3], np.float32)
    mask[:, 4:12, :] = 1
    m = pipe.edit_clip(clip, "a blue square moves right", strength=0.8, num_inference_steps=4, mask=mask).frames
    assert np.array_equal(m[mask == 0], clip[mask == 0])
    assert not np.array_equal(m[mask == 1], clip[mask == 1])


def test_inversion_and_p2p_report_reconstruction_and_restore_the_processors(pipe, clip):
    from vidfm.models.attention import AttnProcessor

    for method in ("inversion", "p2p"):
        out = pipe.edit_clip(clip, "a blue square moves right", "a red square moves right", method=method, num_inference_steps=3)
        assert out.reconstruction.shape == clip.shape and 0 < out.inversion_psnr < 100
    assert all(isinstance(p, AttnProcessor) for p in pipe.denoiser.attn_processors.values())
    from vidfm.editing import AttentionSettings

    ctl = pipe._controller("p2p", ["a red square", "a dark blue square"], AttentionSettings(emphasis=2.0, reweight={"square": 0.5}), 5, True)
    assert sorted(ctl.reweight.items()) == [(2, 2.0), (3, 2.0), (4, 0.5)]  # [CLS] a dark blue square: the new words emphasised
    nt = pipe.edit_clip(clip, "a blue square moves right", "a red square moves right", method="inversion", num_inference_steps=3, null_text=True)
    assert nt.frames.shape == clip.shape
    derived = pipe.edit_clip(clip, "a blue square moves right", "a red square moves right", method="p2p", num_inference_steps=3, mask="attention")
    assert derived.mask.shape == clip.shape[:3] and set(np.unique(derived.mask)) <= {0.0, 1.0}
    diffedit = pipe.edit_clip(clip, "a blue square moves right", "a red square moves right", num_inference_steps=3, mask="diffedit")
    assert diffedit.mask.shape == clip.shape[:3] and 0 < diffedit.mask.mean() < 1


def test_bad_edit_settings_are_refused(pipe, clip):
    with pytest.raises(ConfigError, match="strength"):
        pipe.edit_clip(clip, "x", strength=1.5)
    with pytest.raises(ConfigError, match="source-prompt"):
        pipe.edit_clip(clip, "x", method="inversion")
    with pytest.raises(ConfigError, match="does not fit"):
        pipe.edit_clip(clip, "x", mask=np.ones((2, 16, 16)))
    with pytest.raises(ConfigError, match="refine"):
        from vidfm.editing import AttentionSettings

        pipe.edit_clip(clip, "a dark blue square", "a red square", method="p2p", num_inference_steps=2, attention=AttentionSettings(cross="replace"))
    with pytest.raises(ConfigError, match="uint8"):
        pipe.edit_clip(clip[:2], "x")


def test_token_alignment_and_cross_attention_injection():
    from vidfm.editing.attention import EditController, token_alignment

    mapping, changed = token_alignment(["a", "red", "square"], ["a", "dark", "blue", "square"])
    assert mapping.tolist() == [0, -1, -1, 2] and changed == [1, 2]
    w = torch.rand(2, 1, 6, 3).softmax(-1)  # [source, edit] x heads x queries x tokens
    ctl = EditController(num_steps=10, cross_mode="replace", cross_steps=0.5, mapping=np.array([0, 1, 2]))
    assert torch.equal(ctl.cross_weights(w)[1], w[0])
    ctl.step = 6  # past the injection window: the edit keeps its own maps
    assert torch.equal(ctl.cross_weights(w)[1], w[1])
    ctl = EditController(num_steps=10, cross_mode="refine", mapping=np.array([0, -1, 2]), reweight={1: 2.0})
    out = ctl.cross_weights(w)
    assert torch.allclose(out[1][..., 0], w[0][..., 0]) and torch.allclose(out[1][..., 1], 2 * w[1][..., 1])


# -- any length, time ranges, flow, drag --------------------------------------------------------
def test_windows_stream_and_only_the_time_range_changes(pipe, clip):
    from vidfm.editing.video import edit_video

    n = pipe.config.num_frames
    long = np.concatenate([clip, clip[::-1], clip])[: 3 * (n - 1) + 1]
    reads = []

    def frames():
        for k, f in enumerate(long):
            reads.append(k)
            yield f

    stream = edit_video(pipe, frames(), "a blue square", strength=0.7, num_inference_steps=2, frame_range=(n, n + 2), border=1)
    first = next(stream)
    assert len(reads) <= n  # one window read ahead, no more
    out = np.stack([first, *stream])
    assert out.shape == long.shape
    untouched = [k for k in range(len(long)) if k < n - 1 or k > n + 2]
    assert all(np.array_equal(out[k], long[k]) for k in untouched)
    assert not all(np.array_equal(out[k], long[k]) for k in range(n, n + 2))


def test_flow_and_drag_edits_keep_everything_outside_the_mask(pipe, clip):
    from vidfm.editing.video import edit_video

    mask = np.zeros(clip.shape[:3], np.float32)
    mask[:, 3:13, :] = 1
    for method in ("flow", "sdedit"):
        out = np.stack(list(edit_video(pipe, list(clip), "a blue square", method=method, mask=mask, strength=0.9, num_inference_steps=2)))
        assert np.array_equal(out[mask == 0], clip[mask == 0]), method


def test_flow_propagation_carries_the_edited_key_frames_along_the_motion(clip):
    from vidfm.editing.video import propagate

    edited = clip.copy()
    edited[0][clip[0, :, :, 0] > 200] = (30, 30, 230)  # key frames recoloured blue
    edited[-1][clip[-1, :, :, 0] > 200] = (30, 30, 230)
    out = propagate(clip, edited)
    mid = len(clip) // 2
    square = clip[mid, :, :, 0] > 200
    assert out[mid][square][:, 2].mean() > 150 and out[mid][square][:, 0].mean() < 100  # the moved square is blue
    assert np.abs(out[mid][~square].astype(int) - clip[mid][~square]).mean() < 3


def test_drag_track_parsing_and_latent_move(pipe, clip):
    from vidfm.editing.video import drag_latents, edit_video, parse_track

    track = parse_track("0:2,8;4:10,8", 5, 16, 16)
    assert track[2] == (6.0, 8.0) and len(track) == 5
    assert parse_track([[0, 4, 4], [2, 8, 8]], None, 16, 16, scale=(0.5, 0.5))[2] == (4.0, 4.0)
    for bad, msg in (("0:20,8;4:2,2", "outside the frame"), ("0:1,1", "two points"), ("0:1,1;9:2,2", "outside the video"), ("nonsense", "expected")):
        with pytest.raises(ConfigError, match=msg):
            parse_track(bad, 5, 16, 16)
    f = pipe.vae.spatial_factor
    z = torch.zeros(1, 4, 1, 8, 8)
    z[0, :, 0, 2, 2] = 1.0  # a blob in latent cell (2, 2): pixels around 2.5 f
    at = 2.5 * f - 0.5
    moved = drag_latents(pipe, z, [0], {0: (at, at)}, {0: (at + 2 * f, at)}, radius=float(f))
    assert moved[0, 0, 0, 2, 4] > 0.9 and moved[0, 0, 0, 2, 2] < 0.1  # moved two cells right, its old cell filled
    out = np.stack(list(edit_video(pipe, list(clip), "a red square", method="drag", track=track, num_inference_steps=2)))
    assert out.shape == clip.shape


def test_world_edit_pairs_are_exact(world):
    from vidfm.tasks.editing_eval import edit_pairs, edit_scores

    pairs = edit_pairs(world, split="train", per_kind=1, num_frames=5, size=32)
    kinds = {p["kind"] for p in pairs}
    assert {"colour", "shape", "size"} <= kinds
    for p in pairs:
        assert p["source_prompt"] != p["prompt"] or p["kind"] == "size"
        assert np.array_equal(p["source"][~p["mask"]], p["target"][~p["mask"]])  # the edit changes nothing outside its mask
        assert not np.array_equal(p["source"], p["target"])
        perfect = edit_scores(p["target"], p, derived_mask=p["mask"])
        assert perfect["psnr_full_target"] == 100.0 and perfect["mask_iou"] == 1.0
        unchanged = edit_scores(p["source"], p)
        assert unchanged["psnr_full_target"] < 100.0
        if p["kind"] == "size":  # an unedited clip must not pass as a size edit
            assert unchanged["success"] == 0.0 and perfect["success"] == 1.0


# -- the command ---------------------------------------------------------------------------------
def test_edit_command_runs_every_method_and_refuses_bad_input(pipe, clip, gen_runs, tmp_path, capsys):
    from PIL import Image

    from vidfm.io import read_video
    from vidfm.io.writer import write_video

    src = write_video(tmp_path / "src.mp4", np.concatenate([clip, clip[1:]]), fps=8)  # 9 frames: two windows
    common = ["--model", gen_runs / "den", "--steps", "2"]
    for method, extra in (("sdedit", []), ("inversion", ["--source-prompt", "a red square"]), ("p2p", ["--source-prompt", "a red square", "--mask", "attention"]),
                          ("flow", ["--from", "0.5"]), ("drag", ["--track", "0:4,8;8:12,8"])):  # fmt: skip
        code, out, _ = run(capsys, "edit", src, "a blue square", "--method", method, "--out", tmp_path / f"{method}.mp4", "--json", *extra, *common)
        assert code == 0, method
        res = json.loads(out)
        assert res["frames"] == 9 and res["windows"] == 2
        assert len(read_video(tmp_path / f"{method}.mp4")) == 9 and (tmp_path / f"{method}_compare.mp4").exists() and (tmp_path / f"{method}.png").exists()
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
    assert run(capsys, "edit", src, "a blue square", "--mask", tmp_path / "m.png", "--out", tmp_path / "m.mp4", *common)[0] == 0
    write_video(tmp_path / "mask3.mp4", np.zeros((3, 16, 16, 3), np.uint8), fps=8)
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(tmp_path / "small.png")
    for args, msg in (
        (["--mask", tmp_path / "small.png"], "the mask is 12x10"),
        (["--mask", tmp_path / "mask3.mp4"], "3 frames"),
        (["--strength", "1.5"], "strength"),
        (["--method", "drag", "--track", "0:40,8;8:12,8"], "outside the frame"),
        (["--method", "inversion"], "source-prompt"),
        (["--from", "5", "--to", "6"], "no frames"),
    ):
        code, _, err = run(capsys, "edit", src, "a blue square", "--out", tmp_path / "bad.mp4", *args, *common)
        assert code != 0 and msg in err and "Traceback" not in err, args
    code, _, err = run(capsys, "edit", tmp_path / "missing.mp4", "a blue square", "--out", tmp_path / "x.mp4", *common)
    assert code != 0 and "missing.mp4" in err
