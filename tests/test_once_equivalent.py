"""Behaviour that ``mutation/equivalent.txt`` once called invisible (issue 22, part 4).

Each test pins what a mutant listed there as "equivalent" or "GPU only" changed where a CPU test
can see it, so the mutant is killed and no longer listed: a checkpoint written on a GPU, an
infinite gradient under bf16, a parameter that sits out a step, the layout and the draws of the
gathered and augmented batches, a sweep key that only looks like the allow-list's, and the path
named when a registered config nests too deep.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from typedexp import ConfigError
from typedexp.app.config_guard import Rules, check_composed, targets_in
from typedexp.data import FakeData
from typedexp.data.augment import crop_and_flip
from typedexp.data.tensors import take
from typedexp.engine import TrainerSettings, seed_everything
from typedexp.engine.checkpoint import Checkpointer, LoopPosition, read_checkpoint
from typedexp.engine.loop import training_step
from typedexp.engine.settings import Precision, Progress
from typedexp.specs.models import MLP
from typedexp.specs.optim import SGD
from typedexp.core.safety import AllowList

CPU = torch.device("cpu")


# --- engine/checkpoint: read_checkpoint maps every tensor to the CPU ----------------------------


def checkpointer(directory: Path) -> Checkpointer:
    data = FakeData(num_samples=40).load()
    generator = seed_everything(0)
    model = MLP(hidden=(8,)).build(data.input_shape, data.num_classes)
    optimizer = SGD(momentum=0.9).build(model.parameters())
    loss = model(data.train.images[:8]).sum()
    loss.backward()
    optimizer.step()  # the optimizer now holds a momentum buffer per parameter, saved as it is
    return Checkpointer(directory, model=model, optimizer=optimizer, generator=generator,
                        settings=TrainerSettings(progress=Progress.off), config={"seed": 0})


def test_a_checkpoint_written_on_a_gpu_resumes_on_a_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saver = checkpointer(tmp_path)
    # The optimizer's (and a scheduler's) state is saved as it is, so a GPU run's checkpoint holds
    # tensors tagged with their CUDA device. Stand-in: torch.save tags every storage "cuda:0".
    with monkeypatch.context() as gpu:
        gpu.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        saver.save(LoopPosition(1, 1, 1, order=torch.randperm(32)))
    if not torch.cuda.is_available():  # the stand-in works: without a map torch wants a GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(saver.last, weights_only=True)
    loaded = read_checkpoint(saver.last)
    momentum = [state["momentum_buffer"] for state in loaded.optimizer["state"].values()]  # type: ignore[attr-defined]
    assert momentum and all(tensor.device == CPU for tensor in momentum)
    assert all(tensor.device == CPU for tensor in loaded.model.values())
    assert loaded.position.order is not None and loaded.position.order.device == CPU
    other = checkpointer(tmp_path / "other")
    other.restore(loaded)
    assert all(torch.equal(a, b) for a, b in zip(other.model.parameters(), saver.model.parameters(), strict=True))


# --- engine/loop: what a training step does with its gradients ---------------------------------


class InfiniteGradient(nn.Module):
    """A linear layer plus sqrt(0): a finite loss whose gradient for ``zero`` is infinite."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.zero = nn.Parameter(torch.zeros(3))  # d sqrt(x) / dx = inf at x = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(images)
        return logits + torch.sqrt(self.zero)


@pytest.mark.parametrize("precision", [Precision.fp32, Precision.bf16])
def test_an_infinite_gradient_reaches_the_weights_under_bf16_as_under_fp32(precision: Precision) -> None:
    # bf16 has float32's range: no loss scaling, so no GradScaler that would skip the step and
    # halve its scale. The update is applied as in fp32, and the engine's non-finite checks
    # (train/loss, the weights before a checkpoint) stop the run, naming the setting to change.
    torch.manual_seed(0)
    model = InfiniteGradient()
    step = training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainerSettings(precision=precision), CPU)
    loss, _ = step(torch.ones(2, 4), torch.tensor([0, 1]))
    assert math.isfinite(float(loss.detach()))
    assert not torch.isfinite(model.zero).all()


