"""Errors an operator can act on: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class LakehouseError(Exception):
    """A failure with a message meant for the operator (no traceback needed)."""

    exit_code = 2


class ConfigError(LakehouseError):
    """A bad setting, flag, conf file or environment."""


class SourceError(LakehouseError):
    """The landing zone (--source) is missing, empty or unreachable."""


class TableNotFound(LakehouseError):
    """A table that the command needs does not exist (yet) in the warehouse."""


class RunLockedError(LakehouseError):
    """Another run holds the warehouse's run lock."""

    exit_code = 3
