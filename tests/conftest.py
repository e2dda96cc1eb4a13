"""Shared fixtures and helpers of the test suite.

The module under test is ``softmax_c``; setting ``SOFTMAX_C_TEST_MODULE``
(e.g. to ``softmax_c.reference``) runs the same tests against another
implementation of the API, which is how the tests themselves are checked.
"""
import importlib
import os

import numpy as np
import pytest

MODULE_UNDER_TEST = os.environ.get("SOFTMAX_C_TEST_MODULE", "softmax_c")

try:
    from numpy.exceptions import AxisError
except ImportError:  # NumPy < 1.25
    AxisError = np.AxisError

# The accuracy contract of docs/api.md: u and tol per computed dtype.
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}

# Whether np.longdouble is wider than float64 (80-bit on x86-64 Linux): it
# is the "higher precision" the accuracy tests compute the exact result in.
LONGDOUBLE_IS_EXTENDED = np.finfo(np.longdouble).nmant >= 63


@pytest.fixture(scope="session")
def sc():
    """The module under test."""
    return importlib.import_module(MODULE_UNDER_TEST)


@pytest.fixture(scope="session")
def ref():
    """The NumPy reference, ``softmax_c.reference``."""
    return importlib.import_module("softmax_c.reference")


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, and different
    for each test."""
    seed = sum(map(ord, request.node.nodeid)) * 7919
    return np.random.default_rng(seed)


def snapshot(a):
    """A copy of `a` (if an ndarray) to compare with after a call."""
    return a.copy() if isinstance(a, np.ndarray) else None


def assert_unchanged(a, before):
    """`a` holds exactly what `before` (its snapshot) held, NaNs included."""
    if before is None:
        return
    assert a.dtype == before.dtype
    assert a.shape == before.shape
    assert a.tobytes() == before.tobytes(), "the array was modified"


# ---------------------------------------------------------------- added for the
# backward and cross-entropy suites (test_backward.py, test_cross_entropy.py)

def compute_dtype(dtype):
    """The dtype a computation on inputs of `dtype` runs in (docs/api.md's
    policy): float32/float64 themselves, float32 for float16, float64 for
    bool and integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    return np.dtype(np.float64)


def result_dtype(dtype):
    """The dtype returned for inputs of `dtype`: as `compute_dtype`, but
    float16 stays float16 (in native byte order)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype(np.float16)
    return compute_dtype(dtype)


# Unit roundoff of every result dtype, float16 included (UNIT_ROUNDOFF above
# holds the two compute dtypes).
RESULT_ROUNDOFF = {np.dtype(np.float16): 2.0**-11, np.dtype(np.float32): 2.0**-24,
                   np.dtype(np.float64): 2.0**-53}


def call_checked(fn, *args, **kwargs):
    """fn(*args, **kwargs), checking that no ndarray argument is modified,
    except `out` and the arrays that share memory with it."""
    out = kwargs.get("out")
    arrays = [a for a in list(args) + list(kwargs.values())
              if isinstance(a, np.ndarray) and a is not out
              and not (isinstance(out, np.ndarray) and np.shares_memory(a, out))]
    before = [snapshot(a) for a in arrays]
    res = fn(*args, **kwargs)
    for a, b in zip(arrays, before):
        assert_unchanged(a, b)
    return res


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or a clean skip where it is not installed."""
    return pytest.importorskip("torch")
