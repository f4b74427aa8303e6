import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError
from vidfm.models import build_encoder
from vidfm.models.text import TextEncoder, text_model_path
from vidfm.objectives import (
    ContrastiveVideoModel,
    MaskedVideoModel,
    VideoTextModel,
    nt_xent,
    patchify_targets,
    same_caption_mask,
    triplet_loss,
    tube_mask,
    video_text_loss,
)


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm")


def tiny_vit():
    return build_encoder("videomae-tiny", num_frames=4, image_size=32, hidden_size=48, num_attention_heads=3, num_hidden_layers=2, intermediate_size=96)


def tiny_cnn():
    return build_encoder("r2plus1d-tiny", num_frames=4, image_size=32)


# -- masked video modelling -----------------------------------------------------------------
def test_tube_mask_hides_the_same_patches_in_every_time_slice():
    mask = tube_mask(3, (4, 5, 6), 0.9, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 4 * 30)
    per_slice = mask.view(3, 4, 30)
    assert (per_slice == per_slice[:, :1]).all()  # a tube: same positions at every t
    assert (per_slice[:, 0].sum(1) == 27).all()  # round(0.9 * 30)
    assert not torch.equal(per_slice[0, 0], per_slice[1, 0])  # samples differ
    with pytest.raises(ConfigError, match="mask ratio"):
        tube_mask(1, (1, 2, 2), 1.0)


def test_patch_targets_are_normalised_per_patch_and_ordered_like_tokens():
    video = torch.rand(2, 4, 3, 16, 16)
    t = patchify_targets(video, tubelet=2, patch=8)
    assert t.shape == (2, 2 * 2 * 2, 2 * 8 * 8 * 3)
    per_channel = t.view(2, 8, -1, 3)
    assert per_channel.mean(2).abs().max() < 1e-5
    raw = patchify_targets(video, 2, 8, normalize=False)
    # token 1 = time slice 0, row 0, column 1: pixels [0:2, :, 0:8, 8:16]
    assert torch.allclose(raw[0, 1].view(2, 8, 8, 3).permute(0, 3, 1, 2), video[0, 0:2, :, 0:8, 8:16])


def test_mvm_encoder_sees_only_visible_tokens_and_learns_to_reconstruct():
    torch.manual_seed(0)
    model = MaskedVideoModel(tiny_vit(), mask_ratio=0.75)
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    video = torch.rand(2, 4, 3, 32, 32)
    mask = tube_mask(2, (2, 4, 4), 0.75, torch.Generator().manual_seed(1))
    with torch.no_grad():
        first = float(model(video, mask))
    assert seen[0] == 2 * 4  # 25 % of 2x4x4 tokens
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        loss = model(video, mask)
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first


def test_mvm_refuses_encoders_that_cannot_drop_tokens():
    with pytest.raises(ConfigError, match="videomae"):
        MaskedVideoModel(tiny_cnn())


# -- video-video contrastive ----------------------------------------------------------------
def test_triplet_loss_on_hand_built_embeddings():
    """Two videos on the unit circle: views at angles 0 and 0.2 (video 0), pi/2 and pi/2+0.2
    (video 1). Distances between unit vectors are chords: 2 sin(angle / 2)."""

    def at(a):
        return [math.cos(a), math.sin(a)]

    def chord(a):
        return 2 * math.sin(a / 2)

    z1, z2 = torch.tensor([at(0.0), at(math.pi / 2)]), torch.tensor([at(0.2), at(math.pi / 2 + 0.2)])
    assert float(triplet_loss(z1, z2, margin=0.2)) == 0.0  # positives far inside the margin
    m, pos = 1.5, chord(0.2)
    # hardest negative: pi/2 away for the anchors at 0 and pi/2+0.2, pi/2-0.2 for the other two
    hard = pos + m - (chord(math.pi / 2) + chord(math.pi / 2 - 0.2)) / 2
    assert float(triplet_loss(z1, z2, margin=m)) == pytest.approx(hard, abs=1e-5)
    # batch-all: every anchor with both negatives; all eight triplets violate the margin
    gaps = [math.pi / 2, math.pi / 2 + 0.2, math.pi / 2, math.pi / 2 - 0.2, math.pi / 2 - 0.2, math.pi / 2, math.pi / 2 + 0.2, math.pi / 2]
    expected = sum(pos + m - chord(g) for g in gaps) / 8
    assert float(triplet_loss(z1, z2, margin=m, mining="all")) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ConfigError, match="mining"):
        triplet_loss(z1, z2, mining="semi")


