"""The backward products of float16 and bfloat16 operands (docs/api.md,
"Half-width storage"): softmax_jvp, softmax_vjp, log_softmax_jvp and
log_softmax_vjp read y (or logp) and v (or g) of one half-width dtype as
they are, compute in float32 and round once, to nearest even, into that
dtype.

What is checked:
  - the half-width result is the float32 kernels' result on the same
    (exactly widened) operands, rounded once: bitwise, for every length
    1..40, longer rows, panels, gathered rows, streamed outputs and rows
    written last to first;
  - accuracy against a float64 truth: within one unit in the last place of
    the output dtype plus the float32 computation's absolute error (a few
    float32 units of the terms summed, where the difference cancels);
  - NaN and infinities, empty arrays, non-contiguous, read-only and
    byte-swapped operands, out= (a new array, v or y itself), a non-last
    axis, 1 and 2 threads, every SIMD level (subprocesses);
  - the mixed-dtype policy (with the NumPy reference), and errors raised
    before anything is written.
bfloat16 is the ml_dtypes NumPy dtype; its tests skip without ml_dtypes.
"""
import os

import numpy as np
import pytest

import softmax_c as sc
from softmax_c import reference as ref
from conftest import (BF16, F16, HALF, HALF_PREC, half_dtype, half_ulp, ml_dtypes,
                      run_at_level, simd_levels)

OPS = ("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp")
EPS32 = 2.0**-24


def operands(rng, op, shape, name, axis=-1, spread=3.0):
    """(a, b) of dtype `name`: a = softmax or log_softmax of random logits
    along axis, b a random tangent / cotangent."""
    dt = half_dtype(name)
    x = (rng.standard_normal(shape) * spread).astype(dt)
    a = (sc.softmax if op.startswith("softmax") else sc.log_softmax)(x, axis=axis)
    b = rng.standard_normal(shape).astype(dt)
    return a, b


def truth_and_scale(op, a, b, axis=-1):
    """The exact product of the (half-width) operands in float64, and the
    magnitude its float32 computation errs in proportion to."""
    A, B = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if op.startswith("softmax"):
            d = np.sum(A * B, axis, keepdims=True)
            s = np.sum(np.abs(A * B), axis, keepdims=True)
            return A * (B - d), np.abs(A) * (np.abs(B) + s)
        p = np.exp(A)
        if op == "log_softmax_jvp":
            return (B - np.sum(p * B, axis, keepdims=True),
                    np.abs(B) + np.sum(np.abs(p * B), axis, keepdims=True))
        return (B - p * np.sum(B, axis, keepdims=True),
                np.abs(B) + p * np.sum(np.abs(B), axis, keepdims=True))


def check_accuracy(op, got, a, b, name, axis=-1):
    want, scale = truth_and_scale(op, a, b, axis)
    g = got.astype(np.float64)
    fin = np.isfinite(want)
    assert np.array_equal(np.isnan(g[~fin]), np.isnan(want[~fin]))
    g, w, s = g[fin], want[fin], scale[fin]
    big = np.abs(w) >= HALF_PREC[name][2]  # rounds to inf
    assert np.array_equal(g[big], np.sign(w[big]) * np.inf), "overflow"
    g, w, s = g[~big], w[~big], s[~big]
    bound = half_ulp(w, name) + 16 * EPS32 * s
    err = np.abs(g - w)
    assert np.all(err <= bound), (op, name, float(np.max(err / bound)))


def check_rounded_once(op, got, a, b, axis=-1, **kw):
    """got is the float32 kernels' result on the widened operands, rounded
    once to got's dtype (NaN positions alike)."""
    f32 = getattr(sc, op)(a.astype(np.float32), b.astype(np.float32), axis=axis, num_threads=1,
                          **kw)
    with np.errstate(over="ignore", invalid="ignore"):
        want = f32.astype(got.dtype)
    nan = np.isnan(got.astype(np.float32))
    assert np.array_equal(nan, np.isnan(want.astype(np.float32)))
    assert np.array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan]), op


