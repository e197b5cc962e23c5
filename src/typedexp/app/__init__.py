"""What faces a person or Hydra: the command line, ``launch()``, the checks before and during
Hydra's composition, the config store, and the task that turns a composed config into a run.

The only package that imports Hydra's runtime; everything below takes typed values.
"""
