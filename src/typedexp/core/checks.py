"""Checks every spec runs first in ``__post_init__``: no float field may be nan or inf.

``nan`` compares false with everything, so a range check such as ``if lr < 0`` lets
``optim.lr=nan`` through, and the run fails ten steps later blaming the loss. ``require_finite``
looks at all of a spec's float fields at once, so a float field added later is covered too.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def require_finite(spec: DataclassInstance, node: str) -> None:
    """Refuse a nan/inf float field of ``spec``, named as ``<node>.<field>`` in the message."""
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{node}.{field.name}={value}: must be a finite number")
