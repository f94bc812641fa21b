"""The lab's reference model: a small causal attention stack (the lecture's next section), lab-only.

Pre-norm blocks, each multi-head causal self-attention (PyTorch's `F.scaled_dot_product_attention`, no softmax
written out here) and a feed-forward layer, after learned position embeddings. It has the interface of the
recurrent stacks (`forward(x, state) -> (out, state)`, batch first), with no state: every step sees every
earlier step directly, which is what the recurrent models lack (the lecture's limits (2) and (3)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head attention where step t attends to steps 1..t."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = self.qkv(x).view(batch, steps, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(mixed.transpose(1, 2).reshape(batch, steps, width))


class CausalAttention(nn.Module):
    """`layers` pre-norm blocks of causal attention and feed-forward, over inputs of up to `max_len` steps."""

    def __init__(self, width: int, layers: int = 2, heads: int = 2, max_len: int = 4096):
        super().__init__()
        self.positions = nn.Embedding(max_len, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.attentions = nn.ModuleList(CausalSelfAttention(width, heads) for _ in range(layers))
        self.ff_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.ffs = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        x = x + self.positions(torch.arange(x.size(1), device=x.device))
        for norm, attention, ff_norm, ff in zip(self.norms, self.attentions, self.ff_norms, self.ffs):
            x = x + attention(norm(x))
            x = x + ff(ff_norm(x))
        return self.final_norm(x), None
