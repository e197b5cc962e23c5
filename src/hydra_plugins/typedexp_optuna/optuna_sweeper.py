"""``hydra/sweeper=optuna``: Hydra instantiates plugin classes only from ``hydra_plugins.*``.

The sweeper itself is ``typedexp.sweeps.hpo.OptunaSweeper``; this module only gives it a name Hydra
accepts. Hydra imports every module here when it starts, so nothing heavy is imported (Optuna is
imported when a sweep starts).
"""

from typedexp.sweeps.hpo import OptunaSweeper as _Sweeper


class OptunaSweeper(_Sweeper):
    """See ``typedexp.sweeps.hpo.OptunaSweeper``."""
