"""Long videos: streaming decode and writing, online SceneTilling, bounded scene buffers,
haystacks with needles, streaming captions and their command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.io.reader import VideoReader
from vidfm.io.writer import write_video


def test_streaming_decode_gives_presentation_times_and_thins_by_fps(videos):
    with VideoReader(videos["vfr"]) as r:
        every = list(r.stream())
        assert np.allclose([t for t, _ in every], r.timestamps)
        assert np.array_equal(every[5][1], r[5])
        thinned = [t for t, _ in r.stream(fps=4)]  # the first frame at or after each 0.25 s tick
    assert np.allclose(thinned, [0.0, 0.3, 0.7, 1.0])
    with pytest.raises(ValueError):
        next(VideoReader(videos["vfr"]).stream(fps=0))


def test_frames_can_be_written_as_they_come(tmp_path):
    frames = (np.full((30, 40, 3), i * 20, np.uint8) for i in range(10))
    out = write_video(tmp_path / "gen.mp4", frames, fps=5)
    with VideoReader(out) as r:
        assert len(r) == 10 and r[9].shape == (30, 40, 3) and abs(int(r[9].mean()) - 180) <= 3
    with pytest.raises(ConfigError, match="no frames"):
        write_video(tmp_path / "none.mp4", iter([]))
    with pytest.raises(ConfigError, match="frame of size"):
        write_video(tmp_path / "mixed.mp4", iter([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)]))
    assert not (tmp_path / "mixed.mp4").exists()


def test_online_scene_tilling_closes_scenes_at_the_cuts():
    from vidfm.shots.scenes import StreamingSceneTilling

    rng = np.random.default_rng(0)
    looks = [rng.random(48) for _ in range(4)]
    feats = [looks[i // 10] + 0.02 * rng.random(48) for i in range(40)]  # cuts after frames 9, 19, 29
    tiller = StreamingSceneTilling()
    ends = [e for f in feats if (e := tiller.push(f)) is not None]
    assert ends == [9, 19, 29]


def test_scene_buffer_stays_bounded_and_spans_the_scene():
    from vidfm.tasks.longvideo import SceneBuffer

    b = SceneBuffer(keep=4)
    for i in range(1000):
        b.add(i / 2, np.full((2, 2, 3), i % 256, np.uint8))
    assert len(b.items) <= 8
    frames, times = b.clip()
    assert b.items[0][0] == 0.0  # the scene's first frame is always kept: its start time
    assert frames.shape == (4, 2, 2, 3) and times[0] < 125 and times[-1] > 375 and np.all(np.diff(times) > 80)


def test_haystack_hides_a_needle_whose_colour_appears_nowhere_else(world, tmp_path):
    from vidfm.data.haystack import make_haystack

    info = make_haystack(world, tmp_path / "hay.mp4", minutes=0.5, depth=0.75, seed=3)
    needle = info["needle"]
    sources = json.loads((tmp_path / "hay.json").read_text())["clips"]
    assert [c["needle"] for c in sources].count(True) == 1
    metas = {m["path"]: m for m in __import__("vidfm.data", fromlist=["SyntheticWorld"]).SyntheticWorld(world).metadata()}
    for c in sources:
        colours = {o["colour"] for s in metas[c["source"]]["shots"] for o in s["objects"]}
        assert (needle["colour"] in colours) == c["needle"]
    assert 0.6 <= needle["actual_depth"] <= 0.9 and info["duration"] >= 30
    with VideoReader(tmp_path / "hay.mp4") as r:
        assert abs(r.duration - info["duration"]) < 0.2
    shape_q = next(q for q in info["questions"] if q["type"] == "shape")
    assert shape_q["answer"] == needle["shape"] and needle["colour"] in shape_q["question"]
    with pytest.raises(ConfigError, match="depth"):
        make_haystack(world, tmp_path / "bad.mp4", minutes=1, depth=1.5)
    with pytest.raises(ConfigError, match="cannot hold a needle"):
        make_haystack(world, tmp_path / "short.mp4", minutes=0.01, depth=0.5)


def test_streaming_captions_follow_the_scenes_of_a_long_video(world, tmp_path, capsys):
    from vidfm.data.haystack import make_haystack
    from vidfm.models.videollm import VideoLLM, VideoLLMConfig
    from vidfm.tasks.longvideo import merge_runs, stream_captions

    info = make_haystack(world, tmp_path / "long.mp4", minutes=0.5, depth=None, seed=1)
    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny", max_new_tokens=4))
    scenes = list(stream_captions(model, tmp_path / "long.mp4"))
    cuts = [c["start"] for c in info["clips"][1:]]
    starts = [s["start"] for s in scenes[1:]]
    assert scenes[0]["start"] == 0.0 and abs(scenes[-1]["end"] - info["duration"]) < 0.6
    assert all(a["end"] == b["start"] for a, b in zip(scenes, scenes[1:]))  # scenes tile the video
    found = sum(any(abs(s - c) <= 0.5 for s in starts) for c in cuts)
    assert found >= 0.7 * len(cuts)  # most clip changes close a scene
    assert merge_runs([{"start": 0, "end": 1, "caption": "a"}, {"start": 1, "end": 2, "caption": "a"}]) == [{"start": 0, "end": 2, "caption": "a", "scenes": 2}]
    model.save_pretrained(tmp_path / "m")
    code, out, _ = run(capsys, "caption", tmp_path / "long.mp4", "--model", tmp_path / "m", "--stream", "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["start"] for x in lines] == [s["start"] for s in scenes]
    code, _, err = run(capsys, "caption", tmp_path / "long.mp4", "--stream")
    assert code != 0 and "--model" in err and "Traceback" not in err


def test_hierarchical_summary_of_scene_captions():
    from vidfm.tasks.longvideo import summarise

    scenes = [{"start": float(i), "end": float(i + 1), "caption": f"a red circle moves {'left' if i % 2 else 'right'}"} for i in range(7)]
    result = summarise(scenes, lm="tiny", chunk=3, max_new_tokens=4)
    assert result["levels"] == 2 and result["scenes"] == 7 and isinstance(result["summary"], str)
    with pytest.raises(ConfigError, match="no scene captions"):
        summarise([], lm="tiny")


# -- the memory bridge ---------------------------------------------------------------------------
def test_memory_bridge_carries_an_early_segment_to_the_end():
    """A needle class placed in one of 3-6 segments is read off the final memory: the
    bridge learns to keep it (chance 0.25), wherever it was."""
    from vidfm.models.memory import MemoryBridge

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    dim, classes = 32, torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    bridge = MemoryBridge(dim, num_memory=4, layers=1, heads=4)
    head = torch.nn.Linear(dim, 4)
    opt = torch.optim.Adam([*bridge.parameters(), *head.parameters()], lr=3e-3)

    def example():
        n = int(torch.randint(3, 7, (1,), generator=g))
        segs = [torch.randn(6, dim, generator=g) * 0.5 for _ in range(n)]
        k, at = int(torch.randint(4, (1,), generator=g)), int(torch.randint(n, (1,), generator=g))
        segs[at][int(torch.randint(6, (1,), generator=g))] += 3 * classes[k]
        return segs, k, at

    for _ in range(300):
        loss = 0.0
        for _ in range(4):
            segs, k, _ = example()
            loss = loss + torch.nn.functional.cross_entropy(head(bridge(segs).mean(0, keepdim=True)), torch.tensor([k])) / 4
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        tests = [example() for _ in range(100)]
        right = [int(head(bridge(s).mean(0)).argmax()) == k for s, k, _ in tests]
        early = [r for r, (s, _, at) in zip(right, tests) if at == 0 and len(s) >= 5]
    assert np.mean(right) >= 0.85 and np.mean(early) >= 0.7
    state = bridge.start()  # reading a stream segment by segment is the same computation
    for s in tests[0][0]:
        state = bridge.update(state, s)
    assert torch.allclose(bridge.read(state), bridge(tests[0][0]), atol=1e-6)


def test_memory_prompt_has_the_same_length_for_any_number_of_segments(tmp_path):
    from vidfm.models.videollm import VideoLLM, VideoLLMConfig

    torch.manual_seed(0)
    model = VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny", memory_tokens=6, max_new_tokens=5)).eval()
    clip = torch.rand(1, 8, 3, 64, 64)
    seg = model.encode_video(clip, [torch.arange(8) * 0.5], [4.0])[0]
    short = model.video_block({"segments": [seg] * 2, "duration": 8.0})
    long = model.video_block({"segments": [seg] * 9, "duration": 36.0})
    for block, text in ((short, "Video of 8.0 s in 2 parts. Memory:"), (long, "Video of 36.0 s in 9 parts. Memory:")):
        assert block.shape[0] == model.embed_text(text).shape[0] + 6  # the text, then M memory tokens
    assert model.visual_token_count({"segments": [seg] * 9}) == 6
    msgs = [[{"role": "user", "content": "what shape is the red object?"}]]
    answer = model.generate([{"segments": [seg] * 3, "duration": 12.0}], msgs)
    model.save_pretrained(tmp_path / "m")
    again = VideoLLM.from_pretrained(tmp_path / "m")
    assert again.memory_bridge is not None and again.generate([{"segments": [seg] * 3, "duration": 12.0}], msgs) == answer


def test_memory_stage_trains_and_answers_about_a_long_video(world, tmp_path, capsys):
    from vidfm.data.haystack import make_haystack
    from vidfm.models.videollm import VideoLLM, VideoLLMConfig

    torch.manual_seed(0)
    VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny", max_new_tokens=6)).save_pretrained(tmp_path / "base")
    code, out, err = run(capsys, "train", "videollm", world, "--stage", "memory", "--init", tmp_path / "base", "--out", tmp_path / "mem",
                         "--memory-tokens", "4", "--max-steps", "2", "--batch-size", "2", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["stage"] == "memory"
    make_haystack(world, tmp_path / "long.mp4", minutes=0.5, depth=0.5, seed=0)
    code, out, err = run(capsys, "ask", tmp_path / "long.mp4", "what shape is it?", "--model", tmp_path / "mem", "--memory", "--json")
    result = json.loads(out)
    assert code == 0 and "memory bridge" in result["note"] and len(result["answers"]) == 1
    code, _, err = run(capsys, "ask", tmp_path / "long.mp4", "what shape is it?", "--model", tmp_path / "base", "--memory")
    assert code != 0 and "no memory bridge" in err and "Traceback" not in err
    code, _, err = run(capsys, "train", "videollm", world, "--stage", "memory", "--out", tmp_path / "x")
    assert code != 0 and "--init" in err


def test_needle_answers_are_scored_exactly():
    from vidfm.tasks.longvideo import score_needle

    rows = [{"type": "shape", "answer": "circle", "predicted": "a circle", "seen": [1.0, 5.0]},
            {"type": "when", "answer": "from 2.0 s to 4.0 s", "segment": [2.0, 4.0], "predicted": "from 2.1 s to 4.0 s", "seen": [1.0, 5.0]},
            {"type": "action", "answer": "grow", "predicted": "shrink", "seen": [1.0, 5.0]}]  # fmt: skip
    score = score_needle(rows)
    assert score["accuracy"] == pytest.approx(2 / 3) and score["by_type"] == {"action": 0.0, "shape": 1.0, "when": 1.0}
    assert score["found"] == 0.0  # frames at 1 s and 5 s miss the needle's 2-4 s
    assert score_needle([{**r, "seen_is_span": True} for r in rows])["found"] == 1.0  # a 1-5 s window holds it
    assert score_needle([{**r, "seen": None} for r in rows])["found"] is None