def _check(op, got, a, b, name, axis=-1):
    assert got.dtype == half_dtype(name)
    check_rounded_once(op, got, a, b, axis)
    check_accuracy(op, got, a, b, name, axis)


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_every_tail_length(name, op):
    rng = np.random.default_rng(1)
    for n in range(1, 41):
        a, b = operands(rng, op, (3, n), name)
        _check(op, getattr(sc, op)(a, b), a, b, name)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [63, 64, 65, 255, 1000, 1024, 1025, 4097, 20000, 65536 + 3])
def test_longer_rows(name, op, n):
    rng = np.random.default_rng(n)
    a, b = operands(rng, op, (2, n), name)
    _check(op, getattr(sc, op)(a, b), a, b, name)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_special_values(name, op):
    """NaN and infinities in either operand, zero rows, large tangents: as
    the float32 kernels (rounded once), and as the reference."""
    dt = half_dtype(name)
    rng = np.random.default_rng(2)
    for n in (3, 17, 40, 300):
        a, b = operands(rng, op, (6, n), name)
        a[0, n // 2] = np.nan
        b[1, 0] = np.nan
        b[2, n - 1] = np.inf
        a[3, 1 % n] = -np.inf if op.startswith("log") else np.inf
        b[4] = 0
        b[5] = np.clip(rng.standard_normal(n) * 3e4, -6e4, 6e4).astype(dt)  # large, finite
        with np.errstate(invalid="ignore", over="ignore"):
            got = getattr(sc, op)(a, b)
            want = getattr(ref, op)(a, b)
        assert got.dtype == want.dtype == dt
        check_rounded_once(op, got, a, b)
        g32, w32 = got.astype(np.float32), want.astype(np.float32)
        assert np.array_equal(np.isnan(g32), np.isnan(w32))
        assert np.array_equal(np.isinf(g32), np.isinf(w32))
        check_accuracy(op, got[4:], a[4:], b[4:], name)


@pytest.mark.parametrize("name", HALF)
def test_empty(name):
    dt = half_dtype(name)
    for shape in ((0, 5), (3, 0), (0,)):
        a = np.zeros(shape, dt)
        for op in OPS:
            got = getattr(sc, op)(a, a)
            assert got.shape == shape and got.dtype == dt


# ---------------------------------------------------------------- layouts

@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_layouts_strides_and_readonly(name, op):
    """Rows with a row stride, column panels (a non-last axis), gathered
    rows (a strided axis), a middle axis of a 3-D array, read-only and
    byte-swapped operands: each as the float32 kernels, rounded once."""
    rng = np.random.default_rng(3)
    f = getattr(sc, op)
    a, b = operands(rng, op, (8, 70), name)
    _check(op, f(a[::2], b[::2]), a[::2], b[::2], name)                 # row stride
    a, b = operands(rng, op, (37, 5, 3), name, axis=0)
    _check(op, f(a, b, axis=0), a, b, name, axis=0)                     # panels
    a, b = operands(rng, op, (9, 40), name)
    a2, b2 = a[:, ::2], b[:, ::2]                                       # gathered rows
    a2, b2 = ((sc.softmax if op.startswith("softmax") else sc.log_softmax)(a2),
              np.ascontiguousarray(b2)[:, :])
    _check(op, f(a2, b[:, ::2]), a2, b[:, ::2], name)
    a, b = operands(rng, op, (4, 33, 6), name, axis=1)
    _check(op, f(a, b, axis=1), a, b, name, axis=1)                     # middle axis
    a, b = operands(rng, op, (5, 19), name)
    a.flags.writeable = False
    b.flags.writeable = False
    _check(op, f(a, b), a, b, name)                                     # read-only
    if name == "float16":
        sw = b.astype(b.dtype.newbyteorder(">"))
        got = f(a, sw)
        assert got.dtype == F16 and got.dtype.isnative
        assert np.array_equal(got.view(np.uint16), f(a, b).view(np.uint16))


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_out(name, op):
    """out= a new array (any strides), the second operand itself (in
    place) or the first; each the same bits as a new result."""
    rng = np.random.default_rng(4)
    f = getattr(sc, op)
    dt = half_dtype(name)
    a, b = operands(rng, op, (6, 45), name)
    want = f(a, b)
    out = np.zeros((6, 45), dt)
    assert f(a, b, out=out) is out
    assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
    big = np.zeros((6, 90), dt)
    assert f(a, b, out=big[:, ::2]) is not None
    assert np.array_equal(big[:, ::2].view(np.uint16), want.view(np.uint16))
    assert not big[:, 1::2].view(np.uint16).any()
    bb = b.copy()
    assert f(a, bb, out=bb) is bb
    assert np.array_equal(bb.view(np.uint16), want.view(np.uint16))
    aa = a.copy()
    assert f(aa, b, out=aa) is aa
    assert np.array_equal(aa.view(np.uint16), want.view(np.uint16))
    # overlapping otherwise (shifted by a row): through a copy, same bits
    buf = np.concatenate([b, np.zeros((1, 45), dt)])
    src = buf[:6].copy()
    got = f(a, buf[:6], out=buf[1:])
    assert np.array_equal(got.view(np.uint16), f(a, src).view(np.uint16))


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", ["softmax_jvp", "log_softmax_vjp"])
def test_threads_and_large_outputs(name, op):
    """1 and 2 threads give the same bits; outputs large enough to be
    streamed, and rows long enough to be written last to first, are the
    float32 kernels' results rounded once."""
    rng = np.random.default_rng(5)
    f = getattr(sc, op)
    a, b = operands(rng, op, (1030, 2051), name)  # > 4 MiB of output
    one = f(a, b, num_threads=1)
    two = f(a, b, num_threads=2)
    assert np.array_equal(one.view(np.uint16), two.view(np.uint16))
    check_rounded_once(op, one, a, b)
    a, b = operands(rng, op, (4100, 515), name)  # rows of about 1 KiB streamed
    check_rounded_once(op, f(a, b, num_threads=1), a, b)
    a, b = operands(rng, op, (1, 2**19 + 7), name)  # a row of more than 1 MiB
    got = f(a, b, num_threads=1)
    check_rounded_once(op, got, a, b)
    check_accuracy(op, got, a, b, name)
    a, b = operands(rng, op, (64, 9, 40), name, axis=0)  # panels on 2 threads
    assert np.array_equal(f(a, b, axis=0, num_threads=1).view(np.uint16),
                          f(a, b, axis=0, num_threads=2).view(np.uint16))


# ---------------------------------------------------------------- dtypes

MIXED = [
    (np.float16, np.float16, np.float16),
    (np.float16, np.float32, np.float32),
    (np.float32, np.float16, np.float32),
    (np.float16, np.float64, np.float64),
    (np.float16, np.int8, np.float16),
    (np.bool_, np.float16, np.float16),
    (np.float16, np.int32, np.float64),
    ("bfloat16", "bfloat16", "bfloat16"),
    ("bfloat16", np.float32, np.float32),
    (np.float32, "bfloat16", np.float32),
    ("bfloat16", np.float16, np.float32),
    ("bfloat16", np.float64, np.float64),
    ("bfloat16", np.int8, "bfloat16"),
    ("bfloat16", np.int64, np.float64),
]


def _d(t):
    return BF16 if isinstance(t, str) else np.dtype(t)


@pytest.mark.skipif(ml_dtypes is None, reason="needs ml_dtypes")
@pytest.mark.parametrize("da,db,dr", MIXED)
def test_mixed_dtypes(da, db, dr):
    """np.result_type of the operands decides: a half-width result dtype is
    computed by the half-width kernels (an integer operand converted to it
    exactly), any other as for float32/float64; the reference agrees."""
    rng = np.random.default_rng(6)
    y = sc.softmax(rng.standard_normal((4, 21))).astype(_d(da))
    v = (rng.standard_normal((4, 21)) * 4).astype(_d(db))
    for op in OPS:
        got = getattr(sc, op)(y, v)
        want = getattr(ref, op)(y, v)
        assert got.dtype == want.dtype == _d(dr), (op, got.dtype, want.dtype)
        w, g = want.astype(np.float64), got.astype(np.float64)
        np.testing.assert_allclose(g, w, rtol=2.0**-7, atol=1e-6)


@pytest.mark.parametrize("name", HALF)
def test_bad_input_raises_before_writing(name):
    dt = half_dtype(name)
    a = np.full((3, 4), 0.25, dt)
    b = np.ones((3, 4), dt)
    out = np.full((3, 4), 7, dt)
    keep = out.copy()
    for op in OPS:
        f = getattr(sc, op)
        with pytest.raises(TypeError, match="out"):
            f(a, b, out=np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError, match="out"):
            f(a, b, out=np.zeros((3, 5), dt))
        with pytest.raises(ValueError, match="same shape"):
            f(a, b[:, :3], out=out)
        with pytest.raises(TypeError, match="complex"):
            f(a, b.astype(np.float32).astype(np.complex64), out=out)
        with pytest.raises(np.exceptions.AxisError):
            f(a, b, axis=2, out=out)
        ro = np.zeros((3, 4), dt)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            f(a, b, out=ro)
    assert np.array_equal(out.view(np.uint16), keep.view(np.uint16))
    assert (a.astype(np.float32) == 0.25).all() and (b.astype(np.float32) == 1).all()


# ---------------------------------------------------------------- SIMD levels

LEVEL_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[2])
import softmax_c as sc
import test_half_backward as t
assert sc.build_info()["simd"] == sys.argv[1], sc.build_info()["simd"]
names = ["float16"] + (["bfloat16"] if t.ml_dtypes is not None else [])
for name in names:
    for op in t.OPS:
        t.test_every_tail_length(name, op)
        t.test_special_values(name, op)
        t.test_layouts_strides_and_readonly(name, op)
        for n in (65, 1025, 20000):
            t.test_longer_rows(name, op, n)
