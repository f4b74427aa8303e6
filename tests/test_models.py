import json

import pytest
import torch
from einops import rearrange
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEModel,
)

from vidfm.errors import ConfigError
from vidfm.models import (
    PRESETS,
    FrameEncoder,
    build_encoder,
    load_encoder,
    resolve_encoder,
)
from vidfm.models.common import IMAGENET_MEAN, IMAGENET_STD, normalize_video

TINY = [n for n in PRESETS if n.endswith("-tiny")]


def enable_checkpointing(model):
    fn = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    fn()


@pytest.mark.parametrize("name", TINY)
def test_interface_save_load_and_backward(name, tmp_path):
    torch.manual_seed(0)
    model = build_encoder(name).eval()
    video = torch.rand(2, 8, 3, 64, 64)
    with torch.no_grad():
        out = model(video)
    assert out.tokens.ndim == 3 and out.tokens.shape[0] == 2 and out.tokens.shape[-1] == model.output_dim
    assert out.pooled.shape == (2, model.output_dim) and torch.isfinite(out.pooled).all()
    model.save_pretrained(tmp_path)
    again = load_encoder(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(again(video).pooled, out.pooled, atol=1e-6)
    model.train()
    enable_checkpointing(model)
    model(video).pooled.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and g.abs().sum() > 0 for g in grads) > 0.8 * len(grads)


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny", "r2plus1d-tiny", "tsn-tiny", "frame-tiny"])
def test_other_frame_counts_do_not_crash(name):
    model = build_encoder(name).eval()
    with torch.no_grad():
        for t in (4, 16):
            assert model(torch.rand(1, t, 3, 64, 64)).pooled.shape == (1, model.output_dim)


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny", "r2plus1d-tiny"])
def test_stochastic_depth_is_random_in_training_only(name):
    model = build_encoder(name, drop_path_rate=0.5)
    video = torch.rand(4, 8, 3, 64, 64)
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(video).pooled, model(video).pooled)
        model.eval()
        assert torch.equal(model(video).pooled, model(video).pooled)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = build_encoder("videomae-tiny")
    b = build_encoder("videomae-tiny")
    b.load_state_dict(a.state_dict())
    enable_checkpointing(b)
    a.train(), b.train()
    video = torch.rand(2, 8, 3, 64, 64)
    a(video).pooled.sum().backward()
    b(video).pooled.sum().backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5)


def _hf_videomae(cls):
    cfg = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48,
                         num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, num_labels=5)  # fmt: skip
    return cls(cfg).eval()


@pytest.mark.parametrize("cls", [VideoMAEModel, VideoMAEForVideoClassification])
def test_videomae_checkpoint_matches_transformers(cls, tmp_path):
    """Ours takes [0, 1] video and normalises it itself; transformers gets what its
    processor would produce. Statistics come from the checkpoint's preprocessor config."""
    torch.manual_seed(0)
    hf = _hf_videomae(cls)
    hf.save_pretrained(tmp_path)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if cls is VideoMAEForVideoClassification:
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    ours = load_encoder(tmp_path).eval()
    video = torch.rand(2, 4, 3, 32, 32)
    pixels = normalize_video(video, mean, std)
    with torch.no_grad():
        ref = hf(pixels, output_hidden_states=True).hidden_states[-1]
        out = ours(video)
    assert (out.tokens - ref).abs().max() < 1e-5
    if cls is VideoMAEForVideoClassification:
        with torch.no_grad():
            assert (hf.classifier(out.pooled) - hf(pixels).logits).abs().max() < 1e-5


@pytest.mark.parametrize("attention", ["divided_space_time", "joint_space_time"])
def test_timesformer_checkpoint_matches_transformers(attention, tmp_path):
    torch.manual_seed(0)
    cfg = TimesformerConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=48, num_hidden_layers=2,
                            num_attention_heads=3, intermediate_size=96, attention_type=attention, num_labels=3)  # fmt: skip
    hf = TimesformerForVideoClassification(cfg).eval()
    with torch.no_grad():  # zero-initialised embeddings would hide ordering mistakes
        for n, p in hf.named_parameters():
            if "embeddings" in n:
                p.normal_(0, 0.02)
    hf.save_pretrained(tmp_path)
    ours = load_encoder(tmp_path).eval()
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        ref = hf.timesformer(normalize_video(video, IMAGENET_MEAN, IMAGENET_STD)).last_hidden_state
        out = ours(video)
    assert (out.tokens - ref).abs().max() < 1e-5
    assert torch.allclose(out.pooled, ref[:, 0], atol=1e-5)


