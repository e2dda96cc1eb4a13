"""The forward functions softmax, log_softmax and logsumexp, held to docs/api.md.

Values are compared with the NumPy reference computed in float64 (a more
accurate oracle than the compute dtype) with tolerances that the contract's
accuracy bound implies, and, for the accuracy bound itself, with the exact
result computed in np.longdouble (80-bit on x86-64).  Exact equality is
asserted only where the contract implies it: NaN, 0 and -inf positions,
results that must not depend on unread values, and thread counts.
"""
import concurrent.futures
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from conftest import (
    LONGDOUBLE_IS_EXTENDED,
    MODULE_UNDER_TEST,
    TOL,
    UNIT_ROUNDOFF,
    AxisError,
    assert_unchanged,
    snapshot,
)

FORWARD = ["softmax", "log_softmax", "logsumexp"]
ELEMENTWISE = ["softmax", "log_softmax"]  # the two that take where= and out=
FLOATS = [np.float16, np.float32, np.float64]
F32_F64 = [np.float32, np.float64]
INTEGERS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
            np.uint64]
ROW_LENGTHS = list(range(71)) + [127, 128, 129, 255, 256, 257, 1000]

# Tolerances of a comparison with the float64 reference, by result dtype:
# relative (softmax) or absolute times max(1, |value|) (the other two), and
# an absolute floor for softmax values near the smallest normal.
_RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 1e-5,
         np.dtype(np.float64): 1e-12}
_ATOL = {np.dtype(np.float16): 2.0**-23, np.dtype(np.float32): 2.0**-124,
         np.dtype(np.float64): 2.0**-1020}


def result_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.newbyteorder("=")
    return np.dtype(np.float64)


def call(sc, name, x, *args, **kwargs):
    """sc.<name>(x, ...), checking that x is not modified (unless it is the
    `out`)."""
    before = None if kwargs.get("out") is x else snapshot(x)
    res = getattr(sc, name)(x, *args, **kwargs)
    assert_unchanged(x, before)
    return res


def expected(ref, name, x, **kwargs):
    """The reference result, computed in float64 and cast to the result
    dtype."""
    x = np.asarray(x)
    res = getattr(ref, name)(x.astype(np.float64), **kwargs)
    return np.asarray(res).astype(result_dtype(x.dtype))


def assert_matches(name, got, want):
    """`got` equals `want` (a more accurate result of the same dtype) within
    the contract's tolerances, NaN, +inf and -inf at the same places."""
    got = np.asarray(got)
    assert got.shape == want.shape
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    for special in (np.isnan, np.isposinf, np.isneginf):
        assert_array_equal(special(got), special(want), err_msg=special.__name__)
    fin = np.isfinite(want)
    g = got[fin].astype(np.float64)
    w = want[fin].astype(np.float64)
    rtol, atol = _RTOL[want.dtype], _ATOL[want.dtype]
    if name == "softmax":
        bound = rtol * np.abs(w) + atol
    else:
        bound = rtol * np.maximum(1, np.abs(w))
    err = np.abs(g - w)
    assert np.all(err <= bound), (
        f"{name}: worst error {np.max(err - bound) if err.size else 0} over the "
        f"bound; got {g[np.argmax(err - bound)]}, want {w[np.argmax(err - bound)]}")


def check_against_reference(sc, ref, name, x, **kwargs):
    got = call(sc, name, x, **kwargs)
    assert_matches(name, got, expected(ref, name, x, **kwargs))
    return got


# ---------------------------------------------------------------- exact results

def exact_all(x, axis=-1):
    """The three results for finite x along one axis in np.longdouble, and
    |x - max|."""
    xl = np.asarray(x).astype(np.longdouble)
    m = np.max(xl, axis=axis, keepdims=True)
    z = xl - m
    e = np.exp(z)
    log_s = np.log(np.sum(e, axis=axis, keepdims=True))
    return {"softmax": e / np.exp(log_s), "log_softmax": z - log_s,
            "logsumexp": np.squeeze(m + log_s, axis=axis), "dist": -z}


def exact(name, x, axis=-1):
    """The result of `name` for finite x along one axis in np.longdouble."""
    return exact_all(x, axis)[name]


def assert_accurate(name, got, x, axis=-1, ex=None):
    """docs/api.md's accuracy bound for finite x of dtype float32 / float64;
    `ex` is exact_all(x, axis) when already computed."""
    dtype = np.asarray(x).dtype
    u, tol = UNIT_ROUNDOFF[dtype], TOL[dtype]
    assert got.dtype == dtype
    ex = exact_all(x, axis) if ex is None else ex
    dist = ex["dist"]
    ex = ex[name]
    g = got.astype(np.longdouble)
    if name == "softmax":
        tiny = np.finfo(dtype).smallest_normal
        normal = ex >= tiny
        rel = np.abs(g[normal] - ex[normal]) / ex[normal]
        bound = tol + u * dist[normal]
        assert np.all(rel <= bound), (
            f"softmax: relative error {float(np.max(rel / bound))} times the bound")
        # Below the smallest normal the contract asks for no accuracy, but
        # results are still in [0, about the smallest normal].
        small = g[~normal]
        assert np.all((small >= 0) & (small <= 2 * tiny))
    else:
        err = np.abs(g - ex)
        bound = tol * np.maximum(1, np.abs(ex))
        assert np.all(err <= bound), (
            f"{name}: absolute error {float(np.max(err / bound))} times the bound")


def _rows(n, dtype, rng):
    """Test rows of length n: a spread of distributions, the max at either
    end, and rows whose exp(x) overflows while exp(x - max) does not."""
    deep = 80.0 if dtype == np.float32 else 700.0  # down to exp's underflow
    rows = [
        rng.normal(0, 3, n),
        rng.uniform(-deep, 0, n),
        np.full(n, 5.0),
        rng.uniform(-1e4, 1e4, n),
        1e4 + rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.uniform(80, 90, n) if dtype == np.float32 else rng.uniform(700, 720, n),
    ]
    x = np.array(rows).astype(dtype)
    if n:
        x[5, -1] = x[5].max() + 1  # the max in the tail
        x[6, 0] = x[6].max() + 1   # the max at the start
    return x


needs_longdouble = pytest.mark.skipif(
    not LONGDOUBLE_IS_EXTENDED,
    reason="np.longdouble is not wider than float64 on this platform")


# ---------------------------------------------------------------- accuracy, row lengths

