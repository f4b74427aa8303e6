"""Attention control for editing: Prompt-to-Prompt, FateZero-style blending, PnP injection.

The source (reconstruction) branch and the edit branch run in one batch, as pairs
``[source, edit]`` (twice over under classifier-free guidance). An ``EditAttnProcessor``
on every attention layer (set through diffusers' ``set_attn_processor``, not by patching
module classes) lets the edit branch borrow from its source partner while the
``EditController``'s step schedule says so:

- cross-attention, ``replace`` (P2P: the source's maps, same token count) or ``refine``
  (P2P: aligned tokens take the source's maps, new words keep their own), plus
  ``reweight`` (scale the attention on chosen words);
- self-attention, ``replace`` (P2P / Video-P2P: the source's maps), ``blend`` (FateZero:
  the source's maps outside the edited region, the edit's own inside) or ``pnp``
  (Plug-and-Play: the source's queries and keys).

It also sums the edit branch's cross-attention on the edited words over steps, layers
and heads: the map an attention-derived mask is thresholded from.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import torch

from vidfm.errors import ConfigError
from vidfm.models.attention import apply_rope, attend

CROSS_MODES = ("replace", "refine", "none")
SELF_MODES = ("replace", "blend", "pnp", "none")


def token_alignment(source_tokens: list[str], edit_tokens: list[str]) -> tuple[np.ndarray, list[int]]:
    """For each edit token, the index of the source token it matches (-1: a new word), and
    the edit tokens that differ from the source (the edited words)."""
    matcher = difflib.SequenceMatcher(a=source_tokens, b=edit_tokens, autojunk=False)
    mapping = np.full(len(edit_tokens), -1)
    for a, b, n in matcher.get_matching_blocks():
        mapping[b : b + n] = np.arange(a, a + n)
    changed = [j for j in range(len(edit_tokens)) if mapping[j] < 0]
    return mapping, changed


@dataclass
class EditController:
    """What the edit branch borrows from the source branch, and when.

    ``cross_steps`` / ``self_steps``: the fraction of denoising steps (from the noisiest)
    during which cross / self-attention is injected. ``mapping``: per edit token, its
    source token (-1 = new). ``reweight``: {edit token index: factor}. ``blend_mask``:
    ``(N,)`` token mask (1 = edited region) for ``self_mode="blend"``. ``record``: when
    set, the cross-attention over the text is summed into ``maps`` every step."""

    num_steps: int
    cross_mode: str = "replace"
    self_mode: str = "replace"
    cross_steps: float = 0.8
    self_steps: float = 0.4
    mapping: np.ndarray | None = None
    reweight: dict[int, float] = field(default_factory=dict)
    record: bool = False
    blend_mask: torch.Tensor | None = None
    paired: bool = True  # the batch holds [source, edit] pairs
    step: int = 0
    maps: dict[int, torch.Tensor] = field(default_factory=dict)  # tokens N -> (items, N, L) summed cross-attention
    changed: tuple[list[int], list[int]] = ((), ())  # the source's and the edit's changed tokens (what a mask reads)

    def __post_init__(self):
        if self.cross_mode not in CROSS_MODES:
            raise ConfigError(f"cross-attention mode must be one of {', '.join(CROSS_MODES)}, got {self.cross_mode!r}")
        if self.self_mode not in SELF_MODES:
            raise ConfigError(f"self-attention mode must be one of {', '.join(SELF_MODES)}, got {self.self_mode!r}")
        for name in ("cross_steps", "self_steps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be a fraction of the steps in [0, 1], got {getattr(self, name)}")

    def inject_cross(self) -> bool:
        return self.paired and self.cross_mode != "none" and self.step < self.cross_steps * self.num_steps

    def inject_self(self) -> bool:
        return self.paired and self.self_mode != "none" and self.step < self.self_steps * self.num_steps

    def cross_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """``weights (items, heads, N, L)`` of the cross-attention -> the edit branch's."""
        if self.record:
            self._record(weights)
        if self.inject_cross():
            src, edit = _pairs(weights)
            if self.cross_mode == "replace":
                if src.shape[-1] != edit.shape[-1] or (self.mapping is not None and (self.mapping < 0).any()):
                    raise ConfigError("cross-attention 'replace' needs prompts of the same token length; use 'refine' for other edits")
                new = src
            else:  # refine: aligned tokens take the source's maps
                m = torch.as_tensor(self.mapping, device=weights.device)
                take = src[..., m.clamp(min=0)]
                keep = (m >= 0).to(weights.dtype)
                new = take * keep + edit[..., : len(m)] * (1 - keep)
                new = torch.cat([new, edit[..., len(m) :]], -1)
            weights = _merge(src, new)
        if self.reweight and self.paired:
            src, edit = _pairs(weights)
            scale = torch.ones(weights.shape[-1], device=weights.device, dtype=weights.dtype)
            for j, f in self.reweight.items():
                scale[j] = f
            weights = _merge(src, edit * scale)
        return weights

    def _record(self, weights: torch.Tensor) -> None:
        m = weights.mean(1).float()  # (items, N, L); U-Nets record one map per resolution
        n = m.shape[1]
        self.maps[n] = m if n not in self.maps else self.maps[n] + m


