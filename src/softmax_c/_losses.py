"""The reduction of per-sample cross-entropy losses to their sum or mean,
one function for the fast functions (``_api``) and the NumPy reference
(``reference``): the two reduce the same way by design, so their results
agree to the bit.  The package itself never imports ``reference``, the
oracle it is tested against.
"""
import math

import numpy as np


def reduce_losses(losses, dtype, denom=None):
    """The sum of the per-sample `losses` in `dtype` (a NumPy float type),
    or with `denom` their mean.  Where the plain sum overflows although
    every loss is finite (two losses of 0.9 times the largest float: their
    mean is finite), the losses are scaled by a power of two below
    1 / len(losses), summed, divided, and scaled back: exactly the plain
    computation's roundings wherever that does not overflow, and an
    infinity only where the sum (or mean) itself is beyond the range."""
    dtype = np.dtype(dtype)
    a = np.asarray(losses, dtype).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(a, dtype=dtype)  # np.sum's own call, without its wrapper
        scale = dtype.type(1)
        if not math.isfinite(total) and np.isfinite(a).all():
            scale = dtype.type(2.0 ** a.size.bit_length())
            total = np.add.reduce(a / scale, dtype=dtype)
        if denom is not None:
            total = dtype.type(total / denom)
        return dtype.type(total * scale)
