import numpy as np
from numpy.typing import NDArray

class _Digits:
    images: NDArray[np.float64]  # (1797, 8, 8), values 0..16
    target: NDArray[np.int64]  # (1797,), digits 0..9

def load_digits(*, n_class: int = 10) -> _Digits: ...
