"""The backward functions softmax_jvp, softmax_vjp, log_softmax_jvp,
log_softmax_vjp and softmax_jacobian, held to docs/api.md.

Three oracles: the NumPy reference evaluated in float64 on the same input
values (exact inputs, so the only error is that of the function under
test), 4th-order central finite differences of softmax / log_softmax in
float64, and torch.func.jvp / torch.func.vjp when PyTorch is installed.

Tolerances.  The first operand (y, or logp) and the second (v, or g) are
exact inputs; the products are short formulas around one dot product per
slice, so the natural error scale of an element is

    softmax_jvp/vjp   y_i * (|v_i| + sum_j |y_j v_j|)
    log_softmax_jvp   |v_i| + sum_j exp(logp_j) |v_j|
    log_softmax_vjp   |g_i| + exp(logp_i) * sum_j |g_j|

and an element may be off by 10 * tol (docs/api.md's tol: 1e-6 for float32,
1e-14 for float64 computation) times its scale, plus the rounding to the
result dtype.  This is what a compensated (or wide) dot product gives on
rows up to 2^20 long.  Exact equality is asserted only where the contract
implies it: NaN positions, empty results, thread counts, symmetry of the
Jacobian.
"""
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from conftest import (
    MODULE_UNDER_TEST,
    RESULT_ROUNDOFF,
    TOL,
    AxisError,
    assert_unchanged,
    call_checked,
    compute_dtype,
    result_dtype,
    snapshot,
)

# name -> (the forward function whose output is the first operand, the
# names of the two operands as docs/api.md gives them)
PRODUCTS = {
    "softmax_jvp": ("softmax", "y", "v"),
    "softmax_vjp": ("softmax", "y", "g"),
    "log_softmax_jvp": ("log_softmax", "logp", "v"),
    "log_softmax_vjp": ("log_softmax", "logp", "g"),
}
NAMES = list(PRODUCTS)
F32_F64 = [np.float32, np.float64]
FLOATS = [np.float16, np.float32, np.float64]
ROW_LENGTHS = list(range(71)) + [127, 128, 129, 255, 256, 257, 1000]


# ---------------------------------------------------------------- oracles

def _rt(compute):
    """Relative tolerance against the error scale, by compute dtype."""
    return 10 * TOL[np.dtype(compute)]


