"""The recurrent memory bridge of VideoLLaMB, for videos longer than any context.

A video is a sequence of semantic segments (scenes). ``M`` memory tokens are prepended to
each segment's visual tokens and the pair goes through a few transformer layers; the memory
slice that comes out is the memory after that segment (the recurrence). After each segment
that memory is appended to a cache, and the memory is refreshed by cross-attention over the
whole cache (the retrieval step), so what an early segment showed is still reachable at the
end. The language model sees only the final ``M`` tokens: the prompt has the same length
for a 10-second and a 10-hour video.

Shapes: ``segments``: a list of (n_i, D) token sets (any n_i); returns (M, D). A stream
is read with ``start`` / ``update`` (one segment at a time) / ``read``; the cache grows by
M x D numbers per segment, nothing else grows.
"""

from __future__ import annotations

import torch
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention
from vidfm.models.common import Block


class MemoryBridge(nn.Module):
    def __init__(self, dim: int, num_memory: int = 32, layers: int = 2, heads: int = 4):
        super().__init__()
        if num_memory < 1 or layers < 1:
            raise ConfigError(f"the memory bridge needs >= 1 memory token and layer, got {num_memory} and {layers}")
        self.memory = nn.Parameter(torch.randn(num_memory, dim) * 0.02)
        self.segment_embed = nn.Parameter(torch.zeros(1, dim))  # marks segment tokens apart from memory
        self.blocks = nn.ModuleList([Block(dim, heads, 4 * dim) for _ in range(layers)])
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.retrieve = Attention(dim, heads)
        self.out_norm = nn.LayerNorm(dim)

    @property
    def num_memory(self) -> int:
        return self.memory.shape[0]

    def step(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The recurrence: (M, D) memory and (n, D) segment tokens -> the next (M, D) memory."""
        x = torch.cat([memory, tokens + self.segment_embed])[None]
        for block in self.blocks:
            x = block(x)
        return x[0, : self.num_memory]

    def refresh(self, memory: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """Retrieval: the memory attends to every memory in the cache (S*M, D)."""
        return memory + self.retrieve(self.norm_q(memory)[None], context=self.norm_kv(cache)[None])[0]

    def start(self) -> dict:
        """A fresh state for reading a video segment by segment (``update``)."""
        return {"memory": self.memory, "cache": [], "segments": 0}

    def update(self, state: dict, tokens: torch.Tensor) -> dict:
        """The state after one more segment's (n, D) tokens: recurrence, then retrieval."""
        memory = self.step(state["memory"], tokens.to(self.memory.dtype))
        cache = state["cache"] + [memory]
        return {"memory": self.refresh(memory, torch.cat(cache)), "cache": cache, "segments": state["segments"] + 1}

    def read(self, state: dict) -> torch.Tensor:
        """The (M, D) tokens the language model sees."""
        return self.out_norm(state["memory"])

    def forward(self, segments: list[torch.Tensor]) -> torch.Tensor:
        if not segments:
            raise ConfigError("the memory bridge needs at least one segment")
        state = self.start()
        for tokens in segments:
            state = self.update(state, tokens)
        return self.read(state)
