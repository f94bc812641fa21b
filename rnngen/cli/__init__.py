"""The `rnngen` command line; the only layer that parses options or renders to the terminal."""
