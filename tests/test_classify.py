import json
import shutil

import pytest

from vidfm.cli.main import main
from vidfm.errors import ConfigError
from vidfm.tasks.classify import VideoClassifier


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_eval_predict_on_a_world(world, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "classify", world, "--out", out, "--encoder", "tsn-tiny", "--epochs", 2,
                          "--batch-size", 8, "--adapt", "lora:4", "--json")  # fmt: skip
    summary = json.loads(stdout)
    assert code == 0 and summary["epochs"] == 2 and 0 < summary["params"]["percent"] < 20
    assert (out / "best" / "model.safetensors").exists() and (out / "curves.png").exists()
    code, stdout, _ = run(capsys, "eval", out, world, "--split", "compositional", "--json")
    metrics = json.loads(stdout)
    assert code == 0 and metrics["count"] == 4 and 0 <= metrics["accuracy"] <= 1 and "top5" in metrics
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
    assert code == 1 and "epochs: 2 -> 3" in err and "lr: 0.001 -> 0.01" in err and "--fresh" in err
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
