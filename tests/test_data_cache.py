"""The dataset kept between the jobs of one process (data/cache.py): reused only where it is the same data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.dataset_files import write_mnist
from tests.helpers import run_main
from typedexp import launch
from typedexp.data import MNIST, DataBundle, Digits, FakeData
from typedexp.data import cache
from typedexp.data.cache import forget, load_shared
from typedexp.engine import TrainerSettings
from typedexp.engine import prepare as real_prepare

SHORT = ["epochs=1", "trainer.max_batches=2", "tracker=disabled"]


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    forget()
    yield
    forget()


def assert_same(bundle: DataBundle, fresh: DataBundle) -> None:
    assert fresh.test is not None if bundle.test is not None else fresh.test is None
    for part in ("train", "val", "test"):
        got, want = getattr(bundle, part), getattr(fresh, part)
        if want is None:
            continue
        for name in ("images", "labels", "source_index"):
            assert torch.equal(getattr(got, name), getattr(want, name)), f"{part}.{name}"
    assert (bundle.num_classes, bundle.augmentation, bundle.mean, bundle.std) == (
        fresh.num_classes, fresh.augmentation, fresh.mean, fresh.std
    )


def counting_loads(monkeypatch: pytest.MonkeyPatch, spec_type: type[Digits] | type[FakeData] | type[MNIST]) -> list[object]:
    loads: list[object] = []
    real = spec_type.load

    def counted(self: Digits | FakeData | MNIST) -> DataBundle:
        loads.append(self)
        return real(self)  # type: ignore[arg-type]  # self is a spec_type

    monkeypatch.setattr(spec_type, "load", counted)
    return loads


@pytest.mark.parametrize("spec", [Digits(), FakeData(num_samples=300, channels=3)])
def test_a_kept_bundle_equals_a_fresh_load_and_is_loaded_once(spec: Digits | FakeData, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = spec.load()
    loads = counting_loads(monkeypatch, type(spec))
    first, second = load_shared(spec), load_shared(type(spec)(**vars(spec)))  # an equal spec, not the same object
    assert len(loads) == 1
    assert_same(first, fresh)
    assert_same(second, fresh)


def test_different_dataset_settings_get_different_data() -> None:
    assert len(load_shared(Digits(val_fraction=0.3)).val) == round(1797 * 0.3)
    assert len(load_shared(Digits(val_fraction=0.2)).val) == round(1797 * 0.2)
    one, other = load_shared(FakeData(seed=1)), load_shared(FakeData(seed=2))
    assert not torch.equal(one.train.images, other.train.images)
    assert_same(other, FakeData(seed=2).load())
    split_one, split_other = load_shared(Digits(split_seed=1)), load_shared(Digits(split_seed=2))
    assert not torch.equal(split_one.val.source_index, split_other.val.source_index)


def test_changing_a_bundle_in_place_does_not_reach_the_next_caller() -> None:
    spec = FakeData(num_samples=200)
    first = load_shared(spec)
    first.train.images.mul_(0).add_(7)  # what an in-place normalisation or a careless hook does
    first.train.labels.zero_()
    first.val.images.fill_(float("nan"))
    assert_same(load_shared(spec), spec.load())


def test_changed_dataset_files_are_read_again(tmp_path: Path) -> None:
    write_mnist(tmp_path, seed=0)
    spec = MNIST(root=str(tmp_path), cache=False)
    before = load_shared(spec)
    write_mnist(tmp_path, seed=1)  # the same names, new contents (and mtimes)
    after = load_shared(spec)
    assert not torch.equal(before.train.images, after.train.images)
    assert_same(after, spec.load())


@dataclass(frozen=True)
class UserDigits(Digits):
    """A user's spec: its ``load`` may depend on anything, so it is never kept."""


def test_a_users_spec_is_loaded_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = counting_loads(monkeypatch, Digits)
    load_shared(UserDigits())
    load_shared(UserDigits())
    assert len(loads) == 2


def test_jobs_in_one_process_share_the_load_but_not_the_tensors(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's three jobs in one process (Hydra's basic launcher): the first changes its data in place."""
    loads = counting_loads(monkeypatch, FakeData)
    seen: list[DataBundle] = []

    def recording(net: torch.nn.Module, data: DataBundle, settings: TrainerSettings, device: torch.device) -> tuple[torch.nn.Module, DataBundle]:
        seen.append(data)
        if len(seen) == 1:
            data.train.images.add_(100.0)  # the first job spoils its own copy
        return real_prepare(net, data, settings, device)

    monkeypatch.setattr("typedexp.app.pipeline.prepare", recording)  # what the task calls on the loaded data
    done = run_main(["-m", "dataset=fake", "dataset.num_samples=300", "dataset.seed=0,0,5", *SHORT], workdir)
    assert done.returncode == 0, done.stderr
    assert len(loads) == 2  # the second job reused the first's load; the third has other data
    fresh, other = FakeData(num_samples=300).load(), FakeData(num_samples=300, seed=5).load()
    assert_same(seen[1], fresh)
    assert_same(seen[2], other)
    assert not torch.equal(seen[1].train.images, seen[2].train.images)


def test_a_single_run_keeps_no_copy_of_its_dataset(workdir: Path) -> None:
    """Outside a sweep the kept bundle would only double the dataset's memory until exit."""
    forget()
    launch(["tracker=disabled", "epochs=1", "trainer.max_batches=1", "trainer.progress=off"])
    assert load_shared.__module__ == cache.__name__ and cache._kept == []
