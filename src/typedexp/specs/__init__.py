"""The typed specs that are the configs: ``Experiment`` and the model, optimizer and schedule
options. Each is a frozen dataclass with a ``build()``; the data and tracker specs live in
``data/`` and ``tracking/`` beside the code they start."""
