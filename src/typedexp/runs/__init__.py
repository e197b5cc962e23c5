"""A run directory's life on disk: its layout and lock, the record read back from it, the
checkpointing session and resume, and the commands that read many runs (``typedexp runs``,
``--plot``, ``typedexp dashboard``)."""
