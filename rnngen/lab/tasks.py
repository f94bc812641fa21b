"""The lab's synthetic tasks, each built to probe one limit of recurrence, with its memoryless baseline.

Every task draws its examples from a `torch.Generator` (the same seed, the same data), says how a model's
outputs are scored, and computes its own memoryless baseline twice: as the published formula (`baseline`) and as
the predictor that reaches it without reading the sequence (`memoryless`), so a test can check one against the other.

- `Adding` (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly & Hinton 2015): two channels, values from
  U[0, 1] and a marker channel with exactly two 1s; the target is the sum of the two marked values, scored by mean
  squared error at the last step. Predicting 1 always scores Var(u1 + u2) = 2/12 = 1/6.
- `Copy` (Arjovsky, Shah & Bengio 2016): ten symbols from an alphabet of eight, T - 1 blanks, a delimiter and ten
  blanks; the ten symbols must be repeated in the last ten steps. Cross-entropy over all T + 20 steps; predicting
  blanks, then a uniform guess over the eight symbols, scores 10 ln 8 / (T + 20).
- `Recall` (associative recall, as in H3 (Fu et al. 2023) and Zoology's MQAR (Arora et al. 2023)): N key-value
  pairs k1 v1 ... kN vN, then the N keys again in another order; at each query the answer is the value that key
  was paired with. Scored by accuracy at the queries; a guess that ignores the pairs is right 1 time in `values`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100  # a target position that is not scored (cross_entropy's ignore_index)
NEG = -1e9  # the logit of a class the memoryless predictor rules out (exp(NEG) is 0, without infinities)


@dataclass(frozen=True)
class Adding:
    """The adding problem at sequence length `length` >= 2 (a marker in each half, as in Bai et al.'s code)."""

    length: int
    name = "adding"
    metric = "mse"  # lower is better
    inputs = 2  # channels of a float input
    outputs = 1  # the prediction, read at the last step

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` sequences [n, T, 2] and their targets [n]."""
        values = torch.rand(n, self.length, generator=generator)
        half = self.length // 2
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, self.length, (n,), generator=generator)
        markers = torch.zeros(n, self.length)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        return torch.stack([values, markers], -1), values[rows, first] + values[rows, second]

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """A model's outputs [n, T, 1] -> its answers [n] (the last step)."""
        return outputs[:, -1, 0]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.predictions(outputs), targets)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return self.loss(outputs, targets).item()

    @property
    def baseline(self) -> float:
        """The memoryless predictor's MSE: Var(u1 + u2) for u ~ U[0, 1] is 2/12."""
        return 2 / 12

    def memoryless(self, inputs: torch.Tensor) -> torch.Tensor:
        """Outputs that ignore the inputs: always E[u1 + u2] = 1."""
        return torch.ones(inputs.size(0), inputs.size(1), 1)

    def oracle(self, inputs: torch.Tensor) -> torch.Tensor:
        """Outputs that read the answer off the sequence: the sum of the marked values at every step."""
        total = (inputs[..., 0] * inputs[..., 1]).sum(1)
        return total[:, None, None].expand(-1, inputs.size(1), 1)


@dataclass(frozen=True)
class Copy:
    """The copy-memory task with `length` = T blanks between the symbols and their recall (T + 20 steps)."""

    length: int
    symbols: int = 8
    remember: int = 10
    name = "copy"
    metric = "cross-entropy"

    @property
    def blank(self) -> int:
        return 0

    @property
    def delimiter(self) -> int:
        return self.symbols + 1

    @property
    def inputs(self) -> int:
        return self.symbols + 2  # a vocabulary: blank, the symbols 1..8, the delimiter

    @property
    def outputs(self) -> int:
        return self.symbols + 2

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` sequences [n, T + 20] of token ids and their targets [n, T + 20]."""
        steps = self.length + 2 * self.remember
        symbols = torch.randint(1, self.symbols + 1, (n, self.remember), generator=generator)
        inputs = torch.full((n, steps), self.blank)
        inputs[:, : self.remember] = symbols
        inputs[:, self.length + self.remember - 1] = self.delimiter
        targets = torch.full((n, steps), self.blank)
        targets[:, -self.remember :] = symbols
        return inputs, targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1))

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return self.loss(outputs, targets).item()

    @property
    def baseline(self) -> float:
        """Blanks for sure, then a uniform guess among the symbols: remember * ln(symbols) / (T + 20)."""
        return self.remember * math.log(self.symbols) / (self.length + 2 * self.remember)

    def memoryless(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits that know the position only: a blank until the recall, then any of the symbols."""
        logits = torch.full((*inputs.shape, self.outputs), NEG)
        logits[:, : -self.remember, self.blank] = 0.0
        logits[:, -self.remember :, 1 : self.symbols + 1] = 0.0
        return logits

    def oracle(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits that copy the first symbols to the recall: what a perfect memory would output."""
        targets = torch.full(inputs.shape, self.blank)
        targets[:, -self.remember :] = inputs[:, : self.remember]
        return F.one_hot(targets, self.outputs).float() * 50.0


@dataclass(frozen=True)
class Recall:
    """Associative recall with `length` = N key-value pairs, then the N keys again as queries (3N tokens)."""

    length: int
    keys: int = 64
    values: int = 16
    name = "recall"
    metric = "accuracy"  # higher is better

    @property
    def inputs(self) -> int:
        return self.keys + self.values  # a vocabulary: keys 0..keys-1, then the values

    @property
    def outputs(self) -> int:
        return self.keys + self.values

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` sequences [n, 3N] and their targets [n, 3N]: the value at each query, IGNORE elsewhere."""
        pairs = self.length
        keys = torch.rand(n, self.keys, generator=generator).argsort(1)[:, :pairs]  # distinct keys per sequence
        values = self.keys + torch.randint(0, self.values, (n, pairs), generator=generator)
        order = torch.rand(n, pairs, generator=generator).argsort(1)
        inputs = torch.cat([torch.stack([keys, values], 2).reshape(n, 2 * pairs), keys.gather(1, order)], 1)
        targets = torch.full_like(inputs, IGNORE)
        targets[:, 2 * pairs :] = values.gather(1, order)
        return inputs, targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1), ignore_index=IGNORE)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        asked = targets != IGNORE
        return (outputs.argmax(-1)[asked] == targets[asked]).float().mean().item()

    @property
    def baseline(self) -> float:
        """A guess that ignores the pairs is right one time in `values`."""
        return 1 / self.values

    def memoryless(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits that ignore the pairs: always the first value."""
        logits = torch.zeros(*inputs.shape, self.outputs)
        logits[..., self.keys] = 1.0
        return logits

    def oracle(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits that look each query up in the pairs."""
        pairs = self.length
        keys, values = inputs[:, 0 : 2 * pairs : 2], inputs[:, 1 : 2 * pairs : 2]
        queries = inputs[:, 2 * pairs :]
        found = (queries[:, :, None] == keys[:, None, :]).float().argmax(-1)
        answers = torch.zeros_like(inputs)
        answers[:, 2 * pairs :] = values.gather(1, found)
        return F.one_hot(answers, self.outputs).float() * 50.0


TASKS = {"adding": Adding, "copy": Copy, "recall": Recall}
