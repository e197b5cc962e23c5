"""The typed config store: every config group, preset and the top-level experiment, in Python.

Each config is derived by hydra-zen from a spec's signature (``populate_full_signature=True``),
so mypy checks a config's field names and types where it is constructed, and ``instantiate``
returns the spec's own type. Nothing here imports torch: the specs import it when they build.

Groups (``group=option`` on the command line):
    dataset: digits (default), fake, mnist, fashion_mnist, cifar10, cifar100
    model:   small (default, 2 Linear layers), large (3 Linear layers), cnn (the seed's Net)
    optim:   sgd (default, the seed's lr=0.01 momentum=0.9), adam, adamw
    tracker: local (default), offline, cloud, disabled
"""

from __future__ import annotations

from hydra.conf import HelpConf, HydraConf, JobConf, RunDir, SweepDir
from hydra_zen import ZenStore, builds

from typedexp.data import CIFAR10, CIFAR100, MNIST, Digits, FakeData, FashionMNIST
from typedexp.engine import TrainerSettings
from typedexp.models import CNN, MLP
from typedexp.optim import SGD, Adam, AdamW
from typedexp.task import run_experiment
from typedexp.tracking import SwanLabMode, SwanLabTracking

APP_NAME = "typedexp"  # Hydra's job name, the console script and the primary config's name

DigitsConf = builds(Digits, populate_full_signature=True)
FakeDataConf = builds(FakeData, populate_full_signature=True)
MNISTConf = builds(MNIST, populate_full_signature=True)
FashionMNISTConf = builds(FashionMNIST, populate_full_signature=True)
CIFAR10Conf = builds(CIFAR10, populate_full_signature=True)
CIFAR100Conf = builds(CIFAR100, populate_full_signature=True)
MLPConf = builds(MLP, populate_full_signature=True)
CNNConf = builds(CNN, populate_full_signature=True)
SGDConf = builds(SGD, populate_full_signature=True)
AdamConf = builds(Adam, populate_full_signature=True)
AdamWConf = builds(AdamW, populate_full_signature=True)
TrackerConf = builds(SwanLabTracking, populate_full_signature=True)
TrainerConf = builds(TrainerSettings, populate_full_signature=True)

SmallModelConf = MLPConf(hidden=(128,))  # the seed's small model: 2 Linear layers
LargeModelConf = MLPConf(hidden=(256, 128))  # the seed's large model: 3 Linear layers

# The top-level config is the task's own signature; the defaults list picks each group's option.
ExperimentConf = builds(
    run_experiment,
    populate_full_signature=True,
    zen_exclude=("zen_cfg",),
    trainer=TrainerConf(),
    hydra_defaults=[
        "_self_",
        {"dataset": "digits"},
        {"model": "small"},
        {"optim": "sgd"},
        {"tracker": "local"},
    ],
)

HELP_HEADER = """typedexp: typed PyTorch experiments (hydra-zen configs, SwanLab tracking).

Examples:
  typedexp                                   # small MLP on the bundled digits, tracked locally
  typedexp model=large optim=adam optim.lr=3e-4 epochs=5
  typedexp -m optim.lr=0.1,0.01 model=small,large   # a sweep, one run per combination
  typedexp --cfg job                         # print the resolved config and exit
"""

HELP_FOOTER = """Outputs go to outputs/<date>/<time>/ (multirun/ for sweeps); SwanLab data to swanlog/.
Open the dashboard with: swanlab watch swanlog
Set HYDRA_FULL_ERROR=1 for a full traceback on errors; --hydra-help for Hydra's own flags.
"""

# Run directories carry microseconds so two runs started in the same second never share one.
HYDRA_SETTINGS = HydraConf(
    job=JobConf(name=APP_NAME),
    run=RunDir(dir="outputs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"),
    sweep=SweepDir(dir="multirun/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}", subdir="${hydra.job.num}"),
    help=HelpConf(app_name=APP_NAME, header=HELP_HEADER, footer=HELP_FOOTER),
)


def build_store() -> ZenStore:
    store = ZenStore(name=APP_NAME, overwrite_ok=True)
    dataset = store(group="dataset")
    dataset(DigitsConf, name="digits")
    dataset(FakeDataConf, name="fake")
    dataset(MNISTConf, name="mnist")
    dataset(FashionMNISTConf, name="fashion_mnist")
    dataset(CIFAR10Conf, name="cifar10")
    dataset(CIFAR100Conf, name="cifar100")
    model = store(group="model")
    model(SmallModelConf, name="small")
    model(LargeModelConf, name="large")
    model(CNNConf, name="cnn")
    optim = store(group="optim")
    optim(SGDConf, name="sgd")
    optim(AdamConf, name="adam")
    optim(AdamWConf, name="adamw")
    tracker = store(group="tracker")
    for mode in SwanLabMode:
        tracker(TrackerConf(mode=mode), name=mode.value)
    store(ExperimentConf, name=APP_NAME)
    store(HYDRA_SETTINGS, name="config", group="hydra")
    return store


def register_configs() -> None:
    """Put every typedexp config into Hydra's global ConfigStore (safe to call repeatedly)."""
    build_store().add_to_hydra_store(overwrite_ok=True)
