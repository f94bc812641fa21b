"""What a run trains: the model on its device, the wrapper that runs it (compiled, DDP), the optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from rnngen.config import ModelConfig, TrainConfig
from rnngen.models import RecurrentLM, build
from rnngen.models import device as devices
from rnngen.models.checkpoint import load, load_weights
from rnngen.training.distributed import World
from rnngen.training.optim import adamw


@dataclass
class TrainingSetup:
    """`model` holds the weights (saved, evaluated); `train_model` runs the training forward pass:
    the same model, compiled with `--compile` and wrapped in DDP with several processes."""

    device: torch.device
    model: RecurrentLM
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer


def build_for_training(
    model_cfg: ModelConfig, cfg: TrainConfig, world: World, init_from: Path | None = None
) -> TrainingSetup:
    """The model seeded with `cfg.seed` (the same weights on every rank), wrapped, with AdamW over its parameters
    (weight decay on the weight matrices only).

    `init_from` (fine-tuning) starts from the weights of that checkpoint file instead of random ones."""
    device = devices.pick(cfg.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    torch.manual_seed(cfg.seed)
    model = build(model_cfg).to(device)
    if init_from is not None:
        load_weights(model, load(init_from, device), init_from)
    if world.size > 1:
        torch.manual_seed(cfg.seed + world.rank)  # each rank its own dropout masks
    train_model = torch.compile(model) if cfg.compile else model
    if world.size > 1:
        # DDP starts every rank from rank 0's weights and averages gradients during backward.
        train_model = DistributedDataParallel(
            train_model, device_ids=[world.local_rank] if device.type == "cuda" else None
        )
    return TrainingSetup(device, model, train_model, adamw(model, cfg, device))
