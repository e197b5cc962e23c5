"""Keep secrets (``SWANLAB_API_KEY``) out of saved configs, logs, checkpoints and the tracker.

Two ways a key could leak: typed into an override (``tracker.description=$SWANLAB_API_KEY``,
expanded by the shell, which Hydra would save in ``.hydra/``) or interpolated
(``${oc.env:SWANLAB_API_KEY}``, which Hydra saves unresolved but the resolved config sent to
the tracker would hold). The first is refused before Hydra starts; the second is masked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from typedexp.errors import ConfigError
from typedexp.tracking.swanlab_tracker import API_KEY_VARIABLE

SECRET_VARIABLES = (API_KEY_VARIABLE,)
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; no real key is that short


def secret_values() -> list[str]:
    values = (os.environ.get(name, "") for name in SECRET_VARIABLES)
    return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


def refuse_secrets_in_overrides(overrides: Sequence[str]) -> None:
    for secret in secret_values():
        for override in overrides:
            if secret in override:
                key = override.partition("=")[0]
                raise ConfigError(
                    f"{key}: the value contains {API_KEY_VARIABLE}; secrets are never put in configs "
                    "(Hydra saves overrides in .hydra/); SwanLab reads the key from the environment"
                )


def redact(value: object) -> object:
    """``value`` (plain containers) with every secret's text replaced by ``***``."""
    secrets = secret_values()
    if not secrets:
        return value
    return _mask(value, secrets)


def _mask(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: _mask(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, secrets) for item in value]
    return value
