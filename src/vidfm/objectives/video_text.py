"""Video-text contrastive learning (CLIP / CLIP4Clip): a video encoder and a text tower
projected into one space, trained with a symmetric InfoNCE and a learnable temperature.

* The text tower is a Hugging Face text encoder — by default the real pretrained MiniLM
  (``"minilm"``) — kept frozen, tuned with LoRA (peft, on query/value) or fully tuned.
* Captions that are identical within a batch count as positives of each other instead of
  false negatives (small vocabularies repeat captions often): the loss is MIL-NCE, minus
  the log of the softmax mass on all positives together.
* Hard-negative mining (HN-NCE): with ``hard_negative_beta > 0`` each negative's term in the
  softmax denominator is weighted by ``exp(beta * similarity)`` (mean weight 1), so the
  model spends its gradient on the negatives it confuses.

A trained model is saved as a video encoder folder (``config.json`` + weights, loadable by
``load_encoder``) plus ``video_text.json`` and ``heads.safetensors`` (projections,
temperature and any tuned text weights); the frozen text tower is referenced, not copied.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.common import VideoEncoder
from vidfm.models.text import MINILM, TextEncoder

TEXT_MODES = ("frozen", "lora", "full")
META = "video_text.json"


class VideoTextModel(nn.Module):
    def __init__(self, video_encoder: VideoEncoder, text_encoder: TextEncoder | None = None, embed_dim: int = 256,
                 temperature: float = 0.07, learn_temperature: bool = True, text_mode: str = "frozen",
                 lora_rank: int = 8, hard_negative_beta: float = 0.0):  # fmt: skip
        super().__init__()
        if text_mode not in TEXT_MODES:
            raise ConfigError(f"unknown text mode {text_mode!r}; choose one of {', '.join(TEXT_MODES)}")
        if temperature <= 0 or hard_negative_beta < 0:
            raise ConfigError("temperature must be positive and hard_negative_beta >= 0")
        self.video_encoder = video_encoder
        self.text = text_encoder if text_encoder is not None else TextEncoder(MINILM)
        self.video_proj = nn.Linear(video_encoder.output_dim, embed_dim)
        self.text_proj = nn.Linear(self.text.output_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=learn_temperature)
        self.embed_dim, self.text_mode, self.lora_rank = embed_dim, text_mode, lora_rank
        self.hard_negative_beta = hard_negative_beta
        self._configure_text()

    def _configure_text(self) -> None:
        model = self.text.model
        if self.text_mode == "frozen":
            model.requires_grad_(False)
        elif self.text_mode == "lora":
            from peft import LoraConfig, get_peft_model

            targets = [n for n in ("query", "value", "q_proj", "v_proj", "q_lin", "v_lin") if any(m.endswith(n) for m, _ in model.named_modules())]
            if not targets:
                raise ConfigError(f"{self.text.name_or_path}: no query/value projections found for LoRA")
            self.text.model = get_peft_model(model, LoraConfig(r=self.lora_rank, lora_alpha=2 * self.lora_rank, target_modules=targets))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.text_mode == "frozen":
            self.text.eval()  # no dropout in a frozen tower: its embeddings stay fixed
        return self

    # -- embeddings ----------------------------------------------------------------------
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) in [0, 1] -> (B, E) unit vectors."""
        return F.normalize(self.video_proj(self.video_encoder(video).pooled).float(), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Sentences -> (B, E) unit vectors."""
        if self.text_mode == "frozen":
            with torch.no_grad():
                pooled = self.text(texts)[2]
        else:
            pooled = self.text(texts)[2]
        return F.normalize(self.text_proj(pooled).float(), dim=-1)

    def forward(self, video: torch.Tensor, captions: list[str], per_direction: bool = False, same_as: list[str] | None = None):
        """The symmetric loss, or with ``per_direction`` (video->text, text->video) losses.
        ``same_as``: the captions before augmentation, which decide which pairs are duplicates."""
        return video_text_loss(self.encode_video(video), self.encode_text(captions), self.logit_scale,
                               same_caption_mask(same_as or captions), self.hard_negative_beta, per_direction)  # fmt: skip

    # -- persistence ---------------------------------------------------------------------
    def _heads_state(self) -> dict:
        keep = {}
        for k, v in self.state_dict().items():
            if k.startswith("video_encoder."):
                continue
            if k.startswith("text.") and self.text_mode == "frozen":
                continue
            if k.startswith("text.") and self.text_mode == "lora" and "lora_" not in k:
                continue
            keep[k] = v.detach().contiguous().clone()
        return keep

    def save_pretrained(self, path, notes: dict | None = None) -> Path:
        """Write the model folder atomically; ``notes`` maps extra JSON file names (e.g.
        ``pretrain.json``) to contents written in the same swap."""
        from safetensors.torch import save_file

        from vidfm.files import atomic_save_dir

        meta = {"text_model": self.text.name_or_path, "text_max_length": self.text.max_length, "embed_dim": self.embed_dim,
                "text_mode": self.text_mode, "lora_rank": self.lora_rank, "hard_negative_beta": self.hard_negative_beta}  # fmt: skip

        def write(d: Path):
            self.video_encoder.save_pretrained(d)
            save_file(self._heads_state(), d / "heads.safetensors")
            (d / META).write_text(json.dumps(meta, indent=2))
            for name, content in (notes or {}).items():
                (d / name).write_text(json.dumps(content, indent=2))

        atomic_save_dir(Path(path), write)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path) -> "VideoTextModel":
        from safetensors.torch import load_file

        from vidfm.models import load_encoder

        path = Path(path)
        if not (path / META).exists():
            raise ConfigError(f"{path}: not a video-text model (no {META}); train one with 'vidfm pretrain --objective contrastive'")
        meta = json.loads((path / META).read_text())
        model = cls(load_encoder(path), TextEncoder(meta["text_model"], meta.get("text_max_length", 32)), meta["embed_dim"],
                    text_mode=meta["text_mode"], lora_rank=meta.get("lora_rank", 8), hard_negative_beta=meta.get("hard_negative_beta", 0.0))  # fmt: skip
        heads = load_file(path / "heads.safetensors")
        missing, unexpected = model.load_state_dict(heads, strict=False)
        missing = [k for k in missing if not k.startswith(("video_encoder.", "text."))]
        if missing or unexpected:
            raise ConfigError(f"{path}: heads.safetensors does not match {META} (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


def same_caption_mask(captions: list[str]) -> torch.Tensor:
    """(B, B) bool: True where two captions are the same text (case and spaces ignored)."""
    keys = [" ".join(c.lower().split()) for c in captions]
    ids = torch.tensor([keys.index(k) for k in keys])
    return ids[:, None] == ids[None, :]


def video_text_loss(v: torch.Tensor, t: torch.Tensor, logit_scale: torch.Tensor, positives: torch.Tensor | None = None,
                    hard_negative_beta: float = 0.0, per_direction: bool = False):  # fmt: skip
    """Symmetric InfoNCE over unit vectors ``v`` (B, E) and ``t`` (B, E); ``positives``
    (B, B) bool marks extra positive pairs (the diagonal always is one). With
    ``per_direction`` the two halves come back apart: (video->text, text->video)."""
    n = v.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=v.device)
    pos = eye if positives is None else (positives.to(v.device) | eye)
    sim = v @ t.t()
    logits = logit_scale.clamp(max=math.log(100)).exp() * sim

    def direction(lg, s, p):
        if hard_negative_beta > 0 and n > 1:
            with torch.no_grad():
                w = torch.exp(hard_negative_beta * s).masked_fill(p, 0)
                w = w * (~p).sum(1, keepdim=True).clamp(min=1) / w.sum(1, keepdim=True).clamp(min=1e-12)
                lg = lg + torch.where(p, torch.zeros_like(w), torch.log(w.clamp(min=1e-12)))
        # MIL-NCE: the probability mass on all positives together (0 when they hold it all)
        return (torch.logsumexp(lg, -1) - torch.logsumexp(lg.masked_fill(~p, float("-inf")), -1)).mean()

    v2t, t2v = direction(logits, sim, pos), direction(logits.t(), sim.t(), pos.t())
    return (v2t, t2v) if per_direction else 0.5 * (v2t + t2v)
