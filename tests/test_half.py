"""float16 and bfloat16 storage computed in float32 (docs/api.md, "Half-width
storage"): softmax, log_softmax and logsumexp read the half-width input as
it is, compute in float32 and round once, to nearest even, into the output
dtype (the input's, or float32 with ``dtype=np.float32``).

What is checked:
  - conversions: every float16 and every bfloat16 bit pattern through the
    kernels' loads (length-1 logsumexp: the value itself) and stores;
    rounding ties to even, overflow to inf, NaN kept NaN;
  - the half-width result is the float32 result rounded once (bitwise
    against NumPy's / ml_dtypes' casts of the ``dtype=np.float32`` result);
  - accuracy against a float64 truth: softmax within one unit in the last
    place of the output dtype; log_softmax and logsumexp within one unit
    plus the float32 computation's absolute error (1e-6 max(1, |y|));
  - lengths 1..40 and around the kernels' row buffer, spreads, special
    values, every layout (rows, column panels, gathered rows, several
    axes), out=, where=, masked arrays, read-only and strided inputs,
    1 and 2 threads, every SIMD level (subprocesses), and PyTorch's
    half-width softmax where installed.
bfloat16 is the ml_dtypes NumPy dtype; its tests skip without ml_dtypes.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import softmax_c as sc
from softmax_c import reference as ref
from conftest import (BF16, HALF, HALF_PREC, half_dtype, half_ulp, ml_dtypes,
                      run_at_level, simd_levels)

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

OPS = ("softmax", "log_softmax", "logsumexp")


def truth(op, x, axis=-1):
    """op of x in float64 along axis (the NumPy reference: its value rules
    are the kernels')."""
    from softmax_c import reference
    return getattr(reference, op)(np.asarray(x).astype(np.float64), axis)


def check_close(op, got, want, name, out32=False):
    """got (the kernels' result) against the float64 truth want."""
    g = np.asarray(got).astype(np.float64)
    w = np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w)), "NaN positions"
    fin = np.isfinite(w)
    assert np.array_equal(g[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)]), "inf positions"
    g, w = g[fin], w[fin]
    if not out32:  # past the largest finite value, rounding overflows to inf
        big = np.abs(w) >= HALF_PREC[name][2]
        assert np.array_equal(g[big], np.sign(w[big]) * np.inf), "overflow"
        g, w = g[~big], w[~big]
    if out32:  # the float32 kernels' bounds (softmax_c.h)
        bound = 1e-6 * (np.abs(w) if op == "softmax" else np.maximum(1.0, np.abs(w))) + 2.0**-126
    elif op == "softmax":
        bound = half_ulp(w, name)
    else:
        bound = half_ulp(w, name) + 1e-6 * np.maximum(1.0, np.abs(w))
    err = np.abs(g - w)
    assert np.all(err <= bound), (op, name, float(np.max(err / bound)))


def rounded_once(got_half, got32, dt):
    """The half-width result is the float32 result rounded once to nearest
    even (NaN positions alike)."""
    with np.errstate(over="ignore"):
        want = np.asarray(got32).astype(dt)
    a, b = np.asarray(got_half), want
    nan = np.isnan(a.astype(np.float32))
    assert np.array_equal(nan, np.isnan(b.astype(np.float32)))
    assert np.array_equal(a.view(np.uint16)[~nan], b.view(np.uint16)[~nan])


def run_op(op, x, **kw):
    return getattr(sc, op)(x, **kw)


# ---------------------------------------------------------------- conversions

@pytest.mark.parametrize("name", HALF)
def test_every_bit_pattern_loads_and_stores_exactly(name):
    """logsumexp of a length-1 row is its value: every bit pattern through
    the kernels' load (float32 output) and load then store (own dtype)."""
    dt = half_dtype(name)
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = bits.view(dt).reshape(-1, 1)
    want32 = x.astype(np.float32).ravel()
    nan = np.isnan(want32) | (want32 == 0)  # -0 gives -0 + log(1) = +0: by value below
    assert np.all(sc.logsumexp(x[want32 == 0]).astype(np.float32) == 0)
    got32 = sc.logsumexp(x, axis=-1, dtype=np.float32)
    assert got32.dtype == np.float32
    assert np.array_equal(np.isnan(got32), np.isnan(want32))
    assert np.array_equal(got32[~nan].view(np.uint32), want32[~nan].view(np.uint32))
    got = sc.logsumexp(x, axis=-1)
    assert got.dtype == dt
    assert np.array_equal(np.isnan(got.astype(np.float32)), np.isnan(want32))
    assert np.array_equal(got.view(np.uint16)[~nan], bits[~nan])
    # the column-panel kernels and their partial vectors too
    gotc = sc.logsumexp(x.reshape(1, -1), axis=0)
    assert np.array_equal(gotc.view(np.uint16)[~nan], bits[~nan])
    # softmax of one element is 1, log_softmax 0 (NaN and +-inf give NaN)
    fin = np.isfinite(want32)
    y = sc.softmax(x, axis=-1).astype(np.float32).ravel()
    assert np.all(y[fin] == 1.0) and np.all(np.isnan(y[~fin]))
    y = sc.log_softmax(x, axis=-1).astype(np.float32).ravel()
    assert np.all(y[fin] == 0.0) and np.all(np.isnan(y[~fin]))


