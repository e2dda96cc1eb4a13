"""The fused cross-entropy functions cross_entropy and cross_entropy_grad,
held to docs/api.md ("Cross-entropy, fused").

Oracles.  (1) The NumPy reference evaluated in float64 on the values the
function under test computes with: the logits converted to float64, and
the weight and probability targets first cast to the logits' compute
dtype (docs/api.md: they are cast to it), then to float64.  Every conversion is
exact, so the only error measured is that of the function under test.
(2) ``torch.nn.functional.cross_entropy`` with autograd, run in float64 on
the same values, the class axis moved to PyTorch's dim 1 (the ``torch``
fixture skips these tests without PyTorch).  (3) 4th-order central finite
differences of the loss, in float64 (hypothesis).  Exact equality is
asserted only where the contract implies it: cross_entropy equals the
first result of cross_entropy_grad; out= and out=logits give the result of
a fresh call; num_threads=1 and 2 give the same bits; ignored samples get
a gradient of exactly 0.

Tolerances.  With ``p = softmax(z)`` of a sample, ``u_c`` the weight class
``c`` carries in its loss (index targets: ``(1 - ls) w_t onehot(t) +
(ls / C) w``, probability targets: ``w (q (1 - ls) + ls / C)``, 0 for an
ignored sample), ``a = sum(u)`` and ``s`` the mean's ``1 / denominator``
(1 for "sum" and "none"), the loss of a sample is
``sum_c u_c (lse(z) - z_c)``, a sum of nonnegative terms, and its gradient
is ``s (a p - u)``.  So the error scales are

    loss (per sample)   rt * (loss_i + a)       (log_softmax's bound of
                                                 docs/api.md, tol*max(1, |logp|),
                                                 summed with the weights u)
    grad (per element)  s * ((rt + u0 |z_c - max z|) a p_c + rt u_c
                             + 2 a tiny)

summed over the samples for "sum" and "mean" (times s), with
``rt = 2e-5`` for float32 computation (20 * docs/api.md's tol) and ``1e-12`` for
float64 (100 * tol), ``u0`` the unit roundoff (the conditioning of
``exp(z_c - max)``, as in docs/api.md's softmax bound) and ``tiny`` the smallest
normal of the compute dtype (below it a probability has no relative
accuracy).  On top of that the rounding to the result dtype: twice its
unit roundoff times the value (about one ulp) plus two of its smallest
subnormals (float16 gradients round to float16).  The same bounds hold
against PyTorch's float64 results (PyTorch run on one thread: see the
``torch1`` fixture).

The gradient rows sum to zero in exact arithmetic for every option
(``s (a sum(p) - sum(u)) = s a (sum(p) - 1)``); their computed sums are
held to the sum of the element bounds of the row, without using any
oracle's values.
"""
import math
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from conftest import (
    MODULE_UNDER_TEST,
    RESULT_ROUNDOFF,
    UNIT_ROUNDOFF,
    AxisError,
    assert_unchanged,
    call_checked,
    compute_dtype,
    result_dtype,
    snapshot,
)

REDUCTIONS = ["mean", "sum", "none"]
SMOOTHINGS = [0.0, 0.1, 1.0]
F32_F64 = [np.float32, np.float64]
LOGIT_DTYPES = [np.float16, np.float32, np.float64, np.int32]
# (kind, target dtype)
TARGETS = [("index", np.int8), ("index", np.uint8), ("index", np.int32),
           ("index", np.int64), ("prob", np.float32), ("prob", np.float64)]
# (logits shape, class axis): class axis last, PyTorch's (N, C, d1) and
# (N, C, d1, d2), axis 0, and 1-D logits with a 0-d target.  Every class
# count is > 3, so ignore_index=3 is also a valid class.
LAYOUTS = [((6, 5), -1), ((3, 4, 7), -1), ((4, 5, 3), 1), ((2, 5, 3, 4), 1),
           ((5, 6), 0), ((5,), 0)]
CLASS_COUNTS = list(range(1, 71)) + [127, 128, 129, 255, 256, 257, 1000]
RT = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def _name(d):
    return np.dtype(d).name


# ---------------------------------------------------------------- oracles

def _exact(a, compute):
    """`a`'s values as the function under test uses them (cast to the
    compute dtype), in float64: exact."""
    return np.asarray(a).astype(compute).astype(np.float64)


def _batch_shape(shape, k):
    return tuple(s for d, s in enumerate(shape) if d != k)


