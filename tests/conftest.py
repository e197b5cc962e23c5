from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.helpers import SignalServer


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty temp dir: outputs/, multirun/ and swanlog/ land here, never in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWANLAB_API_KEY", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def signalled() -> Iterator[SignalServer]:
    """``run_signalled`` with each case forked from one interpreter that has imported torch (per worker)."""
    from tests.helpers import SignalServer

    server = SignalServer()
    try:
        yield server
    finally:
        server.close()
