"""The few array operations sampling and beam search need, for NumPy arrays and for torch tensors.

Completion on the CPU runs on NumPy arrays, so that it never imports torch; on a GPU it runs on
torch tensors where the model's logits are. The sampling filters, the draw and beam search are
written once against `ops_for(array)`, which returns the backend of the array they are given.
Both backends return results of the same meaning; only the random numbers differ: NumPy's PCG64
and torch's Philox/MT streams give different samples for one seed, each the same on every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Prompt tokens per priming pass, on either backend: memory stays flat in the prompt's length
# (1024 x 4 x 512 floats of the cpu preset's LSTM input projections are 8 MB).
PRIME_CHUNK = 1024
# The block every reading of a prompt is aligned to, on either backend, so that where a read is cut changes no number:
# NumPy computes the input projections as products of this many rows (a token at position p is row p % PRIME_BLOCK;
# 64 rows cost little more a token than a whole chunk's product, and a lone token pays for 64), torch ends its passes
# at multiples of it, and the server reads prompts in slices of it between steps (a 2x512 LSTM reads 64 tokens in a
# few milliseconds).
PRIME_BLOCK = 64


class NumpyOps:
    """Array operations on NumPy arrays (float32 logits, int64 ids)."""

    @staticmethod
    def floats(x: np.ndarray) -> np.ndarray:
        return np.array(x, dtype=np.float32)  # a copy: the filters write into it

    @staticmethod
    def ids(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    @staticmethod
    def floats_like(values: list[float], like: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32)

    @staticmethod
    def flags(n: int) -> np.ndarray:
        return np.zeros(n, dtype=bool)

    @staticmethod
    def where(cond: np.ndarray, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    @staticmethod
    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    @staticmethod
    def topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k largest values of a 1-D array and their indices, largest first (ties: lower index first)."""
        top = np.argpartition(-x, k - 1)[:k] if k < x.size else np.arange(x.size)
        top = top[np.lexsort((top, -x[top]))]
        return x[top], top

    @staticmethod
    def order(x: np.ndarray) -> np.ndarray:
        """Indices that sort a 1-D array, largest first (ties: lower index first)."""
        return np.argsort(-x, kind="stable")

    @staticmethod
    def column(values: np.ndarray, like: np.ndarray) -> np.ndarray:
        """Per-row values [rows] as a column [rows, 1] of `like`'s type, to broadcast over a row's entries."""
        return np.asarray(values, dtype=like.dtype)[:, None]

    @staticmethod
    def index(values: list[int], like: np.ndarray) -> np.ndarray:
        """Row indices, for arrays like `like`."""
        return np.asarray(values, dtype=np.int64)

    @staticmethod
    def positions(n: int, like: np.ndarray) -> np.ndarray:
        """0 .. n-1 as a row [1, n]."""
        return np.arange(n)[None]

    @staticmethod
    def take(x: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Each row of `x` read in its row of `order`."""
        return np.take_along_axis(x, order, -1)

    @staticmethod
    def unsort(order: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`values` given in each row's `order`, put back in the rows' own order (`take`'s inverse)."""
        out = np.empty_like(values)
        np.put_along_axis(out, order, values, -1)
        return out

    @staticmethod
    def argmax(x: np.ndarray) -> np.ndarray:
        return x.argmax(-1)

    @staticmethod
    def row_min(x: np.ndarray) -> np.ndarray:
        return x.min(-1)

    @staticmethod
    def row_max(x: np.ndarray) -> np.ndarray:
        return x.max(-1)

    @staticmethod
    def pad_columns(x: np.ndarray, n: int) -> np.ndarray:
        """`x` [rows, columns] with `n` columns of zeros after its own."""
        return np.pad(x, ((0, 0), (0, n))) if n else x

    @staticmethod
    def concat(parts: list[np.ndarray]) -> np.ndarray:
        """Arrays stacked along their first dimension (rows)."""
        return np.concatenate(parts)

    @staticmethod
    def host(x: np.ndarray) -> np.ndarray:
        """`x` as a NumPy array on the host."""
        return x

    @staticmethod
    def generator(seed: int | None) -> np.random.Generator:
        return np.random.default_rng(None if seed is None else seed % 2**64)

    @staticmethod
    def uniform(generator: np.random.Generator) -> float:
        return float(generator.random())


class TorchOps:
    """The same operations on torch tensors, on the tensors' device."""

    def __init__(self):
        import torch

        self.torch = torch

    def floats(self, x):
        return x.float().clone()

    def ids(self, values: list[int], device: Any = "cpu"):
        return self.torch.tensor(values, dtype=self.torch.long, device=device)

    def floats_like(self, values: list[float], like):
        return self.torch.tensor(values, dtype=self.torch.float32, device=like.device)

    def flags(self, n: int, device: Any = "cpu"):
        return self.torch.zeros(n, dtype=self.torch.bool, device=device)

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def log_softmax(self, x):
        return self.torch.log_softmax(x.float(), -1)

    def softmax(self, x):
        return self.torch.softmax(x.float(), -1)

    def topk(self, x, k: int):
        """As `NumpyOps.topk`: ties go to the lower index (torch.topk leaves their order unspecified)."""
        top = self.torch.sort(x, descending=True, stable=True).indices[:k]
        return x[top], top

    def order(self, x):
        return self.torch.sort(x, descending=True, stable=True).indices

    def column(self, values: np.ndarray, like):
        return self.torch.as_tensor(values, dtype=like.dtype, device=like.device)[:, None]

    def index(self, values: list[int], like):
        return self.torch.tensor(values, dtype=self.torch.long, device=like.device)

    def positions(self, n: int, like):
        return self.torch.arange(n, device=like.device)[None]

    def take(self, x, order):
        return x.gather(-1, order)

    def unsort(self, order, values):
        return self.torch.empty_like(values).scatter_(-1, order, values)

    def argmax(self, x):
        return x.argmax(-1)

    def row_min(self, x):
        return x.min(-1).values

    def row_max(self, x):
        return x.max(-1).values

    def pad_columns(self, x, n: int):
        return self.torch.nn.functional.pad(x, (0, n)) if n else x

    def concat(self, parts: list):
        return self.torch.cat(parts)

    def host(self, x) -> np.ndarray:
        return x.cpu().numpy()

    def generator(self, seed: int | None, device: Any = "cpu"):
        generator = self.torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return generator

    def uniform(self, generator) -> float:
        return float(self.torch.rand(1, generator=generator, device=generator.device))


NUMPY = NumpyOps()
_torch_ops: TorchOps | None = None


def ops_for(array: Any) -> NumpyOps | TorchOps:
    """The backend of `array`: NumPy for NumPy arrays, torch (imported only then) for anything else."""
    global _torch_ops
    if isinstance(array, np.ndarray):
        return NUMPY
    if _torch_ops is None:
        _torch_ops = TorchOps()
    return _torch_ops
