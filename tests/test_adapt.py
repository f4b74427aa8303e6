import pytest
import torch

from vidfm.adapt import (
    apply_adaptation,
    load_adaptation,
    merge_adaptation,
    save_adaptation,
    trainable_parameters,
)
from vidfm.errors import ConfigError
from vidfm.models import build_encoder
from vidfm.tasks.classify import VideoClassifier

VIDEO = torch.rand(2, 8, 3, 64, 64)


def classifier(encoder="videomae-tiny", seed=0):
    torch.manual_seed(seed)
    return VideoClassifier(build_encoder(encoder), ["a", "b", "c"])


def train_step(model, steps=2, lr=0.05):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(VIDEO), torch.tensor([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize(
    "encoder,method,options,max_percent",
    [
        ("videomae-tiny", "linear", {}, 1.0),
        ("videomae-tiny", "freeze", {"blocks": 2}, 60.0),
        ("videomae-tiny", "lora", {"rank": 4, "alpha": 8}, 12.0),
        ("videomae-tiny", "adapter", {}, 6.0),
        ("videomae-tiny", "parallel", {}, 6.0),
        ("videomae-tiny", "prompt", {"tokens": 4}, 1.0),
        ("videomae-tiny", "prefix", {"tokens": 4}, 2.0),
        ("timesformer-tiny", "lora", {"rank": 4}, 12.0),
        ("r2plus1d-tiny", "lora", {"rank": 4}, 12.0),
        ("r2plus1d-tiny", "adapter", {}, 10.0),
        ("tsn-tiny", "freeze", {"blocks": 3}, 85.0),  # the top stage holds most weights
    ],
)
def test_only_the_adaptation_trains(encoder, method, options, max_percent):
    model = classifier(encoder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_adaptation(model, method, **options)
    report = trainable_parameters(model)
    assert 0 < report["percent"] <= max_percent and report["trainable"] < report["total"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    train_step(model)
    after = model.state_dict()
    changed = {k for k in after if k in before and not torch.equal(after[k], before[k])}
    frozen_changed = {k for k in changed if k not in trainable and "running_" not in k and "num_batches" not in k}
    assert not frozen_changed, sorted(frozen_changed)[:3]
    assert any(k.startswith("head.") for k in changed)


@pytest.mark.parametrize("method", ["lora", "adapter", "parallel"])
def test_new_modules_start_as_identity(method):
    base = classifier().eval()
    with torch.no_grad():
        ref = base(VIDEO)
    adapted = apply_adaptation(classifier(), method).eval()
    with torch.no_grad():
        assert torch.allclose(adapted(VIDEO), ref, atol=1e-6)


def test_linear_probe_keeps_batchnorm_statistics_frozen():
    model = apply_adaptation(classifier("r2plus1d-tiny"), "linear")
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    train_step(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())


@pytest.mark.parametrize("method,options", [("lora", {"rank": 4}), ("adapter", {}), ("prompt", {"tokens": 3}), ("prefix", {"tokens": 3})])
def test_save_load_and_swap(tmp_path, method, options):
    a = apply_adaptation(classifier(seed=0), method, **options)
    train_step(a)
    save_adaptation(a, tmp_path / "a")
    b = apply_adaptation(classifier(seed=0), method, **options)
    train_step(b, steps=4, lr=0.1)
    save_adaptation(b, tmp_path / "b")
    a.eval(), b.eval()
    with torch.no_grad():
        out_a, out_b = a(VIDEO), b(VIDEO)
    assert not torch.allclose(out_a, out_b)
    fresh = load_adaptation(classifier(seed=0), tmp_path / "a").eval()  # same base weights
    with torch.no_grad():
        assert torch.allclose(fresh(VIDEO), out_a, atol=1e-6)
        load_adaptation(fresh, tmp_path / "b")  # swap in the other adapter
        assert torch.allclose(fresh(VIDEO), out_b, atol=1e-6)
        load_adaptation(fresh, tmp_path / "a")  # and back
        assert torch.allclose(fresh(VIDEO), out_a, atol=1e-6)
    saved = (tmp_path / "a" / "adapter.safetensors").stat().st_size
    full = sum(p.numel() for p in a.parameters()) * 4
    assert saved < 0.5 * full  # only the adaptation's own weights are written


def test_lora_merges_into_the_base(tmp_path):
    model = apply_adaptation(classifier(), "lora", rank=4, alpha=8)
    train_step(model, steps=3, lr=0.1)
    model.eval()
    with torch.no_grad():
        before = model(VIDEO)
    merge_adaptation(model)
    assert not any("lora" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        assert torch.allclose(model(VIDEO), before, atol=1e-5)
    model.save_pretrained(tmp_path / "merged")
    reloaded = VideoClassifier.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        assert torch.allclose(reloaded(VIDEO), before, atol=1e-5)


def test_adapted_classifier_round_trips(tmp_path):
    model = apply_adaptation(classifier(), "prefix", tokens=2)
    train_step(model)
    model.eval().save_pretrained(tmp_path)
    again = VideoClassifier.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(again(VIDEO), model(VIDEO), atol=1e-6)


@pytest.mark.parametrize(
    "encoder,method,options,msg",
    [
        ("videomae-tiny", "distill", {}, "unknown adaptation"),
        ("r2plus1d-tiny", "prompt", {}, "no plain transformer blocks"),
        ("timesformer-tiny", "prefix", {}, "no plain transformer blocks"),
        ("r2plus1d-tiny", "parallel", {}, "parallel adapters need transformer MLPs"),
        ("videomae-tiny", "freeze", {"blocks": 9}, "the encoder has 4"),
        ("videomae-tiny", "lora", {"rank": 0}, "rank must be >= 1"),
    ],
)
def test_adaptation_errors(encoder, method, options, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_adaptation(classifier(encoder), method, **options)


def test_merge_and_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="only LoRA can be merged"):
        merge_adaptation(apply_adaptation(classifier(), "adapter"))
    save_adaptation(apply_adaptation(classifier(), "lora", rank=4), tmp_path / "lora")
    with pytest.raises(ConfigError, match="does not fit"):
        load_adaptation(apply_adaptation(classifier(), "adapter"), tmp_path / "lora")
    with pytest.raises(ConfigError, match="no adapter.json"):
        load_adaptation(classifier(), tmp_path)


@pytest.mark.parametrize("method", ["prompt", "prefix", "lora", "adapter"])
def test_copies_own_their_adaptation(method):
    """The trainer's EMA deep-copies the model: a copy must use its own adapted weights."""
    import copy

    model = apply_adaptation(classifier(), method).eval()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        before = model(VIDEO)
        for name, p in twin.named_parameters():
            if p.requires_grad and not name.startswith("head."):
                p.add_(torch.randn_like(p))
        assert torch.equal(model(VIDEO), before)
        assert not torch.allclose(twin(VIDEO), before)


def test_a_trained_run_folder_provides_its_encoder(tmp_path):
    from vidfm.models import load_encoder

    model = apply_adaptation(classifier(), "lora", rank=2)
    train_step(model)
    model.eval().save_pretrained(tmp_path / "run" / "best")
    encoder = load_encoder(tmp_path / "run").eval()  # the run folder, not only .../best
    with torch.no_grad():
        assert torch.allclose(encoder(VIDEO).pooled, model.encoder(VIDEO).pooled, atol=1e-6)


@pytest.mark.parametrize("method", ["lora", "adapter", "freeze"])
def test_an_adapter_on_a_batchnorm_encoder_reproduces_the_trained_model(tmp_path, method):
    """BatchNorm running statistics move during training even where the weights are frozen;
    the saved adapter must carry them, or loading it into the base gives another model."""
    model = apply_adaptation(classifier("r2plus1d-tiny"), method)
    train_step(model)
    save_adaptation(model, tmp_path)
    fresh = load_adaptation(classifier("r2plus1d-tiny"), tmp_path)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(VIDEO), model(VIDEO), atol=1e-5)


def test_lora_with_a_trained_vocabulary_row_saves_loads_and_merges(tmp_path):
    """A token added to an LM (e.g. [SEG]) trains with the LoRA (peft's trainable tokens);
    its row is saved in the adapter and folded into the tied embedding by a merge."""
    import copy

    from vidfm.adapt.lora import add_lora, load_lora, merge_lora, save_lora
    from vidfm.models.lm import build_tiny_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["[NEW]"]})
    new = tok.convert_tokens_to_ids("[NEW]")

    def fresh():
        lm = build_tiny_lm(tiny_tokenizer())
        lm.resize_token_embeddings(len(tok), mean_resizing=False)
        return lm

    lm = add_lora(fresh(), 4, 8, ["q_proj", "v_proj"], trainable_tokens=[new])
    trains = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert any("trainable_tokens_delta" in n for n in trains) and all("lora_" in n or "trainable_tokens" in n for n in trains)
    with torch.no_grad():
        for n, p in lm.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    ids = torch.tensor([[5, 9, new, 12]])
    want = lm(ids).logits
    save_lora(lm, tmp_path / "a")
    assert torch.allclose(load_lora(fresh(), tmp_path / "a")(ids).logits, want, atol=1e-5)
    merged = merge_lora(copy.deepcopy(lm))
    assert torch.allclose(merged(ids).logits, want, atol=1e-4) and merged.lm_head.weight is merged.model.embed_tokens.weight
