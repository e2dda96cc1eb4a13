"""Shared fixtures and helpers of the test suite.

The module under test is ``softmax_c``; setting ``SOFTMAX_C_TEST_MODULE``
(e.g. to ``softmax_c.reference``) runs the same tests against another
implementation of the API, which is how the tests themselves are checked.
"""
import importlib
import os
import subprocess
import sys

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


def simd_levels():
    """The SIMD levels softmax_c was built with and this CPU runs, lowest
    first."""
    import softmax_c
    info = softmax_c.build_info()
    supported = info.get("simd_supported", info["simd"])
    order = ["scalar", "avx2", "avx512f"]
    best = order.index(supported) if supported in order else 0
    return [lvl for lvl in order[:best + 1] if lvl in info["simd_compiled"]]


def run_at_level(level, script, *args, timeout=600):
    """The standard output of ``python -c script *args`` with softmax_c
    forced to SIMD `level` (SOFTMAX_C_SIMD: the level is chosen once per
    process, so one subprocess per level), importing the softmax_c this
    process does; fails the test if the script does."""
    import softmax_c
    env = dict(os.environ, SOFTMAX_C_SIMD=level)
    src = os.path.dirname(os.path.dirname(os.path.abspath(softmax_c.__file__)))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


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


# ---------------------------------------------------------------- half-width
# dtypes (test_half.py, test_half_backward.py): bfloat16 is the ml_dtypes
# NumPy dtype, and its tests skip without ml_dtypes (in the test extra).

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    ml_dtypes = None
    BF16 = None

F16 = np.dtype(np.float16)
HALF = [pytest.param("float16", id="float16"),
        pytest.param("bfloat16", id="bfloat16",
                     marks=pytest.mark.skipif(ml_dtypes is None, reason="needs ml_dtypes"))]
# significand bits (with the implicit one) and the smallest spacing honoured
# and the magnitude from which rounding goes to inf (the largest finite
# value plus half its spacing)
HALF_PREC = {"float16": (11, 2.0**-24, 65520.0),
             "bfloat16": (8, 2.0**-126, (2 - 2.0**-8) * 2.0**127)}


def half_dtype(name):
    return F16 if name == "float16" else BF16


def half_ulp(t, name):
    """One unit in the last place of the output dtype `name` at the exact
    values t (float64); at least the dtype's smallest spacing (bfloat16:
    2^-126, below which the float32 exponential flushes to 0, as the
    float32 kernels' results)."""
    p, floor, _ = HALF_PREC[name]
    a = np.abs(np.asarray(t, np.float64))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    return np.maximum(np.ldexp(1.0, (e - (p - 1)).astype(int)), floor)
