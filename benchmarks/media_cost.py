"""What the pictures cost: one sample grid and one confusion matrix against one training epoch.

The default run (``small`` MLP on the bundled digits, batch 64, 1,437 training examples) trains
an epoch; the same process then draws what ``trainer.media_every`` asks for after an epoch (the
model on 16 validation images, rendered and written as a PNG) and at the end (the validation
confusion matrix, rendered and written), each through ``MediaFiles`` as a run does. Reports
medians of interleaved repeats and their ratio to the epoch. The step loop itself is not
touched: media run between epochs.

    python -m benchmarks.media_cost
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, table
from typedexp import Experiment
from typedexp.engine import TrainerSettings, fit
from typedexp.engine.media import confusion_counts, sample_predictions
from typedexp.engine.settings import Progress
from typedexp.tracking import NullTracker
from typedexp.tracking.media_files import MediaFiles

REPEATS = 7


def main() -> None:
    torch.manual_seed(0)
    experiment = Experiment()
    data = experiment.dataset.load()
    model = experiment.model.build(data.input_shape, data.num_classes)
    optimizer = experiment.optim.build(model.parameters())
    settings = TrainerSettings(progress=Progress.off)
    generator = torch.Generator().manual_seed(0)
    epoch_s, grid_s, matrix_s = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        files = MediaFiles(Path(scratch) / "media")
        for repeat in range(REPEATS):
            started = time.perf_counter()
            fit(model, optimizer, data, epochs=1, batch_size=experiment.batch_size, settings=settings,
                tracker=NullTracker(), generator=generator)
            epoch_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            files.log_media(sample_predictions(model, data, settings.media_samples), step=repeat, epoch=repeat + 1)
            grid_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            matrix = confusion_counts(model, data.val, num_classes=data.num_classes, batch_size=settings.eval_batch_size)
            files.log_media(matrix, step=repeat, epoch=repeat + 1)
            matrix_s.append(time.perf_counter() - started)
        assert files.failure is None and len(files.written) == 2 * REPEATS
    epoch = statistics.median(epoch_s)
    rows = [
        ["one epoch (training + validation), the baseline", f"{epoch * 1000:.1f} ms", "1.00"],
        ["sample grid: 16 predictions, drawn, PNG written", f"{statistics.median(grid_s) * 1000:.1f} ms",
         f"{statistics.median(grid_s) / epoch:.3f}"],
        ["confusion matrix: the validation split, drawn, PNG written", f"{statistics.median(matrix_s) * 1000:.1f} ms",
         f"{statistics.median(matrix_s) / epoch:.3f}"],
    ]
    print(machine())
    print(f"medians of {REPEATS} interleaved repeats, default experiment (small MLP, digits)")
    print(table(["what", "wall", "÷ epoch"], rows))


if __name__ == "__main__":
    main()
