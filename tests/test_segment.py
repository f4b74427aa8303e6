"""Referring video object segmentation: DAVIS's J and F, referring expressions from the
world's metadata, the [SEG] token and SAM-2 (fresh and loaded from a saved folder) inside the
Video-LLM, saving and loading, the segment stage, and `vidfm segment`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import run
from PIL import Image

from vidfm.errors import ConfigError
from vidfm.metrics.segmentation import boundary_f, region_similarity, video_jf
from vidfm.models.segmentation import (
    ReferringSegmenter,
    load_sam2,
    mask_loss,
    tiny_sam2_config,
)
from vidfm.models.videollm import VideoLLM, VideoLLMConfig
from vidfm.tasks.segment import (
    absent_expression,
    describe,
    moving_region,
    referring_records,
)


def square(y, x, r=6, size=64):
    m = np.zeros((size, size), bool)
    m[y - r : y + r, x - r : x + r] = True
    return m


# -- J and F -----------------------------------------------------------------------------------
def test_region_and_boundary_measures_follow_davis():
    a = square(30, 30)
    assert region_similarity(a, a) == 1.0 and boundary_f(a, a) == 1.0
    empty = np.zeros_like(a)
    assert region_similarity(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0  # nothing to find, nothing found
    assert region_similarity(a, empty) == 0.0 and boundary_f(a, empty) == 0.0
    far = square(50, 50, r=4)
    assert region_similarity(a, far) == 0.0 and boundary_f(a, far) == 0.0
    shifted = np.roll(a, 1, axis=1)  # one pixel off: inside DAVIS's contour tolerance (ceil(0.008 * 90.5) = 1 px)
    assert region_similarity(a, shifted) == pytest.approx(132 / 156)
    assert boundary_f(a, shifted) == 1.0
    assert boundary_f(a, np.roll(a, 4, axis=1)) < 0.6  # four pixels off is not
    scores = video_jf(np.stack([a, a]), np.stack([a, far]))
    assert scores["J"] == pytest.approx(0.5) and scores["JF"] == pytest.approx((scores["J"] + scores["F"]) / 2)
    with pytest.raises(ValueError, match="differ in shape"):
        video_jf(np.stack([a]), np.stack([a, a]))


def test_mask_loss_is_low_only_for_the_right_mask():
    target = torch.from_numpy(square(30, 30)).float()[None]
    right, wrong = (target * 2 - 1) * 8, -(target * 2 - 1) * 8
    assert mask_loss(right, target) < 0.01 < 1.0 < mask_loss(wrong, target)


# -- expressions from the world ------------------------------------------------------------------
def obj(colour, shape, size="small", action="stay_still", mask_id=1):
    return {"colour": colour, "shape": shape, "size": size, "action": action, "mask_id": mask_id, "new_colour": None}


def test_expressions_name_one_object_and_absent_things_are_absent():
    objects = [obj("red", "circle", "small", "grow"), obj("red", "circle", "large"), obj("blue", "square")]
    assert describe(objects, 2) == "the blue square"
    assert describe(objects, 0) == "the small red circle" and describe(objects, 1) == "the large red circle"
    assert describe(objects, 0, with_action=True) == "the small red circle that grows"
    twins = [obj("red", "circle", "small", "grow"), obj("red", "circle", "small", "shrink")]
    assert describe(twins, 0) == "the small red circle that grows"
    assert describe([obj("red", "circle"), obj("red", "circle")], 0) is None  # nothing tells them apart
    rng = np.random.default_rng(0)
    for _ in range(50):
        c, s = absent_expression(objects, rng).split()[1:]
        assert (c, s) not in {("red", "circle"), ("blue", "square")}


def test_records_point_at_masks_that_exist(world):
    from vidfm.data.synthetic import read_masks

    records = referring_records(world, "train", seed=0)
    present = [r for r in records if r["mask_id"]]
    assert present and any(r["mask_id"] == 0 and r["answer"].startswith("There is no") for r in records)
    for r in present[:10]:
        labels = read_masks(r["labels"])
        assert (labels == r["mask_id"]).any() and r["answer"] == f"Sure, {r['expression']} [SEG]."


def test_instruction_examples_are_mixed_in_as_text(world):
    """The segment stage keeps the LM's other skills by mixing in its instruction data."""
    from vidfm.tasks.segment import ReferringData, instruction_mix

    mix = instruction_mix(world, 6, seed=0)
    assert len(mix) == 6 and all(r["mask_id"] is None and r["question"] and r["answer"] for r in mix)
    data = ReferringData(mix, pixels={}, clips={r["video"]: None for r in mix}, train=True)
    item = data[0]
    assert len(item["frames"]) == 0 and item["messages"] == [{"role": "user", "content": mix[0]["question"]}]