def test_nt_xent_is_low_for_matching_views_and_high_for_random_ones():
    z = torch.eye(8)
    assert float(nt_xent(z, z, 0.05)) < 1e-3
    rand = float(nt_xent(torch.randn(8, 8), torch.randn(8, 8), 1.0))
    assert abs(rand - math.log(15)) < 0.6


def test_moco_updates_its_queue_and_momentum_encoder_but_never_trains_it():
    torch.manual_seed(0)
    model = ContrastiveVideoModel(tiny_cnn(), "moco", proj_dim=16, queue_size=8, momentum=0.5)
    assert not any(p.requires_grad for p in model.key_encoder.parameters())
    before_queue = model.queue.clone()
    key_before = next(model.key_encoder.parameters()).clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    v1, v2 = torch.rand(3, 4, 3, 32, 32), torch.rand(3, 4, 3, 32, 32)
    for _ in range(2):
        opt.zero_grad()
        model(v1, v2).backward()
        opt.step()
    assert int(model.queue_ptr) == (2 * 2 * 3) % 8
    assert not torch.equal(model.queue, before_queue)
    online, key = next(model.encoder.parameters()), next(model.key_encoder.parameters())
    assert not torch.equal(key, key_before) and not torch.allclose(key, online)  # moved, but lags
    model.eval()
    ptr = int(model.queue_ptr)
    model(v1, v2)
    assert int(model.queue_ptr) == ptr  # evaluation does not enqueue


def test_simclr_and_moco_validate_their_options():
    with pytest.raises(ConfigError, match="simclr, moco or triplet"):
        ContrastiveVideoModel(tiny_cnn(), "byol")
    with pytest.raises(ConfigError, match="momentum"):
        ContrastiveVideoModel(tiny_cnn(), "moco", momentum=1.5)


# -- video-text contrastive -----------------------------------------------------------------
def test_bundled_minilm_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    sentences = ["a small red circle moves to the left", "the blue square grows", "nothing happens"]
    reference = SentenceTransformer(text_model_path("minilm"), device="cpu").encode(sentences, convert_to_tensor=True)
    with torch.no_grad():
        ours = F.normalize(minilm(sentences)[2], dim=-1)
    assert torch.allclose(ours, reference, atol=1e-5)
    sim = ours @ ours.t()
    paraphrase = F.normalize(minilm(["a little red disc travels leftwards"])[2], dim=-1)[0]
    assert float(paraphrase @ ours[0]) > float(paraphrase @ ours[1]) + 0.2  # it is a real sentence model
    assert sim.shape == (3, 3)


def test_text_encoder_errors(minilm, tmp_path):
    with pytest.raises(ConfigError, match="non-empty"):
        minilm([""])
    with pytest.raises(ConfigError, match="cannot load|not found"):
        TextEncoder(str(tmp_path / "missing"))


def test_infonce_aligned_pairs_and_duplicate_captions():
    v = torch.eye(4)
    scale = torch.tensor(math.log(100.0))
    assert float(video_text_loss(v, v, scale)) < 1e-3
    # videos 0 and 1 show the same thing and share a caption: as negatives of each other
    # they would be pushed apart for nothing
    v = torch.stack([v[0], F.normalize(v[0] + 0.1 * v[1], dim=0), v[2], v[3]])
    t = torch.stack([v[0], v[0], v[2], v[3]])
    same = same_caption_mask(["a red circle", "A red  circle", "x", "y"])
    assert same[0, 1] and not same[0, 2]
    assert float(video_text_loss(v, t, scale, same)) < 0.1 < float(video_text_loss(v, t, scale))


def test_hard_negatives_weigh_more_when_beta_is_positive():
    torch.manual_seed(0)
    v = F.normalize(torch.randn(6, 8), dim=-1)
    t = F.normalize(v + 0.3 * torch.randn(6, 8), dim=-1)
    t[1] = F.normalize(v[0] + 0.05 * torch.randn(8), dim=0)  # a hard negative for video 0
    scale = torch.tensor(math.log(10.0))
    assert float(video_text_loss(v, t, scale, hard_negative_beta=2.0)) > float(video_text_loss(v, t, scale))


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_video_text_model_saves_and_loads_exactly(minilm, tmp_path, mode):
    torch.manual_seed(0)
    model = VideoTextModel(tiny_cnn(), minilm if mode == "frozen" else TextEncoder("minilm"), embed_dim=32, text_mode=mode, lora_rank=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("text.")}
    assert (not trainable) if mode == "frozen" else (trainable and all("lora_" in n for n in trainable))
    with torch.no_grad():  # make LoRA non-trivial so the round trip means something
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    model.save_pretrained(tmp_path / "m")
    loaded = VideoTextModel.from_pretrained(tmp_path / "m")
    model.eval()
    clip, text = torch.rand(2, 4, 3, 32, 32), ["a red circle moves left", "a blue square grows"]
    with torch.no_grad():
        assert torch.allclose(model.encode_video(clip), loaded.encode_video(clip), atol=1e-6)
        assert torch.allclose(model.encode_text(text), loaded.encode_text(text), atol=1e-5)
    heads = (tmp_path / "m" / "heads.safetensors").stat().st_size
    assert heads < 2e6  # the 90 MB text tower is referenced, not copied
    with pytest.raises(ConfigError, match="not a video-text model"):
        VideoTextModel.from_pretrained(tmp_path)