@pytest.mark.parametrize("dtype", F32_F64)
def test_short_rows_alone_and_in_groups(sc, rng, dtype):
    """Rows of up to four vectors go in groups (log_softmax takes the logs
    of a group's sums at once, with AVX-512 up to rows of 1 KiB): a row has
    the same bits alone, at any place in a batch, in a strided batch, in
    place and on two threads; rows with NaN, +-inf, all -inf and huge
    values among them change no other row (their accuracy:
    test_row_lengths_contiguous)."""
    for n in [*range(1, 66), 96, 127, 128, 200, 255, 256]:
        x = (rng.standard_normal((37, n)) * 30).astype(dtype)
        x[3, 0] = np.nan
        x[5] = -np.inf
        x[6, n // 2] = np.inf
        x[8] *= np.finfo(dtype).max / 100
        x[9, -1] = -np.inf
        for name in FORWARD:
            whole = call(sc, name, x, num_threads=1)
            for r in range(x.shape[0]):
                assert_array_equal(call(sc, name, x[r:r + 1]), whole[r:r + 1],
                                   err_msg=f"{name} n={n} row {r}")
            assert_array_equal(call(sc, name, x[3:]), whole[3:])
            assert_array_equal(call(sc, name, x, num_threads=2), whole)
            wide = np.zeros((x.shape[0], 2 * n + 3), dtype)
            wide[:, 1:n + 1] = x
            assert_array_equal(call(sc, name, wide[:, 1:n + 1]), whole)
            if name != "logsumexp":
                y = x.copy()
                assert_array_equal(getattr(sc, name)(y, out=y), whole)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_contiguous_tiny_rows_in_whole_vectors(sc, rng, dtype, n):
    """Contiguous rows of 1-8 elements go as whole vectors holding several
    rows each: the same bits as the same rows strided, alone and in place,
    on either side of the groups' ends."""
    x = (rng.standard_normal((600, n)) * 30).astype(dtype)
    x[3, 0] = np.nan
    x[70] = -np.inf
    x[130, -1] = np.inf
    x[260] *= np.finfo(dtype).max / 100
    wide = np.zeros((600, n + 3), dtype)
    wide[:, 1:n + 1] = x
    for name in ELEMENTWISE:
        whole = call(sc, name, x)
        assert_array_equal(call(sc, name, wide[:, 1:n + 1]), whole)
        for r in (0, 3, 31, 32, 63, 64, 70, 127, 128, 130, 255, 256, 260, 599):
            assert_array_equal(call(sc, name, x[r:r + 1]), whole[r:r + 1], err_msg=f"row {r}")
        assert_array_equal(call(sc, name, x[1:]), whole[1:])
        y = x.copy()
        assert_array_equal(getattr(sc, name)(y, out=y), whole)
        assert_array_equal(call(sc, name, x, num_threads=2), whole)


@needs_longdouble
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_row_lengths_contiguous(sc, rng, n, dtype):
    """Every length 0..70 and around 128/256: the SIMD bodies and tails."""
    x = _rows(n, dtype, rng)
    ex = exact_all(x) if n else None
    for name in FORWARD:
        got = call(sc, name, x)
        assert got.shape == ((x.shape[0],) if name == "logsumexp" else x.shape)
        if n:
            assert_accurate(name, got, x, ex=ex)
        elif name == "logsumexp":
            assert_array_equal(got, np.full(x.shape[0], -np.inf, dtype))


@needs_longdouble
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_row_lengths_strided_axis(sc, rng, n, dtype):
    """The same rows along axis 0 of a C-contiguous array (the axis
    strided, the other contiguous), and the batch of length n along the
    contiguous axis."""
    x = np.ascontiguousarray(_rows(n, dtype, rng).T)  # shape (n, 8)
    y = _rows(n, dtype, rng)                          # shape (8, n)
    for name in FORWARD:
        if n:
            assert_accurate(name, call(sc, name, x, axis=0), x, axis=0)
            assert_accurate(name, call(sc, name, y, axis=0), y, axis=0)
        else:
            assert call(sc, name, y, axis=0).shape == ((0,) if name == "logsumexp"
                                                       else y.shape)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 129])
def test_value_rules_at_every_position(sc, n, dtype):
    """A NaN or +inf at the start, middle or tail of a row, and rows of -inf,
    whatever the length: the value rules hold for every SIMD lane."""
    for pos in sorted({0, n // 2, n - 1}):
        x = np.zeros((4, n), dtype)
        x[0, pos] = np.nan
        x[1, pos] = np.inf
        x[2, :] = -np.inf
        x[3, pos] = np.inf
        x[3, (pos + 1) % n] = np.nan
        sm, ls, lse = (call(sc, f, x) for f in FORWARD)
        assert np.isnan(sm).all() and np.isnan(ls).all()
        assert np.isnan(lse[0]) and lse[1] == np.inf and lse[2] == -np.inf
        if n > 1:
            assert np.isnan(lse[3])
        # transposed: the same rules along a strided axis
        xt = np.ascontiguousarray(x.T)
        assert np.isnan(call(sc, "softmax", xt, axis=0)).all()
        assert np.isnan(call(sc, "log_softmax", xt, axis=0)).all()
        assert_array_equal(call(sc, "logsumexp", xt, axis=0), lse)


# ---------------------------------------------------------------- accuracy, long rows

@needs_longdouble
@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("dist, layout", [
    ("normal", "row"), ("constant", "row"), ("wide", "row"), ("offset", "row"),
    ("many", "row"), ("constant", "column"), ("many", "column")])
def test_accuracy_long_rows(sc, rng, dist, dtype, layout):
    """Rows of 2^20, contiguous or along a strided axis: long sums must not
    add to the error (the contract's tol does not grow with the length)."""
    n = 2**20
    x = {
        "normal": lambda: rng.normal(0, 1, n),
        "constant": lambda: np.full(n, -3.25),
        "wide": lambda: rng.uniform(-1e3, 1e3, n),
        "offset": lambda: 1e5 + rng.normal(0, 10, n),
        "many": lambda: rng.uniform(-15, 0, n),
    }[dist]().astype(dtype)
    if layout == "row":
        x, axis = x.reshape(1, n), -1
    else:  # a long strided axis
        x, axis = np.stack([x, x[::-1]], axis=1), 0
    ex = exact_all(x, axis)
    for name in FORWARD:
        assert_accurate(name, call(sc, name, x, axis=axis), x, axis=axis, ex=ex)


@needs_longdouble
@pytest.mark.parametrize("dtype", F32_F64)
def test_accuracy_huge_spreads(sc, dtype):
    """Finite inputs of any magnitude: no overflow, exact results."""
    big = 1e38 if dtype == np.float32 else 1e307
    x = np.array([
        [1000.0, 1.0, 0, 0],
        [-1000.0, -1000.0, -1000.0, -1000.0],
        [1e30, -1e30, 0.0, 1.0],
        [big, -big, big / 2, 0.0],
        [88.0, 89.0, 100.0, 87.0],        # exp(x) overflows float32
        [710.0, 709.0, 700.0, 705.0],     # and float64
        [-big, -big, -big, -big],
        [3e38, 3e38, 1e38, 0.0] if dtype == np.float32 else [1.7e308] * 4,
    ], dtype)
    for name in FORWARD:
        got = call(sc, name, x)
        assert np.isfinite(got[np.isfinite(exact(name, x))]).all()
        assert_accurate(name, got, x)


def test_classic_example(sc):
    """[1000., 1.]: the example of docs/api.md's references."""
    x = np.array([1000.0, 1.0])
    assert_array_equal(sc.softmax(x), [1.0, 0.0])
    assert_array_equal(sc.log_softmax(x), [0.0, -999.0])
    assert float(sc.logsumexp(x)) == 1000.0
    assert sc.logsumexp(np.array([1000.0, 1000.0])) == pytest.approx(1000 + np.log(2),
                                                                     rel=1e-15)


@pytest.mark.parametrize("dtype", F32_F64)
def test_subnormal_results(sc, dtype):
    """Results below the smallest normal: not asked to be accurate, but in
    [0, smallest normal], and the normal ones beside them exact; log_softmax
    stays exact where softmax underflows."""
    tiny = np.finfo(dtype).smallest_normal
    d = 95.0 if dtype == np.float32 else 720.0  # exp(-d) is subnormal
    x = np.array([[0.0, -d, -d - 3, -2 * d, 1.0, -0.5]] * 3, dtype)
    x[1] = x[1][::-1]
    y = call(sc, "softmax", x)
    sub = y[exact("softmax", x) < tiny]
    assert sub.size == 9 and np.all((sub >= 0) & (sub <= tiny))
    assert_accurate("softmax", y, x)
    ls = call(sc, "log_softmax", x)
    assert_accurate("log_softmax", ls, x)
    assert np.all(np.isfinite(ls))
    # subnormal inputs are ordinary small numbers
    s = np.array([tiny / 4, tiny / 8, 0.0, -tiny / 2], dtype)
    assert_array_equal(sc.softmax(s), np.full(4, 0.25, dtype))


# ---------------------------------------------------------------- value rules

_NAN, _INF = np.nan, np.inf
VALUE_CASES = [
    # row, softmax, log_softmax, logsumexp
    ([_NAN, 1.0, 2.0], [_NAN] * 3, [_NAN] * 3, _NAN),
    ([1.0, 2.0, _NAN], [_NAN] * 3, [_NAN] * 3, _NAN),
    ([_INF, 1.0], [_NAN] * 2, [_NAN] * 2, _INF),
    ([1.0, _INF], [_NAN] * 2, [_NAN] * 2, _INF),
    ([_INF, _INF], [_NAN] * 2, [_NAN] * 2, _INF),
    ([_INF, -_INF], [_NAN] * 2, [_NAN] * 2, _INF),
    ([_INF, _NAN], [_NAN] * 2, [_NAN] * 2, _NAN),
    ([-_INF, _NAN], [_NAN] * 2, [_NAN] * 2, _NAN),
    ([-_INF, -_INF, -_INF], [_NAN] * 3, [_NAN] * 3, -_INF),
    ([-_INF], [_NAN], [_NAN], -_INF),
    ([-_INF, 0.0], [0.0, 1.0], [-_INF, 0.0], 0.0),
    ([0.0, -_INF, 0.0], [0.5, 0.0, 0.5], [-np.log(2), -_INF, -np.log(2)], np.log(2)),
    ([7.0], [1.0], [0.0], 7.0),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("row, sm, ls, lse", VALUE_CASES)
def test_value_rules(sc, row, sm, ls, lse, dtype):
    """NaN, +inf and -inf as docs/api.md's value rules give them, each slice on
    its own (the other rows of the batch are ordinary)."""
    n = len(row)
    x = np.zeros((3, n), dtype)
    x[1] = row
    x[2] = np.arange(n)
    rdt = result_dtype(dtype)
    for name, want in (("softmax", sm), ("log_softmax", ls)):
        got = call(sc, name, x)
        assert got.dtype == rdt
        want = np.asarray(want, dtype=rdt)
        assert_array_equal(np.isnan(got[1]), np.isnan(want))
        fin = ~np.isnan(want)
        np.testing.assert_allclose(got[1][fin].astype(float), want[fin].astype(float),
                                   rtol=2e-3 if dtype == np.float16 else 1e-6)
        assert not np.isnan(got[[0, 2]]).any()
        # the same along a strided axis
        got_t = call(sc, name, np.ascontiguousarray(x.T), axis=0)
        assert_array_equal(np.isnan(got_t.T), np.isnan(got))
    got = call(sc, "logsumexp", x)
    if np.isnan(lse):
        assert np.isnan(got[1])
    else:
        assert got[1] == pytest.approx(lse, rel=1e-3, abs=1e-6)
    assert not np.isnan(got[[0, 2]]).any()


# ---------------------------------------------------------------- axes

AXES = [0, 1, 2, -1, -2, -3, (0,), (2,), (0, 2), (2, 0), (1, 2), (0, 1, 2), (-1, 0),
        (), None]


@pytest.mark.parametrize("axis", AXES, ids=repr)
@pytest.mark.parametrize("name", FORWARD)
def test_axis_forms(sc, ref, rng, name, axis):
    x = rng.normal(0, 4, (3, 4, 5))
    check_against_reference(sc, ref, name, x, axis=axis)
    check_against_reference(sc, ref, name, x.astype(np.float32), axis=axis)


@pytest.mark.parametrize("axis", AXES, ids=repr)
@pytest.mark.parametrize("name", FORWARD)
def test_axis_forms_match_scipy(sc, rng, name, axis):
    special = pytest.importorskip("scipy.special")
    x = rng.normal(0, 4, (3, 4, 5))
    got = call(sc, name, x, axis=axis)
    want = getattr(special, name)(x, axis=axis)
    if name == "softmax":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("name", FORWARD)
def test_default_axis_is_last(sc, rng, name):
    x = rng.normal(size=(3, 4, 5))
    assert_array_equal(call(sc, name, x), call(sc, name, x, axis=-1))
    assert_array_equal(call(sc, name, x), call(sc, name, x, axis=2))


def test_axis_none_is_all_axes(sc, rng):
    x = rng.normal(size=(3, 4, 5))
    y = call(sc, "softmax", x, axis=None)
    assert y.sum() == pytest.approx(1.0, rel=1e-13)
    np.testing.assert_allclose(y, sc.softmax(x.ravel()).reshape(x.shape), rtol=1e-13)
    assert sc.logsumexp(x, axis=None) == pytest.approx(float(sc.logsumexp(x.ravel())),
                                                       rel=1e-14)


@pytest.mark.parametrize("name", FORWARD)
def test_empty_tuple_axis_makes_each_element_a_slice(sc, name):
    """axis=(): every element is a slice of one element."""
    x = np.array([[1.0, -2.0], [np.nan, -np.inf]])
    got = call(sc, name, x, axis=())
    want = {"softmax": [[1.0, 1.0], [np.nan, np.nan]],
            "log_softmax": [[0.0, 0.0], [np.nan, np.nan]],
            "logsumexp": [[1.0, -2.0], [np.nan, -np.inf]]}[name]
    assert_array_equal(got, want)


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("dtype", FLOATS + INTEGERS + [np.bool_])
def test_dtype_policy(sc, ref, rng, name, dtype):
    """float16/32/64 return themselves (float16 computed in float32); bool
    and integers return float64."""
    if np.dtype(dtype).kind == "f":
        x = rng.normal(0, 3, (4, 33)).astype(dtype)
    elif dtype == np.bool_:
        x = rng.integers(0, 2, (4, 33)).astype(bool)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -100), min(info.max, 100), (4, 33)).astype(dtype)
        x[0, :2] = info.min, info.max  # magnitudes of 2^63 are exact too
    got = check_against_reference(sc, ref, name, x)
    assert got.dtype == result_dtype(dtype)


@pytest.mark.parametrize("name", FORWARD)
def test_float16_not_computed_in_float16(sc, name):
    """Values whose float16 intermediate results would overflow (exp(12) >
    65504) or lose the sum of many terms."""
    x = np.array([[12.0, 11.0, 10.0, 9.0], [-5.0, -5.0, -5.0, -5.0]], np.float16)
    got = call(sc, name, x)
    assert got.dtype == np.float16
    want = exact(name, x.astype(np.float64)).astype(np.float16)
    np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=2e-3)
    long_row = np.zeros((1, 5000), np.float16)
    y = call(sc, name, long_row)
    want = {"softmax": 1 / 5000, "log_softmax": -np.log(5000),
            "logsumexp": np.log(5000)}[name]
    np.testing.assert_allclose(y.astype(float), want, rtol=2e-3)