def bounds(logits, target, axis=-1, weight=None, ignore_index=-100, reduction="mean",
           label_smoothing=0.0, num_threads=None):
    """(loss bound, grad bound): the absolute error allowed for the loss and
    for each element of the gradient, before the rounding to the result
    dtype (see the module docstring).  Computed from the inputs alone."""
    logits, target = np.asarray(logits), np.asarray(target)
    compute = compute_dtype(logits.dtype)
    rt, u0, tiny = RT[compute], UNIT_ROUNDOFF[compute], float(np.finfo(compute).tiny)
    k = axis % logits.ndim
    n_classes = logits.shape[k]
    ls = float(label_smoothing)
    z = np.moveaxis(logits.astype(np.float64), k, -1)
    w = np.ones(n_classes) if weight is None else _exact(weight, compute)
    eps = ls / n_classes if n_classes else 0.0
    if target.dtype.kind == "f":
        u = w * (np.moveaxis(_exact(target, compute), k, -1) * (1 - ls) + eps)
        keep = np.ones(u.shape[:-1], bool)
        denom = float(z.size // n_classes) if z.size else 0.0
    else:
        t = target.astype(np.int64)
        keep = t != ignore_index
        tt = np.where(keep, t, 0)
        w_t = np.where(keep, w[tt], 0.0) if n_classes else np.zeros(t.shape)
        u = (((1 - ls) * w_t)[..., None] * (np.arange(n_classes) == tt[..., None])
             + np.where(keep[..., None], eps * w, 0.0))
        denom = float(np.sum(w_t))
    a = np.sum(u, axis=-1)
    s = (1 / denom if denom else 0.0) if reduction == "mean" else 1.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        m = np.max(z, axis=-1, keepdims=True, initial=-np.inf)
        lse = m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
        p = np.where(keep[..., None], np.exp(z - lse), 0.0)  # ignored rows: not read
        cp = np.where(p > 0, (rt + u0 * np.abs(z - m)) * p, 0.0)
        gb = s * (a[..., None] * (cp + 2 * tiny) + rt * u)
        loss_i = np.sum(np.where(u != 0, u * (lse - z), 0.0), axis=-1)
    lb = rt * (np.abs(loss_i) + a)
    if reduction == "sum":
        lb = np.sum(lb)
    elif reduction == "mean":
        lb = s * np.sum(lb)
    return lb, np.moveaxis(gb, -1, k)


def expected(ref, logits, target, axis=-1, weight=None, **kw):
    """The reference's (loss, grad), in float64 on exact inputs."""
    logits, target = np.asarray(logits), np.asarray(target)
    compute = compute_dtype(logits.dtype)
    t = _exact(target, compute) if target.dtype.kind == "f" else target
    w = None if weight is None else _exact(weight, compute)
    return ref.cross_entropy_grad(logits.astype(np.float64), t, axis=axis, weight=w, **kw)


def torch_expected(torch, logits, target, axis=-1, weight=None, ignore_index=-100,
                   reduction="mean", label_smoothing=0.0):
    """F.cross_entropy and autograd in float64 on exact inputs, the class
    axis moved to dim 1 (dim 0 for 1-D logits); (loss, grad of the summed
    loss) as NumPy arrays in our layout."""
    logits, target = np.asarray(logits), np.asarray(target)
    compute = compute_dtype(logits.dtype)
    k = axis % logits.ndim
    cdim = 1 if logits.ndim > 1 else 0
    z = torch.tensor(np.moveaxis(logits.astype(np.float64), k, cdim), requires_grad=True)
    if target.dtype.kind == "f":
        tg = torch.tensor(np.moveaxis(_exact(target, compute), k, cdim))
    else:
        tg = torch.tensor(target.astype(np.int64))
    w = None if weight is None else torch.tensor(_exact(weight, compute))
    loss = torch.nn.functional.cross_entropy(
        z, tg, weight=w, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing)
    loss.sum().backward()
    return loss.detach().numpy(), np.moveaxis(z.grad.numpy(), cdim, k)


@pytest.fixture
def torch1(torch):
    """PyTorch on one thread for the test: its oracle calls are tiny, and
    its OpenMP pool made them stall (0.1 ms -> 20 ms each) whenever the
    other core of a 2-core machine was busy.  Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n)


def assert_close(got, want, bound, dtype, label=""):
    """`got` (of `dtype`) equals `want` (float64) within `bound` plus the
    rounding to `dtype`; NaN and infinities at the same places."""
    got, want = np.asarray(got), np.asarray(want)
    dtype = np.dtype(dtype)
    assert got.dtype == dtype, f"{label}: dtype {got.dtype}, want {dtype}"
    assert got.shape == want.shape, f"{label}: shape {got.shape}, want {want.shape}"
    for special in (np.isnan, np.isposinf, np.isneginf):
        assert_array_equal(special(got), special(want),
                           err_msg=f"{label}: {special.__name__} positions")
    fin = np.isfinite(want)
    g = got[fin].astype(np.float64)
    w = want[fin]
    b = (np.broadcast_to(bound, want.shape)[fin] + 2 * RESULT_ROUNDOFF[dtype] * np.abs(w)
         + 2 * float(np.finfo(dtype).smallest_subnormal))
    err = np.abs(g - w)
    if not np.all(err <= b):
        i = np.argmax(err / b)
        raise AssertionError(
            f"{label}: {np.count_nonzero(~(err <= b))} of {err.size} elements over "
            f"the bound; worst: got {g[i]!r}, want {w[i]!r}, error {err[i]:.3g}, "
            f"bound {b[i]:.3g}")


def assert_rows_sum_to_zero(grad, gbound, axis, label=""):
    """Each gradient row (along the class axis) sums to 0 within the sum
    of its elements' bounds; rows holding a NaN are skipped."""
    g = np.asarray(grad).astype(np.float64)
    dt = np.asarray(grad).dtype
    b = (np.broadcast_to(gbound, g.shape) + 2 * RESULT_ROUNDOFF[dt] * np.abs(g)
         + 2 * float(np.finfo(dt).smallest_subnormal))
    sums = np.sum(g, axis=axis)
    lim = np.sum(b, axis=axis)
    ok = np.isnan(sums) | (np.abs(sums) <= lim)
    if not np.all(ok):
        i = np.argmax(np.where(ok, 0, np.abs(sums) / lim))
        raise AssertionError(f"{label}: row sum {sums.flat[i]!r}, bound {lim.flat[i]!r}")


def check_types(loss, grad, logits, target, axis, reduction):
    """docs/api.md's return types: a NumPy scalar of the compute dtype for
    "mean"/"sum", an ndarray of the batch shape for "none"; the gradient
    of the logits' shape and result dtype."""
    logits = np.asarray(logits)
    compute = compute_dtype(logits.dtype)
    if reduction == "none":
        assert isinstance(loss, np.ndarray), type(loss)
        assert loss.shape == _batch_shape(logits.shape, axis % logits.ndim)
    else:
        assert isinstance(loss, np.floating) and not isinstance(loss, np.ndarray), \
            type(loss)
    assert loss.dtype == compute, loss.dtype
    if grad is not None:
        assert isinstance(grad, np.ndarray)
        assert grad.shape == logits.shape and grad.dtype == result_dtype(logits.dtype)


def check(sc, ref, logits, target, label="", **kw):
    """Both functions on one input, against the reference: types,
    cross_entropy == cross_entropy_grad[0], values within the bounds,
    gradient rows summing to 0, the inputs unmodified.  Returns
    (loss, grad, loss bound, grad bound)."""
    axis = kw.get("axis", -1)
    reduction = kw.get("reduction", "mean")
    label = f"{label} {kw}"
    loss = call_checked(sc.cross_entropy, logits, target, **kw)
    loss2, grad = call_checked(sc.cross_entropy_grad, logits, target, **kw)
    check_types(loss, grad, logits, target, axis, reduction)
    check_types(loss2, None, logits, target, axis, reduction)
    assert_array_equal(loss, loss2, err_msg=f"{label}: cross_entropy != "
                       "cross_entropy_grad[0]")
    want_loss, want_grad = expected(ref, logits, target, **kw)
    lb, gb = bounds(logits, target, **kw)
    compute = compute_dtype(np.asarray(logits).dtype)
    assert_close(loss, want_loss, lb, compute, f"loss {label}")
    assert_close(grad, want_grad, gb, result_dtype(np.asarray(logits).dtype),
                 f"grad {label}")
    assert_rows_sum_to_zero(grad, gb, axis, label)
    return loss, grad, lb, gb


# ---------------------------------------------------------------- inputs

def _logits(rng, shape, dtype, spread=3.0):
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-6, 7, shape).astype(dtype)
    return rng.normal(0, spread, shape).astype(dtype)


def _target(rng, shape, axis, kind, tdtype):
    """Class indices (of the batch shape) or class probabilities (of the
    logits' shape) for logits of `shape`."""
    k = axis % len(shape)
    if kind == "index":
        return np.asarray(rng.integers(0, shape[k], _batch_shape(shape, k))).astype(tdtype)
    p = rng.random(shape) + 0.05
    return (p / p.sum(axis=k, keepdims=True)).astype(tdtype)


def _ignore_variants(target):
    """(ignore_index, target) pairs: the default with no ignored sample,
    every third sample ignored with the default -100 (255 for uint8, which
    cannot hold -100), and the valid class 3 as ignore_index with every
    third sample 3."""
    out = [(-100, target)]
    ig = 255 if target.dtype == np.uint8 else -100
    t = target.copy()
    t.flat[::3] = ig
    out.append((ig, t))
    t = target.copy()
    t.flat[::3] = 3
    out.append((3, t))
    return out


def _option_matrix(rng, shape, axis, kind, tdtype):
    """Every (target, kwargs) of the option matrix for one layout."""
    target = _target(rng, shape, axis, kind, tdtype)
    weight = rng.uniform(0.2, 2.0, shape[axis])
    ignores = _ignore_variants(target) if kind == "index" else [(-100, target)]
    for w in (None, weight):
        for ignore_index, t in ignores:
            for reduction in REDUCTIONS:
                for ls in SMOOTHINGS:
                    kw = dict(axis=axis, weight=w, reduction=reduction, label_smoothing=ls)
                    if ignore_index != -100:
                        kw["ignore_index"] = ignore_index
                    yield t, kw


# ---------------------------------------------------------------- the option matrix

@pytest.mark.parametrize("kind, tdtype", TARGETS, ids=lambda v: v if isinstance(v, str)
                         else _name(v))
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=_name)
@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=str)
def test_option_matrix_against_reference(sc, ref, rng, shape, axis, dtype, kind, tdtype):
    """targets x weight x ignore_index x reduction x label_smoothing, for
    every logits dtype (float16 and integers by the dtype policy) and
    layout."""
    logits = _logits(rng, shape, dtype)
    for target, kw in _option_matrix(rng, shape, axis, kind, tdtype):
        check(sc, ref, logits, target, **kw)