@pytest.mark.parametrize("name", HALF)
def test_store_rounds_to_nearest_even_and_overflows_to_inf(name):
    """log_softmax of [a, b] with exp(b - a) below float32's range is
    [0, b - a]: b - a, exact in float32, chosen halfway between two
    half-width values (ties to even), just below the half-width maximum,
    and past it (to -inf)."""
    dt = half_dtype(name)
    if name == "float16":
        # spacing 1 in [1024, 2048): 0.5 - 1500 = -1500.5 is a tie -> -1500 (even)
        cases = [(0.5, -1500.0, -1500.0), (0.5, -1501.0, -1502.0), (0.25, -1500.0, -1500.0),
                 (16.0, -65504.0, -np.inf),     # -65520: the tie at the top -> inf
                 (8.0, -65504.0, -65504.0),     # -65512: below the tie
                 (32.0, -65504.0, -np.inf)]
    else:
        # spacing 1 in [128, 256): -200.5 -> -200 (even), -201.5 -> -202
        cases = [(0.5, -200.0, -200.0), (0.5, -201.0, -202.0), (0.25, -200.0, -200.0),
                 (2.0**119, -3.3895313892515355e38, -np.inf),   # tie past the max -> inf
                 (2.0**118, -3.3895313892515355e38, -3.3895313892515355e38)]
    for a, b, want in cases:
        x = np.array([[a, b]], dtype=np.float64).astype(dt)
        assert float(x[0, 0]) == a and float(x[0, 1]) == b
        y = sc.log_softmax(x)
        assert y.dtype == dt
        assert float(y[0, 0]) == 0.0
        assert float(y[0, 1]) == want, (a, b, float(y[0, 1]), want)
        y32 = sc.log_softmax(x, dtype=np.float32)
        assert float(y32[0, 1]) == np.float32(np.float64(b) - a)
        yc = sc.log_softmax(np.ascontiguousarray(x.T), axis=0)
        assert float(yc[1, 0]) == want


@pytest.mark.parametrize("name", HALF)
def test_nan_payload_stays_nan(name):
    dt = half_dtype(name)
    for bits in (0x7c01, 0x7e00, 0xfc01, 0xfe55) if name == "float16" else (0x7f81, 0x7fc0, 0xff81):
        x = np.array([[bits, 0]], dtype=np.uint16).view(dt)
        for op in OPS:
            assert np.all(np.isnan(run_op(op, x).astype(np.float32)))
            assert np.all(np.isnan(run_op(op, x, dtype=np.float32)))


# ---------------------------------------------------------------- accuracy

