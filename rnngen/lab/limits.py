"""The longest sequences the lab takes, without torch: checked before any memory is taken, and shown by
`rnngen lab --help`."""

# Over three times the full preset's longest trained length (adding at 600). Memory grows with it: attention over
# copy's 256 held-out sequences of 2,000 steps peaks at 1.1 GB on a CPU, and 100,000 steps ran out of memory.
MAX_LENGTH = 2000
# Speed's attention case learns a position embedding for each of this many steps (the full preset times 4,096).
MAX_SPEED_LENGTH = 8192
