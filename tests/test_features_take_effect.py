"""Features that change what gets trained, checked by their effect, not by a finite loss.

Each test here fails when its feature is switched off (issue 16): a norm that builds nothing, an
optimizer spec that builds plain SGD, a trainer flag that is ignored, a `best.pt` rewritten every
epoch. The configs are composed as the CLI composes them, so the wiring is covered too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra_zen import instantiate
from torch import nn

from tests.helpers import QUICK, RecordingTracker
from typedexp import ConfigError, launch
from typedexp.app.store import APP_NAME, register_configs
from typedexp.data import DataBundle, FakeData
from typedexp.engine import TrainerSettings, fit, prepare, seed_everything
from typedexp.engine import loop as engine_loop
from typedexp.engine.checkpoint import Checkpointer, read_checkpoint
from typedexp.engine.settings import BestMode, Progress
from typedexp.specs.models import CNN, MLP, Norm
from typedexp.specs.optim import SGD, Adam, AdamW, OptimizerSpec

CUDA = torch.cuda.is_available()


def built(group: str, *overrides: str) -> object:
    """The spec that the CLI would instantiate for ``group`` with ``overrides``."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        spec: object = instantiate(compose(config_name=APP_NAME, overrides=list(overrides))[group])
    GlobalHydra.instance().clear()  # launch() initializes Hydra itself
    return spec


# --- normalization: the right layer, with the right groups, in the right place --------------

# (model preset, input shape): the MLPs on digits-shaped vectors, the CNN on small RGB images.
SHAPES = {"small": (1, 8, 8), "large": (1, 8, 8), "cnn": (3, 16, 16)}


def expected_norm(norm: str, width: int, *, spatial: bool, groups: int) -> tuple[type[nn.Module], dict[str, object]]:
    """The layer type and the attributes that ``model.norm=<norm>`` must put after a ``width`` layer."""
    if norm == "batch":
        return (nn.BatchNorm2d if spatial else nn.BatchNorm1d), {"num_features": width, "affine": True}
    if norm == "group":
        count = max(d for d in range(1, min(groups, width) + 1) if width % d == 0)
        return nn.GroupNorm, {"num_groups": count, "num_channels": width, "affine": True}
    if norm == "instance" and spatial:
        return nn.InstanceNorm2d, {"num_features": width, "affine": True}
    if norm == "instance":  # a feature vector: per example over its features, without affine
        return nn.LayerNorm, {"normalized_shape": (width,), "elementwise_affine": False}
    if spatial:  # layer norm over channels and pixels: one group
        return nn.GroupNorm, {"num_groups": 1, "num_channels": width, "affine": True}
    return nn.LayerNorm, {"normalized_shape": (width,), "elementwise_affine": True}


@pytest.mark.parametrize("groups", [8, 3])
@pytest.mark.parametrize("norm", ["none", "batch", "group", "instance", "layer"])
@pytest.mark.parametrize("preset", ["small", "large", "cnn"])
def test_each_hidden_layer_is_followed_by_the_configured_norm(
    preset: str, norm: str, groups: int
) -> None:
    spec = built("model", f"model={preset}", f"model.norm={norm}", f"model.norm_groups={groups}")
    assert isinstance(spec, (MLP, CNN))
    layers = list(spec.build(SHAPES[preset], 10))
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, (nn.Linear, nn.Conv2d))]
    hidden, classifier = weighted[:-1], weighted[-1]
    assert len(hidden) == len(spec.hidden) + (len(spec.channels) if isinstance(spec, CNN) else 0)
    for i in hidden:
        layer, after = layers[i], layers[i + 1]
        if norm == "none":
            assert isinstance(after, nn.ReLU), f"layer {i + 1} should be the activation, not {after}"
            continue
        spatial = isinstance(layer, nn.Conv2d)
        assert isinstance(layer, (nn.Conv2d, nn.Linear))
        width = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        kind, attributes = expected_norm(norm, width, spatial=spatial, groups=groups)
        assert type(after) is kind, f"after {layer}: {after}, expected a {kind.__name__}"
        assert {name: getattr(after, name) for name in attributes} == attributes
        assert isinstance(layers[i + 2], nn.ReLU)  # the norm sits before the activation
    assert classifier == len(layers) - 1  # no norm after the classifier
    norm_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)
    assert sum(isinstance(layer, norm_types) for layer in layers) == (0 if norm == "none" else len(hidden))


