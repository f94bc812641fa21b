"""A torch `RecurrentLM` behind the interface completion uses, for GPUs (and for tests on the CPU)."""

from __future__ import annotations

import numpy as np
import torch

from rnngen.generation.arrays import PRIME_CHUNK, ops_for
from rnngen.models import RecurrentLM, State


class TorchLM:
    """`prime` a prompt in fused passes, then `step` one token per row, on the model's device."""

    def __init__(self, model: RecurrentLM, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.ops = ops_for(torch.empty(0))

    @torch.no_grad()
    def prime(self, ids: list[int], state: State | None = None) -> tuple[torch.Tensor, State]:
        """Feed a prompt (at least one id) to one row: the next-token logits [vocab] and the state after it.

        Each chunk is one fused pass; the head runs on the last position only, so a long prompt
        never holds a [tokens, vocab] array.
        """
        for start in range(0, len(ids), PRIME_CHUNK):
            chunk = torch.tensor([ids[start : start + PRIME_CHUNK]], device=self.device)
            out, state = self.model.rnn(self.model.embedding(chunk), state)
        return self.model.logits(out[0, -1]), state

    @torch.no_grad()
    def logits_after_each(self, ids: list[int], state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed up to `PRIME_CHUNK` ids to one row in one fused pass: the next-token logits after each, as a
        float32 NumPy array [len(ids), vocab], and the state."""
        logits, state = self.model(torch.tensor([ids], device=self.device), state)
        return logits[0].float().cpu().numpy(), state

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Feed one token per row (ids [batch]): next-token logits [batch, vocab] and the new state."""
        logits, state = self.model(ids[:, None].to(self.device), state)
        return logits[:, -1], state

    def ids(self, values: list[int]) -> torch.Tensor:
        return self.ops.ids(values, self.device)

    def flags(self, n: int) -> torch.Tensor:
        return self.ops.flags(n, self.device)

    def generator(self, seed: int | None) -> torch.Generator:
        """A random generator on the model's device: seeded for reproducible samples, else from the OS."""
        return self.ops.generator(seed, self.device)
