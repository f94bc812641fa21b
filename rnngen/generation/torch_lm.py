"""A torch `RecurrentLM` behind the interface completion uses, for GPUs (and for tests on the CPU)."""

from __future__ import annotations

import numpy as np
import torch

from rnngen.generation.arrays import PRIME_BLOCK, PRIME_CHUNK, ops_for
from rnngen.models import RecurrentLM, State


class TorchLM:
    """`read` a prompt in fused passes, then `step` one token per row, on the model's device."""

    def __init__(self, model: RecurrentLM, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.ops = ops_for(torch.empty(0))

    # torch picks its kernels by a pass's length, so a state is the same in any read only where every read cuts
    # its passes: at multiples of this many tokens from the document's start.
    exact_every = PRIME_BLOCK

    def prime(self, ids: list[int], state: State | None = None, position: int = 0) -> tuple[torch.Tensor, State]:
        """Feed a prompt (at least one id) to one row: the next-token logits [vocab] and the state after it."""
        logits, state, _ = self.read(ids, state, position)
        return logits, state

    @torch.no_grad()
    def read(
        self, ids: list[int], state: State | None = None, position: int = 0, keep: int | None = None
    ) -> tuple[torch.Tensor, State, State | None]:
        """Feed `ids` (at least one) to one row from `state`, ids[0] standing at `position` in its document: the
        next-token logits [vocab], the state after them, and the state after the first `keep` ids where that is the
        end of a pass (a multiple of `exact_every` from the document's start, or all of them), else None.

        Each pass is fused and ends at such a multiple; the head runs on the last position only, so a long prompt
        never holds a [tokens, vocab] array.
        """
        align = min(PRIME_BLOCK, PRIME_CHUNK)
        done, kept = 0, None
        while done < len(ids):
            end = min(len(ids), done + align - (position + done) % align)
            chunk = torch.tensor([ids[done:end]], device=self.device)
            out, state = self.model.rnn(self.model.embedding(chunk), state)
            done = end
            if done == keep:
                kept = state
        return self.model.logits(out[0, -1]), state, kept

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
