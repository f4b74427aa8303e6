"""Referring segmentation (Sa2VA): a ``[SEG]`` token's hidden state prompts SAM-2.

The Video-LLM answers "Sure, the red circle [SEG]." when asked to segment something (the
phrase before the token: see ``vidfm.tasks.segment.seg_answer``); the last hidden state
of the language model at the ``[SEG]`` position goes through a small MLP into SAM-2's
prompt space and is given to SAM-2's mask decoder as its sparse prompt, beside each frame's
image embeddings: the decoder's two-way transformer (prompt tokens <-> image tokens) returns
low-resolution mask logits, which are upsampled to the frame, and an object score (is the
object in this frame at all). The prompt also scores SAM-2's image tokens, and that coarse
map is SAM-2's mask prompt (see ``ReferringSegmenter``). Every frame is decoded with the same prompt (the decoder needs
no memory of earlier frames for objects that keep their look; SAM-2's own memory
propagation is left to its video model).

SAM-2 is transformers' ``Sam2Model``: ``sam2-tiny`` is a small configuration trained from
scratch here (the world's frames upsampled to ``image_size``), and a real checkpoint
(``facebook/sam2.1-hiera-tiny`` saved with ``save_pretrained``) loads from its local folder
through the same class, with the same code path.

Shapes: ``frames`` (N, 3, H, W) float in [0, 1]; ``prompts`` (N, D_lm); mask logits
(N, h, w) at the decoder's resolution (a quarter of ``image_size``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidfm.errors import ConfigError

SEG_TOKEN = "[SEG]"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # SAM-2's pixel normalisation (ImageNet)


def tiny_sam2_config(image_size: int = 128):
    """A small SAM-2 (Hiera backbone with four stages, FPN, prompt encoder, mask decoder)
    for CPUs: ~0.9 M parameters; image embeddings at 1/16, masks at 1/4 of ``image_size``."""
    from transformers import Sam2Config

    if image_size % 32:
        raise ConfigError(f"the SAM-2 image size must be a multiple of 32, got {image_size}")
    s = image_size
    hiera = dict(model_type="sam2_hiera_det_model", hidden_size=24, image_size=[s, s], blocks_per_stage=[1, 1, 2, 1],
                 embed_dim_per_stage=[24, 48, 96, 192], num_attention_heads_per_stage=[1, 1, 2, 4], window_size_per_stage=[8, 4, 4, 2],
                 global_attention_blocks=[3], window_positional_embedding_background_size=[4, 4])  # fmt: skip
    return Sam2Config(
        vision_config=dict(backbone_config=hiera, backbone_channel_list=[192, 96, 48, 24], fpn_hidden_size=64,
                           backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]]),  # fmt: skip
        prompt_encoder_config=dict(hidden_size=64, image_size=s, patch_size=16),
        mask_decoder_config=dict(hidden_size=64, mlp_dim=256, num_attention_heads=4, iou_head_hidden_dim=64),
    )


def load_sam2(name_or_path: str, image_size: int = 128):
    """``sam2-tiny`` (fresh, ``image_size`` pixels) or a SAM-2 folder saved by transformers
    (``Sam2Model.save_pretrained``; e.g. a downloaded ``facebook/sam2.1-hiera-tiny``)."""
    from transformers import Sam2Model

    if name_or_path == "sam2-tiny":
        return Sam2Model(tiny_sam2_config(image_size))
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{name_or_path}: not a SAM-2 folder (no config.json); give sam2-tiny or a folder saved by Sam2Model.save_pretrained")
    try:
        return Sam2Model.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{path}: cannot load SAM-2 ({str(e).splitlines()[0][:160]})") from None


class ReferringSegmenter(nn.Module):
    """SAM-2 prompted by language-model hidden states (Sa2VA's ``text_hidden_fcs`` + SAM-2),
    with a coarse location prior as SAM-2's mask prompt.

    The prompt MLP ends in a LayerNorm: prompt tokens of unit scale, like SAM-2's point
    embeddings. A prompt that enters only as a sparse token is weak at the start of training:
    the decoder first learns the mask of every object at once and stays there (measured on the
    world: the same mask whatever the expression). So the prompt also scores every image
    token (a dot product with a projection of SAM-2's image embedding, supervised with the
    true mask at that coarse scale), and the score map goes in where SAM-2 takes a prior mask
    (its mask prompt, ``prompt_encoder.mask_embed``): the decoder then refines a location
    instead of having to discover the conditioning."""

    def __init__(self, sam, prompt_dim: int):
        super().__init__()
        self.sam = sam
        d = sam.config.mask_decoder_config.hidden_size
        # BatchNorm first: an LM's last hidden states share a large common part (the same for
        # every [SEG]); standardising each channel makes what differs visible from step one
        self.prompt = nn.Sequential(nn.BatchNorm1d(prompt_dim, affine=False), nn.Linear(prompt_dim, prompt_dim), nn.ReLU(), nn.Linear(prompt_dim, d), nn.LayerNorm(d))
        self.key = nn.Linear(sam.config.vision_config.fpn_hidden_size, d)
        sam.mask_decoder.dynamic_multimask_via_stability = False  # the single-mask output is the one trained
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        return int(self.sam.config.vision_config.backbone_config.image_size[0])

    def image_embeddings(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """SAM-2's feature pyramid of ``frames`` (N, 3, H, W) in [0, 1], resized to its
        input size: [stride-4, stride-8 (both projected for the decoder), stride-16]."""
        sam, s = self.sam, self.image_size
        x = frames.to(self.mean.device, self.mean.dtype)
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=x.shape[-1] > s)
        maps = sam.get_image_features((x - self.mean) / self.std, return_dict=True).fpn_hidden_states
        maps[-1] = maps[-1] + sam.no_memory_embedding
        return [m.permute(1, 2, 0).reshape(len(x), -1, *size) for m, size in zip(maps, sam.backbone_feature_sizes)]

    def decode(self, embeddings: list[torch.Tensor], prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mask logits (N, h, w), object-score logits (N,), coarse logits (N, h/4, w/4))
        for one prompt per image."""
        sam = self.sam
        image = embeddings[-1]
        if prompts.shape[0] != image.shape[0]:
            raise ConfigError(f"{prompts.shape[0]} prompts for {image.shape[0]} images")
        norm = self.prompt[0]
        if norm.training and len(torch.unique(prompts, dim=0)) < 2:  # one prompt (repeated per frame) has no batch statistics
            norm.eval()
            tokens = self.prompt(prompts.to(image.dtype))
            norm.train()
        else:
            tokens = self.prompt(prompts.to(image.dtype))
        keys = self.key(image.permute(0, 2, 3, 1))
        coarse = torch.einsum("nd,nhwd->nhw", tokens, keys) / keys.shape[-1] ** 0.5
        prior = F.interpolate(coarse[:, None], size=sam.prompt_encoder.mask_input_size, mode="bilinear", align_corners=False)
        positions = sam.get_image_wide_positional_embeddings().expand(len(image), -1, -1, -1)
        masks, _, _, objects = sam.mask_decoder(image_embeddings=image, image_positional_embeddings=positions, sparse_prompt_embeddings=tokens[:, None, None, :],
                                                dense_prompt_embeddings=sam.prompt_encoder.mask_embed(prior), multimask_output=False,
                                                high_resolution_features=embeddings[:-1])  # fmt: skip
        return masks[:, 0, 0], objects[:, 0, 0], coarse

    def forward(self, frames: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.decode(self.image_embeddings(frames), prompts)


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) decoder logits -> (N, H, W) at the frame's size (bilinear, as SAM-2)."""
    return F.interpolate(logits[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def mask_loss(logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 2.0, dice_weight: float = 0.5) -> torch.Tensor:
    """Sa2VA's mask loss: sigmoid BCE x 2.0 + Dice x 0.5 (per mask, averaged); ``logits``
    and ``target`` (N, H, W), target in {0, 1}."""
    target = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce_weight * bce + dice_weight * dice.mean()
