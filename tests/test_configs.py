"""Config tests: every group option composes, instantiates to its spec, and builds the right model."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra_zen import instantiate
from omegaconf import DictConfig
from torch import nn

from typedexp.app.store import APP_NAME, register_configs
from typedexp.data import Digits, FakeData
from typedexp.engine import Device, TrainerSettings
from typedexp.specs.models import MLP
from typedexp.specs.optim import SGD, Adam, AdamW
from typedexp.tracking import SwanLabMode, SwanLabTracking


@pytest.fixture(scope="module", autouse=True)
def hydra_store() -> Iterator[None]:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        yield


def composed(*overrides: str) -> DictConfig:
    return compose(config_name=APP_NAME, overrides=list(overrides))


def test_defaults_are_the_documented_ones() -> None:
    cfg = composed()
    assert instantiate(cfg.dataset) == Digits()
    assert instantiate(cfg.model) == MLP(hidden=(128,))
    assert instantiate(cfg.optim) == SGD(lr=0.01, momentum=0.9)
    assert instantiate(cfg.tracker) == SwanLabTracking(mode=SwanLabMode.local)
    assert instantiate(cfg.trainer) == TrainerSettings()
    assert (cfg.epochs, cfg.batch_size, cfg.seed) == (15, 64, 0)


@pytest.mark.parametrize(
    ("override", "node", "expected_type"),
    [
        ("dataset=digits", "dataset", Digits),
        ("dataset=fake", "dataset", FakeData),
        ("model=small", "model", MLP),
        ("model=large", "model", MLP),
        ("optim=sgd", "optim", SGD),
        ("optim=adam", "optim", Adam),
        ("optim=adamw", "optim", AdamW),
        ("tracker=local", "tracker", SwanLabTracking),
        ("tracker=offline", "tracker", SwanLabTracking),
        ("tracker=cloud", "tracker", SwanLabTracking),
        ("tracker=disabled", "tracker", SwanLabTracking),
    ],
)
def test_every_group_option_instantiates(override: str, node: str, expected_type: type) -> None:
    built = instantiate(composed(override)[node])
    assert type(built) is expected_type
    if isinstance(built, SwanLabTracking):
        assert built.mode.value == override.split("=")[1]


def linear_count(module: nn.Module) -> int:
    return sum(isinstance(layer, nn.Linear) for layer in module.modules())


@pytest.mark.parametrize(("option", "linears"), [("small", 2), ("large", 3)])
def test_small_and_large_are_sequentials_of_2_and_3_linears(option: str, linears: int) -> None:
    spec = instantiate(composed(f"model={option}").model)
    model = spec.build((1, 8, 8), 10)
    assert isinstance(model, nn.Sequential)
    assert linear_count(model) == linears
    first = next(layer for layer in model if isinstance(layer, nn.Linear))
    assert first.in_features == 64  # from the input shape, never typed by the user


def test_overrides_reach_the_specs() -> None:
    cfg = composed(
        "optim=adam", "optim.lr=3e-4", "model.hidden=[32,16]", "model.dropout=0.25",
        "model.activation=gelu", "trainer.device=cpu", "trainer.max_batches=5",
    )
    assert instantiate(cfg.optim) == Adam(lr=3e-4)
    model = instantiate(cfg.model)
    assert model == MLP(hidden=(32, 16), dropout=0.25, activation=model.activation)
    assert model.activation.value == "gelu"
    layers = model.build((3, 4, 4), 7)
    assert any(isinstance(layer, nn.Dropout) and layer.p == 0.25 for layer in layers)
    assert any(isinstance(layer, nn.GELU) for layer in layers)
    assert instantiate(cfg.trainer) == TrainerSettings(device=Device.cpu, max_batches=5)


def python_snippet(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("flag", ["--help", "--cfg job"])
def test_help_and_cfg_answer_without_importing_torch(flag: str) -> None:
    out = python_snippet(
        "import sys\n"
        f"sys.argv = ['typedexp', *{flag.split()!r}]\n"
        "from typedexp.app.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH LOADED' if 'torch' in sys.modules else 'NO TORCH')\n"
    )
    assert out.strip().endswith("NO TORCH")
    assert "optim:" in out and "lr: 0.01" in out


def test_help_lists_every_group_and_option() -> None:
    out = python_snippet(
        "import sys\nsys.argv = ['typedexp', '--help']\nfrom typedexp.app.cli import main\nmain()\n"
    )
    for line in (
        "dataset: cifar10, cifar100, diabetes, digits, fake, fashion_mnist, mnist",
        "model: cnn, large, small",
        "optim: adam, adamw, sgd",
        "task: classification, regression",
        "tracker: cloud, disabled, local, offline",
    ):
        assert line in out


def test_fast_help_prints_exactly_what_hydra_prints() -> None:
    run_help = "sys.argv = ['typedexp', '--help']\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\n"
    fast = python_snippet("import sys\nimport typedexp.app.cli as cli\n" + run_help)
    unpatched = python_snippet(
        "import sys\nimport typedexp.app.cli as cli\ncli.share_repository_for_help = lambda: None\n" + run_help
    )
    assert fast == unpatched
    assert "model: cnn, large, small" in fast
