import json

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.compress.distill import distillation_loss, kd_loss
from vidfm.compress.prune import prune_magnitude, prune_structured
from vidfm.compress.tome import TokenMergingEncoder, bipartite_merge, tokens_after
from vidfm.data.datasets import SyntheticWorld
from vidfm.errors import ConfigError
from vidfm.models import build_encoder
from vidfm.tasks.classify import VideoClassifier

onnxruntime = pytest.importorskip("onnxruntime")


def tiny(encoder="videomae-tiny", classes=("a", "b", "c")):
    torch.manual_seed(0)
    return VideoClassifier(build_encoder(encoder, num_frames=4, image_size=32), list(classes)).eval()


@pytest.fixture(scope="module")
def clip():
    return torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# -- distillation loss ----------------------------------------------------------------------
def test_kd_loss_is_zero_for_a_perfect_student_and_scales_with_t_squared():
    t = torch.randn(8, 5)
    assert kd_loss(t, t, 3.0) == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(t, t, 2.0, binary=True) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(8, 5)
    assert kd_loss(s, t, 2.0) > 0 and kd_loss(s, t, 2.0, binary=True) > 0
    # T^2 keeps the soft gradients' size: at a high T, KL ~ sum (s - t)^2 / (2 C T^2) per item
    big = kd_loss(s, t, 50.0)
    centred = ((s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))).pow(2).sum(-1).mean() / (2 * 5)
    assert float(big) == pytest.approx(float(centred), rel=0.05)
    labels = torch.randint(0, 5, (8,))
    terms = distillation_loss(s, t, labels, temperature=2.0, alpha=0.25)
    assert float(terms["loss"]) == pytest.approx(0.25 * float(terms["soft"]) + 0.75 * float(terms["hard"]))
    with pytest.raises(ValueError, match="equal shapes"):
        distillation_loss(s, t, student_features=torch.zeros(8, 3), teacher_features=torch.zeros(8, 4), beta=1.0)


# -- token merging --------------------------------------------------------------------------
def test_bipartite_merge_keeps_mass_and_merges_identical_tokens_first():
    x = torch.randn(2, 10, 4)
    x[:, 1] = x[:, 0]  # token 0 (set A) has an exact twin in set B
    size = torch.ones(2, 10, 1)
    merged, new_size = bipartite_merge(x, size, x, r=1)
    assert merged.shape == (2, 9, 4) and new_size.sum() == pytest.approx(20.0)
    assert torch.allclose((merged * new_size).sum(1), (x * size).sum(1), atol=1e-5)
    assert new_size.max() == 2 and torch.allclose(merged[new_size[..., 0] == 2], x[:, 0], atol=1e-6)


def test_tome_r0_is_the_encoder_and_r_cuts_tokens(clip):
    model = tiny()
    ref = model.encoder(clip)
    same = TokenMergingEncoder(model.encoder, 0)(clip)
    assert torch.allclose(same.pooled, ref.pooled, atol=1e-5)
    merged = TokenMergingEncoder(model.encoder, 6)(clip)
    n = ref.tokens.shape[1]
    assert merged.tokens.shape[1] == tokens_after(n, model.encoder.config.num_hidden_layers, 6)[-1] < n
    with pytest.raises(ConfigError, match="joint space-time ViT"):
        TokenMergingEncoder(tiny("r2plus1d-tiny").encoder, 4)


# -- pruning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoder,heads", [("videomae-tiny", True), ("r2plus1d-tiny", False)])
def test_structured_pruning_removes_parameters_and_reloads(encoder, heads, clip, tmp_path):
    model = tiny(encoder)
    info = prune_structured(model, 0.5, heads=heads)
    assert info["params_after"] < 0.75 * info["params_before"]
    if heads:
        assert all(h < 3 for h in info["attention_heads"].values())
    model.compression = info
    model.save_pretrained(tmp_path / "pruned")
    again = VideoClassifier.from_pretrained(tmp_path / "pruned")
    assert torch.allclose(again(clip), model(clip), atol=1e-5)
    assert sum(p.numel() for p in again.parameters()) == info["params_after"]


def test_pruning_bad_requests():
    with pytest.raises(ConfigError, match="CNN"):
        prune_structured(tiny("r2plus1d-tiny"), 0.5, heads=True)
    with pytest.raises(ConfigError, match="ratio"):
        prune_structured(tiny(), 1.5)


def test_magnitude_pruning_reports_its_sparsity():
    model = tiny("r2plus1d-tiny")
    info = prune_magnitude(model, 0.6)
    assert info["pruned_weights_zero"] == pytest.approx(0.6, abs=0.01)
    assert 0.3 < info["all_parameters_zero"] < 0.6
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(float((m.weight == 0).float().mean()) == pytest.approx(0.6, abs=0.01) for m in convs)  # per layer
    info = prune_magnitude(tiny("r2plus1d-tiny"), 0.6, scope="global")
    assert info["pruned_weights_zero"] == pytest.approx(0.6, abs=0.01)


# -- ONNX -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(world, tmp_path_factory):
    """An (untrained) videomae-tiny classifier over the test world's classes, saved."""
    d = tmp_path_factory.mktemp("compress")
    classes = SyntheticWorld(world).classes
    torch.manual_seed(0)
    model = VideoClassifier(build_encoder("videomae-tiny"), classes)
    model.save_pretrained(d / "clf")
    return d / "clf"


