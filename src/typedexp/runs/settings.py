"""A run's settings as its run dir holds them: the value of one key, every key it has, and which
keys differ between runs. Read by ``typedexp runs`` (table.py) for its columns, ``--where``,
``--columns`` and the plot's labels.

A run's value of ``key`` is its override as typed where it has one, else what it ran with:
``.hydra/config.yaml`` holds the whole composed config (a field it kept at its default included),
and ``.hydra/hydra.yaml`` the option each config group was given (``model: small``). The files are
read as plain YAML (``record.load_yaml``: capped, no tags), once per run (``saved``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from typedexp.core.report import warn
from typedexp.runs import layout as rundir
from typedexp.runs.columns import override_values, shown
from typedexp.runs.record import RunRecord, load_yaml

TARGET = "_target_"  # Hydra's bookkeeping in config.yaml: what the group's option builds, not a setting
# A config.yaml from elsewhere may hold 100,000s of fields; --columns lists at most this many of a run's.
MAX_CONFIG_KEYS = 2000
TAGS = "tags"  # Experiment.tags: the run's tags, a list in config.yaml
# Read from the saved config before the override: launch(experiment=Experiment(note="a b")) types
# them quoted (note='a b', tags=['a']), which is no way to show them.
SAVED_FIRST = (TAGS, "note")


def setting(record: RunRecord, key: str, typed: Mapping[str, str] | None = None) -> str | None:
    """The run's value of ``key``: from its overrides as typed, else the config Hydra saved.

    ``model`` is the chosen option (``hydra.runtime.choices`` in ``.hydra/hydra.yaml``), so a run
    that kept the default model matches ``model=small``; ``optim.lr`` is read from
    ``.hydra/config.yaml``, and so is a list of plain values (``model.hidden``: ``[128,64]``, as it
    would be typed). A sub-config is not a value. ``typed`` is ``override_values(record.overrides)``
    where the caller has it already.
    """
    values = override_values(record.overrides) if typed is None else typed
    if key in values and key not in SAVED_FIRST:
        return values[key]
    value = lookup(saved(record.run_dir, "config.yaml"), key.split("."))
    if value is None or isinstance(value, dict):  # a config group (or `debug`): the option's name is in hydra.yaml
        chosen = choices(record).get(key)
        return chosen if isinstance(chosen, str) else values.get(key)
    return value_text(value)


def value_text(value: object) -> str | None:
    """A YAML value as an override would type it (``true``, ``0.1``, ``[64,32]``); None for a sub-config."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        items = [value_text(item) for item in value if not isinstance(item, (list, dict))]
        if len(items) == len(value) and None not in items:
            return "[" + ",".join(item for item in items if item is not None) + "]"
    return None


def choices(record: RunRecord) -> Mapping[str, object]:
    """``{"model": "small", "hydra/launcher": "basic", ...}``: the option each config group was given."""
    found = lookup(saved(record.run_dir, "hydra.yaml"), ["hydra", "runtime", "choices"])
    return found if isinstance(found, dict) else {}


@functools.lru_cache(maxsize=4096)
def saved(run_dir: Path, name: str) -> object:
    """A YAML file of a run's ``.hydra/`` (``config.yaml``, ``hydra.yaml``); None if unreadable."""
    if (run_dir / rundir.HYDRA_DIR).is_symlink():  # its files would be read from wherever it points
        return None
    unread: list[str] = []
    document = load_yaml(run_dir / rundir.HYDRA_DIR / name, unread)
    if name != "hydra.yaml":  # runs.read_run reads hydra.yaml too, and has said why it could not
        for line in unread:
            warn(shown(line))
    return document


def lookup(document: object, keys: Sequence[str]) -> object:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def config_keys(record: RunRecord) -> Iterator[str]:
    """Every key ``setting`` can read for this run, in the config's order: a group's name (``model``)
    before its fields (``model.hidden``); Hydra's own groups (``hydra/launcher``) are left out."""
    groups = {key for key in choices(record) if isinstance(key, str) and "/" not in key}
    pending: list[tuple[str, object]] = [("", saved(record.run_dir, "config.yaml"))]
    count = 0
    while pending and count < MAX_CONFIG_KEYS:  # a loop, not recursion: a config may nest deeply
        prefix, node = pending.pop()
        if prefix and (prefix in groups or not isinstance(node, dict)):
            count += 1
            yield prefix
        if isinstance(node, dict):
            children = [(f"{prefix}.{key}" if prefix else str(key), child) for key, child in node.items() if key != TARGET]
            pending.extend(reversed(children))  # popped in the config's order
    yield from sorted(groups)  # a group with no fields (``schedule: none``) has no dict to find it by


def canonical(value: str | None) -> str | None:
    """The form two values of a setting compare in: ``0.10`` == ``1e-1``, ``'x'`` == ``x``, ``[64, 32]`` == ``[64,32]``."""
    if value is None:
        return None
    text = value.strip("'\"")
    if text.startswith("["):
        return text.replace(" ", "")
    try:
        return repr(float(text))
    except ValueError:
        return text


def differing(
    records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]], keys: Sequence[str]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the keys whose value differs between the runs, {key: value} of those every run has the same).

    A run that did not override a key compares by the value it ran with, so ``epochs=2`` typed in
    one run and kept as the default 2 in another is the same; a run that has no value at all
    (``+ticket=x`` in one run only) differs.
    """
    varying: list[str] = []
    same: dict[str, str] = {}
    for key in keys:
        values = [setting(record, key, values) for record, values in zip(records, typed, strict=True)]
        if len({canonical(value) for value in values}) > 1:
            varying.append(key)
        elif values and values[0] is not None:
            same[key] = values[0]
    return tuple(varying), same


def same_value(value: str, wanted: str) -> bool:
    """``wanted`` equals a setting as typed (``0.1``), unquoted, or as a number (``1e-1``, ``0.10``)."""
    return canonical(value) == canonical(wanted)


def tags_of(record: RunRecord, typed: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The run's tags: the list its saved config holds, else its ``tags=[a,b]`` override as typed.

    A tag is a plain word (``specs.experiment.TAG``), so splitting the typed list at commas is exact.
    """
    saved_tags = lookup(saved(record.run_dir, "config.yaml"), [TAGS])
    if isinstance(saved_tags, list):
        texts = (value_text(tag) for tag in saved_tags if not isinstance(tag, (list, dict)))
        return tuple(text for text in texts if text)
    text = setting(record, TAGS, typed)
    if text is None:
        return ()
    words = (word.strip().strip("'\"") for word in text.strip().strip("[]").split(","))
    return tuple(word for word in words if word)
