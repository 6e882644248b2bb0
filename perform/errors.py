"""Errors of the instrument. Each says what was wrong, what is available and how to fix it."""


class JamError(Exception):
    """Base class for every error a user can cause; entry points print it and exit with status 2."""


class ConfigError(JamError):
    """A config file or command-line setting is missing, unknown or of the wrong type."""


class ModelFileError(JamError):
    """An .onnx model file is missing, corrupt, foreign or of a newer format."""


class PortError(JamError):
    """A MIDI port could not be found, opened or kept."""


class MidiFileError(JamError):
    """A MIDI file could not be read."""


class VocabError(JamError):
    """A vocabulary is malformed or of a newer format."""