def _logits(rng, shape, name, spread):
    x = rng.standard_normal(shape) * spread
    if name == "float16":
        x = np.clip(x, -60000, 60000)
    return x.astype(half_dtype(name))


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_accuracy_short_rows(name, op):
    rng = np.random.default_rng(1)
    spreads = (0.01, 1.0, 8.0, 100.0) + ((1e4,) if name == "float16" else (1e4, 1e30))
    for n in range(1, 41):
        for spread in spreads:
            x = _logits(rng, (7, n), name, spread)
            y = run_op(op, x)
            assert y.dtype == half_dtype(name)
            check_close(op, y, truth(op, x), name)
            y32 = run_op(op, x, dtype=np.float32)
            assert y32.dtype == np.float32
            check_close(op, y32, truth(op, x), name, out32=True)
            rounded_once(y, y32, half_dtype(name))


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [63, 64, 65, 255, 256, 1000, 4097, 8191, 8192, 8193, 20000])
def test_accuracy_longer_rows(name, op, n):
    """Around the vector widths and the row buffer (8192: longer softmax
    rows evaluate exp again in the write pass: the same bits)."""
    rng = np.random.default_rng(n)
    x = _logits(rng, (3, n), name, 6.0)
    y = run_op(op, x)
    check_close(op, y, truth(op, x), name)
    y32 = run_op(op, x, dtype=np.float32)
    rounded_once(y, y32, half_dtype(name))
    # the panel kernels (their sums run per lane: other bits are possible)
    xc = np.ascontiguousarray(x.T)
    check_close(op, run_op(op, xc, axis=0), truth(op, xc, 0), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_accuracy_rows_of_2_20(name, op):
    rng = np.random.default_rng(20)
    x = _logits(rng, (2, 2**20), name, 4.0)
    y = run_op(op, x)
    check_close(op, y, truth(op, x), name)
    rounded_once(y, run_op(op, x, dtype=np.float32), half_dtype(name))


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_special_values(name, op):
    dt = half_dtype(name)
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 16, 17, 33, 100, 9000):
        x = rng.standard_normal((6, n)).astype(dt)
        x[0, n // 2] = np.nan
        x[1, :] = -np.inf
        x[2, n - 1] = np.inf
        x[3, 0] = -np.inf
        x[4, :] = np.float32(3.0)
        for axis, xx in ((-1, x), (0, np.ascontiguousarray(x.T))):
            y = run_op(op, xx, axis=axis)
            check_close(op, y, truth(op, xx, axis), name)
            y32 = run_op(op, xx, axis=axis, dtype=np.float32)
            rounded_once(y, y32, dt)
            yv = np.asarray(y).astype(np.float32)
            if op == "logsumexp":
                assert np.isnan(yv[0]) and yv[1] == -np.inf
                assert yv[2] == (np.inf if n > 1 or True else yv[2])
            else:
                rows = (lambda r: yv[r]) if axis == -1 else (lambda r: yv[:, r])
                assert np.all(np.isnan(rows(0))) and np.all(np.isnan(rows(1)))
                assert np.all(np.isnan(rows(2)))


@pytest.mark.parametrize("name", HALF)
def test_empty(name):
    dt = half_dtype(name)
    for shape, axis in (((0, 5), -1), ((3, 0), -1), ((0, 5), 0), ((3, 0), 0)):
        x = np.zeros(shape, dt)
        for op in ("softmax", "log_softmax"):
            y = run_op(op, x, axis=axis)
            assert y.shape == shape and y.dtype == dt
            assert run_op(op, x, axis=axis, dtype=np.float32).dtype == np.float32
        y = sc.logsumexp(x, axis=axis)
        assert y.dtype == dt
        assert np.all(y.astype(np.float32) == -np.inf)


# ---------------------------------------------------------------- layouts

@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", OPS)
def test_layouts_strides_and_readonly(name, op):
    dt = half_dtype(name)
    rng = np.random.default_rng(4)
    base = _logits(rng, (6, 40, 34), name, 5.0)
    views = [base, base[:, ::2, :], base[:, :, ::3], base[::-1], np.transpose(base, (2, 0, 1)),
             np.asfortranarray(base)]
    ro = base.copy()
    ro.flags.writeable = False
    views.append(ro)
    for v in views:
        for axis in (0, 1, 2, -1, (0, 2), None):
            want = truth(op, v, axis=axis if axis is not None else tuple(range(v.ndim)))
            if op != "logsumexp" and isinstance(axis, tuple) or axis is None:
                # several axes: the truth over them together
                ax = tuple(range(v.ndim)) if axis is None else axis
                want = truth(op, v, axis=ax)
            y = run_op(op, v, axis=axis)
            assert np.asarray(y).dtype == dt
            check_close(op, y, want, name)
            rounded_once(y, run_op(op, v, axis=axis, dtype=np.float32), dt)


@pytest.mark.parametrize("name", HALF)
def test_byteswapped_and_unaligned(name):
    """Copied into native, aligned storage of the same dtype first (bfloat16
    has no byte order)."""
    dt = half_dtype(name)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 37)).astype(dt)
    buf = np.zeros(x.size * 2 + 1, np.uint8)[1:].view(dt).reshape(x.shape)
    buf[...] = x
    assert not buf.flags.aligned
    views = [buf] + ([x.astype(">f2")] if name == "float16" else [])
    for op in OPS:
        want = run_op(op, x)
        for v in views:
            got = run_op(op, v)
            assert np.array_equal(np.asarray(got).astype(np.float32), np.asarray(want).astype(np.float32))


