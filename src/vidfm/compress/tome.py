"""Token merging (ToMe; Bolya et al., ICLR 2023) for vidfm's joint space-time ViTs,
written from the paper.

In every block, after attention, the ``r`` most redundant tokens are merged away:

1. Bipartite soft matching: tokens alternate into sets A and B; each A token finds its most
   similar B token by the cosine similarity of the attention keys (averaged over heads).
2. The ``r`` A tokens with the best matches are merged into their B partners (a
   size-weighted average); the other tokens pass through. No parameters, no training.
3. Each token carries a size ``s`` (how many patches it stands for). Attention is
   *proportional*: ``softmax(q k^T / sqrt(d) + log s)``, so a merged token counts as the
   tokens it replaced; the final mean pool is size-weighted too.

Over L layers the token count drops by about ``L * r`` (never below a handful), and the
attention and MLP cost with it. Only joint attention over all tokens can merge freely:
TimeSformer's divided attention needs the (frame x patch) grid that merging destroys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import attend
from vidfm.models.common import EncoderOutput


def bipartite_merge(x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``r`` tokens of ``x (B, N, D)`` with sizes ``size (B, N, 1)``, matching on
    ``metric (B, N, d)``. Returns the merged (B, N - r, D) tokens and their sizes."""
    n = x.shape[1]
    r = min(r, n // 2)
    if r <= 0:
        return x, size
    metric = F.normalize(metric, dim=-1)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)  # (B, Na, Nb)
    best, partner = scores.max(-1)  # each A token's best B token
    order = best.argsort(-1, descending=True)
    merged_a, kept_a = order[:, :r], order[:, r:]  # A tokens that go, and those that stay
    dst = partner.gather(1, merged_a)  # where each merged A token goes in B

    def combine(values: torch.Tensor) -> torch.Tensor:
        va, vb = values[:, ::2], values[:, 1::2]
        d = values.shape[-1]
        keep = va.gather(1, kept_a[..., None].expand(-1, -1, d))
        moved = va.gather(1, merged_a[..., None].expand(-1, -1, d))
        vb = vb.scatter_add(1, dst[..., None].expand(-1, -1, d), moved)
        return torch.cat([keep, vb], 1)

    weighted = combine(torch.cat([x * size, size], -1))
    new_size = weighted[..., -1:]
    return weighted[..., :-1] / new_size, new_size

class TokenMergingEncoder(nn.Module):
    """A VideoMAE-style encoder (``Block`` layers, joint attention, mean pooling) run with
    ToMe, ``r`` tokens merged per layer. Same inputs and ``EncoderOutput`` as the wrapped
    encoder; ``tokens`` holds the merged tokens (fewer of them)."""

    def __init__(self, encoder: nn.Module, r: int):
        super().__init__()
        from vidfm.models.videomae import VideoMAEEncoder

        if not isinstance(encoder, VideoMAEEncoder):
            kind = getattr(getattr(encoder, "config", None), "model_type", type(encoder).__name__)
            raise ConfigError(f"token merging needs a joint space-time ViT (videomae); {kind} has no free token sequence to merge "
                              "(CNNs have feature maps; TimeSformer's divided attention needs the frame x patch grid)")  # fmt: skip
        if r < 0:
            raise ConfigError(f"token merging: r must be >= 0 tokens per layer, got {r}")
        self.encoder, self.r = encoder, r

    @property
    def merged_encoder(self) -> nn.Module:
        """The wrapped encoder (what is saved: ToMe has no weights of its own)."""
        return self.encoder

    @property
    def config(self):
        return self.encoder.config

    @property
    def output_dim(self) -> int:
        return self.encoder.output_dim

    def forward(self, video: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        enc = self.encoder
        x = enc.embed(video)
        size = torch.ones(*x.shape[:2], 1, device=x.device, dtype=x.dtype)
        hidden = [x] if output_hidden_states else None
        for block in enc.blocks:
            h = block.norm1(x)
            attn = block.attn
            q, k, v = attn.qkv(h)
            bias = size.log().transpose(1, 2)[:, None]  # (B, 1, 1, N): proportional attention
            out, _ = attend(q, k, v, bias)
            x = x + block.drop_path(attn.out(out))
            x, size = bipartite_merge(x, size, k.mean(1), self.r)  # keys averaged over heads (the paper's metric)
            x = x + block.drop_path(block.mlp(block.norm2(x)))
            if hidden is not None:
                hidden.append(x)
        x = enc.norm(x)
        pooled = (x * size).sum(1) / size.sum(1)
        return EncoderOutput(tokens=x, pooled=enc.fc_norm(pooled), hidden_states=tuple(hidden) if hidden else None)

def tokens_after(n: int, layers: int, r: int) -> list[int]:
    """Token counts after each layer for ``n`` input tokens (what the cost follows)."""
    out = []
    for _ in range(layers):
        n -= min(r, n // 2)
        out.append(n)
    return out

def merged_flops_ratio(n: int, layers: int, r: int, dim: int, mlp: int) -> float:
    """Approximate encoder FLOPs with ToMe / without (projections, attention, MLP)."""

    def cost(tokens):
        return 4 * tokens * dim * dim + 2 * tokens * tokens * dim + 2 * tokens * dim * mlp

    with_tome = [n] + tokens_after(n, layers, r)[:-1]
    return sum(cost(t) for t in with_tome) / (layers * cost(n)) if layers else 1.0

__all__ = ["TokenMergingEncoder", "bipartite_merge", "merged_flops_ratio", "tokens_after"]