@pytest.mark.parametrize("kind, tdtype", TARGETS, ids=lambda v: v if isinstance(v, str)
                         else _name(v))
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=_name)
@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=str)
def test_option_matrix_against_torch(sc, torch1, rng, shape, axis, dtype, kind, tdtype):
    """The same matrix against F.cross_entropy and autograd."""
    logits = _logits(rng, shape, dtype)
    compute = compute_dtype(dtype)
    for target, kw in _option_matrix(rng, shape, axis, kind, tdtype):
        loss, grad = call_checked(sc.cross_entropy_grad, logits, target, **kw)
        want_loss, want_grad = torch_expected(torch1, logits, target, **kw)
        lb, gb = bounds(logits, target, **kw)
        assert_close(loss, want_loss, lb, compute, f"loss {kw}")
        assert_close(grad, want_grad, gb, result_dtype(dtype), f"grad {kw}")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.uint8,
                                   np.int64, np.bool_, ">f8", ">f4"], ids=str)
def test_logits_dtype_policy(sc, ref, rng, dtype):
    """Loss in the compute dtype, gradient in the result dtype: float16 ->
    (float32, float16), integers and bool -> float64, byte-swapped -> the
    native dtype; with float16, float32 and float64 probability targets."""
    shape = (5, 7)
    if np.dtype(dtype) == np.bool_:
        logits = rng.random(shape) < 0.5
    else:
        logits = _logits(rng, shape, np.dtype(dtype).newbyteorder("="), 2.0).astype(dtype)
    targets = [_target(rng, shape, -1, "index", np.int64)]
    targets += [_target(rng, shape, -1, "prob", d) for d in (np.float16, np.float32,
                                                            np.float64)]
    for target in targets:
        for reduction in REDUCTIONS:
            loss, grad, _, _ = check(sc, ref, logits, target, reduction=reduction,
                                     label_smoothing=0.1, weight=np.linspace(0.5, 2, 7))
            assert grad.dtype.isnative
            assert grad.dtype == result_dtype(np.dtype(dtype).newbyteorder("="))


def test_weight_as_array_like(sc, ref, rng):
    """weight given as a list, a strided view, integers, float16: cast to
    the compute dtype."""
    logits = rng.normal(0, 2, (6, 5))
    target = rng.integers(0, 5, 6)
    w = np.arange(1.0, 11.0)
    for weight in ([0.5, 1.0, 2.0, 1.5, 0.25], w[::2], np.arange(1, 6),
                   np.linspace(0.1, 3, 5).astype(np.float16)):
        for dtype in F32_F64:
            check(sc, ref, logits.astype(dtype), target, weight=weight, label_smoothing=0.1)


# ---------------------------------------------------------------- layouts

def _views(base):
    """(label, array) pairs with the content of `base` in many layouts."""
    big = np.zeros(tuple(2 * s + 1 for s in base.shape), base.dtype)
    sl = tuple(slice(1, None, 2) for _ in base.shape)
    big[sl] = base
    ro = base.copy()
    ro.flags.writeable = False
    raw = np.zeros(base.nbytes + 1, np.uint8)
    unaligned = np.ndarray(base.shape, base.dtype, raw.data, offset=1)
    unaligned[...] = base
    flip = (slice(None, None, -1),) * base.ndim
    perm = tuple(np.roll(np.arange(base.ndim), 1))
    return [
        ("C", np.ascontiguousarray(base)),
        ("F", np.asfortranarray(base)),
        ("transposed", np.ascontiguousarray(base.T).T),
        ("axes-permuted",
         np.ascontiguousarray(base.transpose(perm)).transpose(np.argsort(perm))),
        ("negative", base[flip].copy()[flip]),
        ("sliced", big[sl]),
        ("read-only", ro),
        ("unaligned", unaligned),
        ("byte-swapped", base.astype(base.dtype.newbyteorder("S"))),
    ]


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_layouts(sc, ref, rng, kind, dtype):
    """Non-contiguous, transposed, negative-stride, read-only, unaligned
    and byte-swapped logits and targets, along every axis."""
    base = rng.normal(0, 3, (4, 5, 6)).astype(dtype)
    for axis in range(-3, 3):
        target = _target(rng, base.shape, axis, kind,
                         np.int32 if kind == "index" else np.float64)
        if kind == "index":
            target.flat[::4] = 3
        weight = rng.uniform(0.2, 2, base.shape[axis])
        options = [dict(weight=weight, reduction="mean", label_smoothing=0.1),
                   dict(reduction="none"),
                   dict(weight=weight, reduction="sum", label_smoothing=1.0)]
        if kind == "index":
            options[0]["ignore_index"] = 3
        lviews, tviews = _views(base), _views(target)
        pairs = [(ll, lg, tl, t) for (ll, lg), (tl, t) in zip(lviews, tviews[::-1])]
        pairs += [(ll, lg, "C", target) for ll, lg in lviews]
        for ll, lg, tl, t in pairs:
            for kw in options:
                check(sc, ref, lg, t, label=f"logits {ll}, target {tl}", axis=axis, **kw)


# ---------------------------------------------------------------- class counts

def _rows(rng, n, dtype, n_rows=8):
    """n_rows rows of n logits: several spreads (some probabilities
    subnormal or 0), constant rows, the maximum at the start and at the
    tail."""
    deep = 100.0 if np.dtype(dtype) == np.float32 else 740.0
    x = np.array([
        rng.normal(0, 3, n),
        rng.uniform(-deep, 0, n),
        np.full(n, 2.5),
        rng.uniform(-1e3, 1e3, n),
        rng.normal(0, 1, n),
        rng.normal(0, 1, n),
        rng.normal(0, 0.1, n),
        rng.normal(0, 5, n),
    ])[:n_rows]
    x[4, -1] = x[4].max() + 1
    x[5, 0] = x[5].max() + 1
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("n", CLASS_COUNTS)
def test_class_counts(sc, ref, rng, n, dtype):
    """Every class count 1..70 (every SIMD tail) and around 128 and 256 and
    1000, along the contiguous axis and along the strided axis 0."""
    x = _rows(rng, n, dtype)
    t_idx = rng.integers(0, n, 8)
    t_idx[[4, 5]] = [n - 1, 0]  # the target at the maximum
    t_prob = _target(rng, x.shape, -1, "prob", np.float64)
    weight = rng.uniform(0.2, 2, n)
    cases = [(t_idx, dict()),
             (t_idx, dict(weight=weight, reduction="none", label_smoothing=0.1)),
             (t_prob, dict(weight=weight, reduction="sum", label_smoothing=0.1))]
    for t, kw in cases:
        check(sc, ref, x, t, **kw)
        tt = t if t.ndim == 1 else np.ascontiguousarray(t.T)
        check(sc, ref, np.ascontiguousarray(x.T), tt, axis=0, **kw)


