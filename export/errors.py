"""Errors of the export; `python -m export` prints them and exits with status 2."""

from train.errors import TrainError


class ExportError(TrainError):
    """The export failed, or the written file does not match the checkpoint it came from."""