def test_byte_swapped_input(sc, ref, rng):
    x = rng.normal(size=(3, 17))
    xs = x.astype(x.dtype.newbyteorder(">"))
    for name in FORWARD:
        got = call(sc, name, xs)
        assert got.dtype == np.float64 and got.dtype.isnative
        assert_matches(name, got, expected(ref, name, x))


REJECTED = [np.complex64, np.complex128, np.object_, "U3", "S3", "datetime64[s]",
            "timedelta64[s]", [("a", "f8"), ("b", "f8")]]
if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant:
    REJECTED.append(np.longdouble)


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("dtype", REJECTED, ids=str)
def test_rejected_dtypes(sc, name, dtype):
    dtype = np.dtype(dtype)
    x = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError) as info:
        call(sc, name, x)
    msg = str(info.value)
    assert str(dtype) in msg or dtype.name in msg, msg


def test_array_likes(sc):
    assert_array_equal(sc.softmax([1.0, 1.0]), [0.5, 0.5])
    assert_array_equal(sc.softmax(((0, 0), (1, 1))), [[0.5, 0.5], [0.5, 0.5]])
    assert sc.softmax([1, 2]).dtype == np.float64
    assert sc.logsumexp([0.0, 0.0]) == pytest.approx(np.log(2))
    assert_array_equal(sc.softmax(3.0, axis=None), 1.0)