class SitsOut(nn.Module):
    """Two layers; the second is used by the first forward pass only, then gets no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.always, self.once = nn.Linear(4, 3), nn.Linear(4, 3)
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits: torch.Tensor = self.always(images)
        return logits + self.once(images) if self.calls == 1 else logits


@pytest.mark.parametrize("precision", [Precision.fp32, Precision.bf16])
def test_a_parameter_without_a_gradient_is_left_alone_as_in_a_hand_written_loop(precision: Precision) -> None:
    # optimizer.zero_grad() sets gradients to None: SGD then skips a parameter that got none,
    # momentum included. Zeroed gradients would let the momentum keep moving it.
    torch.manual_seed(0)
    model = SitsOut()
    step = training_step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                         TrainerSettings(precision=precision), CPU)
    images, labels = torch.randn(8, 4), torch.randint(0, 3, (8,))
    step(images, labels)
    after_first = [p.detach().clone() for p in model.once.parameters()]
    always = model.always.weight.detach().clone()
    step(images, labels)
    assert all(torch.equal(p, q) for p, q in zip(model.once.parameters(), after_first, strict=True))
    assert model.once.weight.grad is None and not torch.equal(model.always.weight, always)


# --- data: the memory layout of a gathered batch, the flip draws of crop_and_flip ---------------


def test_a_one_channel_batch_is_taken_with_the_strides_of_advanced_indexing() -> None:
    # (N, 1, H, W) counts as contiguous in both memory formats, but its strides still decide how a
    # convolution runs: gathered through the (N, H, W, C) view it would get (HW, 1, W, 1) and the
    # channels_last kernels, whose sums round differently (an MNIST CNN would train other weights).
    images = torch.randn(10, 1, 4, 5, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([7, 2, 9])
    taken = take(images, index)
    assert torch.equal(taken, images[index]) and taken.stride() == images[index].stride() == (20, 20, 5, 1)
    conv = nn.Conv2d(1, 4, 3)
    assert conv(taken).stride() == conv(images[index]).stride()



def test_a_batch_in_neither_layout_comes_back_contiguous_with_the_same_values() -> None:
    images = torch.rand(8, 3, 6, 6)[::2]  # every other image: contiguous in neither memory format
    assert not images.is_contiguous() and not images.is_contiguous(memory_format=torch.channels_last)
    out = crop_and_flip(images, 1, True, torch.Generator().manual_seed(0))
    assert out.is_contiguous()  # only a channels_last batch goes back to channels_last
    assert torch.equal(out, crop_and_flip(images.contiguous(), 1, True, torch.Generator().manual_seed(0)))


def test_a_flip_draw_of_exactly_one_half_does_not_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.rand gives multiples of 2^-24 in [0, 1): "< 0.5" is exactly half of them, so each image
    # is flipped with probability exactly 1/2. Drawing 0.5 happens (p = 2^-24), so it is set here.
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor([0.5, 0.5 - 2**-24]))
    images = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    out = crop_and_flip(images, 0, True, torch.Generator())
    assert torch.equal(out[0], images[0]) and torch.equal(out[1], images[1].flip(-1))


# --- config_guard: which sweep keys count as the allow-list -------------------------------------


@pytest.mark.parametrize(("key", "refused"), [
    ("allowed_targets", True), ("+allowed_targets", True), ("~allowed_targets", True), ("++allowed_targets", True),
    ("+Xallowed_targets", False), ("XXallowed_targets", False), ("model.allowed_targets", False),
])
def test_a_sweep_may_vary_any_key_but_the_allow_list_itself(key: str, refused: bool) -> None:
    cfg = OmegaConf.create({"hydra": {"sweeper": {"params": {key: "a,b"}}}})
    rules = Rules(AllowList(), AllowList(), AllowList())
    if refused:
        with pytest.raises(ConfigError, match=r"refused, a sweep cannot vary Hydra's settings or allowed_targets"):
            check_composed(cfg, rules)
    else:
        check_composed(cfg, rules)


@pytest.mark.parametrize(("root", "start"), [("dict", "a.a.a.a"), ("list", "[0].a.a.a")])
def test_a_config_nested_beyond_the_limit_is_named_from_its_own_root(root: str, start: str) -> None:
    # registered_targets walks each config registered from Python (targets_in) before any run.
    deep: dict[str, object] = {"a": 1}
    for _ in range(70):
        deep = {"a": deep}
    node = OmegaConf.create(deep) if root == "dict" else OmegaConf.create([deep])
    with pytest.raises(ConfigError, match=rf"^{re.escape(start)}\.\.\.: the config nests more than 64 levels deep"):
        targets_in(node)
