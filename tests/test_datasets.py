import shutil
import warnings

import pytest
import torch

from vidfm.data import (
    VideoDataset,
    classification_from_csv,
    classification_from_folder,
    collate_readable,
    grounding_from_sta,
)
from vidfm.data.transforms import TemporalAugment, train_transform
from vidfm.errors import ConfigError, DatasetError, VideoDecodeError


@pytest.fixture
def folder_dataset(tmp_path, videos):
    for label in ("jump", "walk"):
        (tmp_path / label).mkdir()
        shutil.copy(videos["coded"], tmp_path / label / "a.mp4")
        shutil.copy(videos["webm"], tmp_path / label / "b.webm")
    (tmp_path / "walk" / "readme.txt").write_text("not a video")
    return tmp_path


def test_folder_per_class(folder_dataset):
    records, classes = classification_from_folder(folder_dataset)
    assert classes == ["jump", "walk"] and len(records) == 4
    ds = VideoDataset(records, num_frames=6, sampler="random", train=True, transform=train_transform(32), temporal=TemporalAugment())
    item = ds[0]
    assert item["video"].shape == (6, 3, 32, 32) and item["label"] == 0
    assert torch.equal(ds[0]["video"], item["video"])  # same seed+epoch+index -> same clip
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["video"], item["video"])


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        classification_from_folder(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError, match="no videos found"):
        classification_from_folder(tmp_path)
    with pytest.raises(DatasetError, match="not among the known labels"):
        classification_from_folder(tmp_path, classes=["b"])


def test_csv_errors(tmp_path, videos):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,cls\nx.mp4,a\n")
    with pytest.raises(DatasetError, match="needs a header with 'path' and 'label'"):
        classification_from_csv(bad)
    unknown = tmp_path / "u.csv"
    unknown.write_text(f"path,label\n{videos['coded']},run\n{videos['coded']},fly\n")
    with pytest.raises(DatasetError, match=r"u.csv:3: unknown label 'fly'"):
        classification_from_csv(unknown, classes=["run"])
    with pytest.raises(DatasetError, match="not found"):
        classification_from_csv(tmp_path / "none.csv")


def test_corrupt_videos_are_skipped_and_counted(tmp_path, videos):
    csv = tmp_path / "d.csv"
    csv.write_text(f"path,label\n{videos['text']},a\n{videos['coded']},b\n{videos['truncated']},a\n")
    records, classes = classification_from_csv(csv)
    # training: an unreadable video is replaced by the next readable one (batches stay full)
    ds = VideoDataset(records, num_frames=4, train=True)
    with pytest.warns(UserWarning, match="skipping unreadable video"):
        items = [ds[i] for i in range(len(ds))]
    assert all(it["video"].shape == (4, 3, 64, 64) for it in items)
    assert len(ds.skipped) == 2
    # evaluation: it is dropped, so no video is counted twice, and reported
    ev = VideoDataset(records, num_frames=4)
    with pytest.warns(UserWarning, match="skipping unreadable video"):
        batch = collate_readable([ev[i] for i in range(len(ev))])
    assert batch["video"].shape[0] == 1 and batch["label"].tolist() == [classes.index("b")] and len(ev.skipped) == 2
    assert collate_readable([None, None]) is None
    strict = VideoDataset(records, num_frames=4, on_error="raise")
    with pytest.raises(VideoDecodeError, match="notes.mp4"):
        strict[0]
    only_bad = VideoDataset(records[:1], num_frames=4, train=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match="no video in this dataset could be decoded"):
            only_bad[0]


