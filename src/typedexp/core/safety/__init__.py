"""What a config may do: the ``_target_`` allow-list and the masking of secrets.

Plain functions over strings and plain containers (no Hydra), used by the config check that runs
on every composed config (``typedexp.app.config_guard``), by the task and by the CLI.
"""

from typedexp.core.safety.allowlist import AllowList, refuse_unless_permitted
from typedexp.core.safety.secrets import mask, redact, refuse_secrets_in_overrides, secret_values

__all__ = ["AllowList", "mask", "redact", "refuse_secrets_in_overrides", "refuse_unless_permitted", "secret_values"]