@pytest.mark.parametrize("dtype", F32_F64)
def test_gradient_at_every_offset_in_a_line(sc, rng, dtype):
    """The gradient is stored vector-aligned after a partial head: into an
    output at every element offset from a line, the same bits as into a
    fresh one and nothing written outside it; in place (out = logits) the
    same bits as the logits at that offset into a fresh output."""
    lanes = 64 // np.dtype(dtype).itemsize
    for n in [1, 3, lanes - 1, lanes + 1, 100, 2048 // np.dtype(dtype).itemsize + 3, 4099]:
        x = _rows(rng, n, dtype)
        for t, kw in [(rng.integers(0, n, 8), dict()),
                      (_target(rng, x.shape, -1, "prob", np.float64), dict(label_smoothing=0.1))]:
            want = sc.cross_entropy_grad(x, t, num_threads=1, **kw)[1]
            base = np.full(x.size + 2 * lanes, 7.0, dtype)
            start = (-base.ctypes.data % 64) // base.itemsize
            for off in range(lanes):
                base[...] = 7.0
                out = base[start + off:start + off + x.size].reshape(x.shape)
                assert sc.cross_entropy_grad(x, t, out=out, num_threads=1, **kw)[1] is out
                assert_array_equal(out, want, err_msg=f"n={n} offset {off}")
                assert np.all(base[:start + off] == 7)
                assert np.all(base[start + off + x.size:] == 7)
                out[...] = x
                wanted = sc.cross_entropy_grad(out, t, num_threads=1, **kw)[1]
                sc.cross_entropy_grad(out, t, out=out, num_threads=1, **kw)
                assert_array_equal(out, wanted, err_msg=f"n={n} in place at offset {off}")


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("m", [1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 130])
def test_panel_column_counts(sc, ref, rng, m, dtype):
    """Along a strided class axis with a contiguous inner axis (PyTorch's
    (N, C, d1) layout) the samples are the columns of panels, taken a
    vector at a time and in blocks of 64: every column count around the
    vector widths and the block, with ignored and special columns, the
    options, probability targets, and out=logits in place."""
    for n in (1, 3, 17):
        x = _logits(rng, (2, n, m), dtype)
        ign = 3 if n > 3 else -100
        t = rng.integers(0, n, (2, m))
        t[:, ::3] = ign
        x[0, :, m // 2] = np.nan          # a NaN column, and ignored ones holding NaN
        x[1, 0, -1] = np.inf
        if m > 3:
            x[1, :, 1] = -np.inf
            t[1, 0] = ign
            x[1, :, 0] = np.nan
        q = _target(rng, x.shape, 1, "prob", np.float64)
        w = rng.uniform(0.2, 2, n)
        for tt, kw in ((t, dict(ignore_index=ign)),
                       (t, dict(ignore_index=ign, weight=w, label_smoothing=0.2,
                                reduction="none")),
                       (q, dict(weight=w, label_smoothing=0.1, reduction="sum"))):
            _, grad, _, _ = check(sc, ref, x, tt, axis=1, **kw)
            inplace = x.copy()
            loss, g2 = sc.cross_entropy_grad(inplace, tt, axis=1, out=inplace, **kw)
            assert g2 is inplace
            assert_array_equal(inplace, grad)


def test_panel_lanes_past_the_float32_range(sc, ref):
    """A panel's sums run per lane in the logits' dtype: float32 logits
    6.8e38 apart overflow m - z there (the smoothing sum), as probability
    targets of 1e308 overflow sum(u) in float64; those lanes are redone in
    double, or term by term, as in the row kernel."""
    z = np.zeros((2, 40, 5), np.float32)
    z[:, ::2, :] = -3.4e38
    z[:, 1::2, :] = 3.4e38
    t = np.ones((2, 5), np.int64)
    with np.errstate(all="ignore"):
        got = sc.cross_entropy(z, t, axis=1, label_smoothing=1.0, reduction="none")
        rows = sc.cross_entropy(np.ascontiguousarray(np.moveaxis(z, 1, -1)), t,
                                label_smoothing=1.0, reduction="none")
    np.testing.assert_allclose(got, rows, rtol=1e-6)
    assert np.isfinite(got).all()
    zd = np.zeros((1, 2, 3))
    q = np.full((1, 2, 3), 1e308)
    q[0, 0, 2] = np.inf
    with np.errstate(all="ignore"):
        loss, grad = sc.cross_entropy_grad(zd, q, axis=1, reduction="none")
        grad_rows = sc.cross_entropy_grad(np.ascontiguousarray(np.moveaxis(zd, 1, -1)),
                                          np.ascontiguousarray(np.moveaxis(q, 1, -1)),
                                          reduction="none")[1]
    np.testing.assert_allclose(loss[0, :2], 2 * math.log(2) * 1e308, rtol=1e-14)
    assert loss[0, 2] == np.inf
    assert_array_equal(grad, np.moveaxis(grad_rows, -1, 1))


def test_rows_of_one_class(sc, ref, rng):
    """One class: the loss is 0 (log-probability 0) and so is the gradient,
    whatever the logit and the options."""
    x = np.array([[3.0], [-1e300], [0.0]])
    for kw in (dict(), dict(weight=[2.0], label_smoothing=1.0, reduction="none")):
        loss, grad, _, _ = check(sc, ref, x, np.zeros(3, np.int64), **kw)
        assert_array_equal(loss, 0)
        assert_array_equal(grad, 0)


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_float32_accuracy_262144_classes(sc, ref, rng, kind):
    """float32 rows of 2^18 classes: loss and gradient against the float64
    reference within the float32 bounds (a row sum accumulated in float32
    lanes loses ~4e-6 here)."""
    n = 2**18
    x = np.stack([rng.normal(0, 3, n), rng.uniform(-20, 0, n),
                  100 + rng.normal(0, 1, n)]).astype(np.float32)
    t = (np.array([5, n - 1, n // 2]) if kind == "index"
         else _target(rng, x.shape, -1, "prob", np.float32))
    weight = rng.uniform(0.5, 2, n).astype(np.float32)
    for kw in (dict(), dict(weight=weight, label_smoothing=0.1, reduction="none")):
        check(sc, ref, x, t, **kw)


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("shape, axis", [((0, 5), -1), ((0, 5, 3), 1), ((4, 0), 0)],
                         ids=str)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_empty_batch(sc, ref, shape, axis, kind, dtype):
    """An empty batch: "mean" is NaN, "sum" 0, "none" empty; the gradient
    empty of the logits' shape."""
    logits = np.zeros(shape, dtype)
    target = (np.zeros(_batch_shape(shape, axis % len(shape)), np.int64)
              if kind == "index" else np.zeros(shape, np.float32))
    compute = compute_dtype(dtype)
    for kw in (dict(), dict(weight=np.ones(shape[axis]), label_smoothing=0.1)):
        for reduction in REDUCTIONS:
            loss, grad = sc.cross_entropy_grad(logits, target, axis=axis,
                                               reduction=reduction, **kw)
            check_types(loss, grad, logits, target, axis, reduction)
            if reduction == "mean":
                assert np.isnan(loss)
            elif reduction == "sum":
                assert loss == 0
            else:
                assert loss.size == 0
            assert grad.size == 0
            assert_array_equal(sc.cross_entropy(logits, target, axis=axis,
                                                reduction=reduction, **kw), loss)
            out = np.empty(shape, result_dtype(dtype))
            assert sc.cross_entropy_grad(logits, target, axis=axis, out=out,
                                         reduction=reduction, **kw)[1] is out
            assert np.asarray(loss).dtype == compute


def test_no_class_with_every_target_ignored(sc, ref):
    """Logits of shape (3, 0) with every target ignored (as PyTorch): "mean"
    NaN, "sum" 0, "none" zeros, an empty gradient."""
    logits = np.zeros((3, 0))
    target = np.full(3, -100)
    for reduction in REDUCTIONS:
        loss, grad = sc.cross_entropy_grad(logits, target, reduction=reduction)
        want, _ = ref.cross_entropy_grad(logits, target, reduction=reduction)
        assert_array_equal(loss, want)
        assert grad.shape == (3, 0)
    with pytest.raises(IndexError, match=r"\b0\b"):
        sc.cross_entropy(logits, np.array([0, -100, -100]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("ignore_index", [-100, 3])
def test_all_targets_ignored(sc, ref, rng, dtype, ignore_index):
    """Every target ignored: "mean" NaN, "sum" 0, "none" zeros, and a
    gradient of exactly 0, also with weight and smoothing; ignored rows'
    logits are never read (a NaN there changes nothing)."""
    logits = rng.normal(0, 3, (4, 6)).astype(dtype)
    logits[1, 2] = np.nan
    logits[2, 0] = np.inf
    target = np.full(4, ignore_index, np.int16)
    for kw in (dict(), dict(weight=rng.uniform(0.5, 2, 6), label_smoothing=0.1),
               dict(label_smoothing=1.0)):
        for reduction in REDUCTIONS:
            loss, grad, _, _ = check(sc, ref, logits, target, ignore_index=ignore_index,
                                     reduction=reduction, **kw)
            assert_array_equal(grad, 0)
            if reduction == "mean":
                assert np.isnan(loss)
            else:
                assert_array_equal(loss, 0)


ZERO_WEIGHT_CASES = [((6, 40), -1, 1), ((40, 6), 0, 1), ((6, 40), -1, 2), ((1, 300000), -1, 2)]


def _zero_weight_case(rng, shape, axis):
    """Logits, targets (two ignored) and weights that are 0 on every kept
    target's class (and not elsewhere)."""
    k = axis % 2
    n_cls, n_rows = shape[k], shape[1 - k]
    logits = rng.normal(0, 3, shape)
    target = np.arange(n_rows) % 3
    target[1::4] = -100
    weight = rng.uniform(0.5, 2, n_cls)
    weight[:3] = 0.0
    return logits, target, weight


@pytest.mark.parametrize("shape, axis, threads", ZERO_WEIGHT_CASES)
@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_mean_over_zero_target_weight(sc, ref, rng, shape, axis, threads, smoothing):
    """Kept targets whose weights sum to 0: "mean" is NaN and so is every
    kept sample's gradient, ignored samples' stay 0 (rows, panels, a row
    split across threads); "sum" and "none" are as usual.  Found by
    fuzzing: the reference gave inf (a smoothing term over 0), the kernel
    NaN."""
    logits, target, weight = _zero_weight_case(rng, shape, axis)
    kept = np.broadcast_to(np.expand_dims(target != -100, axis), shape)
    for fn in (sc, ref):
        loss, grad = fn.cross_entropy_grad(logits, target, axis=axis, weight=weight,
                                           label_smoothing=smoothing, num_threads=threads)
        assert np.isnan(loss) and np.isnan(fn.cross_entropy(
            logits, target, axis=axis, weight=weight, label_smoothing=smoothing))
        assert np.isnan(grad[kept]).all() and (grad[~kept] == 0).all()
    for reduction in ("sum", "none"):
        check(sc, ref, logits, target, axis=axis, weight=weight, label_smoothing=smoothing,
              reduction=reduction, num_threads=threads)


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_mean_over_zero_target_weight_as_torch(sc, torch1, rng, smoothing):
    """The same against PyTorch (non-negative weights): NaN loss, NaN kept
    rows, zero ignored rows."""
    logits, target, weight = _zero_weight_case(rng, (6, 40), -1)
    loss, grad = sc.cross_entropy_grad(logits, target, weight=weight, label_smoothing=smoothing)
    want_loss, want_grad = torch_expected(torch1, logits, target, weight=weight,
                                          label_smoothing=smoothing)
    assert_array_equal(loss, want_loss)
    assert_array_equal(grad, want_grad)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_of_losses_whose_sum_overflows(sc, ref, dtype):
    """Per-sample losses of 0.6-0.9 times the largest float: their sum
    overflows, their mean does not and is finite (as the reference's);
    "sum" is inf only where the sum itself is past the range.  Found by
    fuzzing: two float64 losses summing to 0.99999999999999997 times the
    largest float, a few units in the last place apart from the
    reference's, overflowed the kernel's mean."""
    big = float(np.finfo(dtype).max)
    logits = np.array([[0.0, -0.9 * big], [0.0, -0.6 * big], [0.0, 1.0]], dtype)
    target = np.array([1, 1, 0])
    for fn in (sc, ref):
        mean = fn.cross_entropy(logits, target)
        assert mean.dtype == dtype and np.isfinite(mean)
        assert math.isclose(float(mean), big / 2, rel_tol=1e-6)  # (0.9 + 0.6) / 3
        assert fn.cross_entropy(logits, target, reduction="sum") == np.inf
        loss, grad = fn.cross_entropy_grad(logits, target, weight=np.array([1.0, 1.1]))
        assert math.isclose(float(loss), big * (1.65 / 3.2), rel_tol=1e-6)
    check(sc, ref, logits[:2] / 2, target[:2], reduction="sum")

def test_ignored_rows_are_not_read(sc, ref, rng):
    """NaN and inf logits in ignored rows affect nothing: those rows get
    zero loss and gradient, the others are finite."""
    logits = rng.normal(0, 2, (5, 9))
    logits[1] = np.nan
    logits[3, 4] = np.inf
    target = np.array([2, 3, 0, 3, 8])
    for kw in (dict(), dict(weight=rng.uniform(0.5, 2, 9), label_smoothing=0.2)):
        for reduction in REDUCTIONS:
            loss, grad, _, _ = check(sc, ref, logits, target, ignore_index=3,
                                     reduction=reduction, **kw)
            assert np.isfinite(loss).all() and np.isfinite(grad).all()
            assert_array_equal(grad[[1, 3]], 0)


def test_one_dimensional_logits(sc, ref, torch1):
    """1-D logits with a 0-d target (NumPy integer, 0-d array or int):
    "none" gives a 0-d array, "mean" and "sum" a scalar."""
    logits = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    for target in (np.int64(3), np.array(1, np.uint8), 0):
        for reduction in REDUCTIONS:
            loss, grad, lb, gb = check(sc, ref, logits, target, reduction=reduction,
                                       label_smoothing=0.1)
            want_loss, want_grad = torch_expected(torch1, logits, np.asarray(target),
                                                  reduction=reduction, label_smoothing=0.1)
            assert_close(loss, want_loss, lb, np.float64, "loss vs torch")
            assert_close(grad, want_grad, gb, np.float64, "grad vs torch")
    loss = sc.cross_entropy(logits, np.int64(3), reduction="none")
    assert loss.shape == ()
    probs = np.full(5, 0.2)
    check(sc, ref, logits, probs, reduction="none")


def test_onehot_gradient_is_softmax_minus_target(sc, ref, rng):
    """docs/api.md: one-hot targets and no options give (softmax - onehot) / N,
    as class indices and as one-hot probabilities."""
    logits = rng.normal(0, 2, (7, 5))
    t = rng.integers(0, 5, 7)
    onehot = np.eye(5)[t]
    want = (ref.softmax(logits) - onehot) / 7
    for target in (t, onehot):
        _, grad = sc.cross_entropy_grad(logits, target)
        np.testing.assert_allclose(grad, want, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("dtype", F32_F64)
def test_large_magnitude_logits(sc, ref, rng, dtype):
    """A 1e4 spread, a 1e4 offset with a small spread (the loss must come
    from z_max - z_t, not from the difference of two numbers near 1e4),
    values near 1e30 (float32) or 1e300 (float64), [1000, 1]: finite loss
    and gradient, equal to the reference within the bounds."""
    n = 37
    big = 1e30 if dtype == np.float32 else 1e300
    x = np.stack([
        rng.uniform(-1e4, 1e4, n),
        1e4 + rng.normal(0, 3, n),
        -1e4 + rng.normal(0, 3, n),
        1e5 + rng.normal(0, 3, n),
        np.r_[big, -big, 0.0, rng.uniform(-big, big, n - 3)],
        np.full(n, big),
        np.r_[1000.0, 1.0, np.full(n - 2, -1000.0)],
    ]).astype(dtype)
    t_idx = np.array([0, 5, 6, 7, 1, 3, 1])
    t_prob = _target(rng, x.shape, -1, "prob", np.float64)
    weight = rng.uniform(0.5, 2, n)
    for target in (t_idx, t_prob):
        for kw in (dict(reduction="none"), dict(reduction="none", label_smoothing=0.1),
                   dict(weight=weight, label_smoothing=1.0), dict(reduction="sum")):
            loss, grad, _, _ = check(sc, ref, x, target, **kw)
            assert np.isfinite(loss).all() and np.isfinite(grad).all()
            check(sc, ref, np.ascontiguousarray(x.T),
                  target if target.ndim == 1 else np.ascontiguousarray(target.T),
                  axis=0, **kw)
    # the classic: logits [1000, 1], target 1
    loss = sc.cross_entropy(np.array([[1000.0, 1.0]], dtype), np.array([1]))
    assert loss == 999.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 33, 65, 129])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_nan_and_inf_logits(sc, ref, rng, n, dtype, kind):
    """A NaN (or +inf) among a row's logits makes that row's loss NaN and
    its gradient as the reference's (all NaN); other rows are unaffected.
    At the start, middle and tail of rows of several lengths, along the
    contiguous and the strided axis."""
    x = rng.normal(0, 2, (4, n)).astype(dtype)
    target = _target(rng, x.shape, -1, kind, np.float64 if kind == "prob" else np.int64)
    for bad in (np.nan, np.inf):
        for pos in sorted({0, n // 2, n - 1}):
            xx = x.copy()
            xx[1, pos] = bad
            for kw in (dict(reduction="none"), dict(reduction="none", label_smoothing=0.1,
                                                   weight=np.linspace(0.5, 2, n))):
                loss, grad, _, _ = check(sc, ref, xx, target, **kw)
                assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2, 3]]).all()
                assert np.isfinite(grad[[0, 2, 3]]).all()
                tt = target if kind == "index" else np.ascontiguousarray(target.T)
                check(sc, ref, np.ascontiguousarray(xx.T), tt, axis=0, **kw)
            assert np.isnan(sc.cross_entropy(xx, target))
    if kind == "prob":  # a NaN target probability: that row is NaN
        tt = target.copy()
        tt[2, n // 2] = np.nan
        loss, _, _, _ = check(sc, ref, x, tt, reduction="none")
        assert np.isnan(loss[2]) and np.isfinite(loss[[0, 1, 3]]).all()


def test_minus_inf_logits(sc, ref):
    """A -inf logit that is not the target has probability 0: finite loss
    and gradient without smoothing; with smoothing the loss is +inf, as the
    reference (and PyTorch) give."""
    x = np.array([[-np.inf, 0.0, 1.0], [2.0, -np.inf, -np.inf]])
    t = np.array([1, 0])
    loss, grad, _, _ = check(sc, ref, x, t, reduction="none")
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert grad[0, 0] == 0
    loss, _, _, _ = check(sc, ref, x, t, reduction="none", label_smoothing=0.1)
    assert np.isposinf(loss).all()


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


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_out_any_strides(sc, ref, rng, dtype, axis, kind):
    """out= a fresh C array, a Fortran-order one, strided, negative-stride
    and transposed views: returned, holding the result of a call without
    out= (bitwise), within the bounds of the reference."""
    shape = (6, 37)
    logits = rng.normal(0, 3, shape).astype(dtype)
    target = _target(rng, shape, axis, kind, np.int64 if kind == "index" else np.float32)
    kw = dict(axis=axis, weight=rng.uniform(0.5, 2, shape[axis]), label_smoothing=0.1)
    fresh_loss, fresh = sc.cross_entropy_grad(logits, target, **kw)
    want_loss, want = expected(ref, logits, target, **kw)
    _, gb = bounds(logits, target, **kw)
    for label, out in _outs(shape, dtype):
        loss, grad = call_checked(sc.cross_entropy_grad, logits, target, out=out, **kw)
        assert grad is out, label
        assert_array_equal(out, fresh, err_msg=label)
        assert_array_equal(loss, fresh_loss, err_msg=label)
        assert_close(out, want, gb, dtype, f"out {label}")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_out_is_logits(sc, rng, dtype, kind):
    """out=logits, for C arrays and views, along either axis: the gradient
    over the logits, identical to a fresh call's; the logits array is
    returned (memory shared); ignored rows become 0."""
    base = rng.normal(0, 3, (6, 37)).astype(dtype)
    views = [("C", lambda a: a), ("transposed", lambda a: a.T),
             ("strided", lambda a: a[:, ::2]), ("negative", lambda a: a[::-1, ::-1])]
    for label, view in views:
        for axis in (-1, 0):
            lg = view(base.copy())
            target = _target(rng, lg.shape, axis, kind,
                             np.int64 if kind == "index" else dtype)
            kw = dict(axis=axis, weight=rng.uniform(0.5, 2, lg.shape[axis]),
                      label_smoothing=0.1)
            if kind == "index":
                target[::3] = 4
                kw["ignore_index"] = 4
            # a fresh call on a copy of the same layout (NumPy's sums, and so
            # the reference, depend on the memory order)
            want_loss, want = sc.cross_entropy_grad(view(base.copy()), target, **kw)
            loss, grad = sc.cross_entropy_grad(lg, target, out=lg, **kw)
            assert grad is lg, label
            assert np.shares_memory(grad, lg)
            assert_array_equal(lg, want, err_msg=f"{label} axis={axis}")
            assert_array_equal(loss, want_loss)
            if kind == "index":
                assert_array_equal(np.moveaxis(lg, axis, -1)[::3], 0)


@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("axis", [-1, 0])
def test_out_is_logits_allocates_no_second_logits(sc, rng, dtype, axis):
    """docs/api.md: out=logits allocates no second array of the logits' size
    (NumPy reports its allocations to tracemalloc); the peak stays below a
    quarter of the logits' size."""
    logits = rng.normal(0, 3, (256, 4096)).astype(dtype)
    if axis == 0:
        logits = np.ascontiguousarray(logits.T)
    target = rng.integers(0, 4096, 256)
    kw = dict(axis=axis, label_smoothing=0.1, weight=np.ones(4096, dtype))
    sc.cross_entropy_grad(logits[:2].copy() if axis == -1 else logits[:, :2].copy(),
                          target[:2], out=None, **kw)  # warm up
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sc.cross_entropy_grad(logits, target, out=logits, **kw)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    if MODULE_UNDER_TEST == "softmax_c.reference" and peak >= logits.nbytes // 4:
        pytest.xfail("the NumPy reference computes with temporaries")
    assert peak < logits.nbytes // 4, f"peak {peak} bytes, logits {logits.nbytes}"


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", F32_F64)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_thread_counts_give_identical_results(sc, rng, dtype, kind):
    """num_threads=1 and 2 on 512x4096 logits: the same bits for the loss
    ("mean" and "none") and the gradient, class axis last and along the
    strided axis 0 of the transposed view."""
    logits = rng.normal(0, 4, (512, 4096)).astype(dtype)
    weight = rng.uniform(0.5, 2, 4096)
    for lg, axis in ((logits, -1), (logits.T, 0)):
        target = _target(rng, lg.shape, axis, kind, np.int64 if kind == "index" else dtype)
        kw = dict(axis=axis, weight=weight, label_smoothing=0.1)
        if kind == "index":
            target[::5] = -100
        for reduction in ("mean", "none"):
            one = sc.cross_entropy_grad(lg, target, reduction=reduction, num_threads=1, **kw)
            two = sc.cross_entropy_grad(lg, target, reduction=reduction, num_threads=2, **kw)
            assert_array_equal(one[0], two[0])
            assert_array_equal(one[1], two[1])
        assert_array_equal(sc.cross_entropy(lg, target, num_threads=2, **kw),
                           sc.cross_entropy(lg, target, num_threads=1, **kw))


@pytest.mark.parametrize("dtype", F32_F64)
def test_large_gradients_are_the_rows_alone(sc, rng, dtype):
    """Gradients of 4 MiB or more in rows of 8-256 KiB with class indices
    are written a row behind from scratch rows (sc_xent_rows_ws): each row's
    loss and gradient are bitwise those of the row alone, for every option,
    around ignored rows and rows of -inf, +inf and NaN, into fresh,
    misaligned and in-place outputs, on one thread and on two."""
    esz = np.dtype(dtype).itemsize
    for n in (2048, 2049, 4099, 32000):
        if n * esz < 8192:
            continue
        rows = (4 << 20) // (n * esz) + 3
        z = rng.normal(0, 4, (rows, n)).astype(dtype)
        t = rng.integers(0, n, rows)
        t[[1, 2, rows - 2]] = -100
        t[3], t[4] = 0, n - 1
        z[5] = -np.inf
        z[6, 9] = np.inf
        z[7, 3] = np.nan
        w = rng.uniform(0.5, 2, n).astype(dtype)
        for kw in ({}, dict(label_smoothing=0.1), dict(weight=w),
                   dict(weight=w, label_smoothing=0.3)):
            label = f"n={n} {list(kw)}"
            with np.errstate(all="ignore"):
                loss, grad = sc.cross_entropy_grad(z, t, reduction="none", num_threads=1, **kw)
                for r in range(rows):
                    lr, gr = sc.cross_entropy_grad(z[r:r + 1], t[r:r + 1], reduction="none", **kw)
                    assert_array_equal(loss[r:r + 1], lr, err_msg=f"{label} row {r}")
                    assert_array_equal(grad[r:r + 1], gr, err_msg=f"{label} row {r}")
                buf = np.empty(z.size + 1, dtype)
                odd = buf[1:].reshape(z.shape)   # rows start off the vector boundary
                sc.cross_entropy_grad(z, t, reduction="none", out=odd, num_threads=1, **kw)
                assert_array_equal(odd, grad, err_msg=label)
                inplace = z.copy()
                sc.cross_entropy_grad(inplace, t, reduction="none", out=inplace, num_threads=1,
                                      **kw)
                assert_array_equal(inplace, grad, err_msg=label)
                z2, t2 = np.concatenate([z, z]), np.concatenate([t, t])
                loss2, grad2 = sc.cross_entropy_grad(z2, t2, reduction="none", num_threads=2, **kw)
            assert_array_equal(loss2, np.concatenate([loss, loss]), err_msg=label)
            assert_array_equal(grad2, np.concatenate([grad, grad]), err_msg=label)


@pytest.mark.parametrize("dtype", F32_F64)
def test_one_long_row_split_is_bitwise_the_one_thread_result(sc, ref, rng, dtype):
    """Fewer rows than threads: each long row is cut into pieces at
    multiples of the sum chunk and shared out (softmax_c.h, "the
    cross-entropy of one row in pieces"); loss and gradient are the
    one-thread bits, for every kind of target and option, in place, the
    loss alone too, and rows the recipe leaves to the row kernel (an
    ignored or infinite row, targets far outside [0, 1]).  Rows past 1 MiB
    (262144 float64, 300001) take the one-sweep pieces."""
    for n in (40000, 100003, 262144, 300001):
        z = rng.normal(0, 3, (1, n)).astype(dtype)
        t = np.array([n - 7])
        q = rng.random((1, n))
        q = (q / q.sum()).astype(dtype)
        w = rng.uniform(0.5, 2, n)
        zinf = z.copy()
        zinf[0, 5] = np.inf
        qbig = q.copy()
        qbig[0, :3] = 1e38 if dtype == np.float32 else 1e308
        cases = [(z, t, {}), (z, t, dict(weight=w, label_smoothing=0.1)),
                 (z, q, dict(label_smoothing=0.2)), (z, q, dict(weight=w, reduction="none")),
                 (z, np.array([-100]), {}), (zinf, t, {}), (z, qbig, {})]
        for zz, tt, kw in cases:
            with np.errstate(all="ignore"):
                one = sc.cross_entropy_grad(zz, tt, num_threads=1, **kw)
                two = sc.cross_entropy_grad(zz, tt, num_threads=2, **kw)
                loss = sc.cross_entropy(zz, tt, num_threads=2, **kw)
                inplace = zz.copy()
                three = sc.cross_entropy_grad(inplace, tt, num_threads=2, out=inplace, **kw)
            label = f"n={n} {list(kw)}"
            assert_array_equal(two[0], one[0], err_msg=label)
            assert_array_equal(two[1], one[1], err_msg=label)
            assert_array_equal(loss, one[0], err_msg=label)
            assert_array_equal(three[0], one[0], err_msg=label)
            assert_array_equal(inplace, one[1], err_msg=label)
        check(sc, ref, z, t, weight=w, label_smoothing=0.1, num_threads=2)


@pytest.mark.parametrize("dtype", F32_F64)
def test_one_sweep_row_split_replays_the_sweep(sc, ref, rng, dtype):
    """Rows past 1 MiB take one sweep with a running max; split across 2 or
    3 threads (pieces of unequal chunk counts), the chunk maxima and sums
    are formed per piece and the sweep's rescalings replayed in order:
    the one-thread bits where the running max rises at every chunk, where
    it stays -inf over leading chunks (with a NaN hidden among them, or
    not), with a NaN or inf inside, targets at the ends and at a cut, a
    row of -inf only, and probability targets on -inf logits."""
    n = 300001 if dtype == np.float32 else 150001
    base = rng.normal(0, 3, (1, n)).astype(dtype)
    rising = np.linspace(-80, 80, n, dtype=dtype)[None] + base / 8
    lead = base.copy()
    lead[0, :40000] = -np.inf
    leadnan = lead.copy()
    leadnan[0, 1234] = np.nan
    mid = base.copy()
    mid[0, n // 2 + 3] = np.nan
    pinf = base.copy()
    pinf[0, 77777] = np.inf
    allinf = np.full((1, n), -np.inf, dtype)
    w = rng.uniform(0.5, 2, n)
    q = rng.random((1, n))
    q = (q / q.sum()).astype(dtype)
    kws = [{}, dict(label_smoothing=0.1), dict(weight=w, label_smoothing=0.3),
           dict(weight=w, reduction="sum")]
    for name, zz in (("rising", rising), ("lead", lead), ("leadnan", leadnan), ("mid", mid),
                     ("pinf", pinf), ("allinf", allinf)):
        for tt in (np.array([0]), np.array([n - 1]), np.array([n // 2]), np.array([n // 3]), q):
            for kw in kws:
                with np.errstate(all="ignore"):
                    one = sc.cross_entropy_grad(zz, tt, num_threads=1, **kw)
                    lone = sc.cross_entropy(zz, tt, num_threads=1, **kw)
                    for nt in (2, 3):
                        two = sc.cross_entropy_grad(zz, tt, num_threads=nt, **kw)
                        loss = sc.cross_entropy(zz, tt, num_threads=nt, **kw)
                        inplace = zz.copy()
                        sc.cross_entropy_grad(inplace, tt, num_threads=nt, out=inplace, **kw)
                        label = f"{name} t={tt.ravel()[:1]} {list(kw)} nt={nt}"
                        assert_array_equal(two[0], one[0], err_msg=label)
                        assert_array_equal(two[1], one[1], err_msg=label)
                        assert_array_equal(loss, lone, err_msg=label)
                        assert_array_equal(inplace, one[1], err_msg=label)
    for zz in (rising, lead):
        check(sc, ref, zz, np.array([n - 1]), weight=w, label_smoothing=0.1, num_threads=2)
        check(sc, ref, zz, q, label_smoothing=0.2, num_threads=3)


def test_threads_against_reference(sc, ref, rng):
    """The threaded path on a large input is also correct."""
    logits = rng.normal(0, 4, (512, 1024)).astype(np.float32)
    target = rng.integers(0, 1024, 512)
    kw = dict(weight=rng.uniform(0.5, 2, 1024), label_smoothing=0.1, num_threads=2)
    check(sc, ref, logits, target, **kw)


# ---------------------------------------------------------------- errors

def _bad_calls():
    """(label, logits, target, kwargs, exception, regex the message must
    match); the logits are 3x5 float64."""
    logits = np.zeros((3, 5))
    logits[0, 0] = np.nan
    idx = np.array([0, 4, 2])
    prob = np.full((3, 5), 0.2)
    ro = np.zeros((3, 5))
    ro.flags.writeable = False
    return [
        ("index too big", logits, np.array([0, 7, 1]), {}, IndexError, r"\b7\b"),
        ("index == C", logits, np.array([0, 1, 5]), {}, IndexError, r"\b5\b"),
        ("index too big uint8", logits, np.array([0, 200, 1], np.uint8), {}, IndexError,
         "200"),
        ("negative index", logits, np.array([0, -1, 1]), {}, IndexError, "-1"),
        ("negative int8", logits, np.array([0, 1, -3], np.int8), {}, IndexError, "-3"),
        ("-100 not ignored", logits, np.array([-100, 3, 0]), dict(ignore_index=3),
         IndexError, "-100"),
        ("beside ignored", logits, np.array([3, 9, 0]), dict(ignore_index=3), IndexError,
         r"\b9\b"),
        ("weight short", logits, idx, dict(weight=np.ones(4)), ValueError, "weight"),
        ("weight long", logits, idx, dict(weight=np.ones(6)), ValueError, "weight"),
        ("smoothing -0.1", logits, idx, dict(label_smoothing=-0.1), ValueError,
         "label_smoothing"),
        ("smoothing 1.5", logits, idx, dict(label_smoothing=1.5), ValueError,
         "label_smoothing"),
        ("reduction avg", logits, idx, dict(reduction="avg"), ValueError, "reduction"),
        ("index target short", logits, np.array([0, 1]), {}, ValueError, "target"),
        ("index target full shape", logits, np.zeros((3, 5), np.int64), {}, ValueError,
         "target"),
        ("index target other axis", logits, np.zeros(5, np.int64), {}, ValueError,
         "target"),
        ("prob target shape", logits, prob[:2], {}, ValueError, "target"),
        ("prob target transposed", logits, np.full((5, 3), 0.2), {}, ValueError, "target"),
        ("bool target", logits, np.array([True, False, True]), {}, TypeError, "target"),
        ("ignore_index with prob", logits, prob, dict(ignore_index=3), ValueError,
         "ignore_index"),
        ("ignore_index -1 with prob", logits, prob, dict(ignore_index=-1), ValueError,
         "ignore_index"),
        ("out shape", logits, idx, dict(out=np.zeros((5, 3))), ValueError, "out"),
        ("out dtype", logits, idx, dict(out=np.zeros((3, 5), np.float32)), TypeError,
         "out"),
        ("out float64 for float16", logits.astype(np.float16), idx,
         dict(out=np.zeros((3, 5))), TypeError, "out"),
        ("out read-only", logits, idx, dict(out=ro), ValueError, "out"),
        ("axis 2", logits, idx, dict(axis=2), AxisError, "axis"),
        ("axis -3", logits, idx, dict(axis=-3), AxisError, "axis"),
        ("num_threads 0", logits, idx, dict(num_threads=0), ValueError, "num_threads"),
    ]


@pytest.mark.parametrize("case", _bad_calls(), ids=[c[0] for c in _bad_calls()])
def test_errors(sc, case):
    """Every bad input raises the documented exception, naming the
    parameter (or the bad class index), and leaves logits, target, weight
    and out unchanged; also with out=logits (in place)."""
    label, logits, target, kwargs, exc, pattern = case
    for fn in (sc.cross_entropy, sc.cross_entropy_grad):
        outs = [kwargs.get("out")] if "out" in kwargs else [None]
        if fn is sc.cross_entropy:
            if "out" in kwargs:
                continue
        elif "out" not in kwargs:
            outs = [np.full(logits.shape, 9.0, result_dtype(logits.dtype)), "logits"]
        for out in outs:
            lg = logits.copy()
            kw = dict(kwargs)
            kw.setdefault("weight", np.linspace(0.5, 2, 5))  # valid, to be left untouched
            if fn is sc.cross_entropy_grad:
                kw["out"] = lg if isinstance(out, str) else out
            arrays = [lg, target] + [v for v in kw.values() if isinstance(v, np.ndarray)]
            saved = [snapshot(a) for a in arrays]
            with pytest.raises(exc, match=pattern) as info:
                fn(lg, target, **kw)
            if exc is not AxisError:
                assert not isinstance(info.value, AxisError), label
            for a, s in zip(arrays, saved):
                assert_unchanged(a, s)


def test_valid_edge_values_do_not_raise(sc, ref):
    """The boundaries of the valid ranges: label_smoothing 0 and 1, class
    indices 0 and C - 1, a negative ignore_index present in the target,
    num_threads=1, axis -ndim."""
    logits = np.zeros((3, 5))
    for kw in (dict(label_smoothing=0), dict(label_smoothing=1), dict(num_threads=1),
               dict(axis=-2, label_smoothing=0.5)):
        t = np.array([0, 4, 2]) if kw.get("axis", -1) == -1 else np.array([0, 2, 1, 0, 2])
        check(sc, ref, logits, t, **kw)
    check(sc, ref, logits, np.array([-7, 4, 0]), ignore_index=-7)


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
    def _cases(draw, dtypes=(np.float64,), max_side=5):
        """(logits, target, kwargs): small shapes, any class axis, index or
        probability targets, and random options."""
        dtype = draw(st.sampled_from(dtypes))
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1,
                                      max_side=max_side))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        k = axis % len(shape)
        n_classes = shape[k]
        logits = draw(hnp.arrays(np.float64, shape,
                                 elements=st.floats(-5, 5, width=64))).astype(dtype)
        kw = dict(axis=axis)
        if draw(st.booleans()):
            t = draw(hnp.arrays(np.int64, _batch_shape(shape, k),
                                elements=st.integers(0, n_classes - 1)))
            ignore = draw(st.sampled_from([-100, 0, n_classes - 1]))
            if ignore != -100:
                kw["ignore_index"] = ignore
        else:
            raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1, width=64)))
            raw = raw + 0.01
            t = (raw / raw.sum(axis=k, keepdims=True)).astype(dtype)
        if draw(st.booleans()):
            kw["weight"] = draw(hnp.arrays(np.float64, (n_classes,),
                                           elements=st.floats(0.1, 3, width=64)))
        kw["reduction"] = draw(st.sampled_from(REDUCTIONS))
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.37, 1.0]))
        return logits, t, kw

    @_SETTINGS
    @given(case=_cases())
    def test_property_gradient_is_finite_difference_of_loss(sc, case):
        """grad == 4th-order central differences (h = 1e-3) of the summed
        loss, in float64: the truncation error is ~h^4 and the rounding
        error ~1e-13 |L|, far below the 1e-8 (1 + |L|) allowed."""
        logits, target, kw = case
        loss, grad = sc.cross_entropy_grad(logits, target, **kw)
        total = float(np.sum(loss))
        if np.isnan(total):  # "mean" with every target ignored
            assert kw["reduction"] == "mean"
            assert_array_equal(grad, 0)
            return

        def f(z):
            return float(np.sum(sc.cross_entropy(z, target, **kw)))

        h = 1e-3
        num = np.empty_like(logits)
        for idx in np.ndindex(*logits.shape):
            e = np.zeros_like(logits)
            e[idx] = h
            num[idx] = (-f(logits + 2 * e) + 8 * f(logits + e) - 8 * f(logits - e)
                        + f(logits - 2 * e)) / (12 * h)
        tol = 1e-8 * (1 + abs(total))
        err = np.abs(grad - num)
        assert np.all(err <= tol), (f"max error {err.max():.3g} > {tol:.3g}; "
                                    f"grad {grad.ravel()}, fd {num.ravel()}")

    @_SETTINGS
    @given(case=_cases(dtypes=(np.float32, np.float64), max_side=40))
    def test_property_gradient_rows_sum_to_zero(sc, case):
        """s (a sum(p) - sum(u)) = 0 for every option: each row's sum is
        within the sum of its elements' error bounds."""
        logits, target, kw = case
        _, grad = sc.cross_entropy_grad(logits, target, **kw)
        _, gb = bounds(logits, target, **kw)
        assert_rows_sum_to_zero(grad, gb, kw["axis"], str(kw))
