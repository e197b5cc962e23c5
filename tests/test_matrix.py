"""One training step for every model x dataset x norm, through the CLI's config path."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.datasets import cifar

from tests.dataset_files import write_all
from typedexp import ConfigError, launch
from typedexp.data import OPTIONS as DATASET_OPTIONS
from typedexp.data.tensors import TargetKind
from typedexp.data.vision import TorchvisionImages
from typedexp.specs.models import OPTIONS as MODEL_OPTIONS
from typedexp.specs.models import Norm

# From the option tables: a new model, dataset or norm is in the matrix without editing this file.
MODELS = list(MODEL_OPTIONS)
DATASETS = list(DATASET_OPTIONS)
NORMS = [norm.value for norm in Norm]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("data")
    write_all(root)
    with pytest.MonkeyPatch.context() as patch:  # our CIFAR files are not the real bytes
        patch.setattr(cifar, "check_integrity", lambda fpath, md5=None: Path(fpath).is_file())
        yield root


@pytest.mark.parametrize(("model", "dataset", "norm"), list(itertools.product(MODELS, DATASETS, NORMS)))
def test_one_step(workdir: Path, data_root: Path, model: str, dataset: str, norm: str) -> None:
    from_files = isinstance(DATASET_OPTIONS[dataset], TorchvisionImages)  # these have a test split
    root = [f"dataset.root={data_root}"] if from_files else []
    # Float targets (diabetes) take the regression task; class labels the default classification.
    values = getattr(DATASET_OPTIONS[dataset], "targets", TargetKind.classes) is TargetKind.values
    overrides = [
        f"model={model}", f"dataset={dataset}", *root, f"model.norm={norm}", "model.dropout=0.1",
        "epochs=1", "trainer.max_batches=1", "batch_size=8", "tracker=disabled",
        *(["task=regression"] if values else []),
    ]
    if model == "cnn" and values:  # diabetes rows are (10,) features, no image: one line, no run
        with pytest.raises(ConfigError, match=r"^model=cnn needs images \(C, H, W\), the dataset gives \(10,\)$"):
            launch(overrides)
        return
    result = launch(overrides)
    assert result.steps == 1
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    assert ("val/rmse" if values else "val/acc") in result.metrics  # the task's own metric
    assert ("test/acc" in result.metrics) == (from_files and not values)
