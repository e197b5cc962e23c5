"""Is a loaded checkpoint well-formed? Each check returns the first problem, or None.

``torch.load(weights_only=True)`` guarantees only tensors and plain containers, not their
shapes. A checkpoint that is edited, truncated in a field or made by another typedexp version
would otherwise fail deep inside a restore (``Expected a CPUGeneratorImplState of size 5056``,
``index 1000064 is out of bounds``) or train on silently with a wrong state. These checks run on
everything a resume restores, before anything is restored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from typedexp.engine.position import LoopPosition

MT_WORDS = 624  # Mersenne Twister state words, in Python's `random` and in numpy


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tensor(value: object, dtype: torch.dtype, dims: int) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.dtype == dtype and value.dim() == dims


def rng_problem(states: Mapping[str, object], generator: torch.Generator) -> str | None:
    """Every random state has the type and size that its ``set_state`` expects."""
    import torch

    python, numpy_state = states.get("python"), states.get("numpy")
    if not (isinstance(python, list) and len(python) == 3 and isinstance(python[0], int)):
        return "rng.python is not [version, state, gauss_next]"
    internal = python[1]
    if not (isinstance(internal, list) and len(internal) == MT_WORDS + 1):
        return f"rng.python's state does not hold {MT_WORDS + 1} numbers"
    if not all(isinstance(word, int) and 0 <= word < 2**32 for word in internal):
        return "rng.python's state holds values that are not 32-bit words"
    if not (python[2] is None or _number(python[2])):
        return "rng.python's gauss_next is not a number"
    if not (isinstance(numpy_state, list) and len(numpy_state) == 4):
        return "rng.numpy is not [keys, pos, has_gauss, cached_gaussian]"
    keys, pos, has_gauss, cached = numpy_state
    if not (_tensor(keys, torch.int64, 1) and isinstance(keys, torch.Tensor) and keys.numel() == MT_WORDS):
        return f"rng.numpy's keys are not {MT_WORDS} int64 values"
    if not (isinstance(pos, int) and 0 <= pos <= MT_WORDS and has_gauss in (0, 1) and _number(cached)):
        return "rng.numpy's position or cached gaussian is out of range"
    expected = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    for name, state in expected.items():
        saved = states.get(name)
        if not (_tensor(saved, torch.uint8, 1) and isinstance(saved, torch.Tensor) and saved.numel() == state.numel()):
            return f"rng.{name} is not a uint8 tensor of {state.numel()} bytes"
    cuda = states.get("cuda")
    if not (isinstance(cuda, list) and all(_tensor(state, torch.uint8, 1) for state in cuda)):
        return "rng.cuda is not a list of uint8 tensors"
    return None


def position_problem(position: LoopPosition) -> str | None:
    """The loop position's own types and ranges (its fit to the data is ``resume_problem``)."""
    import torch

    if position.epoch < 1 or position.batch < 0 or position.step < 0:
        return f"position epoch={position.epoch}, batch={position.batch}, step={position.step} is out of range"
    if position.order is not None and not _tensor(position.order, torch.int64, 1):
        return "position.order is not a 1-D int64 tensor"
    if position.window is not None:
        weighted, tally, count = position.window
        if not (isinstance(weighted, torch.Tensor) and weighted.dim() == 1 and weighted.is_floating_point()):
            return "position.window's losses are not a 1-D float tensor"
        # The task's tally: an integer total (classification's correct count, ()), or float rows
        # (steps, M), one per step folded (engine/tasks.py).
        counted = _tensor(tally, torch.int64, 0) or _tensor(tally, torch.int64, 1)
        rows = isinstance(tally, torch.Tensor) and tally.dim() == 2 and tally.is_floating_point()
        if not ((counted or rows) and count >= 0):
            return "position.window's metric sums or example count are malformed"
    if not all(_number(value) for value in position.latest.values()):
        return "position.latest holds a value that is not a finite number"
    return None


def resume_problem(position: LoopPosition, *, train_size: int, batches_per_epoch: int) -> str | None:
    """Does ``position`` fit this run's data? A well-formed but foreign order would index past it."""
    import torch

    expected_step = (position.epoch - 1) * batches_per_epoch + position.batch
    if position.batch > batches_per_epoch or position.step != expected_step:
        return (
            f"position epoch={position.epoch}, batch={position.batch}, step={position.step} does not "
            f"fit {batches_per_epoch} batches per epoch"
        )
    order = position.order
    if order is not None:
        if order.numel() != train_size:
            return f"position.order has {order.numel()} entries, the training split {train_size}"
        if not torch.equal(order.sort().values, torch.arange(train_size)):
            return "position.order is not a permutation of the training split"
    return None


def optimizer_problem(saved: Mapping[str, object], optimizer: torch.optim.Optimizer) -> str | None:
    """Same groups, same parameter counts and hyper-parameter types, state tensors of each param's shape."""
    import torch

    current = optimizer.state_dict()
    groups, state = saved.get("param_groups"), saved.get("state")
    if not (isinstance(groups, list) and all(isinstance(group, dict) for group in groups)):
        return "optimizer.param_groups is not a list of mappings"
    if not isinstance(state, dict):
        return "optimizer.state is not a mapping"
    if len(groups) != len(current["param_groups"]):
        return f"the optimizer has {len(groups)} parameter groups, this run's {len(current['param_groups'])}"
    shapes: dict[object, torch.Size] = {}
    for group, mine, params in zip(groups, current["param_groups"], optimizer.param_groups):
        ids = group.get("params")
        # torch saves each parameter as a distinct int id; anything else cannot map to this model.
        if not (isinstance(ids, list) and len(ids) == len(mine["params"]) and distinct_ints(ids)):
            return "optimizer.param_groups' parameter lists do not match this model"
        shapes.update({saved_id: param.shape for saved_id, param in zip(ids, params["params"])})
        for key, value in mine.items():
            if key != "params" and _number(value) and not _number(group.get(key)):
                return f"optimizer hyper-parameter {key}={group.get(key)!r} is not a finite number"
    if len(shapes) != sum(len(params["params"]) for params in optimizer.param_groups):  # an id in two groups
        return "optimizer.param_groups' parameter lists do not match this model"
    for param_id, entry in state.items():
        if param_id not in shapes or not isinstance(entry, dict):
            return f"optimizer.state[{param_id!r}] belongs to no parameter of this model"
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                if value.dim() > 0 and value.shape != shapes[param_id]:
                    shape, expected = tuple(value.shape), tuple(shapes[param_id])
                    return f"optimizer.state[{param_id}].{name} has shape {shape}, its parameter {expected}"
            elif value is not None and not _number(value):  # SGD keeps momentum_buffer=None at 0
                return f"optimizer.state[{param_id}].{name} is not a tensor or a number"
    return None


def distinct_ints(values: list[object]) -> bool:
    return all(type(value) is int for value in values) and len(set(values)) == len(values)
