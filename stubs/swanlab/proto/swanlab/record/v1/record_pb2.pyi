# The fields of SwanLab's protobuf Record that tests read (simplified from its own .pyi).
from typing import Literal

class _StartRecord:
    project: str
    name: str
    color: str
    group: str
    id: str  # the SwanLab run id (a resumed run keeps it)
    description: str
    tags: list[str]  # a protobuf repeated field; list() of it is a list

class _ScalarValue:
    number: float

class _ScalarRecord:
    key: str
    step: int
    value: _ScalarValue

class _MediaItem:
    filename: str
    caption: str

class _MediaValue:
    items: list[_MediaItem]

class _MediaRecord:
    key: str
    step: int
    value: _MediaValue

class _FinishRecord:
    state: int  # a swanlab.proto.swanlab.run.v1.run_pb2 RUN_STATE_* value
    error: str

class Record:
    start: _StartRecord
    scalar: _ScalarRecord
    media: _MediaRecord
    finish: _FinishRecord
    def __init__(self) -> None: ...
    def ParseFromString(self, serialized: bytes) -> int: ...
    def WhichOneof(self, oneof_group: Literal["record_type"]) -> str | None: ...