def test_group_norm_takes_the_largest_divisor_within_the_cap() -> None:
    # 12 channels, cap 8: 6 groups (8, 7 do not divide 12); cap 5: 4; cap 1: 1; cap 20: 12.
    for cap, count in [(8, 6), (5, 4), (1, 1), (20, 12)]:
        layer = Norm.group.build(12, spatial=True, groups=cap)
        assert isinstance(layer, nn.GroupNorm) and (layer.num_groups, layer.num_channels) == (count, 12)


@pytest.mark.parametrize(("norm", "expected"), [("batch", 1.0), ("layer", 1.0), ("group", 1.0)])
def test_the_norm_normalizes_the_hidden_activations(norm: str, expected: float) -> None:
    # Pre-activation values after the norm have unit spread, whatever the input scale.
    model = MLP(hidden=(16,), norm=Norm(norm)).build((1, 8, 8), 10).train()
    normed = model[:3](torch.randn(32, 1, 8, 8) * 50)  # Flatten, Linear, norm
    assert normed.std().item() == pytest.approx(expected, rel=0.1)


# --- optimizers: the torch class, exactly these fields, and a different training path -------

OPTIMIZER_CASES: list[tuple[OptimizerSpec, type[torch.optim.Optimizer], dict[str, object]]] = [
    (SGD(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True), torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1, "nesterov": True, "dampening": 0}),
    (SGD(lr=0.02, momentum=0.0), torch.optim.SGD,
     {"lr": 0.02, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False}),
    (Adam(lr=0.003, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.2), torch.optim.Adam,
     {"lr": 0.003, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.2, "amsgrad": False}),
    (AdamW(lr=0.004, beta1=0.7, beta2=0.9, eps=1e-7, weight_decay=0.3), torch.optim.AdamW,
     {"lr": 0.004, "betas": (0.7, 0.9), "eps": 1e-7, "weight_decay": 0.3, "amsgrad": False}),
]


@pytest.mark.parametrize(("spec", "kind", "fields"), OPTIMIZER_CASES, ids=["sgd-all-fields", "sgd-plain", "adam", "adamw"])
def test_optimizer_spec_builds_its_torch_class_with_its_fields(
    spec: OptimizerSpec, kind: type[torch.optim.Optimizer], fields: dict[str, object]
) -> None:
    params = list(nn.Linear(3, 2).parameters())
    optimizer = spec.build(params)
    assert type(optimizer) is kind  # exactly: AdamW subclasses Adam in recent torch
    assert {name: optimizer.defaults[name] for name in fields} == fields
    assert optimizer.param_groups[0]["params"] == params


@pytest.mark.parametrize(
    ("overrides", "kind", "fields"),
    [
        (["optim=sgd"], torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False}),
        (["optim=sgd", "optim.nesterov=true", "optim.weight_decay=0.5"], torch.optim.SGD,
         {"nesterov": True, "weight_decay": 0.5}),
        (["optim=adam"], torch.optim.Adam, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
        (["optim=adamw"], torch.optim.AdamW, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
        (["optim=adam", "optim.beta1=0.5", "optim.beta2=0.6", "optim.eps=0.1"], torch.optim.Adam,
         {"betas": (0.5, 0.6), "eps": 0.1}),
    ],
)
def test_optim_presets_build_the_documented_optimizer(
    overrides: list[str], kind: type[torch.optim.Optimizer], fields: dict[str, object]
) -> None:
    spec = built("optim", *overrides)
    assert isinstance(spec, (SGD, Adam))
    optimizer = spec.build(nn.Linear(3, 2).parameters())
    assert type(optimizer) is kind
    assert {name: optimizer.defaults[name] for name in fields} == fields


def trained_weights(make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]) -> torch.Tensor:
    """Flat weights after 6 full-batch steps of a tiny MLP from a fixed seed."""
    torch.manual_seed(0)
    images, labels = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    model = MLP(hidden=(8,)).build((1, 4, 4), 3)
    optimizer = make_optimizer(list(model.parameters()))
    for _ in range(6):
        optimizer.zero_grad()
        torch.autograd.backward(F.cross_entropy(model(images), labels))
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