class _DLPackOnly:
    """An array of another library that speaks DLPack but not __array__."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("name", FORWARD)
def test_dlpack_input(sc, ref, rng, name):
    x = rng.normal(size=(3, 9)).astype(np.float32)
    got = getattr(sc, name)(_DLPackOnly(x))
    assert_matches(name, np.asarray(got), expected(ref, name, x))


@pytest.mark.parametrize("name", FORWARD)
def test_torch_tensor_input(sc, ref, rng, name):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(3, 9)).astype(np.float32)
    got = getattr(sc, name)(torch.from_numpy(x))
    assert isinstance(got, (np.ndarray, np.generic))
    assert_matches(name, np.asarray(got), expected(ref, name, x))


# ---------------------------------------------------------------- layouts

def _layouts(rng, dtype):
    """(label, array) pairs of one logical 4-D array in many memory layouts."""
    base = rng.normal(0, 3, (3, 4, 5, 6)).astype(dtype)
    big = rng.normal(0, 3, (6, 9, 5, 13)).astype(dtype)
    ro = base.copy()
    ro.flags.writeable = False
    raw = np.zeros(base.nbytes + 1, np.uint8)
    unaligned = np.ndarray(base.shape, dtype, raw.data, offset=1)
    unaligned[...] = base
    return [
        ("C", base),
        ("F", np.asfortranarray(base)),
        ("transposed", base.T),
        ("axes-permuted", base.transpose(2, 0, 3, 1)),
        ("negative", base[::-1, :, ::-1, ::-1]),
        ("sliced", big[::2, 1:8:2, :, ::2]),
        ("read-only", ro),
        ("unaligned", unaligned),
        ("broadcast", np.broadcast_to(base[:1, :, :1, :], base.shape)),
    ]


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", FORWARD)
def test_layouts(sc, ref, rng, name, dtype):
    """Any strides, any axis: the result equals that of a C-contiguous copy
    (up to the contract's tolerance) and is shaped like the input."""
    for label, x in _layouts(rng, dtype):
        for axis in [0, 1, 2, 3, -1, (0, 2), (1, 3), None]:
            got = call(sc, name, x, axis=axis)
            want = expected(ref, name, np.ascontiguousarray(x), axis=axis)
            try:
                assert_matches(name, got, want)
            except AssertionError as e:
                raise AssertionError(f"layout {label}, axis {axis}: {e}") from None


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("shape", [(7, 33, 9), (2, 3, 65, 17), (300, 2), (2, 300)])
def test_non_last_axis_of_c_contiguous(sc, ref, rng, name, dtype, shape):
    x = rng.normal(0, 5, shape).astype(dtype)
    for axis in range(x.ndim - 1):
        check_against_reference(sc, ref, name, x, axis=axis)


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("layout", ["C-last", "C-first", "F-last", "negative", "strided"])
def test_no_copy_of_the_input(sc, name, layout):
    """docs/api.md: for a single axis no copy of the whole float32/float64 input
    is made, whatever its strides and whichever the axis.  Measured with
    tracemalloc, which sees NumPy's allocations."""
    if sc.__name__ != "softmax_c":
        pytest.skip("a property of the kernels: the reference copies")
    base = np.random.default_rng(1).normal(size=(256, 2048))
    x, axis = {
        "C-last": (base, -1),
        "C-first": (base, 0),
        "F-last": (np.asfortranarray(base), -1),
        "negative": (base[::-1, ::-1], 1),
        "strided": (base[:, ::2], 0),
    }[layout]
    kwargs = {"out": np.empty(x.shape)} if name != "logsumexp" else {}
    fn = getattr(sc, name)
    fn(x, axis=axis, **kwargs)  # warm up
    tracemalloc.start()
    try:
        fn(x, axis=axis, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 4, f"{peak} bytes allocated for an input of {x.nbytes}"


# ---------------------------------------------------------------- empty and 0-d

EMPTY_SHAPES = [(0,), (3, 0), (0, 5), (0, 0), (2, 0, 3), (0, 4, 0)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32])
def test_empty(sc, shape, dtype):
    x = np.zeros(shape, dtype)
    rdt = result_dtype(dtype)
    axes = list(range(-len(shape), len(shape))) + [None, (), tuple(range(len(shape)))]
    for axis in axes:
        for name in ELEMENTWISE:
            got = call(sc, name, x, axis=axis)
            assert got.shape == shape and got.dtype == rdt
        for keepdims in (False, True):
            got = np.asarray(call(sc, "logsumexp", x, axis=axis, keepdims=keepdims))
            want = np.max(np.ones(shape), axis=axis, keepdims=keepdims, initial=0)
            assert got.shape == want.shape and got.dtype == rdt
            # the reduced slices are empty unless the axis tuple is empty
            if axis != ():
                assert np.all(got == -np.inf)


def test_logsumexp_empty_slices_nonempty_batch(sc):
    assert_array_equal(sc.logsumexp(np.zeros((3, 0))), [-np.inf] * 3)
    assert_array_equal(sc.logsumexp(np.zeros((0, 3)), axis=0), [-np.inf] * 3)
    assert_array_equal(sc.logsumexp(np.zeros((2, 0, 3)), axis=1), np.full((2, 3), -np.inf))
    assert sc.logsumexp(np.zeros(0)) == -np.inf


@pytest.mark.parametrize("axis", [None, ()], ids=repr)
def test_zero_d(sc, axis):
    """A 0-d input with axis None or (): its element is a slice of one, as
    scipy.special.softmax(x, axis=None) treats it."""
    for value, sm, ls, lse in [(3.0, 1.0, 0.0, 3.0), (-1e300, 1.0, 0.0, -1e300),
                               (np.nan, np.nan, np.nan, np.nan),
                               (np.inf, np.nan, np.nan, np.inf),
                               (-np.inf, np.nan, np.nan, -np.inf)]:
        x = np.array(value)
        for name, want in (("softmax", sm), ("log_softmax", ls), ("logsumexp", lse)):
            got = call(sc, name, x, axis=axis)
            assert np.shape(got) == ()
            assert_array_equal(got, want)
        assert np.shape(sc.logsumexp(x, axis=axis, keepdims=True)) == ()
    assert sc.softmax(np.float32(2), axis=axis).dtype == np.float32


@pytest.mark.parametrize("name", FORWARD)
def test_zero_d_int_axis_is_out_of_range(sc, name):
    with pytest.raises(AxisError):
        getattr(sc, name)(np.array(1.0))
    with pytest.raises(AxisError):
        getattr(sc, name)(np.array(1.0), axis=0)


def test_logsumexp_keepdims(sc, ref, rng):
    x = rng.normal(size=(3, 4, 5))
    for axis in AXES:
        for keepdims in (False, True):
            got = sc.logsumexp(x, axis=axis, keepdims=keepdims)
            want = ref.logsumexp(x, axis=axis, keepdims=keepdims)
            assert np.shape(got) == np.shape(want) == np.shape(
                np.max(x, axis=axis, keepdims=keepdims))
            np.testing.assert_allclose(got, want, rtol=1e-13)
    assert np.ndim(sc.logsumexp(x, axis=None)) == 0
    assert np.ndim(sc.logsumexp(x[0, 0])) == 0


# ---------------------------------------------------------------- where=

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2), None], ids=repr)
def test_where_matches_compressed_slices(sc, ref, rng, name, axis, dtype):
    """Each slice's result is that of its True positions alone (computed
    here slice by slice), 0 / -inf elsewhere."""
    x = rng.normal(0, 3, (4, 6, 19)).astype(dtype)
    where = rng.random(x.shape) < 0.6
    where[1, 2, :] = False  # a slice with no True position on axis -1
    x[~where] = np.nan      # never read
    got = call(sc, name, x, where=where, axis=axis)
    fill = 0.0 if name == "softmax" else -np.inf
    axes = tuple(range(3)) if axis is None else np.atleast_1d(axis) % 3
    axes = tuple(int(a) for a in axes)
    xm = np.moveaxis(x.astype(np.float64), axes, range(3 - len(axes), 3))
    wm = np.moveaxis(where, axes, range(3 - len(axes), 3))
    want = np.full(xm.shape, fill)
    for idx in np.ndindex(*xm.shape[:3 - len(axes)]):
        w = wm[idx]
        if w.any():
            vals = getattr(ref, name)(xm[idx][w], axis=None)
            sub = want[idx]
            sub[w] = vals
            want[idx] = sub
    want = np.moveaxis(want, range(3 - len(axes), 3), axes).astype(dtype)
    assert_matches(name, got, want)
    assert not np.isnan(got).any()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_never_reads_false_positions(sc, rng, name):
    """The result does not depend on the values at False positions, NaN and
    +inf included: identical results."""
    x = rng.normal(size=(5, 40))
    where = rng.random(x.shape) < 0.5
    a, b = x.copy(), x.copy()
    a[~where] = np.nan
    b[~where] = np.inf
    c = x.copy()
    c[~where] = 1e308
    ra = call(sc, name, a, where=where)
    assert_array_equal(ra, call(sc, name, b, where=where))
    assert_array_equal(ra, call(sc, name, c, where=where))
    assert not np.isnan(ra).any()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_all_false_slices(sc, name):
    fill = 0.0 if name == "softmax" else -np.inf
    x = np.array([[np.nan, 1.0, np.inf], [1.0, 2.0, 3.0]])
    where = np.array([[False, False, False], [True, False, True]])
    got = call(sc, name, x, where=where)
    assert_array_equal(got[0], [fill] * 3)
    assert got[1, 1] == fill and not np.isnan(got).any()
    assert_array_equal(call(sc, name, x, where=False), np.full(x.shape, fill))
    assert_array_equal(call(sc, name, x, where=np.zeros(x.shape, bool), axis=None),
                       np.full(x.shape, fill))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_true_positions_follow_value_rules(sc, name):
    """The True positions follow the value rules as if the others were
    absent: a NaN, a +inf or only -inf among them gives NaN there."""
    fill = 0.0 if name == "softmax" else -np.inf
    x = np.array([[np.nan, 1.0, 5.0], [np.inf, 1.0, 5.0], [-np.inf, -np.inf, 5.0],
                  [-np.inf, 0.0, 5.0]])
    where = np.array([[True, True, False]] * 4)
    got = call(sc, name, x, where=where)
    assert np.isnan(got[:3, :2]).all()
    assert_array_equal(got[:, 2], [fill] * 4)
    want = [0.0, 1.0] if name == "softmax" else [-np.inf, 0.0]
    assert_array_equal(got[3, :2], want)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_broadcasts(sc, ref, rng, name):
    x = rng.normal(size=(4, 3, 7))
    for where in [rng.random(7) < 0.5, rng.random((3, 1)) < 0.5,
                  rng.random((4, 1, 7)) < 0.5, np.True_, True,
                  list(rng.random(7) < 0.5)]:
        wfull = np.broadcast_to(np.asarray(where), x.shape)
        for axis in [-1, 0, None]:
            got = call(sc, name, x, where=where, axis=axis)
            assert_array_equal(got, call(sc, name, x, where=wfull.copy(), axis=axis))
            assert_matches(name, got, expected(ref, name, x, where=wfull, axis=axis))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_all_true_is_no_where(sc, rng, name):
    x = rng.normal(size=(6, 50)).astype(np.float32)
    assert_matches(name, call(sc, name, x, where=np.ones(x.shape, bool)),
                   call(sc, name, x).astype(np.float32))


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("where", [np.ones((2, 3), int), np.ones((2, 3)), [1, 0, 1],
                                   np.array(["a", "b", "c"])], ids=str)