def scale_of(name, a, b, axis):
    """The error scale of every element (see the module docstring), from
    float64 copies of the operands."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if name in ("softmax_jvp", "softmax_vjp"):
            return np.abs(a) * (np.abs(b) + np.sum(np.abs(a * b), axis, keepdims=True))
        if name == "log_softmax_jvp":
            return np.abs(b) + np.sum(np.exp(a) * np.abs(b), axis, keepdims=True)
        return np.abs(b) + np.exp(a) * np.sum(np.abs(b), axis, keepdims=True)


def expected(ref, name, a, b, axis=-1):
    """The reference evaluated in float64 on the operands' values (exact:
    every accepted dtype converts to float64 without rounding, for the
    values used here)."""
    return getattr(ref, name)(np.asarray(a).astype(np.float64),
                              np.asarray(b).astype(np.float64), axis)


def assert_close(got, want, scale, compute, result, rt=None, label=""):
    """`got` (of dtype `result`) equals `want` (float64) within
    rt * scale + rounding to `result`; NaN and infinities at the same
    places."""
    got = np.asarray(got)
    result = np.dtype(result)
    assert got.dtype == result, f"{label}: dtype {got.dtype}, want {result}"
    assert got.shape == want.shape, f"{label}: shape {got.shape}, want {want.shape}"
    for special in (np.isnan, np.isposinf, np.isneginf):
        assert_array_equal(special(got), special(want),
                           err_msg=f"{label}: {special.__name__} positions")
    fin = np.isfinite(want)
    g = got[fin].astype(np.float64)
    w = want[fin]
    s = np.broadcast_to(scale, want.shape)[fin]
    rt = _rt(compute) if rt is None else rt
    bound = (rt * s + 2 * RESULT_ROUNDOFF[result] * np.abs(w)
             + 2 * float(np.finfo(result).smallest_subnormal))
    err = np.abs(g - w)
    if not np.all(err <= bound):
        i = np.argmax(err / bound)
        raise AssertionError(
            f"{label}: {np.count_nonzero(err > bound)} of {err.size} elements over "
            f"the bound; worst: got {g[i]!r}, want {w[i]!r}, error {err[i]:.3g}, "
            f"bound {bound[i]:.3g} (scale {s[i]:.3g})")


def check(sc, ref, name, a, b, axis=-1, **kwargs):
    """sc.<name>(a, b, axis) against the reference, the operands left
    unmodified; returns the result."""
    got = call_checked(getattr(sc, name), a, b, axis, **kwargs)
    dt = np.result_type(np.asarray(a).dtype, np.asarray(b).dtype)
    assert_close(got, expected(ref, name, a, b, axis), scale_of(name, a, b, axis),
                 compute_dtype(dt), result_dtype(dt), label=f"{name} axis={axis}")
    return got


def operands(ref, name, x, b, dtype=None, axis=-1):
    """The first operand (softmax or log_softmax of x along axis, in
    float64 then cast to dtype) and the second, cast to dtype."""
    fwd = getattr(ref, PRODUCTS[name][0])(np.asarray(x, np.float64), axis)
    if dtype is None:
        return fwd, b
    return fwd.astype(dtype), np.asarray(b).astype(dtype)


def _rows(rng, n, dtype):
    """(x, v) with 8 rows of length n: spreads of x that make some y
    subnormal or zero, and tangents with cancellation (an offset much larger
    than their spread)."""
    deep = 100.0 if np.dtype(dtype) == np.float32 else 740.0  # past exp's underflow
    x = np.array([
        rng.normal(0, 3, n),
        rng.uniform(-deep, 0, n),
        np.full(n, 2.5),
        rng.uniform(-1e3, 1e3, n),
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.normal(0, 0.1, n),
        rng.normal(0, 5, n),
    ])
    v = np.array([
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        100 + rng.normal(0, 1, n),
        np.full(n, -3.0),
        rng.uniform(-1e4, 1e4, n),
        np.zeros(n),
    ])
    if n:
        x[4, -1] = x[4].max() + 1  # the max in the tail
        x[5, 0] = x[5].max() + 1   # at the start
    return x, v


# ---------------------------------------------------------------- row lengths

@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_row_lengths(sc, ref, rng, n, dtype):
    """Every length 0..70 and around 128/256, along the contiguous axis and
    along the strided axis 0 of a C-contiguous array: SIMD bodies and
    tails."""
    x, v = _rows(rng, n, dtype)
    for name in NAMES:
        a, b = operands(ref, name, x, v, dtype)
        assert check(sc, ref, name, a, b).shape == (8, n)
        at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
        assert check(sc, ref, name, at, bt, 0).shape == (n, 8)
    if n <= 257:
        y = operands(ref, "softmax_jvp", x, v, dtype)[0]
        check_jacobian(sc, y, -1)
        check_jacobian(sc, np.ascontiguousarray(y.T), 0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layout", ["row", "column"])
@pytest.mark.parametrize("n", [2**18, 2**18 + 5, 2**20])
def test_float32_accuracy_long_rows(sc, ref, rng, name, layout, n):
    """float32 rows of 2^18..2^20: the dot product must not lose accuracy
    with the length (compared with the float64 reference at 1e-5 of the
    error scale)."""
    x = np.stack([rng.normal(0, 3, n), rng.uniform(-20, 0, n)])
    v = np.stack([3 + rng.normal(0, 1, n), 1000 + rng.normal(0, 1, n)])
    a, b = operands(ref, name, x, v, np.float32)
    if layout == "column":  # a long strided axis
        a, b = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    try:
        check(sc, ref, name, a, b, -1 if layout == "row" else 0)
    except AssertionError:
        if MODULE_UNDER_TEST == "softmax_c.reference":
            # NumPy sums a strided axis left to right: the reference is not
            # held to the accuracy bound (see its module docstring).
            pytest.xfail("the NumPy reference's float32 sums along a long axis")
        raise


# ---------------------------------------------------------------- the Jacobian

def check_jacobian(sc, y, axis, label=""):
    """softmax_jacobian(y, axis) has shape (..., n, n) with `axis` moved
    last, equals diag(y) - y y^T per slice (diagonal y - y*y or y(1 - y)),
    and is exactly symmetric."""
    y = np.asarray(y)
    jac = call_checked(sc.softmax_jacobian, y, axis)
    ym = np.moveaxis(y.astype(np.float64), axis, -1)
    n = ym.shape[-1]
    assert jac.shape == ym.shape + (n,), label
    outer = ym[..., :, None] * ym[..., None, :]
    eye = np.eye(n, dtype=bool)
    want = np.where(eye, ym[..., :, None] - outer, -outer)
    # The diagonal's error: that of y - y*y or y(1 - y); elsewhere of y_i y_j.
    scale = np.where(eye, np.abs(ym[..., :, None]), 0) + np.abs(outer)
    assert_close(jac, want, scale, compute_dtype(y.dtype), result_dtype(y.dtype),
                 label=f"softmax_jacobian {label} axis={axis}")
    assert_array_equal(jac, np.swapaxes(jac, -1, -2), err_msg="not symmetric")
    return jac


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(7,), (3, 9), (2, 3, 5), (4, 1, 6), (2, 3, 4, 5)])
def test_jacobian_every_axis(sc, ref, rng, shape, dtype):
    x = rng.normal(0, 2, shape)
    for axis in range(-len(shape), len(shape)):
        y = ref.softmax(x, axis).astype(dtype)
        jac = check_jacobian(sc, y, axis)
        assert jac.dtype == result_dtype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.bool_])
def test_jacobian_integer_and_bool(sc, dtype):
    y = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    jac = check_jacobian(sc, y, -1)
    assert jac.dtype == np.float64


def test_jacobian_times_v_is_jvp(sc, ref, rng):
    """softmax_jacobian(y) @ v == softmax_jvp(y, v), whatever the axis."""
    x = rng.normal(0, 2, (3, 4, 17))
    v = rng.normal(0, 1, x.shape)
    for dtype in F32_F64:
        for axis in (0, 1, 2, -1):
            y = ref.softmax(x, axis).astype(dtype)
            vd = v.astype(dtype)
            jac = sc.softmax_jacobian(y, axis).astype(np.float64)
            jv = np.einsum("...ij,...j->...i", jac, np.moveaxis(vd.astype(np.float64),
                                                                axis, -1))
            jv = np.moveaxis(jv, -1, axis)
            got = sc.softmax_jvp(y, vd, axis)
            assert_close(got, jv, scale_of("softmax_jvp", y, vd, axis),
                         compute_dtype(dtype), dtype, rt=2 * _rt(dtype),
                         label=f"axis {axis}")


def test_jacobian_layouts(sc, rng):
    base = rng.dirichlet(np.ones(6), size=(3, 4, 5))  # softmax along -1
    for label, y in _views(base):
        for axis in range(-4, 4):
            check_jacobian(sc, y, axis, label)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5), (0, 0), (2, 0, 3)])
def test_jacobian_empty(sc, shape):
    y = np.zeros(shape, np.float32)
    for axis in range(-len(shape), len(shape)):
        jac = sc.softmax_jacobian(y, axis)
        n = shape[axis]
        rest = tuple(s for d, s in enumerate(shape) if d != axis % len(shape))
        assert jac.shape == rest + (n, n) and jac.dtype == np.float32


def test_jacobian_nan(sc, ref):
    """A NaN y_i makes row and column i of its slice NaN, as the formula
    does; other slices are untouched."""
    y = np.full((3, 4), 0.25)
    y[1, 2] = np.nan
    jac = sc.softmax_jacobian(y)
    assert_array_equal(np.isnan(jac), np.isnan(ref.softmax_jacobian(y)))
    assert np.isnan(jac[1, 2, :]).all() and np.isnan(jac[1, :, 2]).all()
    assert np.isfinite(jac[[0, 2]]).all()


@pytest.mark.parametrize("axis, exc", [(None, TypeError), ((0,), TypeError),
                                       ((0, 1), TypeError), (1.0, TypeError),
                                       ("a", TypeError), (True, TypeError),
                                       (2, AxisError), (-3, AxisError)], ids=repr)
def test_jacobian_axis_errors(sc, axis, exc):
    y = np.full((2, 3), 1 / 3)
    before = snapshot(y)
    with pytest.raises(exc) as info:
        sc.softmax_jacobian(y, axis)
    if exc is TypeError:
        assert "axis" in str(info.value)
    assert_unchanged(y, before)


def test_jacobian_zero_d_has_no_axis(sc):
    with pytest.raises(AxisError):
        sc.softmax_jacobian(np.array(1.0))


@pytest.mark.parametrize("dtype", ["complex128", "complex64", "O", "U3", "datetime64[s]"]
                         + (["longdouble"] if np.finfo(np.longdouble).nmant > 52 else []))
def test_jacobian_rejected_dtypes(sc, dtype):
    y = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError) as info:
        sc.softmax_jacobian(y)
    msg = str(info.value)
    assert str(np.dtype(dtype)) in msg or np.dtype(dtype).name in msg, msg


# ---------------------------------------------------------------- finite differences

def _fd(f, x, v, h):
    """4th-order central difference of f at x in direction v."""
    return (-f(x + 2 * h * v) + 8 * f(x + h * v) - 8 * f(x - h * v)
            + f(x - 2 * h * v)) / (12 * h)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape, axis", [((6, 9), -1), ((6, 9), 0), ((3, 5, 4), 1),
                                         ((2, 40), 1), ((1,), 0)])
def test_against_finite_differences(sc, ref, rng, name, shape, axis):
    """JVPs against the directional derivative of the forward function;
    VJPs through the adjoint identity <vjp(g), v> = d/dh <g, f(x + h v)>,
    slice by slice."""
    fwd = getattr(ref, PRODUCTS[name][0])
    f = lambda z: fwd(z, axis)  # noqa: E731
    x = rng.normal(0, 2, shape)
    a = f(x)
    h = 1e-3
    for _ in range(3):
        v = rng.normal(0, 1, shape)
        if name.endswith("jvp"):
            got = getattr(sc, name)(a, v, axis)
            want = _fd(f, x, v, h)
            scale = scale_of(name, a, v, axis)
        else:
            g = rng.normal(0, 1, shape)
            got = np.sum(getattr(sc, name)(a, g, axis) * v, axis)
            want = _fd(lambda z: np.sum(g * f(z), axis), x, v, h)
            scale = np.sum(np.abs(scale_of(name, a, g, axis) * v), axis)
        # truncation ~ h^4, rounding ~ u / h: both far below 1e-9
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * (1 + np.max(scale)))


# ---------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(5, 33), (4, 3, 7), (129,), (2, 257)])
def test_against_torch_func(sc, torch, rng, name, shape, dtype):
    """torch.func.jvp / torch.func.vjp of torch.softmax / torch.log_softmax
    in float64 on the same input values, along every axis."""
    tf = torch.softmax if name.startswith("softmax") else torch.log_softmax
    for axis in range(-len(shape), len(shape)):
        x = rng.normal(0, 3, shape).astype(dtype)
        b = rng.normal(0, 1, shape).astype(dtype)
        xt = torch.from_numpy(x.astype(np.float64))
        bt = torch.from_numpy(b.astype(np.float64))
        f = lambda z: tf(z, dim=axis)  # noqa: E731
        if name.endswith("jvp"):
            primal, tangent = torch.func.jvp(f, (xt,), (bt,))
        else:
            primal, vjp_fn = torch.func.vjp(f, xt)
            (tangent,) = vjp_fn(bt)
        # our first operand: torch's forward output in the test dtype
        a = primal.numpy().astype(dtype)
        # the tangent for that (rounded) operand, to compare like with like
        want = getattr(_FORMULAS, name)(a.astype(np.float64), b.astype(np.float64), axis)
        assert_close(tangent.numpy(), want, scale_of(name, a, b, axis), np.float64,
                     np.float64, rt=1e-12 if dtype == np.float64 else 1e-6,
                     label="torch vs the formula")
        got = call_checked(getattr(sc, name), a, b, axis)
        assert_close(got, want, scale_of(name, a, b, axis), dtype, dtype,
                     label=f"{name} axis={axis}")
        if dtype == np.float64:
            assert_close(got, tangent.numpy(), scale_of(name, a, b, axis), dtype, dtype,
                         label=f"{name} vs torch axis={axis}")


class _FORMULAS:
    """docs/api.md's formulas, written out in float64 (used to account for the
    rounding of torch's primal output to the test dtype)."""

    @staticmethod
    def softmax_jvp(y, v, axis):
        return y * (v - np.sum(y * v, axis, keepdims=True))

    softmax_vjp = softmax_jvp

    @staticmethod
    def log_softmax_jvp(logp, v, axis):
        return v - np.sum(np.exp(logp) * v, axis, keepdims=True)

    @staticmethod
    def log_softmax_vjp(logp, g, axis):
        return g - np.exp(logp) * np.sum(g, axis, keepdims=True)


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_float_dtypes(sc, ref, rng, name, dtype):
    """float32/float64 natively; float16 computed in float32, returned as
    float16."""
    x, v = _rows(rng, 37, dtype)
    a, b = operands(ref, name, x[:5], v[:5], dtype)
    assert check(sc, ref, name, a, b).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_float16_not_computed_in_float16(sc, name):
    """A dot product of 5000 terms, and values whose float16 intermediates
    would overflow: the float32 computation is visible."""
    n = 5000
    a = np.full((1, n), 1 / n if name.startswith("softmax") else -np.log(n), np.float16)
    b = np.ones((1, n), np.float16)
    b[0, 0] = 62000.0  # each y*v fits float16; sum(v) does not
    got = getattr(sc, name)(a, b)
    want = getattr(_FORMULAS, name)(a.astype(np.float64), b.astype(np.float64), -1)
    assert got.dtype == np.float16
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-3,
                               atol=1e-3 * np.abs(want).max())


