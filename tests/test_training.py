import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import RandomClips, make_trainer

from vidfm.errors import ConfigError
from vidfm.training import TrainConfig

HERE = Path(__file__).parent


def test_fit_logs_metrics_curves_and_best_model(tmp_path):
    summary = make_trainer(tmp_path).fit()
    assert summary["steps"] == 18 and summary["epochs"] == 3  # 48 clips / batch 8 = 6 steps per epoch
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("train_loss" in r for r in rows) and sum("val_accuracy" in r for r in rows) == 3
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "best" / "model.safetensors").exists()
    losses = [r["train_loss"] for r in rows if "train_loss" in r]
    assert losses[-1] < losses[0]  # it learns


def test_resume_after_a_real_kill_matches_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    straight.fit()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    killed = subprocess.run([sys.executable, str(HERE / "train_helpers.py"), str(tmp_path / "killed"), "10"], env=env, capture_output=True)
    assert killed.returncode == -9  # SIGKILL after 10 batches; the step-8 checkpoint survives
    state = json.loads((tmp_path / "killed" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 8
    resumed = make_trainer(tmp_path / "killed")
    summary = resumed.fit()
    assert summary["steps"] == 18
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    rows = lambda p: [json.loads(line) for line in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    val = lambda rs: [r["val_accuracy"] for r in rs if "val_accuracy" in r]  # noqa: E731
    assert val(rows(tmp_path / "straight")) == val(rows(tmp_path / "killed"))


def test_resume_is_exact_with_mixup_and_cutmix(tmp_path):
    """The mixing draws come from the trainer's checkpointed generator: an interrupted run
    mixes the same pairs with the same ratios after resuming."""
    mix = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_smoothing": 0.1}
    straight = make_trainer(tmp_path / "straight", loss_options=mix)
    straight.fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "cut", loss_options=mix, interrupt_at_step=10).fit()
    resumed = make_trainer(tmp_path / "cut", loss_options=mix)
    assert resumed.fit()["steps"] == 18
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_gradient_accumulation_equals_a_bigger_batch(tmp_path):
    no_batchnorm = {"conv_stem": False}  # BatchNorm statistics depend on the micro-batch
    a = make_trainer(tmp_path / "a", max_steps=2, batch_size=8, grad_accum=1, encoder_options=no_batchnorm)
    b = make_trainer(tmp_path / "b", max_steps=2, batch_size=4, grad_accum=2, encoder_options=no_batchnorm)
    for t in (a, b):
        t.model.encoder.config.hidden_dropout_prob = 0.0
        for m in t.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    a.fit(), b.fit()
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-4)  # Adam magnifies float noise in near-zero gradients; a per-micro-batch step differs by ~lr


def test_early_stopping_and_ema(tmp_path):
    trainer = make_trainer(tmp_path, epochs=10, early_stopping_patience=1, ema_decay=0.9, metric="loss", metric_mode="max")
    summary = trainer.fit()  # "maximising" validation loss stops as soon as it goes down
    assert summary["stopped_early"] and summary["epochs"] < 10
    # the EMA is checkpointed with everything else (accelerate's registered objects), and differs from the raw weights
    raw = torch.load(tmp_path / "checkpoint" / "pytorch_model.bin", weights_only=True)
    ema = next(e for e in (torch.load(f, weights_only=False) for f in sorted((tmp_path / "checkpoint").glob("custom_checkpoint_*.pkl")))
               if "n_averaged" in e)  # fmt: skip
    assert int(ema["n_averaged"]) == summary["steps"]
    assert any(not torch.equal(ema[f"module.{k}"], v) for k, v in raw.items() if f"module.{k}" in ema)


def test_bf16_autocast_and_gradient_checkpointing(tmp_path):
    summary = make_trainer(tmp_path, max_steps=3, mixed_precision="bf16", gradient_checkpointing=True).fit()
    assert summary["steps"] == 3
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows if "train_loss" in r)


def test_mixup_and_cutmix_train(tmp_path):
    trainer = make_trainer(tmp_path, epochs=4, loss_options={"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_smoothing": 0.1})
    summary = trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in rows if "train_loss" in r]
    assert summary["steps"] == 24 and losses[-1] < losses[0]


