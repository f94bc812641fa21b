"""The lab's limits, without torch: checked before any memory is taken, and shown by `rnngen lab --help` (`MAX_LENGTH`
also bounds `rnngen gradients`)."""

# Over three times the full preset's longest trained length (adding at 600). Memory grows with it: attention over
# copy's 256 held-out sequences of 2,000 steps peaks at 1.1 GB on a CPU, and 100,000 steps ran out of memory.
MAX_LENGTH = 2000
# Speed's attention case learns a position embedding for each of this many steps (the full preset times 4,096).
MAX_SPEED_LENGTH = 8192
# Runs trained at once by default, at most: each worker process holds its own PyTorch (0.35 GB measured), and the
# quick form (about 400 s of CPU time, in runs of up to a minute) has little left to gain beyond four.
MAX_JOBS = 4