@pytest.mark.parametrize("name", HALF)
def test_out_where_masked_inplace(name):
    dt = half_dtype(name)
    rng = np.random.default_rng(6)
    x = _logits(rng, (5, 33), name, 3.0)
    for op in ("softmax", "log_softmax"):
        want = run_op(op, x)
        out = np.empty_like(x)
        assert run_op(op, x, out=out) is out
        assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
        out32 = np.empty(x.shape, np.float32)
        assert run_op(op, x, out=out32, dtype=np.float32) is out32
        rounded_once(want, out32, dt)
        strided = np.empty((5, 66), dt)[:, ::2]
        run_op(op, x, out=strided)
        assert np.array_equal(strided.view(np.uint16), want.view(np.uint16))
        xi = x.copy()
        assert run_op(op, xi, out=xi) is xi
        assert np.array_equal(xi.view(np.uint16), want.view(np.uint16))
        with pytest.raises(TypeError, match="out"):
            run_op(op, x, out=np.empty(x.shape, np.float32))
        with pytest.raises(TypeError, match="out"):
            run_op(op, x, out=np.empty(x.shape, dt), dtype=np.float32)
        where = rng.random(x.shape) < 0.7
        where[0] = False
        y = run_op(op, x, where=where)
        assert y.dtype == dt
        fill = 0.0 if op == "softmax" else -np.inf
        assert np.all(y.astype(np.float32)[~where] == fill)
        xw = np.where(where, x.astype(np.float64), -np.inf)
        check_close(op, y[1:][where[1:]], truth(op, xw[1:])[where[1:]], name)
        m = np.ma.MaskedArray(x, mask=~where)
        ym = run_op(op, m)
        assert isinstance(ym, np.ma.MaskedArray) and ym.dtype == dt
        assert np.array_equal(ym.mask, ~where)
        ym32 = run_op(op, m, dtype=np.float32)
        assert ym32.dtype == np.float32
    m = np.ma.MaskedArray(x, mask=rng.random(x.shape) < 0.3)
    lse = sc.logsumexp(m)
    assert lse.dtype == dt
    assert sc.logsumexp(m, dtype=np.float32).dtype == np.float32
    assert sc.logsumexp(x, keepdims=True).shape == (5, 1)
    s = sc.logsumexp(x[0], dtype=np.float32)
    assert np.ndim(s) == 0 and s.dtype == np.float32


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("nt", [1, 2])
def test_threads(name, nt):
    rng = np.random.default_rng(7)
    x = _logits(rng, (512, 1024), name, 4.0)
    for op in OPS:
        one = run_op(op, x, num_threads=1)
        got = run_op(op, x, num_threads=nt)
        assert np.array_equal(np.asarray(got).view(np.uint16), np.asarray(one).view(np.uint16))
        xc = np.ascontiguousarray(x.T)
        got = run_op(op, xc, axis=0, num_threads=nt)
        check_close(op, got, truth(op, xc, 0), name)


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_large_outputs_stream_the_same_bits(name, op):
    """Outputs of 4 MiB or more in rows of 1 KiB or more are written with
    streaming stores past each row's partial first line: the same bits as
    the rows computed a few at a time (plain stores), rows of any offset."""
    dt = half_dtype(name)
    rng = np.random.default_rng(9)
    x = _logits(rng, (2200, 1000), name, 5.0)  # 4.4 MB, rows of 2000 bytes
    for o32 in (False, True):
        kw = {"dtype": np.float32} if o32 else {}
        if o32:
            x2 = x[:1100]  # float32 output of the same 4.4 MB
        else:
            x2 = x
        big = run_op(op, x2, **kw)
        small = np.concatenate([run_op(op, x2[i:i + 7], **kw) for i in range(0, len(x2), 7)])
        assert np.array_equal(big.view(np.uint16 if not o32 else np.uint32),
                              small.view(np.uint16 if not o32 else np.uint32))
        check_close(op, big[:50], truth(op, x2[:50]), name, out32=o32)


# ---------------------------------------------------------------- dtype=

def test_dtype_keyword_is_checked():
    x16 = np.zeros((2, 3), np.float16)
    for op in OPS:
        with pytest.raises(TypeError, match="dtype"):
            run_op(op, x16, dtype=np.float64)
        with pytest.raises(TypeError, match="dtype"):
            run_op(op, np.zeros((2, 3), np.float32), dtype=np.float16)
        with pytest.raises(TypeError, match="dtype"):
            run_op(op, x16, dtype="not a dtype")
        # the policy's own result dtype is accepted
        assert np.asarray(run_op(op, x16, dtype=np.float16)).dtype == np.float16
        assert np.asarray(run_op(op, np.zeros((2, 3)), dtype=np.float64)).dtype == np.float64
        assert np.asarray(run_op(op, np.zeros((2, 3), np.float32), dtype=np.float32)).dtype == np.float32


