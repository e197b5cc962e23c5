"""Keep secrets out of everything the program prints or writes.

A secret is the value of ``SWANLAB_API_KEY`` or of any environment variable whose name ends in
``KEY``, ``TOKEN``, ``SECRET`` or ``PASSWORD``. Two ways one could leak: typed into an override
(``tracker.description=$SWANLAB_API_KEY``, expanded by the shell, which Hydra would save in
``.hydra/``), refused before Hydra starts; or interpolated (``${oc.env:MY_TOKEN}``), which Hydra
saves unresolved but which resolves into error lines, ``--cfg job --resolve`` and the config sent
to the tracker: masked as ``***`` wherever text leaves the program (``mask``, ``redact``,
``MaskingStream``, ``mask_log_records``).

Reports (error, warning and log lines) also mask the value of every environment variable that an
``${oc.env:...}`` interpolation resolved in this process, secret-named or not: a report names the
field, not what the environment held (``mask_report``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from typedexp.core.errors import ConfigError

SECRET_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MASK = "***"
# Shorter values would mask ordinary words and numbers in every line; no real key is that short.
MIN_SECRET_LENGTH = 6
MIN_REPORTED_ENV_LENGTH = 3  # "1" or "on" from the environment would mask every digit or word
_resolved_from_environment: set[str] = set()  # filled by config_guard's oc.env resolver


def is_secret_variable(name: str) -> bool:
    return name.upper().endswith(SECRET_SUFFIXES)  # SWANLAB_API_KEY among them


def secrets_by_variable() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if is_secret_variable(name) and len(value) >= MIN_SECRET_LENGTH
    }


def secret_values() -> list[str]:
    # Longest first, so a secret that contains another is masked whole.
    return sorted(set(secrets_by_variable().values()), key=len, reverse=True)


def mask(text: str, secrets: Sequence[str] | None = None) -> str:
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    return text


def remember_env_value(value: object) -> None:
    if isinstance(value, str) and len(value) >= MIN_REPORTED_ENV_LENGTH:
        _resolved_from_environment.add(value)


def report_secrets() -> list[str]:
    values = set(secret_values()) | _resolved_from_environment
    return sorted(values, key=len, reverse=True)


def mask_report(text: str) -> str:
    """``text`` for an error, warning or log line: secrets and environment values masked."""
    return mask(text, report_secrets())


def redact(value: object) -> object:
    """``value`` (plain containers) with every secret's text replaced by ``***``."""
    secrets = secret_values()
    return _redact(value, secrets) if secrets else value


def _redact(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, secrets) for item in value]
    return value


def refuse_secrets_in_overrides(overrides: Sequence[str]) -> None:
    for name, secret in secrets_by_variable().items():
        for override in overrides:
            if secret in override:
                key = override.partition("=")[0]
                raise ConfigError(
                    f"{key}: the value contains {name}; secrets are never put in configs "
                    "(Hydra saves overrides in .hydra/); read it from the environment instead"
                )


# Leaves that name files, directories or jobs, by how their key ends: Hydra's run and sweep dirs,
# sweep.subdir, output_subdir, job.name (its log file is <job name>.log), logging's filename, a
# launcher's job name and submitit_folder, the Optuna storage; dataset.root, tracker.log_dir,
# tracker.project, resume, and a user spec's *_dir / *_path fields.
NAME_KEY_ENDINGS = (
    "dir", "path", "file", "filename", "folder", "root", "name", "project", "workspace", "resume", "storage",
)
# Overrides joined as text, which Hydra computes for every job: checked where a name uses them
# (hydra.sweep.subdir=${hydra.job.override_dirname}), not for being there.
NOT_NAMES = ("hydra.job.override_dirname",)


def names_files(where: str) -> bool:
    """Whether the leaf at ``where`` names a file, directory or job: by its last key's ending
    (no ending holds a dot, so the whole dotted path's ending is the last key's)."""
    return where not in NOT_NAMES and where.lower().endswith(NAME_KEY_ENDINGS)


def refuse_secret_in_name(where: str, value: object, secrets: dict[str, str]) -> None:
    """Refuse a secret (``secrets_by_variable``) that reached a name or a path, by any interpolation.

    Masking covers text the program prints and writes, not the names of what Hydra and the run
    create: ``hydra.job.name: ${oc.env:SWANLAB_API_KEY}`` left ``<the key>.log`` in the run dir.
    """
    if not isinstance(value, str) or not names_files(where):
        return
    for name, secret in secrets.items():
        if secret in value:
            raise ConfigError(
                f"{where}: refused, its value holds the secret in {name}, and a name or path is never masked "
                "(files, directories and jobs are named after it); keep secrets out of names and paths"
            )


class MaskingStream:
    """A text stream that masks secrets in everything written through it (stdout, stderr).

    Wraps the process's streams in the CLI so that text printed by Hydra (``--cfg job --resolve``),
    Python's warnings and tracebacks (``HYDRA_FULL_ERROR=1``) is masked too. Every other attribute
    (``isatty``, ``fileno``, ``encoding``) is the wrapped stream's, so terminals behave the same.
    """

    def __init__(self, stream: TextIO, *, reports: bool) -> None:
        self._stream = stream
        self._reports = reports  # stderr: mask environment values too (mask_report)
        self._secrets = secret_values()  # read once: a progress bar writes many times a second

    def write(self, text: str) -> int:
        self._stream.write(mask_report(text) if self._reports else mask(text, self._secrets))
        return len(text)  # what the caller handed in, as io.TextIOBase.write reports

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def mask_log_records() -> None:
    """Mask secrets and environment values in every log record, whichever handler or file it goes to."""
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg, record.args = mask_report(record.getMessage()), None
        return record

    logging.setLogRecordFactory(masked_record)


def mask_process_output() -> None:
    """Mask secrets in everything this process prints and logs from now on, third parties' output
    included: the CLI's process, and each process a launcher starts to run sweep jobs."""
    if not isinstance(sys.stdout, MaskingStream):
        sys.stdout = MaskingStream(sys.stdout, reports=False)
        sys.stderr = MaskingStream(sys.stderr, reports=True)
        mask_log_records()