def _pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(2g, ...) arranged [source, edit, source, edit, ...] -> the sources, the edits."""
    y = x.reshape(-1, 2, *x.shape[1:])
    return y[:, 0], y[:, 1]


def _merge(src: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    return torch.stack([src, edit], 1).flatten(0, 1)


class EditAttnProcessor:
    """vidfm's attention computation with the controller's injections (``cross``: this
    layer attends to the text). The weights are materialised only while something is
    injected or recorded; otherwise SDPA runs as usual."""

    def __init__(self, controller: EditController, cross: bool):
        self.controller, self.cross = controller, cross

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *,
                 rope=None, is_causal=False, prefix=None, output_attentions=False):  # fmt: skip
        ctl = self.controller
        q, k, v = attn.qkv(hidden_states, encoder_hidden_states)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if self.cross:
            active = ctl.record or ctl.inject_cross() or bool(ctl.reweight and ctl.paired)
        else:
            active = ctl.inject_self()
        if not active or prefix is not None:
            out, weights = attend(q, k, v, attention_mask, is_causal, 0.0, output_attentions)
            return attn.out(out), weights
        if not self.cross and ctl.self_mode == "pnp":
            (qs, _), (ks, _) = _pairs(q), _pairs(k)
            q, k = _merge(qs, qs), _merge(ks, ks)
            out, weights = attend(q, k, v, attention_mask, is_causal, 0.0, output_attentions)
            return attn.out(out), weights
        _, weights = attend(q, k, v, attention_mask, is_causal, 0.0, True)
        if self.cross:
            weights = ctl.cross_weights(weights)
        else:
            src, edit = _pairs(weights)
            if ctl.self_mode == "blend" and ctl.blend_mask is not None and ctl.blend_mask.numel() == weights.shape[-2]:
                m = ctl.blend_mask.to(weights.dtype).view(1, 1, -1, 1)  # rows (queries) in the edited region keep their own maps
                edit = edit * m + src * (1 - m)
            else:
                edit = src
            weights = _merge(src, edit)
        return attn.out(weights @ v), (weights if output_attentions else None)


def install(denoiser, controller: EditController) -> dict:
    """Put an ``EditAttnProcessor`` on every attention layer of ``denoiser``; returns the
    processors it had (give them back to ``denoiser.set_attn_processor`` afterwards)."""
    before = dict(denoiser.attn_processors)
    denoiser.set_attn_processor({name: EditAttnProcessor(controller, cross=_is_cross(name)) for name in before})
    return before


def _is_cross(name: str) -> bool:
    """Layer names as ``attn_processors`` reports them: ``blocks.0.cross.processor``."""
    return ".cross." in name or name.startswith("cross.")