TRAINING_CASES: dict[str, tuple[OptimizerSpec, Callable[[list[nn.Parameter]], torch.optim.Optimizer]]] = {
    "sgd": (SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "sgd+nesterov": (SGD(lr=0.1, nesterov=True), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "sgd+decay": (SGD(lr=0.1, weight_decay=0.1), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1)),
    "adam": (Adam(lr=0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    "adam+decay": (Adam(lr=0.05, weight_decay=0.1), lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1)),
    "adamw": (AdamW(lr=0.05, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1)),
}


def test_optimizers_train_to_different_weights_each_equal_to_torchs_own() -> None:
    weights = {name: trained_weights(spec.build) for name, (spec, _) in TRAINING_CASES.items()}
    for name, (_, reference) in TRAINING_CASES.items():
        assert torch.equal(weights[name], trained_weights(reference)), name
    names = list(weights)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not torch.allclose(weights[first], weights[second]), f"{first} trains like {second}"


# --- trainer flags: autocast dtype, memory format, compile -----------------------------------

CNN_ON_RGB = ["model=cnn", "dataset=fake", "dataset.channels=3", "dataset.height=16", "dataset.width=16"]


def spy_on_loss(monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.dtype, bool]]:
    """Record (logits dtype, whether grad is on) for every cross-entropy the engine computes."""
    seen: list[tuple[torch.dtype, bool]] = []
    original = F.cross_entropy

    def recording(logits: torch.Tensor, labels: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append((logits.dtype, torch.is_grad_enabled()))
        return original(logits, labels)

    monkeypatch.setattr(F, "cross_entropy", recording)
    return seen


@pytest.mark.parametrize(("precision", "train_dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_autocast_dtype_of_training_steps(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, precision: str, train_dtype: torch.dtype
) -> None:
    seen = spy_on_loss(monkeypatch)
    launch([*CNN_ON_RGB, f"trainer.precision={precision}", *QUICK])
    training = {dtype for dtype, grad in seen if grad}
    assert training == {train_dtype}
    assert {dtype for dtype, grad in seen if not grad} == {torch.float32}  # evaluation: no autocast


def test_fp16_autocasts_to_float16_with_a_grad_scaler_on_cuda_and_is_refused_elsewhere(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not CUDA:
        with pytest.raises(ConfigError, match="trainer.precision=fp16 needs CUDA, this run is on"):
            launch(["trainer.precision=fp16", *QUICK])
        return
    seen = spy_on_loss(monkeypatch)
    launch(["trainer.precision=fp16", "trainer.device=cuda", *QUICK])
    assert {dtype for dtype, grad in seen if grad} == {torch.float16}


def weights_and_data(channels_last: bool, compile: bool = False) -> tuple[nn.Sequential, nn.Module, DataBundle]:
    data = FakeData(num_samples=64, channels=3, height=16, width=16).load()
    model = CNN().build(data.input_shape, data.num_classes)
    settings = TrainerSettings(channels_last=channels_last, compile=compile, progress=Progress.off)
    trained, moved = prepare(model, data, settings, torch.device("cpu"))
    return model, trained, moved


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_puts_weights_and_images_in_nhwc(channels_last: bool) -> None:
    model, trained, data = weights_and_data(channels_last)
    conv = next(m for m in model if isinstance(m, nn.Conv2d))
    nhwc = torch.channels_last
    assert conv.weight.is_contiguous(memory_format=nhwc) == channels_last
    assert conv.weight.is_contiguous() != channels_last
    for split in (data.train, data.val):
        assert split.images.is_contiguous(memory_format=nhwc) == channels_last
        assert split.images.is_contiguous() != channels_last
    assert trained is model


def test_channels_last_reaches_the_convolutions_of_a_launched_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bool, bool]] = []
    original = F.conv2d

    def recording(images: torch.Tensor, weight: torch.Tensor, *args: Any) -> torch.Tensor:
        nhwc = torch.channels_last
        if torch.is_grad_enabled() or torch.is_inference_mode_enabled():  # not CNN.build's shape check
            seen.append((images.is_contiguous(memory_format=nhwc), weight.is_contiguous(memory_format=nhwc)))
        return original(images, weight, *args)  # bias, stride, padding, ... as nn.Conv2d passes them

    monkeypatch.setattr(F, "conv2d", recording)
    launch([*CNN_ON_RGB, "trainer.channels_last=true", *QUICK])
    assert seen and set(seen) == {(True, True)}
    seen.clear()
    launch([*CNN_ON_RGB, *QUICK])
    assert seen and set(seen) == {(False, False)}


def test_compile_returns_a_compiled_module_sharing_the_parameters() -> None:
    model, trained, _ = weights_and_data(channels_last=False, compile=True)
    from torch._dynamo.eval_frame import OptimizedModule

    assert isinstance(trained, OptimizedModule)
    assert trained._orig_mod is model
    assert [p for p in trained.parameters()] == [p for p in model.parameters()]
    _, plain, _ = weights_and_data(channels_last=False, compile=False)
    assert not isinstance(plain, OptimizedModule)


def test_compile_flag_of_a_launched_run_compiles_the_model(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[nn.Module] = []

    def recording(model: nn.Module, *args: object, **kwargs: object) -> nn.Module:
        compiled.append(model)  # not compiled for real here: test_compile_flag_trains does that
        return model

    monkeypatch.setattr(torch, "compile", recording)
    launch(["trainer.compile=true", *QUICK])
    assert len(compiled) == 1 and isinstance(compiled[0], nn.Sequential)
    launch([*QUICK])
    assert len(compiled) == 1


# --- best.pt: the best epoch, even when a later one is worse --------------------------------


class Snapshots(RecordingTracker):
    """Keeps a copy of the model's weights at each validation point (one per epoch)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.weights: list[dict[str, torch.Tensor]] = []

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        super().log(metrics, step=step, epoch=epoch)
        if any(name.startswith("val/") for name in metrics):
            self.weights.append({k: v.clone() for k, v in self.model.state_dict().items()})


@pytest.mark.parametrize(
    ("metric", "mode", "values", "best_epoch"),
    [
        ("val/acc", BestMode.max, [0.5, 0.9, 0.7, 0.8], 2),
        ("val/acc", BestMode.max, [0.5, 0.9, 0.9, 0.1], 2),  # a tie is no improvement
        ("val/acc", BestMode.max, [0.1, 0.2, 0.3, 0.4], 4),
        ("val/loss", BestMode.min, [1.0, 0.4, 0.6, 0.5], 2),
        ("val/loss", BestMode.min, [1.0, 0.9, 0.9, 0.95], 2),
    ],
)
def test_best_pt_holds_the_best_epoch_when_later_ones_are_worse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, mode: BestMode, values: list[float],
    best_epoch: int,
) -> None:
    script = iter(values)

    def scripted(
        model: nn.Module, split: object, *, batch_size: int, prefix: str = "val", stop: object = None,
        task: object = None,
    ) -> dict[str, float]:
        value = next(script)
        return {"val/loss": value, "val/acc": value}

    monkeypatch.setattr(engine_loop, "evaluate", scripted)
    generator = seed_everything(0)
    data = FakeData(num_samples=80).load()
    model: nn.Module = MLP(hidden=(8,)).build(data.input_shape, data.num_classes)
    optimizer = SGD(lr=0.1).build(model.parameters())
    settings = TrainerSettings(best_metric=metric, best_mode=mode, progress=Progress.off, max_batches=2)
    checkpoints = Checkpointer(tmp_path, model=model, optimizer=optimizer, generator=generator,
                               settings=settings, config={})
    tracker = Snapshots(model)
    fit(model, optimizer, data, epochs=len(values), batch_size=16, settings=settings, tracker=tracker,
        generator=generator, checkpoints=checkpoints)
    best = read_checkpoint(checkpoints.best)
    assert best.position.epoch == best_epoch + 1  # the next epoch to train from there
    assert best.best_value == values[best_epoch - 1]
    assert all(torch.equal(best.model[k], v) for k, v in tracker.weights[best_epoch - 1].items())
    last = read_checkpoint(checkpoints.last)
    assert last.position.epoch == len(values) + 1
    assert any(not torch.equal(best.model[k], last.model[k]) for k in last.model) == (best_epoch != len(values))