# (first operand dtype, second operand dtype, the result dtype docs/api.md implies)
MIXED = [
    (np.float16, np.float32, np.float32),
    (np.float32, np.float16, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float16, np.float64, np.float64),
    (np.float16, np.uint8, np.float16),
    (np.int8, np.float16, np.float16),
    (np.int16, np.float16, np.float32),
    (np.float32, np.int8, np.float32),
    (np.float32, np.int32, np.float64),
    (np.int64, np.float32, np.float64),
    (np.int32, np.int32, np.float64),
    (np.uint8, np.int8, np.float64),
    (np.uint64, np.uint64, np.float64),
    (np.bool_, np.bool_, np.float64),
    (np.bool_, np.float32, np.float32),
    (np.float64, np.bool_, np.float64),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("da, db, dr", MIXED, ids=lambda d: np.dtype(d).name)
def test_mixed_dtypes(sc, ref, rng, name, da, db, dr):
    """Operands promoted by np.result_type, then the forward policy."""
    assert result_dtype(np.result_type(da, db)) == dr  # the policy, spelled out
    shape = (4, 11)
    if np.dtype(da).kind == "f":
        a = operands(ref, name, rng.normal(0, 2, shape), None)[0].astype(da)
    elif name.startswith("softmax"):  # one-hot rows: valid softmax outputs
        a = np.eye(11, dtype=da)[rng.integers(0, 11, 4)]
    else:  # small negative integers as log-probabilities
        a = (-rng.integers(0, 4, shape)).astype(da) if np.dtype(da).kind == "i" else \
            rng.integers(0, 2, shape).astype(da)
    if np.dtype(db).kind == "f":
        b = rng.normal(0, 3, shape).astype(db)
    else:
        b = rng.integers(0, 2 if db == np.bool_ else 50, shape).astype(db)
    got = check(sc, ref, name, a, b)
    assert got.dtype == dr


REJECTED = [np.complex64, np.complex128, np.object_, "U3", "S3", "datetime64[s]",
            "timedelta64[s]"]
if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant:
    REJECTED.append(np.longdouble)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", REJECTED, ids=str)
@pytest.mark.parametrize("which", ["first", "second", "both"])
def test_rejected_dtypes(sc, name, dtype, which):
    """complex, longdouble, object, string and datetime operands raise
    TypeError naming the dtype, whichever operand holds it."""
    dtype = np.dtype(dtype)
    bad = np.zeros((2, 3), dtype)
    good = np.full((2, 3), 1 / 3)
    a, b = {"first": (bad, good), "second": (good, bad), "both": (bad, bad)}[which]
    with pytest.raises(TypeError) as info:
        call_checked(getattr(sc, name), a, b)
    msg = str(info.value)
    assert str(dtype) in msg or dtype.name in msg, msg


def test_byte_swapped_operands(sc, ref, rng):
    x = rng.normal(size=(3, 17))
    v = rng.normal(size=(3, 17))
    for name in NAMES:
        a, b = operands(ref, name, x, v)
        got = check(sc, ref, name, a.astype(">f8"), b.astype(">f8"))
        assert got.dtype == np.float64 and got.dtype.isnative
    jac = check_jacobian(sc, ref.softmax(x).astype(">f4"), -1)
    assert jac.dtype.isnative


def test_array_likes(sc, ref):
    """Lists and tuples are array-likes here as in the forward functions."""
    y = [[0.25, 0.75], [0.5, 0.5]]
    v = ((1.0, 0.0), (2, 2))
    np.testing.assert_allclose(sc.softmax_jvp(y, v), ref.softmax_jvp(y, v), rtol=1e-15)
    assert sc.softmax_jvp(y, v).dtype == np.float64
    np.testing.assert_allclose(sc.softmax_jacobian(y[0]), [[0.1875, -0.1875],
                                                           [-0.1875, 0.1875]])


def test_torch_tensor_operands(sc, ref, torch, rng):
    x = rng.normal(size=(3, 9)).astype(np.float32)
    v = rng.normal(size=(3, 9)).astype(np.float32)
    for name in NAMES:
        a, b = operands(ref, name, x, v, np.float32)
        got = getattr(sc, name)(torch.from_numpy(a), torch.from_numpy(b))
        assert isinstance(got, np.ndarray)
        assert_close(got, expected(ref, name, a, b), scale_of(name, a, b, -1),
                     np.float32, np.float32, label=name)


# ---------------------------------------------------------------- layouts

def _views(base):
    """(label, array) pairs of the same logical content as `base` in many
    memory layouts."""
    big = np.zeros(tuple(2 * s + 1 for s in base.shape), base.dtype)
    sl = tuple(slice(1, None, 2) for _ in base.shape)
    big[sl] = base
    ro = base.copy()
    ro.flags.writeable = False
    raw = np.zeros(base.nbytes + 1, np.uint8)
    unaligned = np.ndarray(base.shape, base.dtype, raw.data, offset=1)
    unaligned[...] = base
    neg = base[(slice(None, None, -1),) * base.ndim].copy()[(slice(None, None, -1),)
                                                             * base.ndim]
    perm = tuple(np.roll(np.arange(base.ndim), 1))
    permuted = np.ascontiguousarray(base.transpose(perm)).transpose(np.argsort(perm))
    return [
        ("C", np.ascontiguousarray(base)),
        ("F", np.asfortranarray(base)),
        ("transposed", np.ascontiguousarray(base.T).T),
        ("axes-permuted", permuted),
        ("negative", neg),
        ("sliced", big[sl]),
        ("read-only", ro),
        ("unaligned", unaligned),
    ]


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_layouts(sc, ref, rng, name, dtype):
    """Any strides for either operand, any axis: the result is that of
    C-contiguous copies and is shaped like the inputs."""
    x = rng.normal(0, 3, (3, 4, 5, 6))
    b0 = rng.normal(0, 1, x.shape).astype(dtype)
    for axis in range(-4, 4):
        a0 = operands(ref, name, x, None, axis=axis)[0].astype(dtype)
        va, vb = _views(a0), _views(b0)
        pairs = [(la + "/C", a, vb[0][1]) for la, a in va]
        pairs += [("C/" + lb, va[0][1], b) for lb, b in vb]
        pairs += [(la + "/" + lb, a, b) for (la, a), (lb, b) in zip(va, vb[::-1])]
        for label, a, b in pairs:
            got = call_checked(getattr(sc, name), a, b, axis)
            assert_close(got, expected(ref, name, a0, b0, axis),
                         scale_of(name, a0, b0, axis), dtype, dtype,
                         label=f"{name} layout {label} axis={axis}")


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7, 33, 9), (2, 65, 17), (3, 4, 130), (300, 2)])
def test_non_last_axis_of_c_contiguous(sc, ref, rng, name, shape, dtype):
    x = rng.normal(0, 3, shape)
    b = rng.normal(0, 1, shape).astype(dtype)
    for axis in range(len(shape) - 1):
        a = operands(ref, name, x, None, axis=axis)[0].astype(dtype)
        check(sc, ref, name, a, b, axis)