def test_video_text_training_step_moves_only_trainable_parts(minilm):
    torch.manual_seed(0)
    model = VideoTextModel(tiny_cnn(), minilm, embed_dim=16).train()
    text_before = next(minilm.model.parameters()).clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    clips = torch.rand(4, 4, 3, 32, 32)
    caps = ["a red circle", "a blue square", "a green cross", "a yellow triangle"]
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model(clips, caps)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(next(minilm.model.parameters()), text_before)
    assert np.isfinite(losses).all()


def test_reconstruction_frames_keep_visible_patches_and_fill_hidden_ones():
    from vidfm.objectives.mvm import reconstruction_frames

    torch.manual_seed(0)
    model = MaskedVideoModel(tiny_vit(), mask_ratio=0.75).eval()
    video = torch.rand(1, 4, 3, 32, 32)
    mask = tube_mask(1, (2, 4, 4), 0.75, torch.Generator().manual_seed(0))
    frames = reconstruction_frames(model, video, mask)
    original, seen, rebuilt = frames[:4], frames[4:8], frames[8:]
    assert frames.shape == (12, 3, 32, 32)
    visible = ~mask[0].view(2, 4, 4)[0]  # tubes: same spatial pattern at every time
    r, c = map(int, visible.nonzero()[0])
    patch = (slice(None), slice(None), slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
    assert torch.allclose(rebuilt[patch], original[patch]) and torch.allclose(seen[patch], original[patch])
    r, c = map(int, (~visible).nonzero()[0])
    hidden = (slice(None), slice(None), slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
    assert (seen[hidden] == 0.5).all() and not torch.allclose(rebuilt[hidden], original[hidden])


def test_any_hugging_face_text_encoder_folder_works_as_the_text_tower(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    AutoTokenizer.from_pretrained(text_model_path("minilm")).save_pretrained(tmp_path / "tiny_bert")
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path / "tiny_bert")
    text = TextEncoder(str(tmp_path / "tiny_bert"))
    assert text.output_dim == 32
    model = VideoTextModel(tiny_cnn(), text, embed_dim=16, text_mode="lora", lora_rank=2)
    loss = model(torch.rand(2, 4, 3, 32, 32), ["a red circle", "a blue square"])
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n)
    model.save_pretrained(tmp_path / "vt")
    assert VideoTextModel.from_pretrained(tmp_path / "vt").text.name_or_path == str(tmp_path / "tiny_bert")


# -- autoencoding, attribute heads, loss weighting -----------------------------------------
def test_hinge_losses_on_hand_values():
    from vidfm.objectives.autoencoding import hinge_d_loss, hinge_g_loss

    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))  # only 0.5 (real) and 0 (fake) are inside the margin
    assert float(hinge_g_loss(fake)) == pytest.approx(1.0)