def test_where_must_be_bool(sc, name, where):
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="where"):
        call(sc, name, x, where=where)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_where_must_broadcast(sc, name):
    x = np.zeros((2, 3))
    for where in [np.ones(2, bool), np.ones((3, 2, 3), bool)]:
        with pytest.raises(ValueError, match="where"):
            call(sc, name, x, where=where)


# ---------------------------------------------------------------- out=

def _outs(shape, dtype):
    """Output arrays of `shape` and `dtype` in several layouts."""
    big = np.full((shape[0] * 2, shape[1] * 3 + 1), -7.0, dtype)
    return [
        ("C", np.full(shape, -7.0, dtype)),
        ("F", np.asfortranarray(np.full(shape, -7.0, dtype))),
        ("strided", big[::2, 1::3]),
        ("negative", np.full(shape, -7.0, dtype)[::-1, ::-1]),
        ("transposed", np.full(shape[::-1], -7.0, dtype).T),
    ]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("axis", [-1, 0, None], ids=repr)
def test_out_any_strides(sc, ref, rng, name, dtype, axis):
    x = rng.normal(0, 3, (6, 37)).astype(dtype)
    want = expected(ref, name, x, axis=axis)
    for label, out in _outs(x.shape, result_dtype(dtype)):
        res = call(sc, name, x, axis=axis, out=out)
        assert res is out, label
        assert_matches(name, out, want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_is_x_in_place(sc, ref, rng, name, dtype):
    base = rng.normal(0, 3, (6, 37)).astype(dtype)
    for axis in [-1, 0, None, (0, 1)]:
        for view in [lambda a: a, lambda a: a.T, lambda a: a[:, ::2], lambda a: a[::-1]]:
            x = base.copy()
            xv = view(x)
            want = expected(ref, name, xv.copy(), axis=axis)
            res = call(sc, name, xv, axis=axis, out=xv)
            assert res is xv
            assert_matches(name, xv, want)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_at_every_offset_in_a_line(sc, rng, name, dtype):
    """The write passes store vector-aligned after a partial head (rows
    shorter than the head, rows around the 2 KiB from which softmax's
    in-place scaling aligns too): into an output at every element offset
    from a line, the same bits as into a fresh one, nothing written outside
    it; in place (out = x) the same bits as x at that offset into a fresh
    output."""
    fn = getattr(sc, name)
    lanes = 64 // np.dtype(dtype).itemsize
    for n in [1, 3, lanes - 1, lanes + 1, 2 * lanes + 5, 100,
              2048 // np.dtype(dtype).itemsize - 1, 2048 // np.dtype(dtype).itemsize + 3, 4099]:
        x = rng.normal(0, 6, (3, n)).astype(dtype)
        x[1, n // 2] = np.inf
        want = fn(x, num_threads=1)
        base = np.full(x.size + 2 * lanes, 7.0, dtype)
        start = (-base.ctypes.data % 64) // base.itemsize
        for off in range(lanes):
            base[...] = 7.0
            out = base[start + off:start + off + x.size].reshape(x.shape)
            assert fn(x, out=out, num_threads=1) is out
            assert_array_equal(out, want, err_msg=f"n={n} offset {off}")
            assert np.all(base[:start + off] == 7) and np.all(base[start + off + x.size:] == 7)
            out[...] = x
            wanted = fn(out, num_threads=1)
            fn(out, out=out, num_threads=1)
            assert_array_equal(out, wanted, err_msg=f"n={n} in place at offset {off}")


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", [128, 129, 255, 2048, 4099, 8192 + 13, 16384 + 3])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_large_outputs_rows_pipelined(sc, ref, rng, name, n, dtype):
    """Outputs of 4 MiB and more with rows of 8-256 KiB (softmax: of 1 KiB
    if they follow each other) are written a row behind, through streaming
    stores: every offset of the output against the vector width, in place,
    strided rows, special values, against the reference and against the
    rows one at a time."""
    fn = getattr(sc, name)
    rows = -(-(4 << 20) // (n * np.dtype(dtype).itemsize)) + 3
    x = rng.normal(0, 6, (rows, n)).astype(dtype)
    x[1, 5] = np.nan
    x[2] = -np.inf
    x[3, -1] = np.inf
    x[4] = np.finfo(dtype).max
    x[-1, 0] = 1e4
    want = check_against_reference(sc, ref, name, x, num_threads=1)
    for r in range(rows):
        assert_array_equal(fn(x[r:r + 1], num_threads=1), want[r:r + 1])
    base = np.empty(x.size + 16, dtype)
    for off in (0, 1, 3, 5, 15):
        out = base[off:off + x.size].reshape(x.shape)
        assert fn(x, out=out, num_threads=1) is out
        assert_array_equal(out, want)
    assert_array_equal(fn(x, num_threads=2), want)
    xi = x.copy()
    fn(xi, out=xi, num_threads=1)
    assert_array_equal(xi, want)
    wide = np.full((rows, n + 21), 7.0, dtype)
    fn(x, out=wide[:, 3:n + 3], num_threads=1)
    assert_array_equal(wide[:, 3:n + 3], want)
    assert np.all(wide[:, :3] == 7) and np.all(wide[:, n + 3:] == 7)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_overlapping_x(sc, ref, rng, name):
    """out overlapping x in another layout: as NumPy's ufuncs, the result is
    that of a copy of x."""
    x = rng.normal(size=(8, 8))
    want = expected(ref, name, x[::-1].copy())
    res = getattr(sc, name)(x[::-1], out=x)
    assert res is x
    assert_matches(name, x, want)
    x = rng.normal(size=(8, 8))
    want = expected(ref, name, x.copy(), axis=0)
    getattr(sc, name)(x, axis=0, out=x.T)
    assert_matches(name, x.T, want)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_dtype_follows_the_policy(sc, name):
    for dtype in [np.int32, np.bool_, np.uint8]:
        x = np.ones((2, 3), dtype)
        out = np.empty((2, 3))
        assert call(sc, name, x, out=out) is out
        with pytest.raises(TypeError, match="out"):
            call(sc, name, x, out=np.empty((2, 3), np.float32))
    x = np.ones((2, 3), np.float16)
    assert call(sc, name, x, out=np.empty((2, 3), np.float16)).dtype == np.float16
    with pytest.raises(TypeError, match="out"):
        call(sc, name, x, out=np.empty((2, 3), np.float32))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_with_where(sc, name):
    x = np.array([[1.0, np.nan, 1.0]])
    out = np.full(x.shape, 5.0)
    call(sc, name, x, where=np.array([True, False, True]), out=out)
    want = [0.5, 0.0, 0.5] if name == "softmax" else [-np.log(2), -np.inf, -np.log(2)]
    np.testing.assert_allclose(out[0], want, rtol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_out_empty(sc, name):
    x = np.zeros((0, 5))
    out = np.empty((0, 5))
    assert call(sc, name, x, out=out) is out


# ---------------------------------------------------------------- errors

def _bad_calls(name):
    """(label, kwargs, exception, words the message must contain) for x of
    shape (3, 4) float64."""
    cases = [
        ("axis str", dict(axis="a"), TypeError, ["axis", "'a'"]),
        ("axis float", dict(axis=1.0), TypeError, ["axis"]),
        ("axis list", dict(axis=[0, 1]), TypeError, ["axis"]),
        ("axis bool", dict(axis=True), TypeError, ["axis"]),
        ("axis tuple of str", dict(axis=(0, "a")), TypeError, ["axis"]),
        ("axis too big", dict(axis=2), AxisError, ["axis"]),
        ("axis too small", dict(axis=-3), AxisError, ["axis"]),
        ("axis tuple out of range", dict(axis=(0, 5)), AxisError, ["axis"]),
        ("axis repeated", dict(axis=(1, -1)), ValueError, ["axis"]),
        ("num_threads 0", dict(num_threads=0), ValueError, ["num_threads", "0"]),
        ("num_threads -1", dict(num_threads=-1), ValueError, ["num_threads", "-1"]),
        ("num_threads float", dict(num_threads=2.0), TypeError, ["num_threads"]),
        ("num_threads str", dict(num_threads="2"), TypeError, ["num_threads"]),
        ("num_threads bool", dict(num_threads=True), TypeError, ["num_threads"]),
    ]
    if name in ELEMENTWISE:
        ro = np.zeros((3, 4))
        ro.flags.writeable = False
        cases += [
            ("where int", dict(where=np.ones((3, 4), int)), TypeError, ["where"]),
            ("where shape", dict(where=np.ones((2, 4), bool)), ValueError, ["where"]),
            ("out list", dict(out=[[0.0] * 4] * 3), TypeError, ["out"]),
            ("out dtype", dict(out=np.zeros((3, 4), np.float32)), TypeError, ["out"]),
            ("out shape", dict(out=np.zeros((4, 3))), ValueError, ["out"]),
            ("out shape 1-D", dict(out=np.zeros(12)), ValueError, ["out"]),
            ("out read-only", dict(out=ro), ValueError, ["out"]),
        ]
    return cases


@pytest.mark.parametrize("name", FORWARD)
def test_errors(sc, name):
    """Every bad argument raises the documented exception, naming the
    parameter; the input and a valid `out` are left untouched."""
    for label, kwargs, exc, words in _bad_calls(name):
        x = np.arange(12.0).reshape(3, 4)
        x[0, 0] = np.nan
        if name in ELEMENTWISE and "out" not in kwargs:
            kwargs = dict(kwargs, out=np.full((3, 4), 42.0))
        saved = {k: snapshot(v) for k, v in kwargs.items()}
        with pytest.raises(exc) as info:
            call(sc, name, x, **kwargs)
        if exc is not AxisError:
            assert not isinstance(info.value, AxisError), label
        msg = str(info.value)
        for word in words:
            assert word in msg, f"{label}: {word!r} not in {msg!r}"
        for k, v in kwargs.items():
            assert_unchanged(v, saved[k])


def test_logsumexp_has_no_out(sc):
    # where= came with the fused options (tests/test_fused.py)
    np.testing.assert_array_equal(
        sc.logsumexp(np.zeros((2, 3)), where=np.array([True, False, True])), np.log(2.0))
    with pytest.raises(TypeError):
        sc.logsumexp(np.zeros(3), out=np.zeros(()))


@pytest.mark.parametrize("name", FORWARD)
def test_keyword_only(sc, name):
    """where, out, keepdims and num_threads are keyword-only."""
    with pytest.raises(TypeError):
        getattr(sc, name)(np.zeros(3), -1, None)


# ---------------------------------------------------------------- threads

@pytest.fixture
def thread_api(sc):
    if not hasattr(sc, "set_num_threads"):
        pytest.skip(f"{MODULE_UNDER_TEST} has no thread API")
    old = sc.get_num_threads()
    yield sc
    sc.set_num_threads(old)


def test_num_threads_round_trip(thread_api):
    sc = thread_api
    assert isinstance(sc.get_num_threads(), int) and sc.get_num_threads() >= 1
    for n in (1, 3, np.int64(2)):
        sc.set_num_threads(n)
        assert sc.get_num_threads() == n
        assert type(sc.get_num_threads()) is int


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-2, ValueError), (1.0, TypeError),
                                    ("2", TypeError), (True, TypeError)])
def test_set_num_threads_errors(thread_api, n, exc):
    sc = thread_api
    before = sc.get_num_threads()
    with pytest.raises(exc):
        sc.set_num_threads(n)
    assert sc.get_num_threads() == before


# num_threads is a C int in the kernels: past it, a ValueError naming the
# parameter and the value, never an OverflowError from the conversion.
HUGE_THREADS = [2**31, 2**40, np.int64(2**40), 2**70]


def _every_threaded_call(sc, x, t):
    """(name, thunk taking num_threads) for every public function that takes it."""
    return [
        ("softmax", lambda n: sc.softmax(x, num_threads=n)),
        ("softmax axis=0", lambda n: sc.softmax(x, axis=0, num_threads=n)),
        ("log_softmax", lambda n: sc.log_softmax(x, num_threads=n)),
        ("softmax out=", lambda n: sc.softmax(x, out=np.empty_like(x), num_threads=n)),
        ("logsumexp", lambda n: sc.logsumexp(x, num_threads=n)),
        ("logsumexp axis=None", lambda n: sc.logsumexp(x, axis=None, num_threads=n)),
        ("softmax_jvp", lambda n: sc.softmax_jvp(x, x, num_threads=n)),
        ("softmax_vjp", lambda n: sc.softmax_vjp(x, x, axis=0, num_threads=n)),
        ("log_softmax_jvp", lambda n: sc.log_softmax_jvp(x, x, num_threads=n)),
        ("log_softmax_vjp", lambda n: sc.log_softmax_vjp(x, x, num_threads=n)),
        ("cross_entropy", lambda n: sc.cross_entropy(x, t, num_threads=n)),
        ("cross_entropy_grad", lambda n: sc.cross_entropy_grad(x, t, num_threads=n)),
    ]


@pytest.mark.parametrize("n", HUGE_THREADS, ids=str)
def test_huge_num_threads_is_a_value_error(sc, n):
    x = np.arange(12.0).reshape(3, 4)
    t = np.array([0, 1, 3])
    before = x.copy()
    for name, fn in _every_threaded_call(sc, x, t):
        with pytest.raises(ValueError) as info:
            fn(n)
        msg = str(info.value)
        assert "num_threads" in msg and str(int(n)) in msg, (name, msg)
        assert_array_equal(x, before)


def test_largest_num_threads_is_accepted(sc):
    x = np.arange(12.0).reshape(3, 4)
    t = np.array([0, 1, 3])
    for name, fn in _every_threaded_call(sc, x, t):
        big, one = fn(2**31 - 1), fn(1)
        for b, o in zip(big, one) if isinstance(one, tuple) else [(big, one)]:
            assert_array_equal(b, o, err_msg=name)


@pytest.mark.parametrize("n", HUGE_THREADS, ids=str)
def test_set_num_threads_huge_is_a_value_error(thread_api, n):
    sc = thread_api
    before = sc.get_num_threads()
    with pytest.raises(ValueError, match=rf"num_threads.*{int(n)}"):
        sc.set_num_threads(n)
    assert sc.get_num_threads() == before
    sc.set_num_threads(2**31 - 1)
    assert sc.get_num_threads() == 2**31 - 1


def test_default_threads_honour_omp_num_threads(sc):
    if not hasattr(sc, "get_num_threads"):
        pytest.skip(f"{MODULE_UNDER_TEST} has no thread API")
    code = (f"import {MODULE_UNDER_TEST.split('.')[0]} as m; "
            "print(m.get_num_threads(), m.build_info()['openmp'])")
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == ("3" if out[1] == "True" else "1")


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", FORWARD)
def test_thread_counts_give_identical_results(sc, rng, name, dtype):
    x = rng.normal(0, 4, (512, 4096)).astype(dtype)
    for axis in [-1, 0]:
        one = call(sc, name, x, axis=axis, num_threads=1)
        two = call(sc, name, x, axis=axis, num_threads=2)
        assert_array_equal(one, two)
    xt = x[::2, ::-1]
    assert_array_equal(call(sc, name, xt, num_threads=1), call(sc, name, xt, num_threads=2))


def test_calls_from_several_python_threads(sc, rng):
    xs = [rng.normal(size=(256, 1024)).astype(np.float32) for _ in range(6)]
    alone = [(sc.softmax(x), sc.log_softmax(x, axis=0), sc.logsumexp(x)) for x in xs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(
            lambda x: (sc.softmax(x), sc.log_softmax(x, axis=0), sc.logsumexp(x)), xs))
    for a, b in zip(alone, together):
        for u, v in zip(a, b):
            assert_array_equal(u, v)


# ---------------------------------------------------------------- process state

def test_import_leaves_floating_point_state_alone():
    """Importing and calling the package keeps subnormal arithmetic (no
    flush-to-zero), NumPy's error state, signal handlers and the
    environment as they were."""
    code = f"""
import os, signal
import numpy as np

def subnormals_work():
    a = np.float32(1e-39) * np.float32(1)
    b = np.float64(5e-324) * np.float64(1)
    c = np.full(64, 1e-39, np.float32) * np.float32(1)
    d = np.float32(1e-37) / np.float32(1e3)
    return bool(a != 0 and b != 0 and np.all(c != 0) and d != 0
                and np.nextafter(np.float32(0), np.float32(1)) > 0
                and np.nextafter(0.0, 1.0) > 0)

assert subnormals_work(), "before import"
env = dict(os.environ)
sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGSEGV, signal.SIGFPE, signal.SIGCHLD]
handlers = [signal.getsignal(s) for s in sigs]
err = np.geterr()
import {MODULE_UNDER_TEST} as m
assert subnormals_work(), "after import"
x = np.random.default_rng(0).normal(size=(256, 1024)).astype(np.float32)
m.softmax(x); m.log_softmax(x, axis=0); m.logsumexp(x.astype(np.float64), num_threads=2)
m.softmax(x, num_threads=2, axis=0)
assert subnormals_work(), "after calls"
assert dict(os.environ) == env, "environment changed"
assert [signal.getsignal(s) for s in sigs] == handlers, "signal handlers changed"
assert np.geterr() == err, "NumPy error state changed"
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


# ---------------------------------------------------------------- properties

try:
    import hypothesis
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover
    hypothesis = None


if hypothesis is None:
    def test_properties():
        pytest.importorskip("hypothesis")
else:
    _SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)

    def _batches(dtype, lo, hi):
        return hnp.arrays(
            dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
            elements=st.floats(lo, hi, width=np.dtype(dtype).itemsize * 8))

    @_SETTINGS
    @given(x=st.one_of(_batches(np.float64, -1e3, 1e3), _batches(np.float32, -80, 80)),
           axis=st.sampled_from([-1, 0, None]))
    def test_property_rows_sum_to_one(sc, x, axis):
        y = sc.softmax(x, axis=axis)
        n = x.size if axis is None else x.shape[axis]
        s = np.sum(y.astype(np.float64), axis=axis)
        u = UNIT_ROUNDOFF[x.dtype]
        np.testing.assert_allclose(s, 1.0, rtol=0, atol=4 * TOL[x.dtype] + 2 * n * u)
        assert np.all((y >= 0) & (y <= 1))

    @_SETTINGS
    @given(x=_batches(np.float64, -300, 300), shift=st.floats(-1e3, 1e3))
    def test_property_shift_invariance(sc, x, shift):
        y = sc.softmax(x)
        y2 = sc.softmax(x + shift)
        # x + shift is rounded: |error| <= u * 1300 per element, twice in y
        normal = y > 1e-300
        np.testing.assert_allclose(y2[normal], y[normal], rtol=1e-12, atol=0)
        l1, l2 = sc.logsumexp(x), sc.logsumexp(x + shift)
        np.testing.assert_allclose(l2 - shift, l1, rtol=0, atol=1e-11)

    @_SETTINGS
    @given(x=st.one_of(_batches(np.float64, -700, 700), _batches(np.float32, -80, 80)))
    def test_property_exp_log_softmax_is_softmax(sc, x):
        y = sc.softmax(x).astype(np.float64)
        ls = sc.log_softmax(x).astype(np.float64)
        tol = 10 * TOL[x.dtype]
        ok = y > np.finfo(x.dtype).smallest_normal
        np.testing.assert_allclose(np.exp(ls)[ok], y[ok],
                                   rtol=tol * (1 + np.abs(ls[ok]).max(initial=0)) * 10)
        lse = sc.logsumexp(x).astype(np.float64)
        np.testing.assert_allclose(ls, x - lse[..., None], rtol=0,
                                   atol=tol * max(1, np.abs(ls).max()))

    @_SETTINGS
    @given(x=_batches(np.float64, -1e300, 1e300))
    def test_property_any_magnitude_is_finite(sc, x):
        """Finite inputs never give NaN or inf (log_softmax may reach -inf
        only past float64's range, not here: |x - lse| <= 2e300)."""
        assert np.isfinite(sc.softmax(x)).all()
        assert np.isfinite(sc.log_softmax(x)).all()
        assert np.isfinite(sc.logsumexp(x)).all()


def test_foreign_arrays_are_not_copied(rng):
    """Inputs from other libraries are read in place where the memory allows:
    DLPack-only objects, __array__ objects and buffers (memoryview)."""
    from softmax_c._validate import as_array

    x = rng.normal(size=(3, 9)).astype(np.float32)
    assert np.shares_memory(as_array(_DLPackOnly(x)), x)
    assert np.shares_memory(as_array(memoryview(x)), x)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x)
    assert as_array(t).__array_interface__["data"][0] == t.data_ptr()
    tt = t.t()  # a transposed view stays a view
    assert as_array(tt).__array_interface__["data"][0] == tt.data_ptr()


# ---- one row split across threads ----------------------------------------
# Rows fewer than threads and long enough are cut into pieces at multiples
# of the kernels' sum chunk; the pieces' results must be bitwise the
# one-thread results (softmax_c.h, "one row across threads").

SPLIT_LENGTHS = {np.float32: [39999, 40000, 40001, 65536 + 17, 262144, 300007],
                 np.float64: [13999, 14000, 14001, 32768 + 5, 100003]}


def _split_rows(rng, dtype, n, rows=1):
    # Terms of comparable size (exp(x - max) within a factor of about e^-8),
    # so that every chunk's sum counts in the total: pieces whose chunk sums
    # were added in another order, or without their compensation, give
    # other bits.
    x = rng.normal(0, 1, (rows, n)).astype(dtype)
    x[:, 7] = 4.0                        # the max, away from the piece cuts
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FORWARD)
def test_split_row_is_bitwise_the_one_thread_result(sc, ref, rng, dtype, name):
    for n in SPLIT_LENGTHS[dtype]:
        x = _split_rows(rng, dtype, n)
        one = getattr(sc, name)(x, num_threads=1)
        two = getattr(sc, name)(x, num_threads=2)
        assert_array_equal(two, one)
        assert_matches(name, two, expected(ref, name, x))
        # in place and through the general (strided batch) path as well
        if name != "logsumexp":
            y = x.copy()
            getattr(sc, name)(y, out=y, num_threads=2)
            assert_array_equal(y, one)
        xs = np.repeat(x, 3, axis=0)[::3]
        assert not xs.flags.c_contiguous or xs.shape[0] == 1
        assert_array_equal(getattr(sc, name)(xs, num_threads=2), one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FORWARD)
def test_split_row_special_values(sc, ref, dtype, name):
    n = SPLIT_LENGTHS[dtype][-1]
    cases = []
    x = np.zeros((1, n), dtype)
    x[0, : n // 2] = -np.inf             # one piece all -inf: zeros there, not NaN
    cases.append(x)
    x = np.zeros((1, n), dtype)
    x[0, -1] = np.nan                    # NaN in the last piece only
    cases.append(x)
    x = np.zeros((1, n), dtype)
    x[0, 3] = np.inf
    cases.append(x)
    cases.append(np.full((1, n), -np.inf, dtype))
    x = np.full((1, n), -1e30 if dtype == np.float32 else -1e300, dtype)
    x[0, -2] = 1e30 if dtype == np.float32 else 1e300
    cases.append(x)
    for x in cases:
        one = getattr(sc, name)(x, num_threads=1)
        two = getattr(sc, name)(x, num_threads=2)
        assert_array_equal(two, one)
        want = expected(ref, name, x)
        assert_array_equal(np.isnan(two), np.isnan(want))
        assert_matches(name, two, want)


def test_split_rows_fewer_than_threads(sc, rng):
    """Three long rows on four threads: each row is split (or not) and the
    batch still equals the one-thread batch."""
    x = _split_rows(rng, np.float32, 120001, rows=3)
    for name in FORWARD:
        assert_array_equal(getattr(sc, name)(x, num_threads=4), getattr(sc, name)(x, num_threads=1))


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps,
                    reason="needs a long double wider than double")
@pytest.mark.parametrize("dtype,ulps", [(np.float32, 2.0), (np.float64, 2.5)])
def test_exp_is_within_a_few_ulp(sc, dtype, ulps):
    """The kernels' exp, seen through softmax: with the max at x_0 = 0,
    y_i / y_0 = exp(x_i) up to the two roundings of the output; a million
    arguments over [-30, 0] against long double.  (The float64 exp had a
    Taylor polynomial once: 40 ulp.)"""
    if sc.__name__ != "softmax_c":
        pytest.skip("the kernels' exp: the reference's is NumPy's")
    rng = np.random.default_rng(5)
    x = np.zeros((1, 1_000_001), dtype)
    x[0, 1:] = -rng.uniform(0, 30, 1_000_000)
    y = sc.softmax(x, num_threads=1)[0]
    ratio = y.astype(np.longdouble) / np.longdouble(y[0])
    want = np.exp(x[0].astype(np.longdouble))
    err = np.max(np.abs(ratio - want) / want) / np.finfo(dtype).eps  # relative, in eps
    assert err <= ulps, err


# ---------------------------------------------------------------- array subclasses

class _Tagged(np.ndarray):
    """A user's ndarray subclass."""


def _subclass_calls(sc, x):
    """(name, thunk) for every public function, given an array-like factory `x`."""
    t = np.array([0, 2])
    return [
        ("softmax", lambda: sc.softmax(x())),
        ("softmax axis=0", lambda: sc.softmax(x(), axis=0)),
        ("log_softmax", lambda: sc.log_softmax(x())),
        ("logsumexp keepdims", lambda: sc.logsumexp(x(), keepdims=True)),
        ("softmax_jvp", lambda: sc.softmax_jvp(x(), x())),
        ("log_softmax_vjp", lambda: sc.log_softmax_vjp(x(), x(), axis=0)),
        ("softmax_jacobian", lambda: sc.softmax_jacobian(x())),
        ("cross_entropy none", lambda: sc.cross_entropy(x(), t, reduction="none")),
        ("cross_entropy_grad", lambda: sc.cross_entropy_grad(x(), t)[1]),
    ]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("kind", ["matrix", "user"])
def test_subclasses_give_plain_ndarrays(sc, kind):
    """The results are NumPy arrays, as for a plain input, whatever ndarray
    subclass comes in (np.matrix, a user's subclass)."""
    base = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    make = {"matrix": lambda: np.matrix(base),
            "user": lambda: base.copy().view(_Tagged)}[kind]
    plain = _subclass_calls(sc, lambda: base.copy())
    for (name, fn), (_, want) in zip(_subclass_calls(sc, make), plain):
        got = fn()
        assert type(got) is np.ndarray, (name, type(got))
        assert_array_equal(got, want(), err_msg=name)


@pytest.fixture
def masked_api(sc):
    if MODULE_UNDER_TEST != "softmax_c":
        pytest.skip("the NumPy reference refuses masked arrays")
    return sc


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_masked_array_means_its_mask(masked_api, name):
    """A masked array's mask acts as where=~mask: the masked entries take
    no part, and the result is masked the same way."""
    sc = masked_api
    x = np.ma.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], mask=[[0, 1, 0], [1, 1, 1]])
    before = x.copy()
    got = getattr(sc, name)(x)
    assert isinstance(got, np.ma.MaskedArray)
    assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(x))
    assert np.ma.getmask(got) is not np.ma.getmask(x)
    want = getattr(sc, name)(x.data, where=~x.mask)
    assert_array_equal(got.data, want)
    if name == "softmax":
        np.testing.assert_allclose(got[0].sum(), 1.0, rtol=1e-15)
        np.testing.assert_allclose(sc.softmax(np.ma.array([1., 2., 3.], mask=[0, 1, 0])).sum(),
                                   1.0, rtol=1e-15)
    assert_array_equal(x.data, before.data)
    assert_array_equal(x.mask, before.mask)
    # combined with where=, along another axis, over every axis, into out=
    w = np.array([True, True, False])
    got = getattr(sc, name)(x, where=w)
    assert_array_equal(got.data, getattr(sc, name)(x.data, where=~x.mask & w))
    assert_array_equal(got.mask, x.mask)
    for axis in (0, None):
        assert_array_equal(getattr(sc, name)(x, axis=axis).data,
                           getattr(sc, name)(x.data, axis=axis, where=~x.mask))
    out = np.full((2, 3), 7.0)
    got = getattr(sc, name)(x, out=out)
    assert got.data is out or np.shares_memory(got.data, out)
    assert_array_equal(out, want)


