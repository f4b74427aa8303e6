"""The Video-LLM: connectors and token budgets, prompts with visual tokens, training stages,
deterministic answers, saving, the caption metrics against pycocoevalcap, DPO's loss, the
real SmolLM2 in the training-free analyzer mode, and the commands."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.models.connectors import QueryResampler, pool_grid
from vidfm.models.videollm import VideoLLM, VideoLLMConfig


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny"))


def features(model, seed=0, t=None):
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(t or model.config.num_frames, 4, 4, model.feature_dim, generator=g)
    return {"grid": grid, "times": torch.arange(grid.shape[0]) * 0.5, "duration": grid.shape[0] * 0.5}


# -- pieces ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["avg", "max", "bilinear"])
def test_pooling_halves_each_frame_grid(kind):
    x = torch.arange(2 * 4 * 5 * 3, dtype=torch.float32).reshape(2, 4, 5, 3)
    y = pool_grid(x, kind)
    assert y.shape == (2, 2, 3, 3)
    if kind == "avg":
        assert torch.allclose(y[0, 0, 0], x[0, :2, :2].mean((0, 1)))
    if kind == "max":
        assert torch.equal(y[0, 0, 0], x[0, :2, :2].amax((0, 1)))
    with pytest.raises(ConfigError, match="unknown pooling"):
        pool_grid(x, "median")


@pytest.mark.parametrize("kind", ["qformer", "perceiver"])
def test_resamplers_give_a_fixed_number_of_tokens(kind):
    r = QueryResampler(32, 48, num_queries=5, kind=kind)
    assert r(torch.randn(3, 17, 32)).shape == (3, 5, 48) and r(torch.randn(3, 4, 32)).shape == (3, 5, 48)


@pytest.mark.parametrize("connector,order,per_slot", [("mlp", "pool_then_project", 4), ("mlp", "project_then_pool", 4), ("qformer", "pool_then_project", 3), ("perceiver", "pool_then_project", 3)])
def test_the_visual_token_count_is_known_up_front_and_checked(connector, order, per_slot):
    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", connector=connector, pool_order=order, num_queries=3))
    f = features(model)
    assert model.visual_token_count(f) == model.config.num_frames * per_slot
    block = model.video_block(f)
    time_text = sum(model.embed_text(s).shape[0] for s in ["Video of 4.0 s."] + [f" {t:.1f} s:" for t in f["times"].tolist()])
    assert block.shape == (time_text + model.visual_token_count(f), model.lm.config.hidden_size)
    with pytest.raises(ConfigError, match="do not fit this model"):
        model.video_block({**f, "grid": torch.randn(8, 4, 4, model.feature_dim + 1)})


def test_anyres_tiles_keep_each_crop_where_it_was():
    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", encoder="frame-tiny", tiles=2, image_size=32, num_frames=2)).eval()
    clips = torch.rand(1, 2, 3, 64, 64)
    clips[..., 32:, :32] = 0.0  # the bottom-left crop is black
    f = model.encode_video(clips, [[0.0, 0.5]], [1.0])[0]
    single = model.encoder.grid_tokens(model.encoder(clips[..., 32:, :32], output_hidden_states=True), model.config.feature_layer)[0]
    t, h, w, _ = f["grid"].shape
    assert f["tile_grid"].shape[1:3] == (2 * h, 2 * w)
    assert torch.allclose(f["tile_grid"][:, h:, :w], single, atol=1e-5)  # stitched back at its place
    assert model.visual_token_count(f) == t * (model.tokens_per_slot(h, w) + model.tokens_per_slot(2 * h, 2 * w))
    assert model.video_block(f).shape[0] > model.visual_token_count(f)
    with pytest.raises(ConfigError, match="expected clips"):
        model.encode_video(torch.rand(1, 2, 3, 32, 32), [[0.0, 0.5]], [1.0])


def test_prompt_puts_the_video_in_the_first_user_turn_and_labels_only_the_answer(tiny):
    pre, post = tiny.prompt_parts([{"role": "user", "content": "what colour is it?"}])
    assert "You are a video assistant" in pre and pre.rstrip().endswith("user") and post.startswith("\nwhat colour is it?")
    emb, labels = tiny.sequence(features(tiny), [{"role": "user", "content": "what colour is it?"}], "red")
    answer = tiny.tokenizer("red" + tiny.tokenizer.eos_token, add_special_tokens=False).input_ids
    assert labels[-len(answer):].tolist() == answer and (labels[: -len(answer)] == -100).all() and emb.shape[0] == labels.shape[0]
    with pytest.raises(ConfigError, match="question is empty"):
        tiny.prompt_parts([{"role": "user", "content": "  "}])


def test_answers_are_deterministic_and_independent_of_the_batch(tiny):
    feats = [features(tiny, s) for s in range(3)]
    conv = [[{"role": "user", "content": q}] for q in ("what colour?", "how many objects are in the video?", "describe the video.")]
    together = tiny.generate(feats, conv, max_new_tokens=8)
    alone = [tiny.generate([f], [c], max_new_tokens=8)[0] for f, c in zip(feats, conv)]
    assert together == alone == tiny.generate(feats, conv, max_new_tokens=8)


def test_a_prompt_past_the_context_says_how_to_fit_it():
    from vidfm.models.lm import rope_factor, scale_rope

    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", pool="none"))
    model.lm.config.max_position_embeddings = 64
    with pytest.raises(ConfigError, match="set rope_factor to 4"):
        model.generate([features(model)], [[{"role": "user", "content": "x"}]], max_new_tokens=2)
    assert rope_factor(200, 64) == 4 and rope_factor(64, 64) == 1
    inv = model.lm.model.rotary_emb.inv_freq.clone()
    scale_rope(model.lm, 4)
    assert torch.allclose(model.lm.model.rotary_emb.inv_freq, inv / 4)  # linear scaling stretches positions 4x


def test_saving_and_loading_reproduces_the_answers(tiny, tmp_path):
    torch.manual_seed(1)
    for p in tiny.connector.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    tiny.save_pretrained(tmp_path / "m")
    again = VideoLLM.from_pretrained(tmp_path / "m")
    f, conv = [features(tiny, 5)], [[{"role": "user", "content": "describe the video."}]]
    assert again.generate(f, conv, max_new_tokens=6) == tiny.generate(f, conv, max_new_tokens=6)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["connector.safetensors", "encoder", "lm", "tokenizer", "videollm.json"]
    with pytest.raises(ConfigError, match="not a Video-LLM"):
        VideoLLM.from_pretrained(tmp_path)


def test_dpo_loss_matches_a_hand_computed_value():
    from vidfm.tasks.videollm import dpo_loss

    pc, pr, rc, rr = torch.tensor([-3.0, -2.0]), torch.tensor([-4.0, -1.0]), torch.tensor([-3.5, -2.5]), torch.tensor([-3.0, -1.5])
    loss, margin = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # pair 1: (-3 + 3.5) - (-4 + 3) = 1.5; pair 2: (-2 + 2.5) - (-1 + 1.5) = 0
    expected = (-math.log(1 / (1 + math.exp(-0.15))) - math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6) and margin.tolist() == pytest.approx([0.15, 0.0])
    assert dpo_loss(pc, pr, pc, pr)[0].item() == pytest.approx(math.log(2))  # policy = reference


# -- data and scoring --------------------------------------------------------------------------
def test_instruction_templates_and_preference_pairs_from_the_world(world):
    from vidfm.tasks.videollm import (
        instruction_records,
        parse_time_answer,
        preference_pairs,
    )

    records = instruction_records(world, "train")
    types = {r["type"] for r in records}
    assert {"describe", "colour", "shape", "action", "count", "when", "yesno"} <= types
    when = next(r for r in records if r["type"] == "when")
    assert parse_time_answer(when["answers"][0]) == pytest.approx(when["segment"], abs=0.06)
    assert instruction_records(world, "train", "align") and all(r["type"] == "describe" for r in instruction_records(world, "train", "align"))
    pairs = preference_pairs(records)
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    for p in pairs:
        if p["type"] == "when":
            from vidfm.metrics.grounding import temporal_iou

            assert temporal_iou(parse_time_answer(p["rejected"]), p["segment"])[0] < 0.3  # a wrong time, not a near miss


def test_answer_parsing_and_hallucination_check():
    from vidfm.tasks.videollm import answer_matches, hallucinations, parse_time_answer

    assert parse_time_answer("It happens from 1.25 s to 3.0 s.") == (1.25, 3.0) and parse_time_answer("at the start") is None
    assert answer_matches("Red.", "red") and answer_matches("it is red", "red") and not answer_matches("reddish", "red")
    objects = [{"colour": "red", "shape": "circle", "action": "move_left"}, {"colour": "blue", "shape": "square", "action": "stay_still"}]
    assert hallucinations("a red circle slides left next to a blue square", objects) == []
    assert hallucinations("a green triangle grows", objects) == ["green", "triangle", "grow"]


def test_caption_metrics_equal_pycocoevalcap(world):
    """pycocoevalcap (the COCO caption toolkit, with its Java PTB tokenizer) is the oracle."""
    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("pycocoevalcap's tokenizer needs Java")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from vidfm.metrics.captioning import caption_metrics

    rows = [json.loads(line) for line in (world / "captions" / "val.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(0)
    refs = {r["video_id"]: r["captions"][1:] for r in rows}
    cands = {r["video_id"]: str(rng.choice(rows[int(rng.integers(len(rows)))]["captions"])) for r in rows}
    cands[rows[0]["video_id"]] = "The red circle doesn't move; it's still!"
    cands[rows[1]["video_id"]] = rows[1]["captions"][0] + "."
    ours = caption_metrics(refs, cands, with_meteor=False)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in cands.items()})
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    assert [ours[f"BLEU-{i}"] for i in (1, 2, 3, 4)] == pytest.approx(bleu, rel=1e-9)
    assert ours["ROUGE-L"] == pytest.approx(Rouge().compute_score(gts, res)[0], rel=1e-9)
    assert ours["CIDEr-D"] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-9) and ours["CIDEr-D"] > 0
    assert caption_metrics(refs, {k: refs[k][0] for k in refs}, with_meteor=False)["BLEU-4"] > 0.9  # a reference scores near the top


def test_metrics_captions_command(tmp_path, capsys):
    preds = tmp_path / "pred.jsonl"
    refs = tmp_path / "refs.jsonl"
    preds.write_text(json.dumps({"video": "a", "caption": "a red circle moves left"}) + "\n" + json.dumps({"video": "b", "caption": "a blue square"}) + "\n")
    refs.write_text(json.dumps({"video": "a", "captions": ["a red circle moves to the left"]}) + "\n" + json.dumps({"video": "b", "captions": ["a blue square grows"]}) + "\n")
    code, out, _ = run(capsys, "metrics", "captions", preds, refs, "--no-meteor", "--json")
    m = json.loads(out)
    assert code == 0 and m["count"] == 2 and 0 < m["BLEU-1"] <= 1 and m["METEOR"] is None
    refs.write_text(json.dumps({"video": "a", "captions": ["x"]}) + "\n")
    code, _, err = run(capsys, "metrics", "captions", preds, refs)
    assert code == 1 and "no reference captions for 1 candidates" in err and "Traceback" not in err


# -- language models ---------------------------------------------------------------------------
def test_language_model_folders_are_checked(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from vidfm.models.lm import build_tiny_lm, load_lm, tiny_tokenizer

    with pytest.raises(ConfigError, match="not a language model folder"):
        load_lm(str(tmp_path / "nothing"))
    tok = tiny_tokenizer()
    lm = build_tiny_lm(tok)
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    again, tok2 = load_lm(str(tmp_path / "lm"))
    ids = torch.tensor([tok("a red circle").input_ids])
    assert torch.allclose(again(ids).logits, lm(ids).logits, atol=1e-6)
    bigger = LlamaForCausalLM(LlamaConfig(**{**lm.config.to_dict(), "num_hidden_layers": 3}))
    bigger.config.save_pretrained(tmp_path / "lm")  # config promises 3 layers, the weights hold 2
    with pytest.raises(ConfigError, match="newly initialised"):
        load_lm(str(tmp_path / "lm"))


def test_the_real_smollm2_answers_from_analyzer_facts(world, capsys):
    """Training-free: analysers describe the video in text; SmolLM2-135M-Instruct answers."""
    pytest.importorskip("gguf")
    from vidfm.models.lm import smollm2_gguf

    try:
        smollm2_gguf()
    except ConfigError as e:
        pytest.skip(str(e))
    video = world / "videos" / "000003.mp4"
    code, out, err = run(capsys, "ask", video, "How long is the video?", "--analyzer", "--max-new-tokens", "24", "--json")
    assert code == 0, err
    result = json.loads(out)
    duration = result["duration"]
    assert any(f"{duration:.1f} s" in fact for fact in result["facts"]) and len(result["answers"]) == 1
    assert f"{duration:.1f}" in result["answers"][0]["answer"]  # the model reads the fact back


# -- commands ----------------------------------------------------------------------------------
def test_train_ask_caption_chat_and_eval_commands(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "vllm"
    code, stdout, err = run(capsys, "train", "videollm", world, "--lm", "tiny", "--out", out, "--max-steps", 3, "--batch-size", 8, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["stage"] == "instruct" and summary["steps"] == 3 and (out / "best" / "videollm.json").exists() and (out / "clips.pt").exists()
    video = world / "videos" / "000003.mp4"
    code, stdout, _ = run(capsys, "ask", video, "what colour is the object?", "how many objects are in the video?", "--model", out, "--max-new-tokens", 4, "--json")
    result = json.loads(stdout)
    assert code == 0 and [a["question"] for a in result["answers"]] == ["what colour is the object?", "how many objects are in the video?"]
    assert len(result["frame_times"]) == 8 and result["frame_times"] == sorted(result["frame_times"])
    code, stdout, _ = run(capsys, "caption", video, "--model", out, "--max-new-tokens", 4, "--json")
    assert code == 0 and [a["question"] for a in json.loads(stdout)["answers"]] == ["Describe the video."]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("what colour is it?\nand its shape?\n\n"))
    code, stdout, _ = run(capsys, "chat", video, "--model", out, "--max-new-tokens", 4, "--json")
    transcript = json.loads(stdout[stdout.index("{"):])
    assert code == 0 and [m["role"] for m in transcript["messages"]] == ["user", "assistant", "user", "assistant"]
    code, stdout, _ = run(capsys, "eval", out, world, "--split", "test", "--json")
    metrics = json.loads(stdout)
    assert code == 0 and {"qa_accuracy", "timestamps", "captions", "hallucination_rate"} <= set(metrics)
    # align then dpo continue from saved models
    code, stdout, err = run(capsys, "train", "videollm", world, "--init", out, "--stage", "dpo", "--out", tmp_path / "dpo", "--max-steps", 2, "--batch-size", 4, "--json")
    assert code == 0, err
    assert "reward_accuracy" in json.loads(stdout)["best_eval"]


@pytest.mark.parametrize("argv,message", [
    (["ask", "VIDEO", "x"], "give --model MODEL"),
    (["ask", "VIDEO", "x", "--model", "NOWHERE"], "no such Video-LLM folder"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--stage", "dpo", "--lm", "tiny"], "give --init MODEL"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--lm", "NOWHERE"], "not a language model folder"),
    (["train", "videollm", "WORLD", "--out", "OUT", "--lm", "tiny", "--connector", "lstm"], "invalid choice"),
])  # fmt: skip
def test_videollm_mistakes_are_one_line(world, tmp_path, capsys, argv, message):
    fill = {"VIDEO": world / "videos" / "000001.mp4", "WORLD": world, "OUT": tmp_path / "o", "NOWHERE": tmp_path / "nowhere"}
    try:
        code, _, err = run(capsys, *[fill.get(a, a) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code, err = e.code, capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err


def test_every_assistant_turn_of_a_conversation_carries_labels(tiny):
    conv = [{"role": "user", "content": "what colour?"}, {"role": "assistant", "content": "red"},
            {"role": "user", "content": "what shape?"}, {"role": "assistant", "content": "circle"}]  # fmt: skip
    emb, labels = tiny.sequence(features(tiny), conv)
    eos = tiny.tokenizer.eos_token
    want = [tiny.tokenizer(a + eos, add_special_tokens=False).input_ids for a in ("red", "circle")]
    labelled = labels[labels != -100].tolist()
    assert labelled == want[0] + want[1] and labels[-len(want[1]):].tolist() == want[1]
    # the same tokens as rendering the conversation turn by turn for generation
    prompt, _ = tiny.sequence(features(tiny), conv[:3])
    assert torch.equal(emb[: prompt.shape[0]], prompt)


def test_conversation_packing_covers_every_question_once_per_epoch(world):
    from vidfm.tasks.videollm import InstructionData, instruction_records

    records = instruction_records(world, "train")
    clips = {r["video"]: None for r in records}
    data = InstructionData(records, clips, train=True, turns=4)
    asked = [m["content"] for i in range(len(data)) for m in data[i]["messages"] if m["role"] == "user"]
    assert sorted(asked) == sorted(r["question"] for r in records)
    assert all(len(data[i]["messages"]) <= 8 and len({data[i]["video"]}) == 1 for i in range(len(data)))
