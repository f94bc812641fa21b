"""rnngen's benchmark suite: `python -m benchmarks --help`. Never part of the test suite."""