# ---------------------------------------------------------------- empty, 0-d

EMPTY_SHAPES = [(0,), (3, 0), (0, 5), (0, 0), (2, 0, 3), (0, 4, 0)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("dtype", FLOATS + [np.int32])
def test_empty(sc, name, shape, dtype):
    """An empty axis or an empty batch: an empty result of the right shape
    and dtype, no error; out= is returned."""
    a = np.zeros(shape, dtype)
    b = np.zeros(shape, dtype)
    for axis in range(-len(shape), len(shape)):
        got = getattr(sc, name)(a, b, axis)
        assert got.shape == shape and got.dtype == result_dtype(dtype)
        out = np.empty(shape, result_dtype(dtype))
        assert getattr(sc, name)(a, b, axis, out=out) is out


@pytest.mark.parametrize("name", NAMES)
def test_zero_d_has_no_axis(sc, name):
    """`axis` is an int here, and a 0-d array has no axis 0 or -1."""
    for axis in (-1, 0):
        with pytest.raises(AxisError):
            getattr(sc, name)(np.array(1.0), np.array(1.0), axis)


# ---------------------------------------------------------------- value rules

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 33, 64, 65, 129])
@pytest.mark.parametrize("where", ["first", "second"])
def test_nan_propagates(sc, ref, rng, name, n, dtype, where):
    """A NaN in a slice gives NaN where docs/api.md's formula puts it: a NaN
    inside the slice's dot product or sum (every case but a NaN logp in
    log_softmax_vjp) makes the whole slice NaN; other slices are not
    affected.  Checked at the start, middle and tail of rows of several
    lengths (every SIMD lane) and along a strided axis."""
    x = rng.normal(0, 1, (4, n))
    a, b = operands(ref, name, x, rng.normal(0, 1, (4, n)), dtype)
    for pos in sorted({0, n // 2, n - 1}):
        aa, bb = a.copy(), b.copy()
        (aa if where == "first" else bb)[1, pos] = np.nan
        want = expected(ref, name, aa, bb)
        whole = not (name == "log_softmax_vjp" and where == "first")
        if whole:
            assert np.isnan(want[1]).all()
        else:
            assert np.isnan(want[1, pos]) and np.isnan(want[1]).sum() == 1
        got = check(sc, ref, name, aa, bb)
        assert np.isfinite(got[[0, 2, 3]]).all()
        gt = check(sc, ref, name, np.ascontiguousarray(aa.T), np.ascontiguousarray(bb.T), 0)
        assert_array_equal(np.isnan(gt), np.isnan(got.T))


@pytest.mark.parametrize("name", NAMES)
def test_softmax_outputs_with_zeros_and_ones(sc, ref, name):
    """Operands a forward pass really produces at the extremes: y of 0 and
    1 (softmax of [1000, 1]) and logp of -inf (log_softmax where the
    where= mask was False) give finite JVPs where the formula does."""
    if name.startswith("softmax"):
        a = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    else:
        a = np.array([[0.0, -np.inf, -999.0], [-np.log(2), -np.log(2), -np.inf]])
    b = np.array([[1.0, 2.0, 3.0], [-1.0, 4.0, 1e300]])
    got = check(sc, ref, name, a, b)
    assert np.isfinite(got).all()
    if name.startswith("softmax"):
        # y = [1, 0, 0]: <y, v> = v_0 exactly, so the product is exactly 0
        assert_array_equal(got[0], [0.0, 0.0, 0.0])


# ---------------------------------------------------------------- out=

def _outs(shape, dtype):
    big = np.full((shape[0] * 2, shape[1] * 3 + 1), -7.0, dtype)
    return [
        ("C", np.full(shape, -7.0, dtype)),
        ("F", np.asfortranarray(np.full(shape, -7.0, dtype))),
        ("strided", big[::2, 1::3]),
        ("negative", np.full(shape, -7.0, dtype)[::-1, ::-1]),
        ("transposed", np.full(shape[::-1], -7.0, dtype).T),
    ]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_out_any_strides(sc, ref, rng, name, dtype, axis):
    x = rng.normal(0, 3, (6, 37))
    a, b = operands(ref, name, x, rng.normal(0, 1, x.shape), dtype, axis)
    want = expected(ref, name, a, b, axis)
    for label, out in _outs(x.shape, dtype):
        res = call_checked(getattr(sc, name), a, b, axis, out=out)
        assert res is out, label
        assert_close(out, want, scale_of(name, a, b, axis), compute_dtype(dtype), dtype,
                     label=f"out {label}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["first", "second"])
def test_out_is_an_operand(sc, ref, rng, name, dtype, which):
    """out=g (or v) and out=y (or logp): in place, any view, any axis."""
    x = rng.normal(0, 3, (6, 37))
    b0 = rng.normal(0, 1, x.shape).astype(dtype)
    views = [lambda t: t, lambda t: t.T, lambda t: t[:, ::2], lambda t: t[::-1, ::-1]]
    for axis in (-1, 0):
        a0 = operands(ref, name, x, None, axis=axis)[0].astype(dtype)
        for view in views:
            a, b = view(a0.copy()), view(b0.copy())
            want = expected(ref, name, a, b, axis)
            scale = scale_of(name, a, b, axis)
            target = a if which == "first" else b
            res = getattr(sc, name)(a, b, axis, out=target)
            assert res is target
            assert_close(target, want, scale, compute_dtype(dtype), dtype,
                         label=f"out={which} axis={axis}")


@pytest.mark.parametrize("name", NAMES)
def test_out_dtype_follows_the_policy(sc, name):
    for da, db, dr in [(np.int32, np.int32, np.float64), (np.float16, np.float16,
                                                          np.float16),
                       (np.float16, np.float32, np.float32), (np.bool_, np.int8,
                                                              np.float64)]:
        a, b = np.zeros((2, 3), da), np.ones((2, 3), db)
        out = np.empty((2, 3), dr)
        assert getattr(sc, name)(a, b, out=out) is out
        for wrong in {np.float16, np.float32, np.float64} - {dr}:
            with pytest.raises(TypeError, match="out"):
                call_checked(getattr(sc, name), a, b, out=np.empty((2, 3), wrong))


# ---------------------------------------------------------------- errors

def _bad_calls(name):
    """(label, operand shapes, kwargs, exception, words the message must
    contain); the good operands have shape (3, 4)."""
    ro = np.zeros((3, 4))
    ro.flags.writeable = False
    good = ((3, 4), (3, 4))
    return [
        ("shapes differ", ((3, 4), (4, 3)), {}, ValueError, ["(3, 4)", "(4, 3)"]),
        ("no broadcasting", ((3, 4), (1, 4)), {}, ValueError, ["(3, 4)", "(1, 4)"]),
        ("no broadcasting 1-D", ((3, 4), (4,)), {}, ValueError, ["(3, 4)", "(4,)"]),
        ("no broadcasting first", ((1, 4), (3, 4)), {}, ValueError, ["(1, 4)", "(3, 4)"]),
        ("axis None", good, dict(axis=None), TypeError, ["axis"]),
        ("axis tuple", good, dict(axis=(0, 1)), TypeError, ["axis"]),
        ("axis 1-tuple", good, dict(axis=(1,)), TypeError, ["axis"]),
        ("axis float", good, dict(axis=1.0), TypeError, ["axis"]),
        ("axis str", good, dict(axis="a"), TypeError, ["axis"]),
        ("axis bool", good, dict(axis=True), TypeError, ["axis"]),
        ("axis too big", good, dict(axis=2), AxisError, ["axis"]),
        ("axis too small", good, dict(axis=-3), AxisError, ["axis"]),
        ("num_threads 0", good, dict(num_threads=0), ValueError, ["num_threads"]),
        ("num_threads -1", good, dict(num_threads=-1), ValueError, ["num_threads"]),
        ("num_threads float", good, dict(num_threads=2.0), TypeError, ["num_threads"]),
        ("num_threads str", good, dict(num_threads="2"), TypeError, ["num_threads"]),
        ("num_threads bool", good, dict(num_threads=True), TypeError, ["num_threads"]),
        ("out list", good, dict(out=[[0.0] * 4] * 3), TypeError, ["out"]),
        ("out dtype", good, dict(out=np.zeros((3, 4), np.float32)), TypeError, ["out"]),
        ("out shape", good, dict(out=np.zeros((4, 3))), ValueError, ["out"]),
        ("out shape 1-D", good, dict(out=np.zeros(12)), ValueError, ["out"]),
        ("out read-only", good, dict(out=ro), ValueError, ["out"]),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_errors(sc, name):
    """Every bad argument raises the exception docs/api.md implies, naming the
    parameter (or both shapes); the operands and out are left untouched,
    NaNs included."""
    for label, (sa, sb), kwargs, exc, words in _bad_calls(name):
        a = np.full(sa, 0.25)
        a.flat[0] = np.nan
        b = np.arange(float(np.prod(sb))).reshape(sb)
        if "out" not in kwargs and sa == sb:  # a valid out, to be left untouched
            kwargs = dict(kwargs, out=np.full((3, 4), 42.0))
        saved = {k: snapshot(v) for k, v in kwargs.items()}
        sa_, sb_ = a.copy(), b.copy()
        with pytest.raises(exc) as info:
            getattr(sc, name)(a, b, **kwargs)
        if exc is not AxisError:
            assert not isinstance(info.value, AxisError), label
        msg = str(info.value)
        for word in words:
            assert word in msg, f"{label}: {word!r} not in {msg!r}"
        assert_unchanged(a, sa_)
        assert_unchanged(b, sb_)
        for k, v in kwargs.items():
            assert_unchanged(v, saved[k])


@pytest.mark.parametrize("name", NAMES)
def test_keyword_only(sc, name):
    """axis may be positional; out and num_threads are keyword-only."""
    a, b = np.full((2, 3), 1 / 3), np.ones((2, 3))
    assert getattr(sc, name)(a, b, 0).shape == (2, 3)
    with pytest.raises(TypeError):
        getattr(sc, name)(a, b, -1, np.empty((2, 3)))
    assert getattr(sc, name)(a, b, num_threads=None).shape == (2, 3)


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_thread_counts_give_identical_results(sc, ref, rng, name, dtype):
    """num_threads=1 and 2 on inputs large enough to be threaded: the same
    bits, along either axis and on a strided view."""
    x = rng.normal(0, 4, (512, 4096))
    b = rng.normal(0, 1, x.shape).astype(dtype)
    fn = getattr(sc, name)
    for axis in (-1, 0):
        a = operands(ref, name, x, None, axis=axis)[0].astype(dtype)
        one = fn(a, b, axis, num_threads=1)
        two = fn(a, b, axis, num_threads=2)
        assert_array_equal(one, two)
        out = np.empty_like(one)
        assert_array_equal(fn(a, b, axis, num_threads=2, out=out), one)
    a = operands(ref, name, x, None)[0].astype(dtype)
    av, bv = a[::2, ::-1], b[::2, ::-1]
    assert_array_equal(fn(av, bv, num_threads=1), fn(av, bv, num_threads=2))



def _at(arr, off):
    """A copy of arr that starts `off` elements past a 64-byte line."""
    base = np.empty(arr.size + 64, arr.dtype)
    start = (-base.ctypes.data % 64) // arr.itemsize + off
    view = base[start:start + arr.size].reshape(arr.shape)
    view[...] = arr
    return view


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_same_bits_at_every_input_offset(sc, ref, rng, name, dtype):
    """Operands that sit k elements past a line (NumPy's large arrays sit
    16 bytes in) are reduced from line-aligned loads, the lanes put back
    afterwards: the same bits as line-aligned operands, for every k, both
    operands at the same or different offsets, with NaN and inf in some
    rows, on one thread and with a row split across two."""
    fn = getattr(sc, name)
    for shape in [(6, 1024 + 3), (3, 4099), (40, 128), (1, 131072 + 7)]:
        x = rng.normal(0, 6, shape)
        a, b = operands(ref, name, x, rng.normal(0.5, 1, shape), dtype)
        if shape[0] > 2:
            b[1, shape[1] // 2] = np.nan
            b[2, shape[1] - 5] = np.inf
        want = fn(a, b, num_threads=1)
        check(sc, ref, name, a, b, num_threads=1)
        for ka, kb in [(1, 1), (2, 2), (3, 3), (7, 7), (15, 15), (4, 9)]:
            ao, bo = _at(a, ka % (64 // a.itemsize)), _at(b, kb % (64 // a.itemsize))
            for t in (1, 2):
                assert_array_equal(fn(ao, bo, num_threads=t), want,
                                   err_msg=f"{shape} offsets {ka}, {kb}, {t} threads")


def _at_every_output_offset(fn, a, b, want):
    """fn(a, b) into outputs at every element offset from a line (0-15),
    fresh and in place (out = b), one thread; and on two threads."""
    base = np.full(a.size + 16, 7.0, a.dtype)
    for off in (0, 1, 3, 7, 15):
        out = base[off:off + a.size].reshape(a.shape)
        assert_array_equal(fn(a, b, out=out, num_threads=1), want)
        out[...] = b
        assert_array_equal(fn(a, out, out=out, num_threads=1), want)
    assert_array_equal(fn(a, b, num_threads=2), want)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_long_rows_in_large_outputs(sc, ref, rng, name, dtype):
    """Rows of 256 KiB and more per operand take their second pass last to
    first, with streaming stores once the output is large (4 MiB): every
    head and tail offset of the output against the vector width, in place
    too, against the reference and the same rows one at a time."""
    n = 300007 if dtype == np.float32 else 150001
    x = rng.normal(0, 4, (4, n))
    a, b = operands(ref, name, x, rng.normal(0.5, 1, x.shape), dtype)
    fn = getattr(sc, name)
    want = check(sc, ref, name, a, b, num_threads=1)
    for r in range(4):
        assert_array_equal(fn(a[r:r + 1], b[r:r + 1], num_threads=1), want[r:r + 1])
    _at_every_output_offset(fn, a, b, want)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [37, 129, 1000])
def test_short_rows_in_large_outputs(sc, ref, rng, name, dtype, n):
    """Short rows in outputs of 4 MiB or more, streamed: rows that follow
    each other share lines, each written whole from two rows' values.
    Every offset of the output against the vector width, in place, against
    the reference and against rows that do not share lines."""
    rows = -(-(4 << 20) // (n * np.dtype(dtype).itemsize)) + 3
    x = rng.normal(0, 4, (rows, n))
    a, b = operands(ref, name, x, rng.normal(0.5, 1, x.shape), dtype)
    b[1, -1] = np.nan
    fn = getattr(sc, name)
    want = check(sc, ref, name, a, b, num_threads=1)
    wide = np.full((rows, n + 19), 7.0, dtype)
    fn(a, b, out=wide[:, 2:n + 2], num_threads=1)
    assert_array_equal(wide[:, 2:n + 2], want)
    assert np.all(wide[:, :2] == 7) and np.all(wide[:, n + 2:] == 7)
    _at_every_output_offset(fn, a, b, want)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_4k_rows_at_the_output_offset(sc, ref, rng, name, dtype):
    """Rows of exactly 4 KiB with every operand at the same offset in a
    line (NumPy's arrays alike) are streamed without joining the line two
    rows share: the same bits as at any other offset, in place too."""
    n = 4096 // np.dtype(dtype).itemsize
    rows = (4 << 20) // 4096 + 5
    x = rng.normal(0, 4, (rows, n))
    a, b = operands(ref, name, x, rng.normal(0.5, 1, x.shape), dtype)
    b[1, -1] = np.nan
    fn = getattr(sc, name)
    want = check(sc, ref, name, a, b, num_threads=1)
    for k in (1, 4, 7):
        ao, bo, out = _at(a, k), _at(b, k), _at(np.zeros_like(b), k)
        assert_array_equal(fn(ao, bo, out=out, num_threads=1), want, err_msg=f"offset {k}")
        assert_array_equal(fn(ao, bo, out=bo, num_threads=1), want, err_msg=f"offset {k}, in place")
        assert_array_equal(fn(ao, _at(b, k), num_threads=2), want)


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
    _SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)

    @st.composite
    def _cases(draw):
        """(x, v, axis, dtype): logits, a tangent of the same shape, an axis,
        and the dtype the operands are given in."""
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40))
        elems = st.floats(-50, 50, allow_nan=False, width=64)
        x = draw(hnp.arrays(np.float64, shape, elements=elems))
        v = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3, width=64)))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        return x, v, axis, np.dtype(dtype)

    @_SETTINGS
    @given(case=_cases())
    def test_property_softmax_jvp_slices_sum_to_zero(sc, ref, case):
        """sum(y * (v - <y, v>)) = <y, v> (1 - sum(y)): zero up to the error
        of the products and the rounding of sum(y)."""
        x, v, axis, dtype = case
        y = ref.softmax(x, axis).astype(dtype)
        vd = v.astype(dtype)
        got = sc.softmax_jvp(y, vd, axis).astype(np.float64)
        y64, v64 = y.astype(np.float64), vd.astype(np.float64)
        s = np.sum(got, axis)
        bound = (2 * _rt(dtype) * np.sum(scale_of("softmax_jvp", y64, v64, axis), axis)
                 + np.abs(np.sum(y64 * v64, axis) * (1 - np.sum(y64, axis))) * 2)
        assert np.all(np.abs(s) <= bound + 1e-300)

    @_SETTINGS
    @given(case=_cases())
    def test_property_log_softmax_vjp_slices_sum_to_zero(sc, ref, case):
        """sum(g - p sum(g)) = sum(g) (1 - sum(p))."""
        x, g, axis, dtype = case
        logp = ref.log_softmax(x, axis).astype(dtype)
        gd = g.astype(dtype)
        got = sc.log_softmax_vjp(logp, gd, axis).astype(np.float64)
        l64, g64 = logp.astype(np.float64), gd.astype(np.float64)
        p_sum = np.sum(np.exp(l64), axis)
        # each element of the result may round to the dtype's subnormal
        # spacing: n of those add up in the sum
        n = x.shape[axis]
        bound = (2 * _rt(dtype) * np.sum(scale_of("log_softmax_vjp", l64, g64, axis), axis)
                 + 2 * np.abs(np.sum(g64, axis) * (1 - p_sum))
                 + n * float(np.finfo(dtype).smallest_subnormal))
        assert np.all(np.abs(np.sum(got, axis)) <= bound + 1e-300)

    @_SETTINGS
    @given(case=_cases())
    def test_property_jacobian_matches_jvp_and_vjp(sc, ref, case):
        """softmax_jacobian(y) @ v == softmax_jvp(y, v) == softmax_vjp(y, v);
        the Jacobian is symmetric and its rows sum to ~0."""
        x, v, axis, dtype = case
        y = ref.softmax(x, axis).astype(dtype)
        vd = v.astype(dtype)
        jac = sc.softmax_jacobian(y, axis)
        assert_array_equal(jac, np.swapaxes(jac, -1, -2))
        jv = np.einsum("...ij,...j->...i", jac.astype(np.float64),
                       np.moveaxis(vd.astype(np.float64), axis, -1))
        jv = np.moveaxis(jv, -1, axis)
        scale = scale_of("softmax_jvp", y, vd, axis)
        # the oracle jac @ v is itself inexact where the entries -y_i y_j
        # underflow: each is off by up to half the subnormal spacing; and a
        # result in the subnormal range is a few spacings off whatever the
        # order of its sums (which the operands' alignment picks)
        ss = float(np.finfo(dtype).smallest_subnormal)
        scale = scale + ((np.sum(np.abs(vd.astype(np.float64)), axis, keepdims=True) + 8)
                         * ss / (3 * _rt(dtype)))
        for name in ("softmax_jvp", "softmax_vjp"):
            assert_close(getattr(sc, name)(y, vd, axis), jv, scale, dtype, dtype,
                         rt=3 * _rt(dtype), label=name)

    @_SETTINGS
    @given(case=_cases(), data=st.data())
    def test_property_log_softmax_adjoint(sc, ref, case, data):
        """<log_softmax_vjp(logp, g), v> == <g, log_softmax_jvp(logp, v)>,
        slice by slice."""
        x, v, axis, dtype = case
        g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-10, 10)))
        logp = ref.log_softmax(x, axis)
        lhs = np.sum(sc.log_softmax_vjp(logp, g, axis) * v, axis)
        rhs = np.sum(g * sc.log_softmax_jvp(logp, v, axis), axis)
        scale = (np.sum(scale_of("log_softmax_vjp", logp, g, axis) * np.abs(v), axis)
                 + np.sum(np.abs(g) * scale_of("log_softmax_jvp", logp, v, axis), axis))
        assert np.all(np.abs(lhs - rhs) <= 4 * _rt(np.float64) * scale + 1e-300)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("name", NAMES)
def test_split_row_is_bitwise_the_one_thread_result(sc, ref, rng, name, dtype):
    """One long row (fewer rows than threads) is cut into pieces across
    threads: the same bits as one thread, correct against the reference,
    in place too, and with NaN or inf in one piece only."""
    fn = getattr(sc, name)
    for n in (35999, 36000, 55999, 56000, 56001, 131072 + 5, 300007):
        x = rng.normal(0, 8, (1, n))
        b = rng.normal(0.5, 1, (1, n)).astype(dtype)
        a = operands(ref, name, x, None)[0].astype(dtype)
        one = fn(a, b, num_threads=1)
        two = fn(a, b, num_threads=2)
        assert_array_equal(two, one)
        check(sc, ref, name, a, b, num_threads=2)
        bb = b.copy()
        fn(a, bb, out=bb, num_threads=2)
        assert_array_equal(bb, one)
        for bad in (np.nan, np.inf):
            b2 = b.copy()
            b2[0, -3] = bad
            one = fn(a, b2, num_threads=1)
            assert_array_equal(fn(a, b2, num_threads=2), one)
            assert np.isnan(one).any()
