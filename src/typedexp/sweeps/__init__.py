"""Many runs at once: the sweep summary (a Hydra callback), the Optuna sweeper and the per-epoch
hand-over between a trial and its sweeper."""
