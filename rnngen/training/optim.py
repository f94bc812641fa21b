"""The optimizer: AdamW with weight decay on weight matrices only (nanoGPT's two parameter groups).

Decay pulls a parameter towards zero. For a matrix that is a prior on small weights; for a bias
it is a wrong target: it drags every gate's learned offset (the forget gate's included) back to 0,
and decaying a norm's gain shrinks the signal it exists to scale.
"""

from __future__ import annotations

import torch
from torch import nn

from rnngen.config import TrainConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices (embeddings, recurrent and head weights) decay; vectors (biases, gains) do not.

    A tied head shares the embedding's tensor, which `parameters()` yields once, so it is in one group.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def adamw(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """The training optimizer; the fused CUDA kernel where the device has it."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr, **fused)