def test_frame_encoder_wraps_a_clip_image_tower(tmp_path):
    torch.manual_seed(0)
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, image_size=32, patch_size=8)).eval()  # fmt: skip
    tower.save_pretrained(tmp_path / "clip")
    enc = load_encoder(tmp_path / "clip", temporal="transformer", num_frames=4).eval()
    assert isinstance(enc, FrameEncoder)
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        frames = enc.frame_features(video)
        x = (video[0, 1:2] - torch.tensor(enc.config.pixel_mean).view(1, 3, 1, 1)) / torch.tensor(enc.config.pixel_std).view(1, 3, 1, 1)
        assert torch.allclose(frames[0, 1], tower(pixel_values=x).pooler_output[0], atol=1e-5)  # pretrained weights kept
        out = enc(video)
    enc.save_pretrained(tmp_path / "ours")
    again = load_encoder(tmp_path / "ours").eval()
    with torch.no_grad():
        assert torch.allclose(again(video).pooled, out.pooled, atol=1e-6)
        assert enc(torch.rand(1, 4, 3, 48, 48)).pooled.shape == (1, 32)  # other resolutions interpolate


TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)


@pytest.mark.parametrize("kind", ["siglip_vision", "vit", "siglip_full", "clip_full"])
def test_frame_encoder_takes_other_towers(kind, tmp_path):
    import transformers as T

    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99, bos_token_id=0, eos_token_id=1)
    tower = {
        "siglip_vision": lambda: T.SiglipVisionModel(T.SiglipVisionConfig(**TOWER)),
        "vit": lambda: T.ViTModel(T.ViTConfig(**TOWER)),
        "siglip_full": lambda: T.SiglipModel(T.SiglipConfig(vision_config=TOWER, text_config=text)),
        "clip_full": lambda: T.CLIPModel(T.CLIPConfig(vision_config=TOWER, text_config=text)),
    }[kind]().eval()
    tower.save_pretrained(tmp_path)
    enc = load_encoder(tmp_path, num_frames=4).eval()
    video = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        out = enc(video)
        if kind.endswith("_full"):  # the vision half's weights were carried over
            mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (enc.config.pixel_mean, enc.config.pixel_std))
            ref = tower.vision_model(pixel_values=(video[0, :1] - mean) / std).pooler_output[0]
            assert torch.allclose(enc.frame_features(video)[0, 0], ref, atol=1e-5)
    assert out.pooled.shape == (1, 32)


