"""Few-shot evaluation: exact episodes, the two classifiers on features with a known
answer, the field's report (mean and 95 % interval), and the command."""

import json

import numpy as np
import pytest
from cli_helpers import run

from vidfm.errors import ConfigError, DatasetError
from vidfm.tasks.fewshot import few_shot_eval, mean_ci95, parse_spec, sample_episodes


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
