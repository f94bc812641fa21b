"""Where prepared corpora and training runs live, unless a caller names a folder."""

from __future__ import annotations

import os
from pathlib import Path

CORPORA_ENV, CHECKPOINTS_ENV = "RNNGEN_CORPORA", "RNNGEN_CHECKPOINTS"
DEFAULT_CORPORA, DEFAULT_CHECKPOINTS = "corpora", "checkpoints"


def corpora_dir(folder: str | os.PathLike | None = None) -> Path:
    """Where prepared corpora live: `folder`, else $RNNGEN_CORPORA, else ./corpora."""
    return Path(folder or os.environ.get(CORPORA_ENV, DEFAULT_CORPORA))


def checkpoints_dir(folder: str | os.PathLike | None = None) -> Path:
    """Where training runs live: `folder`, else $RNNGEN_CHECKPOINTS, else ./checkpoints."""
    return Path(folder or os.environ.get(CHECKPOINTS_ENV, DEFAULT_CHECKPOINTS))
