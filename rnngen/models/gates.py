"""Cutting a stacked gate tensor into its gates, by name, in the order the stored weights stack them."""

from __future__ import annotations

import torch

from rnngen.store.schema import GATES


def split_gates(kind: str, stacked: torch.Tensor, dim: int = -1) -> dict[str, torch.Tensor]:
    """`stacked` (a gate projection, weight or bias of a `kind` layer) as {gate: its part}, cut along `dim`
    in the order `rnngen.store.schema.GATES` lists the gates."""
    return dict(zip(GATES[kind], stacked.chunk(len(GATES[kind]), dim)))
