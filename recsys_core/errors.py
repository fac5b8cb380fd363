"""User-facing errors: one clear line each, never a traceback."""
from __future__ import annotations


class RecTuneError(Exception):
    """An error whose message is meant for the person using the tool."""

    exit_code = 2

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        #: the option the error concerns (e.g. "base"), so a UI can point at its widget
        self.field = field


class DataError(RecTuneError):
    """The input data cannot be used as given; the message says where and why."""


class ConfigError(RecTuneError):
    """An option or configuration value is invalid."""


class UnknownIdError(RecTuneError):
    """A user or item id that the dataset or model does not know."""


class ResourceError(RecTuneError):
    """The work would need more memory (or time) than this machine has; refused before allocating."""
