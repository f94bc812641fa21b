"""torchrun without its own output: `python -m rnngen.training.torchrun ARGS` runs `torch.distributed.run ARGS`
with its log lines and banner hidden and a failed worker ending in an exit status instead of torchrun's
traceback and failure report. What went wrong is the workers' to say, once (`distributed.relaunch`)."""

from __future__ import annotations

import logging
import signal
import sys

from rnngen.training.workers import note_first_failure


def main(args: list[str]) -> int:
    """Run torchrun with `args`; 0, 1 when a worker failed, or 128 + the signal that stopped torchrun."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's modules set their loggers' levels when imported; quiet all of them, and their parent.
    for name in ["torch.distributed", *logging.root.manager.loggerDict]:
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parse_args(args))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        note_first_failure(rank, failure.exitcode)
        return 1
    except SignalException as exc:
        return 128 + signal.Signals(exc.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
