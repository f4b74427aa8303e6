"""Few-shot evaluation: exact episodes, the two classifiers on features with a known
answer, the field's report (mean and 95 % interval), and the command."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run

from vidfm.errors import ConfigError, DatasetError
from vidfm.tasks.fewshot import (
    EpisodeData,
    EpisodicLearner,
    few_shot_eval,
    mean_ci95,
    parse_spec,
    sample_episodes,
)


def test_specs_parse_and_bad_ones_say_what_is_expected():
    assert parse_spec("5way-1shot") == (5, 1) and parse_spec("5-way 5-shot") == (5, 5) and parse_spec("10WAY-2SHOT") == (10, 2)
    for bad in ("5way", "1way-5shot", "five-way", "5way-0shot"):
        with pytest.raises(ConfigError, match="N-way K-shot"):
            parse_spec(bad)


def test_episodes_are_exact():
    labels = np.repeat(np.arange(8), [30, 30, 30, 30, 30, 30, 30, 4])  # class 7 is too small to take part
    eps = sample_episodes(labels, 5, 3, 6, episodes=50, seed=1)
    assert len(eps) == 50
    for ep in eps:
        assert len(set(ep["classes"])) == 5 and 7 not in ep["classes"]
        support, query = ep["support"], ep["query"]
        assert len(support) == 5 * 3 and len(query) == 5 * 6
        idx = [i for i, _ in support + query]
        assert len(set(idx)) == len(idx)  # no clip twice, support and query disjoint
        for i, j in support + query:
            assert labels[i] == ep["classes"][j]  # the episode label names the right class
        assert sorted(j for _, j in support) == sorted(list(range(5)) * 3)
    assert sample_episodes(labels, 5, 3, 6, 50, seed=1) == eps  # reproducible
    assert sample_episodes(labels, 5, 3, 6, 50, seed=2) != eps
    with pytest.raises(DatasetError, match="needs 5 classes of at least 31"):
        sample_episodes(labels, 5, 10, 21, 10)


def test_prototypes_and_probe_on_features_with_a_known_answer():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16)) * 4
    labels = np.repeat(np.arange(6), 25)
    separable = centres[labels] + rng.normal(size=(150, 16)) * 0.3
    r = few_shot_eval(separable, labels, "5way-1shot", episodes=40, queries=5)
    assert r["prototypes"]["accuracy"] == 1.0 and r["linear_probe"]["accuracy"] == 1.0 and r["chance"] == 0.2
    noise = rng.normal(size=(150, 16))  # features that know nothing: chance, and the interval covers it
    r = few_shot_eval(noise, labels, "5way-5shot", episodes=300, queries=5)
    for name in ("prototypes", "linear_probe"):
        assert abs(r[name]["accuracy"] - 0.2) < 2.5 * r[name]["ci95"] + 0.01


def test_the_interval_is_the_normal_95_percent_one():
    r = mean_ci95([0.0, 1.0] * 50)
    assert r["accuracy"] == 0.5 and r["ci95"] == pytest.approx(1.96 * np.std([0.0, 1.0] * 50, ddof=1) / 10)


def test_eval_few_shot_from_the_command_line(world, tmp_path, capsys):
    code, _, _ = run(capsys, "train", "classify", world, "--out", tmp_path / "clf", "--max-steps", "2", "--batch-size", "4")
    assert code == 0
    rows = [line for split in ("train", "val", "test") for line in (world / "classification" / f"{split}.csv").read_text().splitlines()[1:]]
    data = tmp_path / "all.csv"  # every labelled video of the world: about 3 per class
    data.write_text("path,label\n" + "".join(f"{world / p},{label}\n" for p, label in (r.split(",") for r in rows)))
    code, out, _ = run(capsys, "eval", tmp_path / "clf", data, "--few-shot", "3way-1shot", "--episodes", "20", "--queries", "1", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["n_way"] == 3 and r["episodes"] == 20 and 0 <= r["prototypes"]["accuracy"] <= 1 and r["linear_probe"]["ci95"] >= 0
    code, _, err = run(capsys, "eval", tmp_path / "clf", data, "--few-shot", "3way-1shot", "--queries", "50")
    assert code == 1 and "needs 3 classes of at least 51" in err
    code, _, err = run(capsys, "eval", tmp_path / "clf", world, "--few-shot", "banana")
    assert code == 1 and "N-way K-shot" in err


class MeanColour(torch.nn.Module):
    """A known-answer 'encoder': a clip's feature is its mean colour (no parameters to learn
    but a scale, so the loss can be checked by hand)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, video):
        return SimpleNamespace(pooled=video.mean((1, 3, 4)) * self.scale)


