import numpy as np
import pytest
import torch

from vidfm.data import transforms as T
from vidfm.data.text_augment import augment_caption, drop_tokens


def still_clip(t=6, h=32, w=40, seed=0):
    """Every frame identical: a clip-consistent transform must keep them identical."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g).repeat(t, 1, 1, 1)


SPATIAL = [
    T.RandomResizedCrop(24),
    T.HorizontalFlip(p=1.0),
    T.ColorJitter(),
    T.ElasticDeform(),
    T.Occlusion(p=1.0),
    T.train_transform(24, elastic=True, normalize=True),
]


@pytest.mark.parametrize("tf", SPATIAL, ids=lambda t: type(t).__name__)
def test_same_parameters_for_every_frame(tf):
    out = tf(still_clip(), torch.Generator().manual_seed(3))
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)


@pytest.mark.parametrize("tf", SPATIAL, ids=lambda t: type(t).__name__)
def test_reproducible_from_seed_and_varies_between_seeds(tf):
    clip = still_clip()
    a = tf(clip, torch.Generator().manual_seed(1))
    b = tf(clip, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    outs = [tf(clip, torch.Generator().manual_seed(s)) for s in range(2, 8)]
    if not isinstance(tf, T.HorizontalFlip):
        assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_flip_and_crop_geometry():
    clip = torch.zeros(4, 3, 10, 20)
    clip[..., :, :5] = 1.0  # left quarter bright
    flipped = T.HorizontalFlip(p=1.0)(clip, torch.Generator())
    assert flipped[..., :, -5:].min() == 1.0 and flipped[..., :, :15].max() == 0.0
    assert T.RandomResizedCrop((16, 12))(clip, torch.Generator().manual_seed(0)).shape == (4, 3, 16, 12)
    assert T.CenterCrop(8)(T.Resize(10)(clip)).shape == (4, 3, 8, 8)


def test_brightness_jitter_within_15_percent():
    clip = torch.full((3, 3, 8, 8), 0.5)
    for s in range(30):
        out = T.ColorJitter(brightness=0.15, contrast=0.0, saturation=0.0)(clip, torch.Generator().manual_seed(s))
        assert 0.5 * 0.85 - 1e-6 <= out.mean() <= 0.5 * 1.15 + 1e-6


def test_occlusion_area_at_most_20_percent():
    clip = torch.ones(2, 3, 50, 50)
    for s in range(40):
        out = T.Occlusion(max_area=0.2, p=1.0, value=0.0)(clip, torch.Generator().manual_seed(s))
        area = (out[0, 0] == 0).float().mean().item()
        assert 0 < area <= 0.2 + 1e-6


def test_frame_dropout_blanks_whole_frames_and_keeps_one():
    clip = torch.ones(8, 3, 4, 4)
    out = T.FrameDropout(p=0.5)(clip, torch.Generator().manual_seed(0))
    per_frame = out.flatten(1).mean(1)
    assert set(per_frame.tolist()) <= {0.0, 1.0} and 0 < per_frame.sum() < 8
    assert T.FrameDropout(p=1.0)(clip, torch.Generator()).flatten(1).mean(1).sum() == 1


def test_temporal_augment_keeps_count_and_range():
    ta = T.TemporalAugment(jitter=3, speed=(0.8, 1.2), reverse_p=1.0)
    idx = np.arange(20, 36)
    for s in range(20):
        out = ta(idx, 40, torch.Generator().manual_seed(s))
        assert len(out) == 16 and out.min() >= 0 and out.max() < 40
        assert (np.diff(out) <= 0).all()  # reversed playback
    fast = T.TemporalAugment(jitter=0, speed=(1.2, 1.2))(idx, 100, torch.Generator())
    assert fast[-1] - fast[0] == pytest.approx(15 * 1.2, abs=1)


def test_mixup_cutmix_mix_labels_consistently():
    videos = torch.stack([torch.full((2, 3, 8, 8), float(i)) for i in range(4)])
    labels = torch.tensor([0, 1, 2, 3])
    for fn in (T.mixup, T.cutmix):
        mixed, soft, lam = fn(videos, labels, 4, g=torch.Generator().manual_seed(0))
        assert mixed.shape == videos.shape and torch.allclose(soft.sum(1), torch.ones(4))
        assert 0.0 <= lam <= 1.0
        again = fn(videos, labels, 4, g=torch.Generator().manual_seed(0))
        assert torch.equal(again[0], mixed)
    mixed, soft, lam = T.cutmix(videos, labels, 4, g=torch.Generator().manual_seed(5))
    # the pasted box is the same in every frame of a clip
    assert torch.equal(mixed[:, 0], mixed[:, 1])


def test_caption_augmentation():
    cap = "A small red circle moves to the left while a man walks"
    out = augment_caption(cap, 0, p=1.0)
    assert out != cap and out == augment_caption(cap, 0, p=1.0)
    assert "walks" not in out.split() and out[0] == "A"
    assert augment_caption(cap, 0, p=0.0) == cap
    assert augment_caption("the person walks", 1, p=1.0, lexicon={"walks": ("strolls",)}) == "the person strolls"
    dropped = drop_tokens(cap, 0, p=0.5)
    assert 1 <= len(dropped.split()) < len(cap.split())


def test_to_float_clip_shape_check():
    arr = np.zeros((4, 8, 10, 3), np.uint8)
    assert T.to_float_clip(arr).shape == (4, 3, 8, 10)
    with pytest.raises(Exception, match="expected uint8 frames"):
        T.to_float_clip(np.zeros((4, 8, 10)))


def test_caption_augmenter_applies_the_named_steps_in_training_only(tmp_path):
    from vidfm.data import VideoDataset
    from vidfm.data.text_augment import caption_augmenter
    from vidfm.errors import ConfigError
    from vidfm.io.writer import write_video

    aug = caption_augmenter(["translate"])
    outs = {aug("a red circle moves left", np.random.default_rng(s)) for s in range(20)}
    assert "a red circle moves left" in outs and len(outs) > 1  # about half the captions are rewritten
    both = caption_augmenter(["synonyms", "translate"])
    for s in range(30):  # translated or rewritten, never a mix of the two
        out = both("a small red circle moves left", np.random.default_rng(s))
        synonym = any(w in out.split() for w in ("little", "tiny", "travels", "slides", "shifts"))
        assert not synonym or "circle" in out, out  # a rewritten caption stays English
    with pytest.raises(ConfigError, match="unknown caption augmentation 'shout'"):
        caption_augmenter(["shout"])
    path = tmp_path / "v.mp4"
    write_video(path, np.zeros((4, 16, 16, 3), np.uint8), fps=4)
    always = lambda caption, rng: caption.upper()  # noqa: E731
    records = [{"path": str(path), "captions": ["a red circle"]}]
    item = VideoDataset(records, num_frames=2, train=True, text_transform=always)[0]
    assert item["caption"] == "A RED CIRCLE" and item["caption_original"] == "a red circle"  # duplicates are found on the original
    assert VideoDataset(records, num_frames=2, train=False, text_transform=always)[0]["caption"] == "a red circle"