@pytest.mark.skipif(ml_dtypes is None, reason="needs ml_dtypes")
def test_bfloat16_elsewhere_raises_typeerror_naming_it():
    x = np.zeros((2, 3), BF16)
    for call in (lambda: sc.cross_entropy(x, np.array([0, 1])),
                 lambda: sc.cross_entropy_grad(x, np.array([0, 1]))):
        with pytest.raises(TypeError, match="bfloat16"):
            call()


def test_package_does_not_import_ml_dtypes():
    code = ("import sys, numpy as np, softmax_c as sc; "
            "sc.softmax(np.zeros((2, 3), np.float16)); "
            "assert 'ml_dtypes' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


# ---------------------------------------------------------------- PyTorch

@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("op", ["softmax"])
def test_against_pytorch(name, op):
    dt = half_dtype(name)
    tdt = torch.float16 if name == "float16" else torch.bfloat16
    rng = np.random.default_rng(8)
    for n in (1, 7, 16, 33, 100, 1000, 10000):
        x = _logits(rng, (9, n), name, 5.0)
        tx = torch.from_numpy(x.view(np.int16).copy()).view(tdt)
        ty = getattr(torch, op)(tx, dim=-1)
        theirs = ty.view(torch.int16).numpy().view(dt).astype(np.float64)
        ours = run_op(op, x).astype(np.float64)
        w = truth(op, x)
        check_close(op, theirs, w, name)  # PyTorch's holds the same bound
        fin = np.isfinite(w)
        assert np.all(np.abs(ours[fin] - theirs[fin]) <= half_ulp(w[fin], name))


# ---------------------------------------------------------------- SIMD levels

def _env(**kw):
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(sc.__file__))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(kw)
    return env


LEVEL_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[2])
import numpy as np
import softmax_c as sc
from softmax_c import reference as ref
import test_half as th
assert sc.build_info()["simd"] == sys.argv[1], sc.build_info()["simd"]
names = ["float16"] + (["bfloat16"] if th.ml_dtypes is not None else [])
for name in names:
    th.test_every_bit_pattern_loads_and_stores_exactly(name)
    th.test_store_rounds_to_nearest_even_and_overflows_to_inf(name)
    th.test_nan_payload_stays_nan(name)
    for op in th.OPS:
        th.test_accuracy_short_rows(name, op)
        th.test_special_values(name, op)
        for n in (65, 1000, 8193):
            th.test_accuracy_longer_rows(name, op, n)
print("ok")
"""


@pytest.mark.parametrize("level", simd_levels())
def test_simd_levels(level):
    out = run_at_level(level, LEVEL_SCRIPT, level, os.path.dirname(os.path.abspath(__file__)))
    assert out.strip().endswith("ok"), out[-3000:]


def test_cython_api_keeps_fused_functions():
    """The half-width rows are per dtype in kernels.pxd; the entries they
    share with float32/float64 keep their functions fused over
    cython.floating."""
    with open(os.path.join(os.path.dirname(sc.__file__), "kernels.pxd")) as f:
        text = f.read()
    for name in ("softmax_rows", "log_softmax_rows", "logsumexp_rows", "softmax_cols",
                 "log_softmax_cols", "logsumexp_cols"):
        assert f"cdef inline void {name}(const floating *x" in text, name
        for dt in ("f16", "bf16"):
            assert f"cdef inline void {name}_{dt}(const uint16_t *x" in text
            assert f"cdef inline void {name}_to32_{dt}(const uint16_t *x" in text


@pytest.mark.parametrize("mod", [sc, ref], ids=["softmax_c", "reference"])
def test_dtype_with_weights_is_refused(mod):
    """logsumexp's weighted result has the weighted sum's dtype: dtype= with
    b= or return_sign= raises, naming dtype."""
    x = np.ones(3, np.float16)
    with pytest.raises(TypeError, match="dtype"):
        mod.logsumexp(x, b=np.ones(3), dtype=np.float32)
    with pytest.raises(TypeError, match="dtype"):
        mod.logsumexp(x, return_sign=True, dtype=np.float32)