print("ok")
"""


@pytest.mark.parametrize("level", simd_levels())
def test_simd_levels(level):
    out = run_at_level(level, LEVEL_SCRIPT, level, os.path.dirname(os.path.abspath(__file__)))
    assert out.strip().endswith("ok"), out[-3000:]


@pytest.mark.parametrize("name", HALF)
def test_hot_path_and_general_path_agree(name):
    """C-contiguous operands along axis=-1 take the hot path (bfloat16
    once the general path has met it); axis=1 of the same 2-D arrays the
    general path: the same kernels, the same bits, out= or not, in place."""
    rng = np.random.default_rng(7)
    dt = half_dtype(name)
    x = (rng.standard_normal((33, 77)) * 3).astype(dt)
    sc.softmax(x, axis=1)  # the general path meets the dtype first
    for op in ("softmax", "log_softmax", "logsumexp"):
        f = getattr(sc, op)
        assert np.array_equal(np.asarray(f(x, axis=-1)).view(np.uint16),
                              np.asarray(f(x, axis=1)).view(np.uint16))
    for op in OPS:
        f = getattr(sc, op)
        a, b = operands(rng, op, (33, 77), name)
        want = f(a, b, axis=1)
        assert np.array_equal(f(a, b).view(np.uint16), want.view(np.uint16))
        out = np.empty_like(a)
        assert f(a, b, out=out) is out
        assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
        bb = b.copy()
        assert f(a, bb, out=bb, num_threads=2) is bb
        assert np.array_equal(bb.view(np.uint16), want.view(np.uint16))
    xx = x.copy()
    assert sc.softmax(xx, out=xx) is xx
    assert np.array_equal(xx.view(np.uint16), sc.softmax(x, axis=1).view(np.uint16))
