import json
import shutil

import pytest
from cli_helpers import run

from vidfm.models import VideoMAEEncoder, load_encoder
from vidfm.retrieval.embedder import Embedder

SMALL = ["--max-steps", 2, "--batch-size", 4, "--frames", 4, "--size", 32, "--json"]


@pytest.mark.parametrize(
    "objective, encoder, metric",
    [("mvm", "videomae-tiny", "loss"), ("simclr", "r2plus1d-tiny", "loss"), ("moco", "r2plus1d-tiny", "loss"), ("triplet", "r2plus1d-tiny", "loss"), ("contrastive", "r2plus1d-tiny", "rsum")],
)
def test_every_objective_pretrains_an_encoder_others_can_load(world, tmp_path, capsys, objective, encoder, metric):
    out = tmp_path / objective
    code, stdout, err = run(capsys, "pretrain", world, "--objective", objective, "--encoder", encoder, "--out", out, *SMALL)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["steps"] == 2 and summary["best"] is not None and summary["train_videos"] > 10
    assert any(f"val_{metric}" in row for row in (json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()))
    enc = load_encoder(out)  # the run folder resolves to RUN/best, a plain encoder folder
    assert enc.config.num_frames == 4 and enc.config.image_size == 32
    assert json.loads((out / "best" / "pretrain.json").read_text())["objective"] == objective
    assert Embedder(out).has_text == (objective == "contrastive")


def test_mvm_encoder_fine_tunes_into_a_classifier(world, tmp_path, capsys):
    pre = tmp_path / "pre"
    assert run(capsys, "pretrain", world, "--objective", "mvm", "--out", pre, *SMALL)[0] == 0
    assert isinstance(load_encoder(pre), VideoMAEEncoder)
    assert (pre / "reconstruction.png").stat().st_size > 1000
    code, stdout, err = run(capsys, "train", "classify", world, "--encoder", pre / "best", "--out", tmp_path / "cls",
                            "--max-steps", 2, "--batch-size", 4, "--frames", 4, "--size", 32, "--adapt", "linear", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["params"]["percent"] < 5  # the pre-trained encoder stayed frozen


def test_pretrain_on_a_plain_folder_of_videos(videos, tmp_path, capsys):
    folder = tmp_path / "unlabeled" / "nested"
    folder.mkdir(parents=True)
    for i in range(4):
        shutil.copy(videos["coded"], folder / f"v{i}.mp4")
    shutil.copy(videos["truncated"], folder / "broken.mp4")
    code, stdout, err = run(capsys, "pretrain", tmp_path / "unlabeled", "--objective", "simclr", "--encoder", "r2plus1d-tiny",
                            "--out", tmp_path / "run", *SMALL)  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["train_videos"] + json.loads(stdout)["val_videos"] == 5


def test_pretrain_bad_input(world, tmp_path, capsys):
    code, _, err = run(capsys, "pretrain", world, "--objective", "mvm", "--encoder", "r2plus1d-tiny", "--out", tmp_path / "r", *SMALL)
    assert code == 1 and "videomae" in err
    code, _, err = run(capsys, "pretrain", tmp_path / "nothing", "--objective", "contrastive", "--out", tmp_path / "r", *SMALL)
    assert code == 1 and "nothing: no such file or folder" in err
    video = world / "videos" / "000001.mp4"  # a single video exists: it is data, but has no captions
    code, _, err = run(capsys, "pretrain", video, "--objective", "contrastive", "--out", tmp_path / "r", *SMALL)
    assert code == 1 and "000001.mp4: has no captions" in err
    code, _, err = run(capsys, "pretrain", world, "--objective", "mvm", "--mask-ratio", "1.2", "--out", tmp_path / "r", *SMALL)
    assert code == 1 and "mask ratio" in err
