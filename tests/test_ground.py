import json
import os

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.metrics.grounding import grounding_metrics, temporal_iou
from vidfm.models import build_encoder
from vidfm.models.text import TextEncoder
from vidfm.tasks.ground import (
    GroundingModel,
    candidate_segments,
    grounding_loss,
    segment_iou,
)


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm")


def test_temporal_iou_and_metrics():
    assert temporal_iou([[0, 2]], [[1, 3]])[0] == pytest.approx(1 / 3)
    assert temporal_iou([[0, 1]], [[2, 3]])[0] == 0.0
    m = grounding_metrics([[0, 2], [0, 1], [5, 6]], [[0, 2], [0, 2], [0, 1]])
    assert m["R@1,IoU=0.5"] == pytest.approx(2 / 3) and m["R@1,IoU=0.7"] == pytest.approx(1 / 3)
    assert m["mIoU"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_candidates_cover_every_clip_range():
    c = candidate_segments(4)
    assert c.shape == (10, 2) and torch.allclose(c[0], torch.tensor([0.0, 0.25])) and torch.allclose(c[-1], torch.tensor([0.75, 1.0]))
    assert torch.allclose(segment_iou(c[:1], c[:1]), torch.ones(1, 1))


def toy_batch(n: int, clips: int = 8, dim: int = 6, seed: int = 0):
    """The sentence names a colour; that colour's feature lights up over the true segment."""
    g = torch.Generator().manual_seed(seed)
    colours = ["red", "blue", "green"]
    feats = 0.1 * torch.randn(n, clips, dim, generator=g)
    targets, sentences = [], []
    for b in range(n):
        spans = {}
        for c in range(3):
            i = int(torch.randint(0, clips - 2, (), generator=g))
            j = int(torch.randint(i, clips, (), generator=g))
            feats[b, i : j + 1, c] += 1.0
            spans[c] = (i, j)
        c = int(torch.randint(0, 3, (), generator=g))
        sentences.append(f"the {colours[c]} square grows")
        i, j = spans[c]
        targets.append([i / clips, (j + 1) / clips])
    return feats, sentences, torch.tensor(targets)


def test_grounding_model_learns_which_words_point_where(minilm):
    torch.manual_seed(0)
    model = GroundingModel(6, minilm, hidden=48, num_clips=8, layers=2, heads=4, dropout=0.0).train()
    feats, sentences, targets = toy_batch(96)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(150):
        idx = torch.randint(0, 96, (32,))
        opt.zero_grad()
        loss = grounding_loss(model(feats[idx], [sentences[i] for i in idx]), targets[idx], model.candidates)
        loss.backward()
        opt.step()
    model.eval()
    tf, ts, tt = toy_batch(48, seed=1)
    with torch.no_grad():
        seg, conf = model.predict(tf, ts, "candidates")
        reg, _ = model.predict(tf, ts, "regression")
    assert grounding_metrics(seg.numpy(), tt.numpy())["mIoU"] > 0.6
    assert grounding_metrics(reg.numpy(), tt.numpy())["mIoU"] > 0.4
    assert ((conf >= 0) & (conf <= 1)).all()
    with pytest.raises(ConfigError, match="expected clip features"):
        model(torch.zeros(1, 5, 6), ["x"])
    with pytest.raises(ConfigError, match="unknown grounding head"):
        model.predict(tf, ts, "oracle")


def test_grounding_model_saves_and_loads(minilm, tmp_path):
    torch.manual_seed(0)
    model = GroundingModel(6, minilm, hidden=32, num_clips=8).eval()
    model.save_pretrained(tmp_path / "g", {"features_model": "x", "features_fingerprint": "y", "window_frames": 8})
    loaded, meta = GroundingModel.from_pretrained(tmp_path / "g")
    feats, sentences, _ = toy_batch(3)
    with torch.no_grad():
        assert torch.allclose(model.predict(feats, sentences)[0], loaded.predict(feats, sentences)[0])
    assert meta["window_frames"] == 8 and (tmp_path / "g" / "model.safetensors").stat().st_size < 2e6
    with pytest.raises(ConfigError, match="not a grounding model"):
        GroundingModel.from_pretrained(tmp_path)


def test_cli_train_ground_eval(world, tmp_path, capsys):
    enc = tmp_path / "enc"
    build_encoder("r2plus1d-tiny", num_frames=4, image_size=32).save_pretrained(enc)
    out = tmp_path / "g"
    code, stdout, err = run(capsys, "train", "ground", world, "--features", enc, "--out", out, "--max-steps", 3, "--batch-size", 8,
                            "--clips", 8, "--hidden", 32, "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["train_sentences"] > 10 and summary["best"] == summary["best_eval"]["mIoU"]
    assert (out / "clip_features.pt").exists()  # a resumed run reuses the extracted features
    from vidfm.tasks.ground import load_feature_cache

    blob = torch.load(out / "clip_features.pt", weights_only=False)
    cached = load_feature_cache(out / "clip_features.pt", blob["key"])
    assert cached and not load_feature_cache(out / "clip_features.pt", {**blob["key"], "num_clips": 4})
    changed = sorted(cached)[0]  # a video rewritten in place (same name, new mtime) is no longer served from the cache
    before = os.stat(changed)
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert set(load_feature_cache(out / "clip_features.pt", blob["key"])) == set(cached) - {changed}
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    video = sorted((world / "videos").glob("*.mp4"))[0]
    code, stdout, err = run(capsys, "ground", video, "when does the blue square grow?", "the red circle moves left", "--model", out, "--json")
    results = json.loads(stdout)
    assert code == 0 and len(results) == 2
    assert all(0 <= r["start"] <= r["end"] and 0 <= r["confidence"] <= 1 for r in results)
    code, stdout, _ = run(capsys, "eval", out, world, "--split", "test", "--json")
    assert code == 0 and "candidates_mIoU" in json.loads(stdout)
    code, _, err = run(capsys, "ground", video, "  ", "--model", out)
    assert code == 1 and "query is empty" in err
    code, _, err = run(capsys, "ground", tmp_path / "none.mp4", "x", "--model", out)
    assert code == 1 and "none.mp4" in err and "Traceback" not in err
    np.testing.assert_array_less(-1, results[0]["start"])
