import json
import shutil

import pytest
from cli_helpers import run

from vidfm.models import VideoMAEEncoder, load_encoder
from vidfm.retrieval.embedder import Embedder

SMALL = ["--max-steps", 2, "--batch-size", 4, "--frames", 4, "--size", 32, "--json"]


@pytest.mark.parametrize(
    "objective, encoder, metric",
    [("mvm", "videomae-tiny", "loss"), ("simclr", "r2plus1d-tiny", "loss"), ("moco", "r2plus1d-tiny", "loss"), ("triplet", "r2plus1d-tiny", "loss"), ("ae", "r2plus1d-tiny", "loss"),
     ("vae", "r2plus1d-tiny", "loss"), ("contrastive", "r2plus1d-tiny", "rsum")],
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


def test_vae_gan_with_attribute_heads_uncertainty_weights_and_curriculum(world, tmp_path, capsys):
    out = tmp_path / "vae"
    code, stdout, err = run(capsys, "pretrain", world, "--objective", "vae", "--encoder", "r2plus1d-tiny", "--out", out, "--adversarial-weight", 0.1,
                            "--attributes", "size,count", "--loss-weighting", "uncertainty", "--curriculum", 2, "--target-size", 16, *SMALL)  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*rows)
    assert {"size_acc", "count_acc", "weight_vae", "weight_size", "loss_count", "g_adv", "d_hinge", "kl"} <= logged, logged
    meta = json.loads((out / "best" / "pretrain.json").read_text())
    assert set(meta["attributes"]) == {"size", "count"} and meta["curriculum"]["ramp_epochs"] == 2
    assert (out / "reconstruction.png").stat().st_size > 1000
    load_encoder(out)


def test_contrastive_directions_weighted_and_heads_left_out_of_the_video_text_model(world, tmp_path, capsys):
    out = tmp_path / "vt"
    code, _, err = run(capsys, "pretrain", world, "--objective", "contrastive", "--encoder", "r2plus1d-tiny", "--out", out,
                       "--attributes", "size", "--loss-weights", "video_to_text=0.8,text_to_video=0.2", "--caption-augment", "synonyms,translate", *SMALL)  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "best" / "pretrain.json").read_text())["caption_augment"] == ["synonyms", "translate"]
    assert Embedder(out).has_text  # the saved video-text model loads without the pre-training extras


def test_pretrain_extras_bad_input(world, tmp_path, capsys):
    args = ["pretrain", world, "--objective", "simclr", "--encoder", "r2plus1d-tiny", "--out", tmp_path / "r", *SMALL]
    code, _, err = run(capsys, *args, "--attributes", "mood")
    assert code == 1 and "unknown world attribute 'mood'" in err
    code, _, err = run(capsys, *args, "--loss-weights", "video_to_text=1")
    assert code == 1 and "unknown terms ['video_to_text']" in err
    with pytest.raises(SystemExit):  # argparse's usage error
        run(capsys, *args, "--loss-weights", "simclr=lots")
    assert "expected NAME=NUMBER" in capsys.readouterr().err
    code, _, err = run(capsys, *args, "--caption-augment", "translate")
    assert code == 1 and "needs the video-text objective" in err
    code, _, err = run(capsys, *args, "--curriculum", 2, "--curriculum-start", 0)
    assert code == 1 and "curriculum start" in err
    code, _, err = run(capsys, *args[:3], "ae", *args[4:], "--target-size", 24)
    assert code == 1 and "power of two" in err


def test_attribute_heads_and_weights_train_under_ddp(world, tmp_path):
    """Two processes (torchrun, gloo): every parameter, the heads' and the learned weights'
    included, is used inside the data-parallel forward, so gradients are reduced."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "vidfm", "pretrain", str(world),
           "--objective", "vae", "--encoder", "r2plus1d-tiny", "--out", str(out), "--attributes", "size,count", "--loss-weighting", "uncertainty",
           "--adversarial-weight", "0.1", "--target-size", "16", *map(str, SMALL)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "best" / "pretrain.json").read_text())["loss_weighting"] == "uncertainty"