def test_corrupt_checkpoint_is_reported(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    (tmp_path / "checkpoint" / "pytorch_model.bin").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot resume from this checkpoint.*--fresh"):
        make_trainer(tmp_path, max_steps=4).fit()
    assert make_trainer(tmp_path, max_steps=4).fit(resume=False)["steps"] == 4  # --fresh


def test_a_run_folder_holds_one_configuration(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    with pytest.raises(ConfigError, match=r"other settings \(lr: 0.003 -> 0.01\).*--fresh"):
        make_trainer(tmp_path, max_steps=4, lr=0.01).fit()
    again = make_trainer(tmp_path, max_steps=4, num_workers=0, log_every_steps=1).fit()  # settings that change no number may differ
    assert again["already_finished"] and again["steps"] == 4


def test_a_finished_run_can_be_lengthened(tmp_path, capsys):
    make_trainer(tmp_path, max_steps=4, warmup_ratio=0.0).fit()
    longer = make_trainer(tmp_path, max_steps=8, warmup_ratio=0.0).fit()
    assert longer["steps"] == 8 and not longer["already_finished"]
    assert "max_steps: 4 -> 8" in capsys.readouterr().out
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    assert lrs[-1] < 0.1 * lrs[0]  # the cosine was laid out over 8 steps: it ends near its floor again
    assert json.loads((tmp_path / "train_config.json").read_text())["max_steps"] == 8


@pytest.mark.parametrize(
    "field,value,msg",
    [("lr", 0.0, "learning rate"), ("mixed_precision", "fp8", "mixed_precision"), ("batch_size", 0, "batch-size"), ("ema_decay", 1.5, "ema_decay"),
     ("eval_every_epochs", 0, "eval-every-epochs"), ("checkpoint_every_steps", 0, "checkpoint-every-steps"), ("log_every_steps", -1, "log-every-steps"),
     ("max_steps", 0, "max-steps"), ("warmup_ratio", 1.0, "warmup"), ("early_stopping_patience", 0, "early-stopping-patience")],
)
def test_bad_training_settings(field, value, msg):
    cfg = TrainConfig(**{field: value})
    with pytest.raises(ConfigError, match=msg):
        cfg.validate()


def test_data_parallel_two_cpu_processes(tmp_path):
    """DDP through accelerate on 2 CPU processes (gloo): gradients are averaged, so both
    ranks end with identical weights, and the run resumes like a single-process one.
    (BatchNorm running statistics are per rank between DDP's buffer broadcasts; rank 0 saves.)"""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from train_helpers import make_trainer\n"
        "t = make_trainer(sys.argv[1], max_steps=4, batch_size=4)\n"
        "s = t.fit()\n"
        "rank = t.accelerator.process_index\n"
        "torch.save({k: v.detach() for k, v in t.model.named_parameters()}, f'{sys.argv[1]}/rank{rank}.pt')\n"
        "print('world', t.accelerator.num_processes, 'steps', s['steps'])\n"
    )
    # accelerate's launcher; on a machine without GPUs the processes resolve to MULTI_CPU (gloo)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533", str(script), str(tmp_path / "run")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("world 2 steps 4") == 2
    a, b = (torch.load(tmp_path / "run" / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batchnorm_statistics_are_recalibrated_before_evaluation(tmp_path, capsys):
    """After a few steps BatchNorm's running averages still sit near their initial values:
    without recalibration the eval-mode model gives every clip the same output (the
    collapse users met on short runs), and the run says so; with it, it does not."""
    from vidfm.cli.common import warn_if_collapsed
    from vidfm.metrics.collapse import relative_spread

    videos = RandomClips(12, seed=1).videos
    spread = {}
    for batches in (0, 16):
        trainer = make_trainer(tmp_path / str(batches), encoder="r2plus1d-tiny", max_steps=6, lr=3e-3, bn_recalibration_batches=batches)
        summary = trainer.fit()
        with torch.no_grad():
            spread[batches] = relative_spread(trainer.model.eval().encoder(videos).pooled)
        assert summary["best_eval"]["collapsed"] == (batches == 0)
        warn_if_collapsed(summary["best_eval"])
        assert ("WARNING" in capsys.readouterr().err) == (batches == 0)
    assert spread[0] < 1e-3 < 0.1 < spread[16]
