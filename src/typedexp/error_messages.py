"""Turn Hydra / OmegaConf exceptions into one line that names the field and what is allowed."""

from __future__ import annotations

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from typedexp.errors import find_user_error
from typedexp.guards import allowed_fields, suggestion


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()


def describe(error: BaseException) -> str:
    """One line for ``error``: the TypedexpError inside it, or Hydra's cause rephrased."""
    user_error = find_user_error(error)
    if user_error is not None:
        return str(user_error)
    if isinstance(error, MissingConfigException):
        return describe_missing_option(error)
    if isinstance(error, OverrideParseException):
        return f"cannot parse override: {first_line(str(error))}"
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        return describe_omegaconf(cause)
    if isinstance(error, OmegaConfBaseException):
        return describe_omegaconf(error)
    if isinstance(error, HydraException):  # Hydra's own messages are user-facing; join their lines
        return " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {first_line(str(error))} (HYDRA_FULL_ERROR=1 shows the traceback)"


def user_message(error: BaseException) -> str | None:
    """The one line for a failed job if the user can fix it, else None (a real crash).

    User mistakes are ``TypedexpError``s and OmegaConf errors raised while the job reads its
    config (e.g. ``model.hidden=???`` left missing), wherever in the cause chain they sit.
    """
    user_error = find_user_error(error)
    if user_error is not None:
        return str(user_error)
    current: BaseException | None = error
    for _ in range(10):  # a cause chain is short; the bound guards against a cycle
        if current is None:
            break
        if isinstance(current, OmegaConfBaseException):
            return describe(error)
        current = current.__cause__ or current.__context__
    return None


def describe_missing_option(error: MissingConfigException) -> str:
    group, _, option = (error.missing_cfg_file or "").rpartition("/")
    if error.options:
        return f"{group}={option}: no such option; choose one of: {', '.join(sorted(error.options))}"
    return f"cannot find config {error.missing_cfg_file!r}: {first_line(str(error))}"


def describe_omegaconf(error: OmegaConfBaseException) -> str:
    # OmegaConf exceptions carry the offending key and node as attributes set at raise time.
    full_key = str(getattr(error, "full_key", "") or "")
    message = first_line(str(getattr(error, "msg", "") or str(error)))
    if isinstance(error, MissingMandatoryValue):
        return f"{full_key}: a value is required (set it with {full_key}=...)"
    if isinstance(error, (ConfigAttributeError, ConfigKeyError)):
        key = str(getattr(error, "key", full_key))
        parent = getattr(error, "parent_node", None)
        fields = allowed_fields(parent) if isinstance(parent, DictConfig) else None
        if fields is not None:
            prefix, _, _ = full_key.rpartition(".")
            where = prefix or "the top level"
            return (
                f"{full_key}: unknown field; {suggestion(key, fields)}"
                f"fields of {where}: {', '.join(fields)}"
            )
        return f"{full_key}: {message}"
    if isinstance(error, ValidationError):
        value = getattr(error, "value", None)
        return f"{full_key}={value}: {message}"
    return f"{full_key}: {message}" if full_key else message