def test_bad_encoder_requests(tmp_path):
    with pytest.raises(ConfigError, match="unknown encoder 'resnet9000'; choose one of: r2plus1d-tiny"):
        build_encoder("resnet9000")
    with pytest.raises(ConfigError, match="not a preset"):
        resolve_encoder("nope")
    with pytest.raises(ConfigError, match="no config.json"):
        load_encoder(tmp_path)
    with pytest.raises(ConfigError, match="expects video"):
        build_encoder("videomae-tiny")(torch.rand(2, 3, 64, 64))
    with pytest.raises(ConfigError, match="multiple of the tubelet"):
        build_encoder("videomae-tiny")(torch.rand(1, 5, 3, 64, 64))
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ConfigError, match="not a video encoder"):
        load_encoder(tmp_path)


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny"])
def test_convolutional_stem_keeps_the_token_grid_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    plain, stem = build_encoder(name, conv_stem=False).eval(), build_encoder(name).eval()
    video = torch.rand(2, 8, 3, 64, 64)
    with torch.no_grad():
        out = stem(video)
        assert out.tokens.shape == plain(video).tokens.shape
    stem.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.allclose(load_encoder(tmp_path).eval()(video).pooled, out.pooled, atol=1e-6)


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny"])
def test_fresh_transformers_start_from_mae_init_and_loading_keeps_weights(name, tmp_path):
    """Trained from scratch, the tiny ViTs learn the world's actions far faster from MAE's
    xavier init than from normal(0.02); a saved model must load its own weights, not re-init."""
    import math

    torch.manual_seed(0)
    model = build_encoder(name, conv_stem=False)
    linear = model.blocks[0].mlp.fc1.weight
    assert linear.std().item() == pytest.approx(math.sqrt(2 / sum(linear.shape)), rel=0.1)
    patch = model.patch_embed.weight
    assert patch.std().item() == pytest.approx(math.sqrt(2 / (patch[0].numel() + patch.shape[0])), rel=0.1)
    stem_projection = build_encoder(name).patch_embed.proj.weight  # the tiny presets' stem ends in one
    assert stem_projection.std().item() == pytest.approx(math.sqrt(2 / (stem_projection[0].numel() + stem_projection.shape[0])), rel=0.1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(tmp_path)
    again = load_encoder(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_masked_tubelets_stay_hidden_behind_a_convolutional_stem():
    """Masked video modelling: what the encoder sees of a clip must not depend on the pixels
    of the tubelets it is asked to reconstruct, although the stem's convolutions cross
    patch borders."""
    torch.manual_seed(0)
    model = build_encoder("videomae-tiny")  # the tiny preset has a convolutional stem
    video = torch.rand(2, 8, 3, 64, 64)
    mask = torch.zeros(2, 4 * 8 * 8, dtype=torch.bool)
    mask[:, ::2] = True  # every other tubelet hidden: each visible one borders hidden ones
    other = video.clone()
    hidden = rearrange(mask, "b (t h w) -> b t h w", t=4, h=8).repeat_interleave(2, 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    other[hidden.unsqueeze(2).expand_as(other)] = torch.rand(int(hidden.sum()) * 3)
    assert not torch.equal(video, other)
    with torch.no_grad():
        assert torch.allclose(model(video, mask).tokens, model(other, mask).tokens, atol=1e-6)
        assert not torch.allclose(model(video).tokens, model(other).tokens, atol=1e-3)


def test_temporal_shift_lets_a_2d_cnn_see_neighbouring_frames():
    """TSN's 2D CNN sees each frame alone; TSM's shift mixes neighbouring frames inside the
    backbone, which is what makes motion (not only appearance) visible to it."""
    torch.manual_seed(0)
    video = torch.rand(1, 8, 3, 64, 64)
    changed = video.clone()
    changed[:, 0] = torch.rand(3, 64, 64)
    for name, overrides, sees_neighbour in [("tsn-tiny", {"temporal": "avg", "spatial_grid": 1}, False), ("tsm-tiny", {}, True)]:
        model = build_encoder(name, **overrides).eval()
        with torch.no_grad():
            a, b = model(video).tokens, model(changed).tokens
        assert not torch.allclose(a[:, 0], b[:, 0])
        assert (not torch.allclose(a[:, 1], b[:, 1], atol=1e-6)) == sees_neighbour, name
        assert torch.allclose(a[:, 7], b[:, 7], atol=1e-6)  # 4 blocks shift by at most 4 frames


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny"])
def test_frames_that_do_not_divide_into_patches_are_refused(name):
    model = build_encoder(name)
    with pytest.raises(ConfigError, match="do not divide into 8x8 patches"):
        model(torch.rand(1, 8, 3, 60, 64))


@pytest.mark.parametrize("name", ["videomae-tiny", "timesformer-tiny", "r2plus1d-tiny", "frame-tiny"])
def test_hidden_states_and_attentions_on_request(name):
    model = build_encoder(name).eval()
    video = torch.rand(2, 8, 3, 64, 64)
    with torch.no_grad():
        plain = model(video)
        out = model(video, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    assert torch.allclose(plain.pooled, out.pooled, atol=1e-5)  # the eager path computes the same thing as SDPA
    assert len(out.hidden_states) == len(model.blocks) + 1 and all(h.shape[0] == 2 and h.ndim == 3 for h in out.hidden_states)
    if name == "r2plus1d-tiny":
        assert out.attentions is None
        return
    assert len(out.attentions) == len(model.blocks)
    w = out.attentions[-1]
    assert torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-4)  # rows of attention weights sum to 1


def test_old_encoder_folders_with_fused_qkv_still_load(tmp_path):
    """Folders saved before the attention modules were unified had one fused qkv projection."""
    from safetensors.torch import load_file, save_file

    model = build_encoder("videomae-tiny").eval()
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    old = {}
    for k, v in state.items():
        if ".attn.to_q.weight" in k:
            base = k.replace("to_q.weight", "")
            old[base + "qkv.weight"] = torch.cat([state[base + f"to_{n}.weight"] for n in "qkv"])
            old[base + "q_bias"], old[base + "v_bias"] = state[base + "to_q.bias"], state[base + "to_v.bias"]
            old[base + "proj.weight"], old[base + "proj.bias"] = state[base + "to_out.weight"], state[base + "to_out.bias"]
        elif ".attn." not in k:
            old[k] = v
    save_file(old, tmp_path / "model.safetensors", metadata={"format": "pt"})
    video = torch.rand(1, 8, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(load_encoder(tmp_path)(video).pooled, model(video).pooled, atol=1e-5)