def test_masked_logsumexp(masked_api):
    sc = masked_api
    x = np.ma.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], mask=[[0, 1, 0], [1, 1, 1]])
    got = sc.logsumexp(x)
    assert isinstance(got, np.ma.MaskedArray)
    assert_array_equal(got.mask, [False, True])  # a slice with nothing unmasked
    np.testing.assert_allclose(got[0], np.logaddexp(1.0, 3.0), rtol=1e-15)
    got = sc.logsumexp(x, axis=0, keepdims=True)
    assert got.shape == (1, 3)
    assert_array_equal(got.mask, [[False, True, False]])
    np.testing.assert_allclose(got.data[0, [0, 2]], [1.0, 3.0], rtol=1e-15)
    whole = sc.logsumexp(x, axis=None)
    np.testing.assert_allclose(whole, np.logaddexp(1.0, 3.0), rtol=1e-15)
    assert sc.logsumexp(np.ma.array([1.0, 2.0], mask=True)) is np.ma.masked
    # integer and float16 data keep the dtype policy
    assert sc.logsumexp(np.ma.array([1, 2, 3], mask=[0, 1, 0])).dtype == np.float64
    assert sc.logsumexp(np.ma.array([1, 2, 3], mask=[0, 1, 0], dtype=np.float16)).dtype \
        == np.float16


def test_masked_array_refused_where_masks_mean_nothing(masked_api):
    """The backward products, the Jacobian and the cross-entropy refuse a
    masked array (TypeError naming the parameter) rather than drop its mask."""
    sc = masked_api
    m = np.ma.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], mask=[[0, 1, 0], [0, 0, 0]])
    p = np.full((2, 3), 1 / 3)
    t = np.array([0, 2])
    calls = [("y", lambda: sc.softmax_jvp(m, p)), ("g", lambda: sc.softmax_vjp(p, m)),
             ("logp", lambda: sc.log_softmax_vjp(m, p, axis=0)),
             ("y", lambda: sc.softmax_jacobian(m)),
             ("logits", lambda: sc.cross_entropy(m, t)),
             ("target", lambda: sc.cross_entropy_grad(p, np.ma.array(t, mask=[0, 1]))),
             ("weight", lambda: sc.cross_entropy(p, t, weight=np.ma.array([1., 2., 3.])))]
    for name, fn in calls:
        with pytest.raises(TypeError, match=rf"`{name}` is a masked array"):
            fn()