def test_the_largest_moving_region_baseline_finds_a_moving_square():
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    for t in range(6):
        frames[t][square(20, 10 + 8 * t, r=4)] = 200
    moving = moving_region(frames)
    assert region_similarity(moving[3], square(20, 34, r=4)) > 0.9


# -- SAM-2 inside the Video-LLM ------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmenting():
    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny"))
    model.add_segmenter("sam2-tiny", 64)
    return model


def test_seg_token_prompts_sam2_and_survives_saving(segmenting, tmp_path):
    from vidfm.tasks.segment import set_trainable_segment

    model = segmenting
    seg = model.seg_token_id
    assert model.tokenizer.convert_ids_to_tokens(seg) == "[SEG]" and model.lm.get_input_embeddings().num_embeddings > seg
    feats = [{"grid": torch.randn(4, 4, 4, model.feature_dim), "times": torch.arange(4) * 0.5, "duration": 2.0}]
    conv = [[{"role": "user", "content": "Please segment the red circle."}]]
    set_trainable_segment(model, 4)
    with torch.no_grad():  # the trained [SEG] row and LoRA must be saved (a random change stands for training)
        for name, p in model.lm.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    out, hidden, rows = model.seg_hidden(feats, conv, ["Sure, the red circle [SEG]."])
    assert hidden.shape == (1, model.lm.config.hidden_size) and rows.tolist() == [0] and out.loss is not None
    frames = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        logits, scores, coarse = model.segmenter(frames, hidden.expand(3, -1))
    assert logits.shape == (3, 16, 16) and scores.shape == (3,) and coarse.shape == (3, 4, 4)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "segmenter" / "config.json").exists() and (tmp_path / "m" / "lm").is_dir()
    again = VideoLLM.from_pretrained(tmp_path / "m")
    _, hidden2, _ = again.seg_hidden(feats, conv, ["Sure, the red circle [SEG]."])
    with torch.no_grad():
        logits2 = again.segmenter(frames, hidden2.expand(3, -1))[0]
    assert again.seg_token_id == seg and torch.allclose(hidden, hidden2, atol=1e-4) and torch.allclose(logits, logits2, atol=1e-4)


