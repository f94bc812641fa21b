"""Contiguous token streams for truncated backpropagation through time.

The token array is cut into `rows` equal streams, one per batch row (like pytorch/examples'
`batchify`). Window i of every row follows window i-1 of the same row in the text, so the hidden
state carried from one window to the next really is the state of the text that came before.
"""

from __future__ import annotations

import numpy as np

from rnngen.errors import RnngenError, param


class TokenStream:
    """Windows of `seq_len` inputs (and the next-token targets) from `rows` contiguous streams.

    `first_row`/`total_rows` select this process's rows when several processes share the data
    (distributed training): rank r reads rows [r*rows, (r+1)*rows) of `total_rows`.
    """

    def __init__(self, tokens: np.ndarray, rows: int, seq_len: int, first_row: int = 0, total_rows: int | None = None):
        total_rows = total_rows or rows
        self.tokens = tokens
        self.seq_len = seq_len
        self.row_len = len(tokens) // total_rows
        self.windows = (self.row_len - 1) // seq_len
        if self.windows < 1:
            raise RnngenError(
                f"the corpus has {len(tokens)} training tokens, too few for {total_rows} rows of "
                f"{seq_len + 1} tokens: use a smaller {param('batch_size')} or {param('seq_len')}"
            )
        self.row_offsets = (np.arange(rows) + first_row) * self.row_len

    def window(self, index: int) -> np.ndarray:
        """Tokens [rows, seq_len + 1] of window `index` (wrapping around after each epoch)."""
        offset = (index % self.windows) * self.seq_len
        rows = [self.tokens[s + offset : s + offset + self.seq_len + 1] for s in self.row_offsets]
        return np.stack(rows).astype(np.int64)

    def starts_epoch(self, index: int) -> bool:
        """True when window `index` starts the streams again from the beginning."""
        return index % self.windows == 0

    def epoch(self, index: int) -> float:
        return index / self.windows
