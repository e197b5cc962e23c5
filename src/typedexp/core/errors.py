"""Exceptions that mean "the user asked for something we cannot do".

Everything below the CLI raises these with a message that is already one readable line;
only ``cli.py`` decides how to show them (one line on stderr, exit code 2).
"""

from __future__ import annotations


class TypedexpError(Exception):
    """A user-facing failure whose message is a complete, one-line explanation."""


class ConfigError(TypedexpError, ValueError):
    """A config value is out of range, inconsistent, or names something unavailable."""


class TrackerError(TypedexpError):
    """The experiment tracker cannot start as configured (missing API key, bad project name)."""


def find_user_error(error: BaseException) -> TypedexpError | None:
    """Return the TypedexpError that caused ``error``, if any.

    Hydra wraps exceptions raised while instantiating a config (``InstantiationException``),
    so a ``ConfigError`` from a spec's ``__post_init__`` arrives as the ``__cause__`` of another
    exception; walk the chain instead of matching only the outer type.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TypedexpError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class DataError(TypedexpError):
    """A dataset's files are missing, corrupt, or cannot be downloaded."""


class CheckpointError(ConfigError):
    """A checkpoint cannot be used: missing, truncated, corrupt, or made by another model/config."""


class ResourceError(TypedexpError):
    """Memory or disk space ran out; the message names the config fields or the directory."""


class TrainingDiverged(TypedexpError):
    """The loss (or the weights) stopped being finite; the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved.

    A ``KeyboardInterrupt`` so that it passes through Hydra's and the task's ``except Exception``
    handlers untouched; the CLI prints it as one line and exits with ``128 + signum``.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them