def test_a_saved_sam2_checkpoint_loads_through_transformers(tmp_path):
    from transformers import Sam2Model

    torch.manual_seed(0)
    real = Sam2Model(tiny_sam2_config(64)).eval()
    real.save_pretrained(tmp_path / "sam2")
    loaded = load_sam2(str(tmp_path / "sam2"))
    a, b = ReferringSegmenter(real, 32).eval(), ReferringSegmenter(loaded, 32).eval()
    b.prompt.load_state_dict(a.prompt.state_dict())  # the parts outside SAM-2 are the same; SAM-2 came from disk
    b.key.load_state_dict(a.key.state_dict())
    frames, prompts = torch.rand(2, 3, 80, 80), torch.randn(2, 32)  # any frame size: resized to SAM-2's input
    with torch.no_grad():
        assert torch.allclose(a(frames, prompts)[0], b(frames, prompts)[0], atol=1e-5)
    # SAM-2's own point prompts still work on the loaded model (it is the library's class)
    with torch.no_grad():
        out = loaded(pixel_values=torch.rand(1, 3, 64, 64), input_points=torch.tensor([[[[32.0, 32.0]]]]), multimask_output=False)
    assert out.pred_masks.shape[-2:] == (16, 16)
    with pytest.raises(ConfigError, match="not a SAM-2 folder"):
        load_sam2(str(tmp_path / "nowhere"))
    # a loaded checkpoint keeps its image encoder frozen in the segment stage (Sa2VA); the decoder trains
    from vidfm.tasks.segment import set_trainable_segment

    model = VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny"))
    model.add_segmenter(str(tmp_path / "sam2"))
    set_trainable_segment(model, 4)
    sam = model.segmenter.sam
    assert not any(p.requires_grad for p in sam.vision_encoder.parameters()) and all(p.requires_grad for p in sam.mask_decoder.parameters())


def test_one_prompt_repeated_over_frames_still_prompts_in_training():
    """Training with a batch of one: the [SEG] state is repeated per frame, which has no batch
    statistics; the prompt must still reach the decoder (not a BatchNorm output of zeros)."""
    torch.manual_seed(0)
    seg = ReferringSegmenter(load_sam2("sam2-tiny", 64), 8).train()
    frames = torch.rand(3, 3, 64, 64)
    a, b = torch.randn(8), torch.randn(8)
    coarse_a = seg(frames, a.expand(3, -1))[2]
    coarse_b = seg(frames, b.expand(3, -1))[2]
    assert not torch.allclose(coarse_a, coarse_b)


