"""typedexp: typed PyTorch experiments.

The public API is small: ``launch(overrides)`` runs an experiment exactly as the ``typedexp``
command would and returns a typed ``RunResult``. Configs live in ``typedexp.configs``.
"""

from typedexp.errors import ConfigError, TrackerError, TypedexpError
from typedexp.launch import launch
from typedexp.task import RunResult

__all__ = ["ConfigError", "RunResult", "TrackerError", "TypedexpError", "launch"]