def test_episode_data_is_exact_and_seeded():
    clips = torch.rand(40, 2, 3, 4, 4)
    labels = np.repeat(np.arange(4), 10)
    data = EpisodeData(clips, labels, 3, 2, 3, episodes=5, seed=1, unlabeled=torch.rand(7, 2, 3, 4, 4), unlabeled_per_episode=4)
    ep = data[0]
    assert ep["support"].shape == (6, 2, 3, 4, 4) and ep["query"].shape == (9, 2, 3, 4, 4) and ep["weak"].shape == (4, 2, 3, 4, 4)
    assert ep["support_y"].tolist() == [0, 0, 1, 1, 2, 2] and ep["query_y"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(ep["support"], data[0]["support"]) and not torch.equal(ep["support"], data[1]["support"])
    data.set_epoch(1)
    assert not torch.equal(ep["support"], data[0]["support"])  # a new epoch draws new episodes
    with pytest.raises(DatasetError, match="needs 3 classes"):
        EpisodeData(clips[:12], labels[:12], 3, 2, 3, episodes=1)


def test_the_episode_loss_by_hand():
    red, green, blue = (torch.tensor(c, dtype=torch.float32).view(1, 3, 1, 1).expand(2, 3, 4, 4) for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    episode = {"support": torch.stack([red, green]), "support_y": torch.tensor([0, 1]),
               "query": torch.stack([red, blue]), "query_y": torch.tensor([0, 1])}  # fmt: skip
    learner = EpisodicLearner(MeanColour(), temperature=0.5)
    loss, logs = learner(episode)
    # unit features: red query at distance 0 from the red prototype and sqrt 2 from green; blue sqrt 2 from both
    expected = (F.cross_entropy(torch.tensor([[0.0, -4.0]]), torch.tensor([0])) + math.log(2)) / 2
    assert float(loss) == pytest.approx(float(expected), abs=1e-5) and logs["episode_accuracy"] == 0.5
    same = {**episode, "weak": torch.stack([red, blue]), "strong": torch.stack([red, blue])}
    loss_c, logs_c = EpisodicLearner(MeanColour(), consistency=1.0, temperature=0.5)(same)
    assert logs_c["consistency"] == pytest.approx(0.0, abs=1e-6) and float(loss_c) == pytest.approx(float(loss), abs=1e-5)
    differ = {**same, "strong": torch.stack([green, blue])}
    assert EpisodicLearner(MeanColour(), consistency=1.0, temperature=0.5)(differ)[1]["consistency"] > 1.0


def test_episodic_fine_tuning_from_the_command_line(world, tmp_path, capsys):
    videos = sorted((world / "videos").glob("*.mp4"))[:24]
    (tmp_path / "data.csv").write_text("path,label\n" + "".join(f"{p},{'abc'[k % 3]}\n" for k, p in enumerate(videos)))
    code, out, err = run(capsys, "train", "fewshot", tmp_path / "data.csv", "--encoder", "r2plus1d-tiny", "--out", tmp_path / "fs",
                         "--few-shot", "2way-1shot", "--classes", "a,b", "--queries", "1", "--episodes", "3", "--epochs", "1",
                         "--consistency", "1", "--unlabeled", "2", "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 3 and summary["classes"] == ["a", "b"] and (tmp_path / "fs" / "best" / "config.json").exists()
    code, out, err = run(capsys, "eval", tmp_path / "fs" / "best", tmp_path / "data.csv", "--few-shot", "2way-1shot", "--queries", "1",
                         "--episodes", "4", "--classes", "b,c", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["videos"] == 16
    code, _, err = run(capsys, "train", "fewshot", tmp_path / "data.csv", "--encoder", "r2plus1d-tiny", "--out", tmp_path / "x", "--classes", "fly")
    assert code == 1 and "unknown classes" in err
