"""`from typedexp import ...`: every public name, loaded only when first used."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import typedexp

INIT = Path(typedexp.__file__)


def test_importing_the_package_loads_neither_hydra_nor_torch() -> None:
    """What `typedexp --help`, completion and `typedexp runs` start from (issue 28)."""
    code = "import sys, typedexp; print(sorted({'hydra', 'omegaconf', 'torch', 'hydra_zen'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", typedexp.__all__)
def test_each_public_name_is_the_object_its_module_defines(name: str) -> None:
    value = getattr(typedexp, name)
    where = typedexp._WHERE[name]  # the table __getattr__ reads
    assert value is getattr(importlib.import_module(where), name)


def test_the_option_modules_keep_their_short_names() -> None:
    from typedexp import models, optim, schedules

    assert (models.__name__, optim.__name__, schedules.__name__) == (
        "typedexp.specs.models", "typedexp.specs.optim", "typedexp.specs.schedules",
    )


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'Experimnet'"):
        getattr(typedexp, "Experimnet")
    with pytest.raises(ImportError):
        exec("from typedexp import Experimnet", {})


def test_what_the_checkers_see_is_what_runs() -> None:
    """The TYPE_CHECKING imports (for mypy, pyright, IDEs) name the same objects as the lazy table."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {
        alias.asname or alias.name: f"{statement.module}.{alias.name}" if statement.module == "typedexp.specs" else statement.module
        for statement in guarded.body if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }
    lazy = {**typedexp._WHERE, **typedexp._MODULES}
    assert seen == lazy
    assert set(typedexp.__all__) == set(typedexp._WHERE)
    assert set(typedexp._WHERE) <= set(dir(typedexp))