def test_export_parity_and_eval_through_onnxruntime(saved, world, tmp_path, capsys):
    code, out, err = run(capsys, "export", saved, "--out", tmp_path / "m.onnx", "--json")
    report = json.loads(out)
    assert code == 0 and report["max_abs_diff_vs_torch"] < 1e-4, err
    assert (tmp_path / "m.onnx.data").exists() and len(report["files"]) == 2
    code, out, err = run(capsys, "eval", saved, world, "--json")
    ref = json.loads(out)
    code, out, err = run(capsys, "eval", tmp_path / "m.onnx", world, "--json", "--confusion", tmp_path / "c.png")
    got = json.loads(out)
    assert code == 0 and got["count"] == ref["count"] and got["accuracy"] == pytest.approx(ref["accuracy"])
    code, out, err = run(capsys, "eval", saved, world, "--runtime", "onnxruntime", "--json", "--confusion", tmp_path / "c2.png")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(ref["accuracy"]), err
    # the model file without its weights file: one line naming both
    (tmp_path / "m.onnx.data").rename(tmp_path / "elsewhere.data")
    code, _, err = run(capsys, "eval", tmp_path / "m.onnx", world)
    assert code == 1 and "m.onnx.data is missing" in err and "Traceback" not in err


def test_compress_cli_int8_prune_tome(saved, world, tmp_path, capsys):
    code, out, err = run(capsys, "compress", saved, "--method", "int8-dynamic", "--out", tmp_path / "q.onnx", "--json")
    report = json.loads(out)
    assert code == 0 and report["bytes_after"] < 0.5 * report["bytes_before"], err
    code, out, err = run(capsys, "predict", tmp_path / "q.onnx", next((world / "videos").glob("*.mp4")), "--json")
    assert code == 0 and len(next(iter(json.loads(out).values()))) == 5, (out, err)
    code, out, err = run(capsys, "compress", saved, "--method", "prune", "--ratio", "0.5", "--out", tmp_path / "p", "--json")
    assert code == 0 and json.loads(out)["params_after"] < json.loads(out)["params_before"]
    code, out, err = run(capsys, "compress", saved, "--method", "tome", "--r", "16", "--out", tmp_path / "t")
    assert code == 0 and "tokens per layer: 256 -> 240" in out
    assert type(VideoClassifier.from_pretrained(tmp_path / "t").encoder).__name__ == "TokenMergingEncoder"
    for p in ("p", "t"):
        code, out, err = run(capsys, "eval", tmp_path / p, world, "--json", "--confusion", tmp_path / f"{p}.png")
        assert code == 0 and json.loads(out)["count"] > 0, err


def test_compress_cli_bad_input(saved, tmp_path, capsys):
    code, _, err = run(capsys, "compress", saved, "--method", "int8-static", "--out", tmp_path / "s.onnx")
    assert code == 1 and "needs --data" in err
    bad = tmp_path / "calib"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "calib.csv").write_text(f"path,label\n{bad / 'broken.mp4'},{VideoClassifier.from_pretrained(saved).classes[0]}\n")
    code, _, err = run(capsys, "compress", saved, "--method", "int8-static", "--data", tmp_path / "calib.csv", "--out", tmp_path / "s.onnx")
    assert code == 1 and "broken.mp4" in err and "Traceback" not in err
    code, _, err = run(capsys, "compress", saved, "--method", "int8-dynamic", "--out", tmp_path / "q")
    assert code == 1 and "*.onnx" in err


def test_distill_cli_trains_a_half_size_student(saved, world, tmp_path, capsys):
    code, out, err = run(capsys, "compress", saved, "--method", "distill", "--data", world, "--out", tmp_path / "d", "--max-steps", 2, "--batch-size", 4, "--json")
    summary = json.loads(out)
    assert code == 0, err
    assert 0.3 * summary["teacher_params"] < summary["student_params"] < 0.6 * summary["teacher_params"]
    student = VideoClassifier.from_pretrained(tmp_path / "d")
    assert student.encoder.config.hidden_size == 66 and student.classes == VideoClassifier.from_pretrained(saved).classes


# -- the shot student ---------------------------------------------------------------------------
def test_shot_student_chunks_equal_one_pass_and_onnx_matches():
    from vidfm.shots.student import ShotStudent, onnx_predictor

    model = ShotStudent.from_pretrained()
    frames = np.random.default_rng(0).integers(0, 256, (700, 27, 48, 3), dtype=np.uint8)
    whole = model.window_probabilities(frames)  # one pass over everything
    for chunk in (7, 128, 10_000):
        assert np.allclose(model.predict(iter(frames), chunk=chunk), whole, atol=1e-5), chunk
    assert np.allclose(onnx_predictor(model)(iter(frames), chunk=256), whole, atol=1e-4)
    assert len(model.predict(iter([]))) == 0


def test_export_refuses_what_it_cannot_trace(tmp_path):
    from vidfm.compress.onnx import export_onnx

    class ThroughNumpy(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.sort(x.numpy(), axis=-1))

    with pytest.raises(ConfigError, match="my model: cannot be exported to ONNX"):
        export_onnx(ThroughNumpy(), (torch.rand(2, 3),), tmp_path / "x.onnx", input_names=["x"], output_names=["y"], name="my model")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["shot-student", "transnetv2"])
def test_export_the_shot_detectors(name, tmp_path, capsys):
    code, out, err = run(capsys, "export", name, "--out", tmp_path / f"{name}.onnx", "--json")
    assert code == 0, err
    assert json.loads(out)["max_abs_diff_vs_torch"] < 1e-3


def test_torch_ao_dynamic_int8_when_this_torch_has_it(clip):
    from vidfm.compress.quantize import torch_ao_dynamic

    if getattr(getattr(torch, "ao", None), "quantization", None) is None:
        pytest.skip("no torch.ao.quantization in this torch")
    model = tiny()
    ref = model(clip)
    quantized = torch_ao_dynamic(model)
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert (quantized(clip) - ref).abs().max() < 0.1
