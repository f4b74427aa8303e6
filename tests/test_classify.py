import json
import shutil

import numpy as np
import pytest
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.tasks.classify import VideoClassifier


def test_train_eval_predict_on_a_world(world, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "classify", world, "--out", out, "--encoder", "tsn-tiny", "--epochs", 2,
                          "--batch-size", 8, "--adapt", "lora:4", "--json")  # fmt: skip
    summary = json.loads(stdout)
    assert code == 0 and summary["epochs"] == 2 and 0 < summary["params"]["percent"] < 20
    assert (out / "best" / "model.safetensors").exists() and (out / "curves.png").exists()
    code, stdout, _ = run(capsys, "eval", out, world, "--split", "compositional", "--json")
    metrics = json.loads(stdout)
    # the evaluation agrees with 'predict' on each of the split's videos, and reports the logits' spread
    from vidfm.tasks.classify import VideoClassifier, predict

    model = VideoClassifier.from_pretrained(out)
    rows = [line.split(",") for line in (world / "classification" / "compositional.csv").read_text().splitlines()[1:]]
    hits = [predict(model, world / path, top=1)[0][0] == label for path, label in rows]
    assert code == 0 and metrics["count"] == len(rows) == 4 and metrics["accuracy"] == pytest.approx(np.mean(hits))
    assert "top5" in metrics and metrics["logit_spread"] > 1e-3 and not metrics["collapsed"]
    assert (out / "best" / "confusion_compositional.png").exists()
    video = world / "videos" / "000001.mp4"
    code, stdout, _ = run(capsys, "predict", out, video, "--top", 3, "--json")
    preds = json.loads(stdout)[str(video)]
    assert code == 0 and len(preds) == 3 and preds[0]["probability"] >= preds[1]["probability"]
    # the same command again: the run is finished, and says so instead of training again
    same = ["train", "classify", world, "--out", out, "--encoder", "tsn-tiny", "--batch-size", 8, "--adapt", "lora:4"]
    code, stdout, _ = run(capsys, *same, "--epochs", 2)
    assert code == 0 and "already finished" in stdout and "--fresh" in stdout
    # other settings into the same folder are refused, naming the difference and the way out
    code, _, err = run(capsys, *same, "--epochs", 3, "--lr", 0.01)
    assert code == 1 and "lr: 0.003 -> 0.01" in err and "--fresh" in err
    assert "epochs" not in err  # the schedule's length may change on resume (a run can be lengthened)
    code, stdout, _ = run(capsys, *same, "--epochs", 1, "--fresh", "--json")
    assert code == 0 and json.loads(stdout)["epochs"] == 1


def test_folder_dataset_with_a_corrupt_video(world, tmp_path, capsys):
    data = tmp_path / "data"
    for i, label in enumerate(["grow", "shrink"]):
        (data / label).mkdir(parents=True)
        for j in range(3):
            shutil.copy(world / "videos" / f"{i * 3 + j:06d}.mp4", data / label / f"{j}.mp4")
    (data / "grow" / "broken.mp4").write_text("not a video")
    code, stdout, _ = run(capsys, "train", "classify", data, "--out", tmp_path / "r", "--encoder", "tsn-tiny",
                          "--epochs", 1, "--batch-size", 2, "--json")  # fmt: skip
    summary = json.loads(stdout)
    assert code == 0 and summary["classes"] == ["grow", "shrink"]
    # every video is read in training or validation, so the broken one is found and counted
    assert [p.endswith("broken.mp4") for p in summary["skipped_videos"]] == [True]
    code, _, err = run(capsys, "train", "classify", data, "--out", tmp_path / "r2", "--encoder", "tsn-tiny",
                       "--epochs", 1, "--batch-size", 2, "--on-error", "raise")  # fmt: skip
    assert code == 1 and "broken.mp4: not a readable video container" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "classify", "EMPTY", "--out", "OUT"], "no videos found"),
        (["train", "classify", "WORLD", "--out", "OUT", "--encoder", "resnet-huge"], "unknown encoder 'resnet-huge'"),
        (["train", "classify", "WORLD", "--out", "OUT", "--adapt", "lora:x"], "expected a whole number"),
        (["train", "classify", "WORLD", "--out", "OUT", "--adapt", "prompt", "--encoder", "r2plus1d-tiny"], "no plain transformer blocks"),
        (["train", "classify", "WORLD", "--out", "OUT", "--lr", "-1"], "learning rate must be positive"),
        (["eval", "OUT", "WORLD"], "not a saved classifier"),
        (["predict", "OUT", "missing.mp4"], "not a saved classifier"),
    ],
)
def test_user_mistakes(world, tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY" / "a").mkdir(parents=True)
    (tmp_path / "OUT").mkdir()
    subst = {"EMPTY": tmp_path / "EMPTY", "OUT": tmp_path / "OUT", "WORLD": world}
    code, _, err = run(capsys, *[subst.get(a, a) for a in argv])
    assert code == 1 and message in err and "Traceback" not in err


def test_mismatched_checkpoint_is_refused(tmp_path):
    from vidfm.models import build_encoder

    model = VideoClassifier(build_encoder("videomae-tiny"), ["a", "b"])
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hidden_size"], cfg["intermediate_size"] = 48, 96
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="weights do not match"):
        VideoClassifier.from_pretrained(tmp_path)


def test_a_folder_of_another_model_type_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "classifier.json").write_text(json.dumps({"classes": ["a", "b"]}))
    (tmp_path / "head.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="model_type 'bert' is not a video encoder"):
        VideoClassifier.from_pretrained(tmp_path)


def test_classifier_folders_are_ordinary_encoder_folders(tmp_path):
    """The encoder inside a classifier (adaptation included) opens with load_encoder, for
    transfer or search, without the classifier code."""
    import torch

    from vidfm.adapt import apply_adaptation
    from vidfm.models import build_encoder, load_encoder

    torch.manual_seed(0)
    model = apply_adaptation(VideoClassifier(build_encoder("videomae-tiny"), ["a", "b"]), "lora", rank=4, alpha=8)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # a trained adapter: its update is not zero
    model.eval().save_pretrained(tmp_path)
    video = torch.rand(2, 8, 3, 64, 64)
    with torch.no_grad():
        expected = model.encoder(video).pooled
        merged = load_encoder(tmp_path)  # LoRA folded into the weights
        kept = load_encoder(tmp_path, merge_lora=False)
        assert not any("lora_" in n for n, _ in merged.named_parameters()) and any("lora_" in n for n, _ in kept.named_parameters())
        assert torch.allclose(merged(video).pooled, expected, atol=1e-5) and torch.allclose(kept(video).pooled, expected, atol=1e-5)
        assert torch.allclose(VideoClassifier.from_pretrained(tmp_path)(video), model(video), atol=1e-5)
