"""Media beyond scalars: the sample grids and confusion matrix, as PNGs in the run dir and in
SwanLab; each picture is checked against the saved model's own predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.sdk.internal.core_python.store import DataStoreReader

from typedexp import ConfigError, Experiment, launch
from typedexp.engine.media import displayable
from typedexp.tracking.base import ConfusionMatrix
from typedexp.tracking.media_files import MediaFiles
from typedexp.tracking.render import LAYOUT_KEY, RIGHT, WRONG, shade

from tests.test_tracking import only_run

# Three epochs, a grid every second one: grids after epochs 2 and 3 (the last), then the matrix.
RUN = ["epochs=3", "trainer.max_batches=5", "trainer.log_every=5", "trainer.progress=off", "trainer.media_every=2"]


def layout(path: Path) -> dict[str, object]:
    with Image.open(path) as picture:
        text = picture.info[LAYOUT_KEY]
    assert isinstance(text, str)
    found = json.loads(text)
    assert isinstance(found, dict)
    return found


def pixels(path: Path) -> torch.Tensor:
    """(H, W, 3) uint8"""
    with Image.open(path) as picture:
        return torch.from_numpy(numpy.asarray(picture.convert("RGB")).copy())


def saved_model_on_val(run_dir: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, tuple[float, ...], tuple[float, ...]]:
    """The run's model.pt in the default model, and the default dataset's validation split."""
    experiment = Experiment()
    data = experiment.dataset.load()
    model = experiment.model.build(data.input_shape, data.num_classes)
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    model.eval()
    return model, data.val.images, data.val.labels, data.mean, data.std


def test_pictures_show_the_saved_models_predictions(workdir: Path) -> None:
    result = launch(["tracker=disabled", *RUN])
    media = result.run_dir / "media"
    assert sorted(path.name for path in media.iterdir()) == [
        "val-confusion-matrix.png", "val-samples-epoch-002.png", "val-samples-epoch-003.png",
    ]
    model, images, labels, mean, std = saved_model_on_val(result.run_dir)
    with torch.inference_mode():
        predicted = model(images).argmax(dim=1)

    # The confusion matrix: its counts are the saved model's on the whole validation split, and
    # each cell's colour is the shade of its count (larger is darker).
    matrix_png = media / "val-confusion-matrix.png"
    matrix = layout(matrix_png)
    classes = 10
    expected = torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)
    assert matrix["counts"] == expected.tolist()
    assert int(expected.sum()) == len(labels)
    drawn = pixels(matrix_png)
    origin, cell = matrix["origin"], matrix["cell"]
    assert isinstance(origin, list) and isinstance(cell, int)
    most = int(expected.max())
    for true in range(classes):
        for guess in range(classes):
            corner = drawn[origin[1] + true * cell + 1, origin[0] + guess * cell + 1]  # clear of the number
            assert tuple(corner.tolist()) == shade(int(expected[true, guess]) / most)

    # The last grid: the first 16 validation images, each tile exactly the image scaled up, with
    # the saved model's prediction and the true label, its caption green when right, red when wrong.
    grid_png = media / "val-samples-epoch-003.png"
    grid = layout(grid_png)
    tiles = grid["tiles"]
    assert isinstance(tiles, list) and len(tiles) == 16
    assert grid["labels"] == labels[:16].tolist()
    assert grid["predicted"] == predicted[:16].tolist()
    scale, size = grid["scale"], grid["tile_size"]
    assert isinstance(scale, int) and size == [8 * scale, 8 * scale]
    tile_w = tile_h = 8 * scale
    shown = (displayable(images[:16], mean, std) * 255).round().to(torch.uint8)  # (16, 1, 8, 8)
    drawn = pixels(grid_png)
    for k, (x, y) in enumerate(tiles):
        tile = drawn[y : y + tile_h, x : x + tile_w]
        assert torch.equal(tile[::scale, ::scale, 0], shown[k, 0])
        caption = drawn[y + tile_h : y + tile_h + 16, x : x + tile_w].reshape(-1, 3)
        ink = RIGHT if predicted[k] == labels[k] else WRONG
        other = WRONG if predicted[k] == labels[k] else RIGHT
        assert pixels_of(caption, ink) > 10 and pixels_of(caption, other) == 0


def pixels_of(pixels: torch.Tensor, colour: tuple[int, int, int]) -> int:
    """How many of the (N, 3) uint8 ``pixels`` are within 40 (summed over RGB) of ``colour``."""
    return int(((pixels.int() - torch.tensor(colour)).abs().sum(dim=1) < 40).sum())


def test_media_every_zero_draws_nothing(workdir: Path) -> None:
    result = launch(["tracker=disabled", *RUN, "trainer.media_every=0"])
    assert not (result.run_dir / "media").exists()


@pytest.mark.parametrize("override", ["trainer.media_every=-1", "trainer.media_samples=0", "trainer.media_samples=257"])
def test_bad_media_settings_are_refused(workdir: Path, override: str) -> None:
    with pytest.raises(ConfigError, match=override.partition("=")[0].replace(".", r"\.")):
        launch(["tracker=disabled", *RUN, override])


def test_swanlab_receives_the_same_pictures(workdir: Path) -> None:
    result = launch(["tracker=offline", "tracker.log_dir=sl", *RUN])
    swan_dir = only_run(workdir / "sl")
    reader = DataStoreReader()
    reader.open(next(swan_dir.glob("run-*.swanlab")))
    received: dict[tuple[str, int], tuple[str, str]] = {}  # (key, step) -> (file, caption)
    for raw in reader:
        record = Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "media":
            (item,) = record.media.value.items
            received[(record.media.key, record.media.step)] = (item.filename, item.caption)
    reader.close()
    # 5 steps per epoch: grids at the steps of epochs 2 and 3, the matrix at the last step.
    assert sorted(received) == [("val/confusion_matrix", 15), ("val/samples", 10), ("val/samples", 15)]
    media = result.run_dir / "media"
    for (key, step), (name, caption) in received.items():
        ours = media / ("val-confusion-matrix.png" if key == "val/confusion_matrix" else f"val-samples-epoch-{step // 5:03d}.png")
        theirs = next(swan_dir.rglob(name))
        assert torch.equal(pixels(theirs), pixels(ours))
        assert caption.endswith("(caption: predicted / true class)" if key == "val/samples" else "columns predicted")


def test_a_resume_may_change_the_media_settings_and_draws_on(workdir: Path) -> None:
    first = launch(["tracker=disabled", "epochs=2", "trainer.max_batches=3", "trainer.progress=off"])
    resumed = launch([f"resume={first.run_dir}", "epochs=4", "trainer.media_every=1"])
    assert resumed.run_dir == first.run_dir
    assert sorted(path.name for path in (first.run_dir / "media").iterdir()) == [
        "val-confusion-matrix.png",
        "val-samples-epoch-002.png",  # the first run's last epoch
        "val-samples-epoch-003.png",
        "val-samples-epoch-004.png",
    ]


def test_pictures_that_cannot_be_written_cost_one_warning(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "media").symlink_to(elsewhere)  # planted before the run
    warnings: list[str] = []
    files = MediaFiles(tmp_path / "run" / "media", warn=warnings.append)
    matrix = ConfusionMatrix("val/confusion_matrix", ((1, 0), (0, 1)))
    for epoch in (1, 2):
        files.log_media(matrix, step=epoch, epoch=epoch)
    assert list(elsewhere.iterdir()) == []  # nothing written through the symlink
    assert len(warnings) == 1 and "is a symlink" in warnings[0] and "training continues" in warnings[0]
    assert files.written == []
