"""Video-video contrastive learning: SimCLR, MoCo and triplet over two augmented views of a video.

The two views are different random clips of the same video with independent crops and
colour jitter (``TwoViews`` builds them from any ``VideoDataset``), so the encoder must
keep what a video is about and drop where and how it was cut.

* SimCLR: NT-Xent over the 2B projected views of a batch (each view's positive is its
  twin, the other 2B-2 are negatives).
* MoCo (v2): a query encoder and a momentum (EMA) key encoder; negatives come from a
  queue of past keys, so their number does not depend on the batch size. The loss is
  symmetrised over the two views. The queue is per process (no cross-process gather).
* Triplet (FaceNet; Hermans et al. 2017 for batch-hard mining): anchor and positive are
  the two views of one video, negatives are the other videos' views; the loss is
  ``max(0, d(a, p) - d(a, n) + margin)`` on unit vectors (Euclidean distance). ``hard``
  mining takes each anchor's hardest positive and hardest negative in the batch; ``all``
  averages over every triplet that still violates the margin.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vidfm.errors import ConfigError
from vidfm.models.common import VideoEncoder


def projection_head(dim_in: int, dim_out: int, hidden: int | None = None) -> nn.Sequential:
    hidden = hidden or max(dim_in, dim_out)
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy for two (B, D) view batches."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def triplet_loss(z1: torch.Tensor, z2: torch.Tensor, margin: float = 0.2, mining: str = "hard") -> torch.Tensor:
    """Triplet loss over two (B, D) view batches (row i of each is one video)."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    ids = torch.arange(z1.shape[0], device=z.device).repeat(2)
    dist = torch.cdist(z, z)
    same = ids[:, None] == ids[None, :]
    positive = same & ~torch.eye(len(ids), dtype=torch.bool, device=z.device)
    if mining == "hard":
        hardest_pos = dist.masked_fill(~positive, float("-inf")).max(1).values
        hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
        return F.relu(hardest_pos - hardest_neg + margin).mean()
    if mining == "all":
        losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin) * (positive[:, :, None] & ~same[:, None, :])
        return losses.sum() / (losses > 1e-12).sum().clamp(min=1)
    raise ConfigError(f"unknown triplet mining {mining!r}; choose hard or all")


class ContrastiveVideoModel(nn.Module):
    """``forward(view1, view2) -> loss`` for ``method`` ``simclr``, ``moco`` or ``triplet``."""

    def __init__(self, encoder: VideoEncoder, method: str = "simclr", proj_dim: int = 128, temperature: float = 0.1,
                 queue_size: int = 4096, momentum: float = 0.99, margin: float = 0.2, mining: str = "hard"):  # fmt: skip
        super().__init__()
        if method not in ("simclr", "moco", "triplet"):
            raise ConfigError(f"unknown contrastive method {method!r}; choose simclr, moco or triplet")
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        if margin <= 0 or mining not in ("hard", "all"):
            raise ConfigError(f"triplet needs a positive margin and mining hard or all, got {margin} and {mining!r}")
        self.encoder, self.method, self.temperature, self.margin, self.mining = encoder, method, temperature, margin, mining
        self.head = projection_head(encoder.output_dim, proj_dim)
        if method == "moco":
            if not 0 < momentum < 1:
                raise ConfigError(f"MoCo momentum must be in (0, 1), got {momentum}")
            self.momentum = momentum
            self.key_encoder = copy.deepcopy(encoder)
            self.key_head = copy.deepcopy(self.head)
            for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
                p.requires_grad_(False)
            self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=-1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(video).pooled)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        if self.method == "simclr":
            return nt_xent(self.embed(view1), self.embed(view2), self.temperature)
        if self.method == "triplet":
            return triplet_loss(self.embed(view1), self.embed(view2), self.margin, self.mining)
        return self._moco(view1, view2)

    def _moco(self, view1, view2):
        q1, q2 = (F.normalize(self.embed(v).float(), dim=-1) for v in (view1, view2))
        with torch.no_grad():
            self._momentum_update()
            self.key_encoder.train(self.training)
            k1, k2 = (F.normalize(self.key_head(self.key_encoder(v).pooled).float(), dim=-1) for v in (view1, view2))
        loss = 0.5 * (self._info_nce(q1, k2) + self._info_nce(q2, k1))
        if self.training:
            self._enqueue(torch.cat([k1, k2]))
        return loss

    def _info_nce(self, q, k):
        pos = (q * k).sum(-1, keepdim=True)
        neg = q @ self.queue.clone().t()
        logits = torch.cat([pos, neg], 1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    @torch.no_grad()
    def _momentum_update(self):
        if not self.training:
            return
        pairs = [(self.encoder, self.key_encoder), (self.head, self.key_head)]
        for online, target in pairs:
            for p, pk in zip(online.parameters(), target.parameters()):
                pk.mul_(self.momentum).add_(p.detach(), alpha=1 - self.momentum)
            for b, bk in zip(online.buffers(), target.buffers()):
                bk.copy_(b)

    @torch.no_grad()
    def _enqueue(self, keys):
        n, size = keys.shape[0], self.queue.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(n, device=keys.device) + ptr) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)


class TwoViews(Dataset):
    """Pairs two datasets over the same records (built with different seeds) into items
    with ``video`` and ``video2``: two independent random views of one video."""

    def __init__(self, first, second):
        if len(first) != len(second):
            raise ConfigError("the two view datasets must hold the same videos")
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first)

    def set_epoch(self, epoch: int) -> None:
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict | None:
        a = self.first[i]
        if a is None:  # unreadable in evaluation: dropped by the collate function
            return None
        b = self.second[a["index"]]
        return {**a, "video2": b["video"]} if b is not None else None

    @property
    def train(self) -> bool:
        return self.first.train

    @property
    def skipped(self) -> set:
        return self.first.skipped | self.second.skipped
