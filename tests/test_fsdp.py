"""FSDP2 under torchrun with 2 CPU processes: the same training as one process, a sharded
checkpoint that loads into one process, and a killed run that resumes exactly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fsdp_train import Classifier  # noqa: E402

from vidfm.errors import ConfigError  # noqa: E402
from vidfm.training.fsdp import load_sharded_checkpoint, shard_units  # noqa: E402


def train(out, *flags, procs: int = 1, check: bool = True):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)] if procs > 1 else [sys.executable]
    result = subprocess.run([*launcher, str(HERE / "fsdp_train.py"), str(out), *flags], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def losses(run) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if "train_loss" in line]


def weights(run) -> dict:
    return torch.load(run / "best" / "model.pt")


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsdp")
    train(d / "single", "--batch-size", "8")
    train(d / "fsdp", "--fsdp", "--batch-size", "4", procs=2)
    return d


def test_fsdp_on_two_processes_trains_like_one_process(runs):
    single, sharded = losses(runs / "single"), losses(runs / "fsdp")
    assert len(single) == len(sharded) == 6
    assert sharded == pytest.approx(single, rel=1e-4)  # the logged loss is the mean over both processes
    torch.manual_seed(0)
    start = Classifier().state_dict()
    assert max_diff(weights(runs / "single"), start) > 1e-3  # training moved the weights ...
    assert max_diff(weights(runs / "fsdp"), weights(runs / "single")) < 2e-4  # ... and both runs moved them alike


def test_the_sharded_checkpoint_loads_into_one_process(runs):
    assert (runs / "fsdp" / "checkpoint" / "sharded" / ".metadata").exists()
    model = load_sharded_checkpoint(Classifier(), runs / "fsdp")
    assert max_diff(model.state_dict(), weights(runs / "fsdp")) == 0.0
    with pytest.raises(ConfigError, match="no sharded"):
        load_sharded_checkpoint(Classifier(), runs / "single")


def test_a_killed_fsdp_run_resumes_exactly(runs, tmp_path):
    killed = train(tmp_path / "run", "--fsdp", "--batch-size", "4", "--die-at-call", "4", procs=2, check=False)
    assert killed.returncode != 0 and json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"] == 3
    resumed = train(tmp_path / "run", "--fsdp", "--batch-size", "4", procs=2)
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert max_diff(weights(tmp_path / "run"), weights(runs / "fsdp")) < 1e-6
    assert losses(tmp_path / "run") == pytest.approx(losses(runs / "fsdp"), rel=1e-6)


def test_fsdp_shards_the_blocks_and_needs_torchrun(tmp_path):
    model = Classifier()
    units = shard_units(model)
    assert len(units) >= 2 and all(any(True for _ in u.parameters()) for u in units)
    result = train(tmp_path / "alone", "--fsdp", check=False)  # one plain process: no process group
    assert result.returncode != 0 and "torchrun" in result.stderr
