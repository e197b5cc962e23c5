"""typedexp: typed PyTorch experiments.

The public API is small: ``launch(overrides)`` runs an experiment exactly as the ``typedexp``
command would and returns a typed ``RunResult``. Configs live in ``typedexp.configs``.
"""

from typedexp.errors import ConfigError, TrackerError, TypedexpError

try:
    # Hydra loads here (about 1 s), and both `typedexp` and `python -m typedexp` import this
    # package before the CLI's own Ctrl-C handler is in place.
    from typedexp.launch import launch
    from typedexp.task import RunResult
except KeyboardInterrupt:
    from typedexp.report import exit_if_interrupted_cli

    exit_if_interrupted_cli()
    raise

__all__ = ["ConfigError", "RunResult", "TrackerError", "TypedexpError", "launch"]
