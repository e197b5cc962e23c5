"""The names the seed lesson teaches (its argparse flags, its flat YAML keys) get a hint to the
field typedexp keeps them in, in the one error line, instead of only the top-level list."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import QUICK, run_main


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("learning_rate=0.1", "learning_rate: unknown field; did you mean optim.lr? "),
        ("lr=0.1", "lr: unknown field; did you mean optim.lr? "),
        ("dropout=0.2", "dropout: unknown field; did you mean model.dropout? "),
        ("hidden=[64]", "hidden: unknown field; did you mean model.hidden? "),
        ("norm=batch", "norm: unknown field; did you mean model.norm? "),
        ("hidden_layer_sizes=[64]", "hidden_layer_sizes: unknown field; did you mean model.hidden? "),
        ("+lr=0.1", "lr: unknown field; did you mean optim.lr? "),  # appended with +: the guard's check
        ("momentum=0.5", "momentum: unknown field; did you mean optim.momentum? "),
        ("+batch_sise=16", "batch_sise: unknown field; did you mean batch_size? "),  # a misspelling first
    ],
)
def test_a_lesson_name_points_to_its_field(tmp_path: Path, override: str, hint: str) -> None:
    done = run_main([*QUICK, override], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1
    assert done.stderr_lines[0].startswith(f"typedexp: error: {hint}fields of the top level: dataset, model"), done.stderr


def test_a_field_the_chosen_option_lacks_gets_no_guess(tmp_path: Path) -> None:
    """``momentum`` of the chosen optimizer only: with Adam (no momentum) there is nothing to point to."""
    done = run_main([*QUICK, "optim=adam", "momentum=0.5"], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: momentum: unknown field; fields of the top level: dataset, model, optim, schedule, tracker, "
        "task, trainer, epochs, batch_size, seed, resume, allowed_targets, tags, note"
    ]