def test_grounding_format(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("AO8RW 0.0 6.9##a person is putting a book on a shelf.\n")
    (r,) = grounding_from_sta(f, tmp_path)
    assert (r["video_id"], r["start"], r["end"]) == ("AO8RW", 0.0, 6.9) and r["path"].endswith("AO8RW.mp4")
    f.write_text("AO8RW 6.9##no start\n")
    with pytest.raises(DatasetError, match="g.txt:1"):
        grounding_from_sta(f, tmp_path)


def test_dataset_argument_errors(videos):
    with pytest.raises(DatasetError, match="no records"):
        VideoDataset([])
    with pytest.raises(DatasetError, match="unknown sampler"):
        VideoDataset([{"path": str(videos["coded"])}], sampler="dense")


# -- curriculum and attributes -------------------------------------------------------------
class _Numbers(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n, self.epochs = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i

    def set_epoch(self, e):
        self.epochs.append(e)


def test_curriculum_serves_the_easiest_videos_first_then_all():
    from vidfm.data.curriculum import CurriculumDataset, competence

    assert competence(0, 4, 0.3) == pytest.approx(0.3) and competence(4, 4, 0.3) == 1.0 and competence(2, 4, 0.3) == pytest.approx((0.09 + 0.91 / 2) ** 0.5)
    difficulty = [9, 0, 5, 1, 8, 2, 7, 3, 6, 4]  # video i's difficulty
    ds = CurriculumDataset(_Numbers(10), difficulty, ramp_epochs=4, start=0.3)
    first = [ds[i] for i in range(len(ds))]
    assert len(first) == 10 and set(first) == {1, 3, 5}  # the three easiest, each served 3-4 times
    ds.set_epoch(4)
    assert sorted(ds[i] for i in range(len(ds))) == list(range(10))  # all, once each
    assert ds.dataset.epochs[-1] == 4  # the wrapped dataset's epoch follows
    with pytest.raises(ConfigError, match="start"):
        CurriculumDataset(_Numbers(3), [0, 1, 2], 2, start=0)


def test_world_attributes_and_difficulty_follow_the_annotations(world):
    from vidfm.data.curriculum import IGNORE, attach_attributes, difficulty_scores
    from vidfm.data.datasets import DataSource

    source = DataSource(world)
    meta = {m["path"]: m for m in source.world().metadata()}
    train, val = source.videos("train"), source.videos("val")
    vocab = attach_attributes(source, train, val, ["size", "count", "direction"])
    for r in train:
        shot = meta[r["path"]]["shots"][0]
        assert vocab["size"][r["attr_size"]] == shot["objects"][0]["size"]
        assert vocab["count"][r["attr_count"]] == str(len(shot["objects"]))
        action = shot["objects"][0]["action"]
        assert vocab["direction"][r["attr_direction"]] == (action.split("_")[1] if action.startswith("move_") else "none")
    assert all(r["attr_count"] == IGNORE or vocab["count"][r["attr_count"]] == str(len(meta[r["path"]]["shots"][0]["objects"])) for r in val)
    scores = difficulty_scores(source, train)
    for r, d in zip(train, scores):
        shot = meta[r["path"]]["shots"][0]
        assert d >= len(shot["objects"]) and (d == 1) == (len(shot["objects"]) == 1 and shot["background"] == "solid"
                                                           and shot["camera"] == "static" and shot["objects"][0]["size"] != "small")  # fmt: skip
    with pytest.raises(ConfigError, match="1 value"):
        attach_attributes(source, train[:1], None, ["size"])


def test_csv_attributes_come_from_each_file_and_empty_cells_are_ignored(world, tmp_path):
    from vidfm.data.curriculum import IGNORE, attach_attributes, difficulty_scores
    from vidfm.data.datasets import DataSource

    paths = sorted((world / "videos").glob("*.mp4"))[:8]
    (tmp_path / "train.csv").write_text("path,kind,difficulty\n" + "".join(f"{p},{'ab'[i % 2]},{i}\n" for i, p in enumerate(paths[:5])) + f"{paths[5]},,\n")
    (tmp_path / "val.csv").write_text(f"path,kind\n{paths[6]},b\n{paths[7]},c\n")
    train_src, val_src = DataSource(tmp_path / "train.csv"), DataSource(tmp_path / "val.csv")
    train, val = train_src.videos(), val_src.videos()
    vocab = attach_attributes(train_src, train, val, ["kind"], val_src)
    assert vocab == {"kind": ["a", "b"]}
    assert [r["attr_kind"] for r in train] == [0, 1, 0, 1, 0, IGNORE]  # the empty cell
    assert [r["attr_kind"] for r in val] == [1, IGNORE]  # 'c' was never seen in training
    assert difficulty_scores(train_src, train[:5]).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="difficulty"):
        difficulty_scores(train_src, train)  # the last row has no difficulty
