"""Running out of memory or disk space, reported as one line naming the fields or the directory.

torch reports a failed allocation from deep inside a layer or a data generator
(``DefaultCPUAllocator: can't allocate memory: you tried to allocate 25600000000 bytes``), with
nothing that says which setting asked for it. A full disk surfaces as an ``OSError`` without a
file name (``torch.save`` to an open file) or, for ``torch.save`` to a path, as torch's own
``unexpected pos 704 vs 598``; every write of a run therefore goes through an open Python file
inside ``naming_full_disk``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import re
from collections.abc import Iterator
from pathlib import Path

from typedexp.core.errors import ResourceError

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
# CPU allocator, CUDA/MPS out of memory, and sizes too large for torch's int64 shape arithmetic.
_ALLOCATION = re.compile(
    r"can't allocate memory|out of memory|Overflow when unpacking long|integer multiplication overflow"
    r"|value cannot be converted to type int64",
    re.IGNORECASE,
)
_ASKED = re.compile(r"allocate (\d+) bytes")  # the CPU allocator's wording
_ASKED_ON_GPU = re.compile(r"Tried to allocate ([\d.]+ [KMGT]iB)")  # CUDA's


def size_fields(node: str, spec: object, count: int = 3) -> list[str]:
    """The ``count`` largest integer (or integer-list) fields of ``spec``, as ``node.field=value``.

    The largest sizes are the likely culprits of a failed allocation; seeds are not sizes.
    """
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        return []
    sizes: list[tuple[int, str]] = []
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        numbers = value if isinstance(value, tuple) else (value,)
        ints = [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]
        if ints and len(ints) == len(numbers) and "seed" not in field.name:
            shown = list(value) if isinstance(value, tuple) else value
            sizes.append((max(ints), f"{node}.{field.name}={shown}"))
    largest = max((size for size, _ in sizes), default=0)
    # Sizes under 1% of the largest (norm groups next to a width of 10^8) did not cause it.
    culprits = [(size, text) for size, text in sizes if size * 100 >= largest]
    return [text for _, text in sorted(culprits, key=lambda item: -item[0])[:count]]


@contextlib.contextmanager
def naming_sizes(doing: str, fields: list[str]) -> Iterator[None]:
    """Turn an allocation failure inside the block into one line that names ``fields``."""
    try:
        yield
    except (MemoryError, OverflowError, RuntimeError, TypeError) as exc:
        if isinstance(exc, (RuntimeError, TypeError)) and not _ALLOCATION.search(str(exc)):
            raise
        asked, asked_on_gpu = _ASKED.search(str(exc)), _ASKED_ON_GPU.search(str(exc))
        size = f" ({int(asked.group(1)) / 2**30:.1f} GiB asked for)" if asked else ""
        size = f" ({asked_on_gpu.group(1)} asked for)" if asked_on_gpu else size
        overflow = isinstance(exc, OverflowError) or "overflow" in str(exc).lower()
        what = "a size too large for torch" if overflow else "out of memory"
        raise ResourceError(
            f"{what} while {doing}{size}; lower {' or '.join(fields) or 'the sizes in the config'}"
        ) from exc


def full_disk_message(directory: Path | str) -> str:
    return f"no space left on the device holding {directory}; free some space there or write elsewhere"


@contextlib.contextmanager
def naming_full_disk(directory: Path) -> Iterator[None]:
    """Turn "no space left on device" inside the block into one line naming ``directory``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            raise
        raise ResourceError(full_disk_message(directory)) from exc
