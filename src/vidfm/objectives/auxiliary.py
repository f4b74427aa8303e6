"""What any pre-training objective can carry besides its own loss.

* ``AttributeHeads``: one linear head per annotated attribute (camera motion, object
  count, size... from a world's annotations or a CSV's columns) on the encoder's pooled
  vector, trained with cross-entropy beside the objective: cheap supervision that steers
  the representation towards what the attributes describe.
* ``LossWeighting``: how the named loss terms add up. ``fixed`` multiplies each by a weight
  (default 1); ``uncertainty`` learns one log-variance ``s`` per term and adds
  ``exp(-s) * L + s`` (Kendall, Gal & Cipolla 2018), so a term that stays large (noisy) is
  weighted down without hand tuning. For video-text pre-training the terms are the two
  modalities' directions (``video_to_text``, ``text_to_video``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidfm.data.curriculum import IGNORE
from vidfm.errors import ConfigError


class AttributeHeads(nn.Module):
    def __init__(self, dim: int, vocab: dict[str, list[str]]):
        super().__init__()
        if not vocab:
            raise ConfigError("auxiliary heads need at least one attribute")
        self.vocab = vocab
        self.heads = nn.ModuleDict({name: nn.Linear(dim, len(values)) for name, values in vocab.items()})

    def forward(self, pooled: torch.Tensor, batch: dict) -> tuple[dict, dict]:
        """(cross-entropy per attribute, accuracy per attribute) for the batch's ``attr_*`` ids."""
        losses, logs = {}, {}
        for name, head in self.heads.items():
            target = batch[f"attr_{name}"].to(pooled.device)
            logits = head(pooled.float())
            known = target != IGNORE
            losses[name] = F.cross_entropy(logits, target, ignore_index=IGNORE) if known.any() else logits.sum() * 0
            logs[f"{name}_acc"] = float((logits.argmax(-1) == target)[known].float().mean()) if known.any() else float("nan")
        return losses, logs


class LossWeighting(nn.Module):
    def __init__(self, terms: list[str], mode: str = "fixed", weights: dict[str, float] | None = None):
        super().__init__()
        if mode not in ("fixed", "uncertainty"):
            raise ConfigError(f"unknown loss weighting {mode!r}; choose fixed or uncertainty")
        unknown = set(weights or {}) - set(terms)
        if unknown:
            raise ConfigError(f"loss weights for unknown terms {sorted(unknown)}; the terms are {', '.join(terms)}")
        if any(not w >= 0 for w in (weights or {}).values()):  # also refuses NaN
            raise ConfigError(f"loss weights must be numbers >= 0, got {weights}")
        if len(set(terms)) != len(terms):
            raise ConfigError(f"two loss terms share a name: {terms} (an attribute named like the objective?)")
        self.terms, self.mode = list(terms), mode
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in terms}
        if mode == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(terms)))

    def forward(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        if set(losses) != set(self.terms):
            raise ConfigError(f"loss terms {sorted(losses)} do not match the weighting's {sorted(self.terms)}")
        if self.mode == "fixed":
            return sum(self.weights[t] * losses[t] for t in self.terms), {}
        total, logs = 0.0, {}
        for i, t in enumerate(self.terms):
            s = self.log_vars[i]
            total = total + self.weights[t] * (torch.exp(-s) * losses[t] + s)
            logs[f"weight_{t}"] = float(torch.exp(-s.detach()))
        return total, logs
