# Stubs for the part of swanlab 0.10 that typedexp uses. swanlab ships `__init__.pyi` but no
# `py.typed`, so mypy --strict treats it as untyped; these are checked against its signatures.
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from PIL.Image import Image as PILImage

__version__: str

ModeType = Literal["disabled", "online", "local", "offline"]
FinishType = Literal["success", "crashed", "aborted"]

class Settings:
    def __init__(
        self,
        *,
        interactive: bool = ...,
        mode: ModeType = ...,
        log_dir: str | Path = ...,
        api_key: str | None = ...,
    ) -> None: ...
    interactive: bool
    mode: ModeType
    log_dir: Path

class Image:
    def __init__(
        self,
        data_or_path: str | Path | PILImage,
        mode: str | None = None,
        caption: str | None = None,
        file_type: Literal["png", "jpg", "jpeg", "bmp"] | None = None,
        size: int | tuple[int | None, int | None] | None = None,
    ) -> None: ...

class Run:
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def dir(self) -> Path: ...
    def log(self, data: Mapping[str, float | Image], step: int | None = None) -> None: ...
    def finish(
        self, state: FinishType = "success", error: str | None = None
    ) -> None: ...

def init(
    *,
    reinit: bool | None = None,
    log_dir: str | None = None,
    mode: ModeType | None = None,
    workspace: str | None = None,
    project: str | None = None,
    name: str | None = None,
    color: str | None = None,
    description: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    config: dict[str, object] | None = None,
    id: str | None = None,
    resume: Literal["must", "allow", "never"] | bool | None = None,
    settings: Settings | None = None,
) -> Run: ...
def log(data: Mapping[str, float], step: int | None = None) -> None: ...
def finish(state: FinishType = "success", error: str | None = None) -> None: ...
