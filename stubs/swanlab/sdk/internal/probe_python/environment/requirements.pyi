# SwanLab's environment snapshot at init: `pip list --format=freeze` text, or None on failure.
from collections.abc import Callable

get: Callable[[], str | None]