def test_gan_players_only_move_their_own_weights():
    from vidfm.objectives.autoencoding import AutoencodingVideoModel

    torch.manual_seed(0)
    model = AutoencodingVideoModel(tiny_cnn(), 4, variational=True, target_size=16, adversarial_weight=1.0).train()
    reconstruction, adversarial, parts = model(torch.rand(2, 4, 3, 32, 32))
    assert {"l1", "kl", "g_adv", "d_hinge"} <= set(parts)
    assert float(adversarial) == pytest.approx(float(parts["g_adv"] + parts["d_hinge"]))  # kept apart from the reconstruction

    def grads(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    parts["g_adv"].backward(retain_graph=True)
    assert grads(model.discriminator) == 0 and grads(model.decoder) > 0 and grads(model.encoder) > 0
    model.zero_grad()
    parts["d_hinge"].backward()
    assert grads(model.discriminator) > 0 and grads(model.decoder) == 0 and grads(model.encoder) == 0


def test_vae_samples_in_training_and_is_deterministic_in_evaluation():
    from vidfm.objectives.autoencoding import AutoencodingVideoModel

    torch.manual_seed(0)
    model = AutoencodingVideoModel(tiny_cnn(), 4, variational=True, target_size=16)
    video = torch.rand(2, 4, 3, 32, 32)
    a, _ = model.train().reconstruct(video, torch.Generator().manual_seed(1))
    b, _ = model.reconstruct(video, torch.Generator().manual_seed(2))
    assert not torch.allclose(a, b)
    c, kl = model.eval().reconstruct(video)
    assert torch.equal(c, model.reconstruct(video)[0]) and c.shape == (2, 4, 3, 16, 16) and float(kl.detach()) >= 0


def test_autoencoder_learns_to_redraw_a_clip():
    from vidfm.objectives.autoencoding import AutoencodingVideoModel

    torch.manual_seed(0)
    model = AutoencodingVideoModel(tiny_cnn(), 4, target_size=16)
    video = torch.zeros(2, 4, 3, 32, 32)
    video[0, :, 0, 4:12, 4:12] = 1  # a red square top-left
    video[1, :, 2, 20:28, 20:28] = 1  # a blue square bottom-right
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss, _, parts = model(video)
        first = first if first is not None else float(parts["l1"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model(video)[2]["l1"]) < 0.4 * first


def test_uncertainty_weighting_learns_log_of_each_loss():
    from vidfm.objectives.auxiliary import LossWeighting

    w = LossWeighting(["a", "b"], "uncertainty")
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    for _ in range(300):  # d/ds (exp(-s) L + s) = 0 at s = log L
        total, logs = w({"a": torch.tensor(4.0), "b": torch.tensor(0.5)})
        opt.zero_grad()
        total.backward()
        opt.step()
    assert w.log_vars.detach().tolist() == pytest.approx([math.log(4.0), math.log(0.5)], abs=0.02)
    assert logs["weight_a"] == pytest.approx(0.25, abs=0.01)
    fixed = LossWeighting(["a", "b"], "fixed", {"a": 0.25})
    assert float(fixed({"a": torch.tensor(4.0), "b": torch.tensor(0.5)})[0]) == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="unknown terms"):
        LossWeighting(["a"], "fixed", {"c": 1.0})


def test_attribute_heads_skip_values_unseen_in_training():
    from vidfm.data.curriculum import IGNORE
    from vidfm.objectives.auxiliary import AttributeHeads

    heads = AttributeHeads(4, {"camera": ["pan", "static"]})
    with torch.no_grad():
        heads.heads["camera"].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        heads.heads["camera"].bias.zero_()
    pooled = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [5.0, 0, 0, 0]])
    losses, logs = heads(pooled, {"attr_camera": torch.tensor([0, 0, IGNORE])})
    assert logs["camera_acc"] == 0.5  # the IGNORE row does not count
    expected = (F.cross_entropy(pooled[:2, :2], torch.tensor([0, 0])))
    assert float(losses["camera"]) == pytest.approx(float(expected))


def test_modality_weights_and_attribute_heads_add_up_in_one_forward(minilm):
    from vidfm.objectives.auxiliary import AttributeHeads, LossWeighting
    from vidfm.tasks.pretrain import PretrainingModel, pretrain_loss_fn

    torch.manual_seed(0)
    base = VideoTextModel(tiny_cnn(), minilm, embed_dim=16).eval()
    heads = AttributeHeads(base.video_encoder.output_dim, {"size": ["large", "small"]})
    batch = {"video": torch.rand(3, 4, 3, 32, 32), "caption": ["a red circle", "a blue square", "a red circle"], "attr_size": torch.tensor([0, 1, 1])}
    weighting = LossWeighting(["video_to_text", "text_to_video", "size"], "fixed", {"video_to_text": 0.8, "text_to_video": 0.2, "size": 0.5})
    model = PretrainingModel("contrastive", base, heads, weighting).eval()
    total, logs = pretrain_loss_fn("contrastive")(model, batch)
    v2t, t2v = base(batch["video"], batch["caption"], per_direction=True)
    ce = F.cross_entropy(heads.heads["size"](base.video_encoder(batch["video"]).pooled), batch["attr_size"])
    assert float(total) == pytest.approx(float(0.8 * v2t + 0.2 * t2v + 0.5 * ce), rel=1e-5)
    assert logs["loss_size"] == pytest.approx(float(ce), rel=1e-5) and "size_acc" in logs
    plain, _ = pretrain_loss_fn("contrastive")(base, batch)  # no extras: the symmetric mean
    assert float(plain) == pytest.approx(float(0.5 * (v2t + t2v)), rel=1e-5)
