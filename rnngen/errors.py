"""Errors a user can act on. The CLI prints their message as one line, without a traceback."""


class RnngenError(Exception):
    """A problem the user can fix; the message says what went wrong and how to fix it."""


class CorpusError(RnngenError):
    """The corpus source or a prepared corpus folder cannot be used."""


class CheckpointError(RnngenError):
    """A checkpoint is missing, corrupt, foreign or incompatible."""


class TrainingDiverged(RnngenError):
    """The loss or the gradients became non-finite."""
