"""typedexp's Hydra plugins; Hydra scans the ``hydra_plugins`` namespace package for them."""
