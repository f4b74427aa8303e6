import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidfm.data import SyntheticWorld, WorldConfig, generate_world
from vidfm.data.synthetic import (
    ACTIONS,
    COLOURS,
    HELD_OUT_PAIRS,
    _plan,
    read_frame_code,
    render_video,
    sample_video_spec,
)
from vidfm.errors import ConfigError, DatasetError
from vidfm.io import VideoReader, probe


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(videos=40, seed=3, multishot_fraction=0.2, compositional_fraction=0.15, camera_motion_fraction=0.2, frame_code=True)
    summary = generate_world(root, cfg)
    return root, summary


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_layout_and_counts(world):
    root, summary = world
    meta = read_jsonl(root / "metadata.jsonl")
    assert len(meta) == 40 == len(list((root / "videos").glob("*.mp4")))
    assert summary["multishot_videos"] == 8 and summary["splits"]["compositional"] == 6
    assert sum(summary["splits"].values()) == 40
    for name in ("labels.txt", "overview.png", "shots.jsonl", "qa/answers.txt", "world.json"):
        assert (root / name).exists()
    labels = (root / "labels.txt").read_text().split()
    assert labels == list(ACTIONS)
    for split in ("train", "val", "test", "compositional"):
        rows = (root / "classification" / f"{split}.csv").read_text().splitlines()
        assert rows[0] == "path,label" and all(r.split(",")[1] in labels for r in rows[1:])


def test_splits_are_stratified_by_action(tmp_path):
    cfg = WorldConfig(videos=130, seed=0, multishot_fraction=0.0, compositional_fraction=0.0)
    per_action = {}
    for kind, split, action, colour in _plan(cfg):
        per_action.setdefault(action, []).append(split)
    for action, splits in per_action.items():
        assert {"train", "val", "test"} <= set(splits), action
        assert splits.count("train") >= 0.6 * len(splits)


def test_compositional_split_is_held_out(world):
    root, _ = world
    held = {tuple(p) for p in HELD_OUT_PAIRS}
    for m in read_jsonl(root / "metadata.jsonl"):
        for shot in m["shots"]:
            pair = (shot["objects"][0]["colour"], shot["objects"][0]["action"])
            assert (pair in held) == (m["split"] == "compositional")


def test_annotations_agree_with_files(world):
    root, _ = world
    meta = {m["video_id"]: m for m in read_jsonl(root / "metadata.jsonl")}
    for vid, m in list(meta.items())[:12]:
        info = probe(root / m["path"])
        assert info.frames == m["num_frames"] and info.fps == pytest.approx(8.0)
    answers = set((root / "qa" / "answers.txt").read_text().split("\n")) - {""}
    for split in ("train", "test"):
        for q in read_jsonl(root / "qa" / f"{split}.jsonl"):
            assert q["answer"] in answers
        for line in (root / "grounding" / f"{split}.txt").read_text().splitlines():
            head, sentence = line.split("##")
            vid, start, end = head.split()
            duration = meta[vid]["num_frames"] / 8
            assert 0 <= float(start) < float(end) <= duration + 1e-6 and sentence.startswith("the ")
    for s in read_jsonl(root / "shots.jsonl"):
        ranges = s["shots"]
        assert ranges[0][0] == 0 and ranges[-1][1] == s["num_frames"] - 1
        assert len(ranges) == len(s["transitions"]) + 1
    for c in read_jsonl(root / "captions" / "train.jsonl"):
        assert len(c["captions"]) == 5 and len(set(c["captions"])) >= 3


