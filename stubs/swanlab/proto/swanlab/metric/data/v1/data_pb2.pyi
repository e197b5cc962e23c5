# SwanLab's protobuf scalar record (simplified): what the local writer reads and tests build.
class ScalarValue:
    number: float
    def __init__(self, *, number: float = ...) -> None: ...

class ScalarRecord:
    key: str
    step: int
    type: int  # 1: a line chart
    value: ScalarValue
    def __init__(self, *, key: str = ..., step: int = ..., type: int = ..., value: ScalarValue | None = ...) -> None: ...
