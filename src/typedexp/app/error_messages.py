"""Turn Hydra / OmegaConf exceptions into one line that names the field and what is allowed."""

from __future__ import annotations

import errno
import os
import re

from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from typedexp.core.errors import find_user_error
from typedexp.app.guards import allowed_fields, suggestion
from typedexp.core.report import one_line
from typedexp.core.resources import FULL_DISK, full_disk_message


_DELETION = re.compile(r"Could not delete '~?([\w.]+)")


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()


def describe(error: BaseException) -> str:
    """One line for ``error``: the TypedexpError inside it, or Hydra's cause rephrased.

    Long values quoted in the line are shortened (``report.one_line``).
    """
    return one_line(_describe(error))


def _describe(error: BaseException) -> str:
    user_error = find_user_error(error)
    if user_error is not None:
        return str(user_error)
    full_disk = _full_disk(error)
    if full_disk is not None:
        return full_disk
    if isinstance(error, MissingConfigException):
        return describe_missing_option(error)
    if isinstance(error, OverrideParseException):
        return (
            f"cannot parse override {error.override!r}: {first_line(str(error))}; quote a value that holds "
            "spaces, quotes, commas, brackets or non-ASCII letters: key='value'"
        )
    if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:  # Hydra looked for a group file
        name = os.path.basename(str(error.filename))
        return f"{name}: no such field or config group (a name of {len(name)} characters)"
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        return describe_omegaconf(cause)
    if isinstance(error, OmegaConfBaseException):
        return describe_omegaconf(error)
    deletion = describe_deletion(error) if isinstance(error, HydraException) else None
    if deletion is not None:
        return deletion
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
        return one_line(str(user_error))
    if _full_disk(error) is not None:
        return describe(error)
    current: BaseException | None = error
    for _ in range(10):  # a cause chain is short; the bound guards against a cycle
        if current is None:
            break
        if isinstance(current, OmegaConfBaseException):
            return describe(error)
        current = current.__cause__ or current.__context__
    return None


def error_line(error: BaseException) -> str:
    """The one line a failed job reports: the user's mistake, else the crash's type and message."""
    return user_message(error) or describe(error)


def _full_disk(error: BaseException) -> str | None:
    """A full disk met where typedexp does not write itself (Hydra writing ``.hydra/``)."""
    current: BaseException | None = error
    for _ in range(10):  # a cause chain is short; the bound guards against a cycle
        if current is None:
            return None
        if isinstance(current, OSError) and current.errno in FULL_DISK:
            where = os.path.dirname(str(current.filename)) if current.filename else "the output directory"
            return full_disk_message(where or ".")
        current = current.__cause__ or current.__context__
    return None


def group_options(name: str) -> list[str] | None:
    """The options of config group ``name`` (``model`` -> cnn, large, small), or None."""
    entries = ConfigStore.instance().repo.get(name)
    if not isinstance(entries, dict):
        return None
    return sorted(str(entry).removesuffix(".yaml") for entry in entries if str(entry).endswith(".yaml"))


def required_group(group: str, options: list[str]) -> str:
    return (
        f"{group}: the {group} group is required and cannot be deleted with ~{group}; "
        f"choose an option with {group}=<option>, one of: {', '.join(options)}"
    )


def describe_deletion(error: HydraException) -> str | None:
    """``~dataset=x``: Hydra says "No match in the defaults list"; the group is required anyway."""
    match = _DELETION.search(str(error))
    options = group_options(match.group(1)) if match else None
    return required_group(match.group(1), options) if match and options else None


# Options that a Hydra plugin from one of typedexp's extras registers (pyproject.toml): without the
# plugin installed Hydra knows no such option, so the line says what to install.
# (typedexp's own hydra/sweeper=optuna is always there; without Optuna it says to install it: hpo.py.)
PLUGIN_EXTRAS = {
    "hydra/launcher": {"joblib": "joblib", "submitit_local": "slurm", "submitit_slurm": "slurm", "ray": "ray"},
}


def describe_missing_option(error: MissingConfigException) -> str:
    group, _, option = (error.missing_cfg_file or "").rpartition("/")
    extra = PLUGIN_EXTRAS.get(group, {}).get(option)
    if extra is not None:
        installed = f" (installed: {', '.join(sorted(error.options))})" if error.options else ""
        return f"{group}={option}: its Hydra plugin is not installed; pip install 'typedexp[{extra}]'{installed}"
    if error.options:
        return f"{group}={option}: no such option; choose one of: {', '.join(sorted(error.options))}"
    return f"cannot find config {error.missing_cfg_file!r}: {first_line(str(error))}"


def describe_omegaconf(error: OmegaConfBaseException) -> str:
    # OmegaConf exceptions carry the offending key and node as attributes set at raise time.
    full_key = str(getattr(error, "full_key", "") or "")
    message = first_line(str(getattr(error, "msg", "") or str(error)))
    if isinstance(error, MissingMandatoryValue):
        options = group_options(full_key) if "." not in full_key else None
        if options:  # `~model` left a required group without an option
            return required_group(full_key, options)
        return f"{full_key} is required: set it with {full_key}=VALUE"
    if isinstance(error, (ConfigAttributeError, ConfigKeyError)):
        key = str(getattr(error, "key", full_key))
        parent = getattr(error, "parent_node", None)
        fields = allowed_fields(parent) if isinstance(parent, DictConfig) else None
        if fields is not None:
            prefix, _, _ = full_key.rpartition(".")
            where = prefix or "the top level"
            return (
                f"{full_key}: unknown field; {suggestion(key, fields, parent)}"
                f"fields of {where}: {', '.join(fields)}"
            )
        return f"{full_key}: {message}"
    if isinstance(error, ValidationError):
        value = getattr(error, "value", None)
        return f"{full_key}={value}: {message}"
    return f"{full_key}: {message}" if full_key else message
