"""`python -m rnngen` (and `torchrun -m rnngen`) runs the command-line interface."""

from rnngen.cli.main import main

main()
