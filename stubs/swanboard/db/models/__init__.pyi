# swanboard 0.1.10b2's peewee models, the parts tracking/swanlab_local.py uses.
from collections.abc import Iterable, Iterator

class Project:
    @classmethod
    def decrease_sum(cls, id: int = ...) -> int: ...

class Tag:
    name: str
    folder: str | None
    type: str  # "line" for a scalar; "image", "audio", "text"

class Experiment:
    RUNNING_STATUS: int
    id: int
    run_id: str  # the run's folder name in the log directory
    name: str
    sort: int
    status: int
    finish_time: str | None
    tags: Iterable[Tag]
    @classmethod
    def select(cls) -> Iterator[Experiment]: ...
    def delete_instance(self) -> int: ...
    def save(self) -> int: ...