def test_frame_codes_survive_encoding(world):
    root, _ = world
    with VideoReader(root / "videos" / "000005.mp4") as r:
        n = len(r)
        idx = [n - 1, 0, n // 2, 3]
        assert [read_frame_code(f) for f in r.get_frames(idx)] == idx


def test_deterministic_from_seed(tmp_path):
    cfg = WorldConfig(videos=6, seed=11)
    generate_world(tmp_path / "a", cfg), generate_world(tmp_path / "b", cfg)
    assert (tmp_path / "a" / "metadata.jsonl").read_text() == (tmp_path / "b" / "metadata.jsonl").read_text()
    assert (tmp_path / "a" / "captions" / "train.jsonl").read_text() == (tmp_path / "b" / "captions" / "train.jsonl").read_text()
    generate_world(tmp_path / "c", WorldConfig(videos=6, seed=12))
    assert (tmp_path / "a" / "metadata.jsonl").read_text() != (tmp_path / "c" / "metadata.jsonl").read_text()
    plans = _plan(cfg)
    v1 = render_video(sample_video_spec(cfg, 2, plans[2]))
    v2 = render_video(sample_video_spec(cfg, 2, plans[2]))
    assert np.array_equal(v1, v2)


def _mask(frame, colour):
    return (np.abs(frame.astype(int) - np.array(COLOURS[colour])).sum(-1) < 60)


def test_pixels_show_the_annotated_action():
    """The ground truth is exact: measure each action on the rendered pixels."""
    cfg = WorldConfig(videos=48, seed=5, max_objects=1, multishot_fraction=0, compositional_fraction=0)
    plans = _plan(cfg)
    checked = set()
    for i in range(cfg.videos):
        spec = sample_video_spec(cfg, i, plans[i])
        shot = spec.shots[0]
        if shot.background == "textured":
            continue
        o = shot.main
        video = render_video(spec)
        first, last = video[o.start], video[o.end]
        m0, m1 = _mask(first, o.colour), _mask(last, o.colour)
        if o.action in ("appear",):
            assert m0.sum() < 3 and m1.sum() > 20
        elif o.action == "disappear":
            assert m0.sum() > 20 and m1.sum() < 3
        elif o.action == "change_colour":
            assert m0.sum() > 20 and _mask(last, o.new_colour).sum() > 20 and m1.sum() < 5
        else:
            ys0, xs0 = np.nonzero(m0)
            ys1, xs1 = np.nonzero(m1)
            dx, dy = xs1.mean() - xs0.mean(), ys1.mean() - ys0.mean()
            area = m1.sum() / m0.sum()
            travel = 0.25 * cfg.size
            expect = {
                "move_left": dx < -travel, "move_right": dx > travel,
                "move_up": dy < -travel, "move_down": dy > travel,
                "grow": area > 2.0, "shrink": area < 0.5,
                "stay_still": abs(dx) < 1 and abs(dy) < 1 and abs(area - 1) < 0.05,
                "rotate": abs(area - 1) < 0.35 and (m0 != m1).sum() > 10,
                "bounce": min(np.nonzero(_mask(f, o.colour))[0].mean() for f in video[o.start : o.end + 1]) < ys0.mean() - 5,
            }[o.action]  # fmt: skip
            assert expect, (i, o.action, dx, dy, area)
        checked.add(o.action)
    assert len(checked) >= 10


def test_loader_gives_ready_to_train_batches(world):
    root, _ = world
    w = SyntheticWorld(root)
    ds = w.classification("train", num_frames=8, sampler="segments", train=True)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["video"].shape == (4, 8, 3, 64, 64) and batch["video"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and int(batch["label"].max()) < len(w.classes)
    qa = w.qa("test", num_frames=4)[0]
    assert w.answers[qa["answer_id"]] == qa["answer"]
    cap = w.captions("val", num_frames=4)[0]
    assert isinstance(cap["caption"], str) and cap["video"].shape[0] == 4
    g = w.grounding("train", num_frames=4)[0]
    assert 0 <= g["start"] < g["end"]
    assert len(w.shots()) == 40 and len(w.metadata()) == 40
    with pytest.raises(DatasetError, match="unknown split"):
        w.classification("training")


def test_bad_world_settings(tmp_path):
    with pytest.raises(ConfigError, match="--videos"):
        generate_world(tmp_path, WorldConfig(videos=0))
    with pytest.raises(ConfigError, match="--size"):
        generate_world(tmp_path, WorldConfig(size=33))
    with pytest.raises(DatasetError, match="not a synthetic world"):
        SyntheticWorld(tmp_path)


def test_instance_masks_cover_each_object_where_it_is_drawn(tmp_path):
    """Every object's mask id marks pixels of its colour in the written video, frame by
    frame (ground truth for segmentation)."""
    from vidfm.data.synthetic import COLOURS, read_masks

    cfg = WorldConfig(videos=6, seed=4, multishot_fraction=0.0, camera_motion_fraction=0.0)
    generate_world(tmp_path / "w", cfg)
    metas = [json.loads(line) for line in (tmp_path / "w" / "metadata.jsonl").read_text().splitlines()]
    checked = 0
    for meta in metas:
        labels = read_masks(tmp_path / "w" / meta["masks"])
        with VideoReader(tmp_path / "w" / meta["path"]) as r:
            video = r.get_frames(range(len(r)))
        assert labels.shape == video.shape[:3] and len(labels) == meta["num_frames"]
        for obj in meta["shots"][0]["objects"]:
            if obj["action"] in ("change_colour", "appear", "disappear"):
                continue
            inside = labels == obj["mask_id"]
            if inside.sum() < 20:
                continue  # hidden behind another object
            mean = video[inside].astype(float).mean(0)  # H.264 at 64 px blurs colours: the nearest one must be the object's
            nearest = min(COLOURS, key=lambda c: np.abs(mean - np.array(COLOURS[c])).sum())
            assert nearest == obj["colour"], (meta["video_id"], obj["colour"], mean)
            checked += 1
    assert checked >= 6