def test_sam2_learns_to_segment_what_the_prompt_names():
    """Two prompts, two objects in the same frame: the mask must follow the prompt (the
    easy answer, both objects for either prompt, scores IoU 0.45 and is where training
    stalls when the prompt only enters as a sparse token)."""
    from vidfm.models.segmentation import upsample_logits

    torch.manual_seed(0)
    seg = ReferringSegmenter(load_sam2("sam2-tiny", 64), 8)
    frames = torch.zeros(2, 3, 64, 64)
    red, blue = square(20, 20, r=7), square(44, 44, r=7)
    for f in frames:
        f[0][torch.from_numpy(red)] = 1.0
        f[2][torch.from_numpy(blue)] = 1.0
    prompts = torch.eye(8)[:2]
    targets = torch.from_numpy(np.stack([red, blue])).float()
    opt = torch.optim.AdamW(seg.parameters(), lr=1e-3)
    for _ in range(240):
        masks, _, coarse = seg(frames, prompts)
        logits = upsample_logits(masks, (64, 64))
        loss = mask_loss(logits, targets) + 0.5 * mask_loss(upsample_logits(coarse, (64, 64)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = (logits > 0).detach().numpy()
    assert region_similarity(pred[0], red) > 0.8 and region_similarity(pred[1], blue) > 0.8


# -- the stage and the command ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """A tiny Video-LLM (``base``), then a few steps of the segment stage (``run``; not
    enough to learn: the plumbing is what these tests check)."""
    from vidfm.tasks.segment import train_segmenter
    from vidfm.training import TrainConfig

    out = tmp_path_factory.mktemp("seg")
    torch.manual_seed(0)
    VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny", num_frames=4)).save_pretrained(out / "base")
    summary = train_segmenter(world, out / "run", out / "base", TrainConfig(max_steps=3, batch_size=4), image_size=64, frames=2)
    assert summary["stage"] == "segment" and summary["steps"] == 3 and "mIoU" in summary["best_eval"]
    return out


def test_segment_stage_command_saves_a_segmenting_model(world, trained, capsys):
    code, stdout, err = run(capsys, "train", "videollm", world, "--stage", "segment", "--init", trained / "base", "--out", trained / "cli",
                            "--max-steps", 1, "--batch-size", 2, "--seg-size", 64, "--seg-frames", 2, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 1
    model = VideoLLM.from_pretrained(trained / "cli")
    assert model.segmenter is not None and model.config.seg_size == 64 and model.segmenter.image_size == 64


def test_segment_command_writes_masks_and_overlays(world, trained, tmp_path, capsys, monkeypatch):
    import vidfm.tasks.segment as seg
    from vidfm.io.probe import probe

    model = VideoLLM.from_pretrained(trained / "run")
    video = world / "videos" / "000003.mp4"
    # the answer decides: "[SEG]" -> masks from SAM-2; anything else -> empty masks and the answer said
    prompt = torch.randn(model.lm.config.hidden_size)
    monkeypatch.setattr(seg, "refer", lambda *a, **k: {"answer": "Sure.", "prompt": prompt, "note": None})
    code, stdout, err = run(capsys, "segment", video, "the red circle", "--model", trained / "run", "--out", tmp_path / "masks", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert result["found"] and len(pngs) == result["frames"] == probe(video).frames
    assert Image.open(pngs[0]).mode == "P" and (tmp_path / "masks" / "overlay.mp4").stat().st_size > 0
    assert 1 < Image.open(tmp_path / "masks" / "overlay.gif").n_frames <= result["frames"]  # PIL folds identical frames
    monkeypatch.setattr(seg, "refer", lambda *a, **k: {"answer": "There is no purple cross in the video.", "prompt": None, "note": None})
    code, stdout, err = run(capsys, "segment", video, "the purple cross", "--model", trained / "run", "--out", tmp_path / "masks")
    assert code == 0 and "There is no purple cross" in stdout and "nothing to segment" in stdout
    assert all(not np.asarray(Image.open(p)).any() for p in sorted((tmp_path / "masks").glob("*.png")))
    assert json.loads((tmp_path / "masks" / "segment.json").read_text())["found"] is False


def test_evaluation_reports_jf_baselines_and_refusals(world, trained):
    from vidfm.tasks.segment import evaluate_segmentation

    metrics = evaluate_segmentation(VideoLLM.from_pretrained(trained / "run"), world, "test", limit=3)
    assert metrics["videos"] == 3 and 0.0 <= metrics["JF"] <= 1.0 and metrics["absent_refused"]["count"] == 3
    assert {"whole_frame", "moving_region"} == set(metrics["baselines"]) and len(metrics["per_video"]) == metrics["count"]
    whole = metrics["baselines"]["whole_frame"]
    assert whole["J"] < 0.2  # the objects are small: the whole frame is a poor mask


@pytest.mark.parametrize("argv,message", [
    (["segment", "VIDEO", "the red circle", "--model", "PLAIN", "--out", "OUT"], "has no segmenter"),
    (["segment", "VIDEO", "  ", "--model", "PLAIN", "--out", "OUT"], "the expression is empty"),
    (["segment", "NOWHERE", "the red circle", "--model", "PLAIN", "--out", "OUT"], "nowhere"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--stage", "segment"], "give --init MODEL"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--stage", "segment", "--init", "PLAIN", "--sam", "NOWHERE"], "not a SAM-2 folder"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--stage", "segment", "--init", "RUN", "--seg-size", "96"], "already segments with sam2-tiny at 64 px"),
])  # fmt: skip
def test_segmentation_mistakes_are_one_line(world, trained, tmp_path, capsys, argv, message):
    fill = {"VIDEO": world / "videos" / "000001.mp4", "WORLD": world, "OUT": tmp_path / "o", "NOWHERE": tmp_path / "nowhere", "PLAIN": trained / "base", "RUN": trained / "run"}
    code, _, err = run(capsys, *[fill.get(a, a) for a in argv])
    assert code in (1, 2) and message in err and "Traceback" not in err
