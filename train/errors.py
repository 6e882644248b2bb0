"""Errors of training and corpus preparation; entry points print them and exit with status 2."""

from perform.errors import JamError


class TrainError(JamError):
    """Base class for training-side errors a user can cause."""


class CorpusError(TrainError):
    """A corpus path is missing or holds nothing readable."""


class CheckpointError(TrainError):
    """A checkpoint is missing, torn, foreign or of a newer format."""
