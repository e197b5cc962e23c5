"""The versions of Hydra, SwanLab and swanboard whose private internals typedexp patches.

Each speed-up or fix that replaces a third-party internal is installed only when two things hold:
the installed distribution is exactly a version in ``PINS`` (read with ``importlib.metadata``), and
the internal still has the shape the patch expects (the caller checks it: the attribute exists,
its signature is the known one). Otherwise the library's own behaviour runs unchanged, and one
debug-level record says which patch was left out and why; it is never an error, since the
library's way is correct, only slower. ``tests/test_patch_gates.py`` fails when an installed
version leaves its pin, so whoever bumps a dependency re-checks the patches listed here.

What each patch buys: benchmarks/README.md, "Patches of private internals".
The config guard's own check of Hydra (``config_guard.require_supported_hydra``) is not here: it is
a security check that refuses to run on another Hydra, not a speed-up that may fall back.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from importlib import metadata

log = logging.getLogger(__name__)

# distribution -> the versions whose internals the patches were written against and tested on.
PINS: dict[str, frozenset[str]] = {
    "hydra-core": frozenset({"1.3.8"}),
    "swanlab": frozenset({"0.10.3"}),
    "swanboard": frozenset({"0.1.10b2"}),
}

# patch -> (distribution, what it replaces); the names the debug notes and the tests use.
PATCHES: dict[str, tuple[str, str]] = {
    "help_shares_repository": ("hydra-core", "hydra._internal.config_loader_impl.CachingConfigRepository, --help only"),
    "requirements_in_process": ("swanlab", "swanlab.sdk.internal.probe_python.environment.requirements.get"),
    "dashboard_scalars_per_batch": ("swanlab", "swanlab.deprecated.local.LocalCallbacker.on_scalar_flush"),
    "dashboard_resume_continues": ("swanlab", "swanlab.deprecated.local.LocalCallbacker.on_run_initialized"),
    "dashboard_run_table": ("swanboard", "swanboard.controller.project.get_tag_dir"),
}


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None; read once per process (~1 ms)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def allowed(patch: str, shape_ok: Callable[[], bool]) -> bool:
    """Whether ``patch`` may be installed: its pinned version is installed and ``shape_ok()``.

    ``shape_ok`` runs only on a pinned version (it may import the patched module). When the
    answer is no, a debug record names the patch and the reason, and the caller patches nothing.
    """
    distribution, target = PATCHES[patch]
    version = installed_version(distribution)
    if version not in PINS[distribution]:
        log.debug(
            "typedexp leaves %s as it is (patch %s not installed): %s %s is not the pinned %s",
            target, patch, distribution, version, ", ".join(sorted(PINS[distribution])),
        )
        return False
    try:
        shaped = shape_ok()
    except Exception as exc:  # an import or attribute that moved: the library's way is still correct
        log.debug("typedexp leaves %s as it is (patch %s not installed): %r", target, patch, exc)
        return False
    if not shaped:
        log.debug(
            "typedexp leaves %s as it is (patch %s not installed): %s %s does not have the expected shape",
            target, patch, distribution, version,
        )
    return shaped


def has_parameters(function: object, names: tuple[str, ...]) -> bool:
    """Whether ``function`` is callable with exactly these parameter names, in this order."""
    if not callable(function):
        return False
    try:
        parameters = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: not what a patch expects
        return False
    return parameters == names
