"""Fuzzing every public function against ``softmax_c.reference``.

Hypothesis draws a *recipe* for a whole call -- shapes (empty and 0-d
included), dtypes (the accepted ones and the rejected ones), values (NaN,
+-inf, subnormals, the float extremes, huge magnitudes and offsets, ties),
layouts (slices with steps, negative strides, transposes, unaligned,
byte-swapped and read-only arrays, lists), axes (valid, negative, out of
range, tuples, None, the wrong type), ``where`` masks, ``out`` arrays (fresh,
strided, the input itself, overlapping it in another layout, the wrong
shape or dtype, read-only, not an array), thread counts and the
cross-entropy's targets and options -- and the call is built from it twice,
once for softmax_c and once for the reference, so that in-place and aliased
calls see identical inputs.

The property, for every call:

- either both return, with the same type, dtype and shape, NaN at the same
  places, the same infinities, and the finite values within the error
  bound of docs/api.md (forward functions; for float32 and float16 inputs
  against the reference computed in float64, as the reference's own
  float32 sums are less accurate than the bound) or a forward-error bound
  of the formula (backward products, cross-entropy) -- see the
  ``bound_*`` helpers;
- or softmax_c raises one of the documented exceptions (TypeError,
  ValueError, IndexError, AxisError) and the reference raises the same
  type, and every input and ``out`` is bitwise unchanged;
- and in both cases nothing is written outside ``out``: every array is
  built inside a buffer filled with NaN bytes, and after the call the
  whole buffer, gaps between strided elements included, must be as it was
  except for the elements of ``out``.

With ``CI=true`` in the environment the examples are derandomized (the same
every run, no example database); otherwise they are random and failures
are replayed from hypothesis' local database.  SOFTMAX_C_FUZZ_SCALE
multiplies the number of examples.

Where no comparison is meaningful (an error bound beyond the float range,
the reference's own overflow) or a known bug makes the results differ,
the elements concerned are left out -- see "allowances": each is narrow,
says why, and each known bug has its reproducer as a strict xfail test at
the end of this file, which starts failing once the bug is fixed.
"""
import bisect
import itertools
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from conftest import MODULE_UNDER_TEST, TOL, UNIT_ROUNDOFF

# Overflow in casts and sums is what the extreme values are for.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_CI = os.environ.get("CI", "").lower() == "true"
# SOFTMAX_C_FUZZ_SCALE=20: twenty times the examples, for a longer hunt.
_SCALE = float(os.environ.get("SOFTMAX_C_FUZZ_SCALE", "1"))


def _settings(n):
    return settings(max_examples=max(1, int(n * _SCALE)), deadline=None, derandomize=_CI,
                    database=None if _CI else settings.default.database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
DOCUMENTED = (TypeError, ValueError, IndexError)  # AxisError is both of the last two

# ---------------------------------------------------------------- arrays

# Dtypes: the float ones most often; the others are accepted (bool,
# integers, float16) or must raise TypeError (complex, long double,
# object, strings, datetimes).
ACCEPTED = [F64, F64, F32, F32, F16, np.dtype(np.int8), np.dtype(np.int32),
            np.dtype(np.int64), np.dtype(np.uint8), np.dtype(np.uint64), np.dtype(np.bool_)]
REJECTED = [np.dtype(np.complex64), np.dtype(np.complex128), np.dtype(np.longdouble),
            np.dtype(object), np.dtype("U3"), np.dtype("M8[s]")]


def weighted(*pairs):
    """Each of `pairs` (weight, strategy or value) drawn with its weight;
    shrinking goes towards the first."""
    cum = list(itertools.accumulate(w for w, _ in pairs))
    strategies = [v if isinstance(v, st.SearchStrategy) else st.just(v) for _, v in pairs]
    return st.integers(0, cum[-1] - 1).flatmap(lambda i: strategies[bisect.bisect_right(cum, i)])


FLOAT_DTYPE = st.sampled_from([F64, F64, F32, F32, F16])
ANY_DTYPE = weighted((14, FLOAT_DTYPE), (4, st.sampled_from(ACCEPTED[5:])),
                     (2, st.sampled_from(REJECTED)))

# Lengths at and around every SIMD width and unroll (4, 8, 16 lanes).
SIDES = [0, 1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 100]
FLOAT_MODES = ["normal", "normal", "wide", "offset", "ties", "neginf", "tiny", "unit", "logp",
               "bytes"]


@dataclass(frozen=True)
class Layout:
    perm: tuple          # the view is the buffer's slice transposed by perm
    steps: tuple         # step of the slice along each buffer axis (< 0: reversed)
    pads: tuple          # spare elements along each buffer axis
    unaligned: bool      # the data one byte off its alignment
    swapped: bool        # non-native byte order
    readonly: bool
    as_list: bool        # passed as a nested list (array-like input)


PLAIN = Layout((), (), (), False, False, False, False)


@dataclass(frozen=True)
class Spec:
    dtype: np.dtype
    shape: tuple
    seed: int
    mode: str
    specials: tuple      # ((position in [0, 1), index into _specials()), ...)
    layout: Layout
    raw: bytes = b""     # mode "bytes": the values' bit patterns, repeated


@st.composite
def shapes(draw, min_dims=0, max_dims=4, max_size=1500):
    if max_size >= 1000 and draw(st.integers(0, 39)) == 0:
        # now and then enough work for two threads
        return (draw(st.sampled_from([9, 40])), draw(st.sampled_from([1000, 4099])))
    dims = [draw(st.sampled_from(SIDES)) for _ in range(draw(st.integers(min_dims, max_dims)))]
    while math.prod(dims) > max_size:
        i = dims.index(max(dims))
        dims[i] //= 2
    return tuple(dims)


@st.composite
def layouts(draw, ndim, allow_list=False):
    if draw(st.integers(0, 9)) < 6:
        return PLAIN
    perm = tuple(draw(st.permutations(range(ndim)))) if ndim else ()
    steps = tuple(draw(st.sampled_from([1, 1, 2, -1, -2, 3])) for _ in range(ndim))
    pads = tuple(draw(st.integers(0, 1)) for _ in range(ndim))
    flags = [draw(st.integers(0, 9)) == 0 for _ in range(3)]
    as_list = allow_list and draw(st.integers(0, 14)) == 0
    return Layout(perm, steps, pads, *flags, as_list)


@st.composite
def specs(draw, dtype=ANY_DTYPE, shape=None, modes=None, allow_list=False, layout=True):
    dt = draw(dtype) if isinstance(dtype, st.SearchStrategy) else np.dtype(dtype)
    shp = draw(shapes()) if shape is None else tuple(shape)
    mode = draw(st.sampled_from(modes or FLOAT_MODES))
    specials = tuple(draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                             st.integers(0, 12)), max_size=4)))
    lay = draw(layouts(len(shp), allow_list)) if layout else PLAIN
    raw = draw(st.binary(min_size=1, max_size=256)) if mode == "bytes" else b""
    return Spec(dt, shp, draw(st.integers(0, 2**32 - 1)), mode, specials, lay, raw)


def _specials(dt):
    if dt.kind in "fc" and dt.itemsize <= 8 * (2 if dt.kind == "c" else 1):
        fi = np.finfo(dt)
        return [np.nan, np.inf, -np.inf, 0.0, -0.0, float(fi.tiny), float(fi.smallest_subnormal),
                -float(fi.smallest_subnormal), float(fi.max), -float(fi.max), float(fi.max) / 3,
                float(fi.tiny) * 3, -1.0]
    if dt.kind in "iu":
        ii = np.iinfo(dt)
        return [ii.min, ii.max, 0, 1, ii.max // 2, ii.min // 2, 2, 3, 0, 1, ii.max, ii.min, 1]
    return [0] * 13


def _values(spec):
    """The logical contents of spec: a C-contiguous array of its dtype."""
    dt, shape, rng = spec.dtype, spec.shape, np.random.default_rng(spec.seed)
    size = math.prod(shape)
    if dt.kind == "O":
        return rng.normal(size=size).astype(object).reshape(shape)
    if dt.kind == "U":
        return rng.integers(-9, 99, size).astype(str).astype(dt).reshape(shape)
    if dt.kind == "M":
        return np.arange(size).astype(dt).reshape(shape)
    if spec.mode == "bytes" and spec.raw and dt.kind in "biufc":
        nbytes = size * dt.itemsize
        raw = (spec.raw * (nbytes // len(spec.raw) + 1))[:nbytes]
        v = np.frombuffer(raw, np.uint8 if dt.kind == "b" else dt)
        v = (v & 1).astype(bool) if dt.kind == "b" else v.copy()
    elif dt.kind == "b":
        return (rng.random(size) < 0.5).reshape(shape)
    elif dt.kind in "iu":
        ii = np.iinfo(dt)
        if spec.mode in ("wide", "offset"):
            v = rng.integers(ii.min, ii.max, size, dtype=dt, endpoint=True)
        else:
            v = rng.integers(max(ii.min, -5), 6, size).astype(dt)
    else:
        real = np.dtype(dt.char.lower()) if dt.kind == "c" else dt
        fi = np.finfo(real if real.itemsize <= 8 else F64)
        top = math.log10(float(fi.max)) * 0.999
        mode = spec.mode
        with np.errstate(all="ignore"):
            if mode == "normal":
                v = rng.normal(0, rng.choice([1.0, 30.0, 1e3]), size)
            elif mode == "wide":
                v = rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(-top, top, size)
            elif mode == "offset":
                c = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(2, top)
                v = c + rng.normal(0, 1, size) * rng.choice([1.0, 100.0, abs(c) * 1e-6])
            elif mode == "ties":
                v = rng.integers(-3, 4, size).astype(np.float64)
            elif mode == "neginf":
                v = np.where(rng.random(size) < 0.6, -np.inf, rng.normal(0, 10, size))
            elif mode == "tiny":
                v = rng.choice([-1.0, 1.0], size) * float(fi.tiny) * rng.uniform(0, 4, size)
            elif mode == "unit":
                v = rng.random(size)
            else:  # "logp"
                v = -rng.exponential(rng.choice([1.0, 10.0, 100.0]), size)
            v = v.astype(dt)
        if dt.kind == "c":
            v = v + 1j * rng.normal(size=size)
    sp = _specials(dt)
    flat = v.reshape(-1)
    with np.errstate(all="ignore"):
        for pos, idx in spec.specials:
            if size:
                flat[int(pos * size)] = sp[idx]
    return flat.reshape(shape)


def _materialize(spec, values=None):
    """(the array of spec, or a list for as_list; the buffer that holds it,
    or None).  The buffer is filled with 0xff bytes (NaN, or -1) outside
    the array's elements."""
    v = _values(spec) if values is None else values
    lay, dt = spec.layout, v.dtype
    if dt.kind in "OUM" or lay == PLAIN:
        if dt.kind in "OUM":
            return v.copy(), None
        lay = Layout(tuple(range(v.ndim)), (1,) * v.ndim, (0,) * v.ndim, False, False, False,
                     False)
    if lay.as_list:
        return v.tolist(), None
    nd = v.ndim
    perm = lay.perm[:nd] if len(lay.perm) == nd else tuple(range(nd))
    steps = (lay.steps + (1,) * nd)[:nd]
    pads = (lay.pads + (0,) * nd)[:nd]
    if lay.swapped and dt.itemsize > 1:
        dt = dt.newbyteorder()
    inv = np.argsort(perm)
    wshape = tuple(v.shape[inv[j]] for j in range(nd))   # W.transpose(perm) has v's shape
    bshape = tuple(abs(s) * n + p for s, n, p in zip(steps, wshape, pads))
    off = 1 if lay.unaligned and dt.itemsize > 1 else 0
    raw = np.full(math.prod(bshape) * dt.itemsize + off + 8, 0xFF, np.uint8)
    buf = np.ndarray(bshape, dt, buffer=raw, offset=off)
    index = []
    for s, n, p, d in zip(steps, wshape, pads, bshape):
        if n == 0:
            index.append(slice(0, 0))
        elif s > 0:
            index.append(slice(p, p + s * n, s))
        else:
            start = d - 1 - p
            index.append(slice(start, start + s * n if start + s * n >= 0 else None, s))
    view = buf[tuple(index) + (Ellipsis,)].transpose(perm)
    assert view.shape == v.shape
    view[...] = v
    if lay.readonly:
        view.flags.writeable = False
    return view, raw


def _result_dtype(*dts):
    """docs/api.md's dtype policy (for the dtypes it accepts)."""
    dt = np.result_type(*dts)
    if dt.kind == "f" and dt.itemsize <= 8:
        return dt.newbyteorder("=")
    return F64


def _compute_dtype(dt):
    dt = np.dtype(dt).newbyteorder("=")
    return F64 if dt.kind in "biu" else F32 if dt == F16 else dt


# ---------------------------------------------------------------- arguments

OUT_MODES = weighted((8, "none"), (4, "fresh"), (2, "strided"), (3, "alias"), (1, "overlap"),
                     (1, "other"), (5, st.sampled_from(["wrong_shape", "wrong_dtype", "readonly",
                                                       "list", "swapped"])))


@st.composite
def out_recipes(draw, ndim):
    mode = draw(OUT_MODES)
    return mode, draw(layouts(ndim)), draw(st.integers(0, 2**32 - 1))


def _make_out(recipe, shape, dtype, inputs):
    """The `out` argument of recipe, given the result's shape and dtype and
    the call's materialized array inputs (alias: the first, other: the
    second).  Returns (out, its buffer or None)."""
    mode, lay, seed = recipe
    if mode == "none":
        return None, None
    if mode in ("alias", "other", "overlap"):
        src = inputs[0] if mode != "other" else (inputs[1] if len(inputs) > 1 else None)
        if isinstance(src, np.ndarray) and src.shape == tuple(shape):
            if mode == "overlap" and src.ndim:
                # the same memory in another layout: reversed along every axis
                return src[(slice(None, None, -1),) * src.ndim], None
            return src, None
        mode = "fresh"
    if mode == "list":
        return np.zeros(shape).tolist(), None
    dt = np.dtype(dtype)
    shp = tuple(shape)
    if mode == "wrong_shape":
        shp = shp + (1,) if seed % 2 else (shp[:-1] + (shp[-1] + 1,) if shp else (2,))
    elif mode == "wrong_dtype":
        dt = F32 if dt == F64 else F64 if seed % 2 else np.dtype(np.int64)
    elif mode == "swapped" and dt.itemsize > 1:
        dt = dt.newbyteorder()
    if mode == "strided":
        spec = Spec(dt, shp, seed, "normal", (), Layout(lay.perm, lay.steps, lay.pads,
                                                        lay.unaligned, False, False, False))
    else:
        spec = Spec(dt, shp, seed, "normal", (), PLAIN)
    garbage = np.full(shp, np.nan if dt.kind == "f" else 7, dt)
    out, raw = _materialize(spec, garbage)
    if mode == "readonly":
        out.flags.writeable = False
    return out, raw


def axes_strategy(ndim, tuples=True):
    valid = st.integers(-ndim, ndim - 1) if ndim else st.just(-1)
    pairs = [(4, -1), (8, valid), (1, valid.map(np.int64)), (1, st.integers(-ndim - 2, ndim + 1)),
             (1, st.sampled_from([1.0, "0", [0], True, np.float64(0.0), (0.5,)]))]
    if tuples:
        pairs += [(1, None), (1, st.permutations(range(ndim)).map(lambda p: tuple(p[:2]))),
                  (1, st.lists(st.integers(-ndim - 1, ndim), max_size=ndim + 1).map(tuple))]
    return weighted(*pairs)


THREADS = weighted((16, None), (3, st.sampled_from([1, 2, 3, np.int64(2)])),
                   (1, st.sampled_from([0, -1, 2.0, True, "1"])))


@st.composite
def where_recipes(draw, shape):
    mode = draw(weighted((10, "none"), (4, "full"), (3, "broadcast"), (1, "strided"), (1, "list"),
                         (1, "int"), (1, "wrong_shape")))
    return mode, draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])), draw(st.integers(0, 2**32 - 1)), \
        draw(layouts(len(shape)))


def _make_where(recipe, shape):
    mode, p, seed, lay = recipe
    if mode == "none":
        return None, None
    rng = np.random.default_rng(seed)
    shp = tuple(shape)
    if mode == "broadcast" and shp:
        drop = int(rng.integers(0, len(shp) + 1))   # leading dims left out
        shp = tuple(1 if rng.random() < 0.5 else s for s in shp)[drop:]
    elif mode == "wrong_shape":
        shp = shp + (3,) if shp else (3,)
    w = rng.random(shp) < p
    if mode == "list":
        return w.tolist(), None
    if mode == "int":
        return w.astype(np.int8), None
    if mode == "strided":
        return _materialize(Spec(w.dtype, shp, seed, "", (), lay), w)
    return w, None


# ---------------------------------------------------------------- allowances

def backward_unbounded(name, built, expected, actual):
    """Backward products whose reduction -- sum(y v), sum(exp(lp) v) or
    sum(g) -- overflows or holds an infinity (sum of |terms| beyond the
    compute dtype's range): whether a partial sum overflows depends on the
    order of summation, so a finite result on one side may be infinite (or
    NaN, from inf - inf) on the other (test_backward_sum_overflow_gives_
    the_formulas_inf pins the kernel's own behaviour).  Also not a bug but documented (csrc/family/exp_steps.h exp_sat): the log-softmax
    products' exp saturates to +inf above logp = 88 (float32) / 709
    (float64), a little before it overflows, far outside valid
    log-probabilities.
    And where the forward error bound itself overflows (cancellation among
    terms near the range's end), either side may be finite or infinite.
    Returns the mask of those elements: not compared."""
    a, b, axis = _pair64(built)
    cdt = _compute_dtype(np.asarray(expected).dtype)
    with np.errstate(all="ignore"):
        a, b = a.astype(cdt).astype(np.float64), b.astype(cdt).astype(np.float64)
        term = {"softmax_jvp": a * b, "softmax_vjp": a * b,
                "log_softmax_jvp": np.exp(a) * b, "log_softmax_vjp": b}[name]
        s = np.sum(np.abs(term), axis=axis, keepdims=True)
        skip = ~(s <= float(np.finfo(cdt).max))
        if name.startswith("log_softmax"):
            xmax = 88.0 if cdt == F32 else 709.0
            skip |= np.any(a > xmax, axis=axis, keepdims=True)
    return np.broadcast_to(skip, np.shape(expected)) | np.isposinf(
        bound_backward(name, built, expected))


def xent_prob_sum_overflow(built):
    """Not a bug: with probability targets far outside [0, 1] (the API
    allows any float), the gradient's p sum(u) - u needs sum(u), which
    overflows -- or not, depending on the order of summation; in float32
    lanes for float32 logits -- where the terms are finite (z = [0, 0],
    q = [1e308, 1e308]: sum(u) = inf in every order).  The loss has no
    such sum (test_probability_targets_far_outside_the_unit_interval) and
    is compared.  Returns the mask (batch shape) of the samples whose terms
    sum(|u| (1 + |lse - z|)) exceed a quarter of the compute dtype's range,
    or None."""
    z, t = (np.asarray(v) for v in built.args)
    if t.dtype.kind != "f":
        return None
    kw = built.kwargs
    cdt = _compute_dtype(z.dtype)
    k = int(kw["axis"]) % z.ndim
    n_cls = z.shape[k]
    ls = float(kw["label_smoothing"])
    w = (1.0 if kw["weight"] is None
         else np.asarray(kw["weight"]).astype(cdt).astype(np.float64))
    with np.errstate(all="ignore"):
        zl = np.moveaxis(z.astype(cdt), k, -1).astype(np.float64)
        q = np.moveaxis(t.astype(cdt), k, -1).astype(np.float64)
        u = w * (q * (1 - ls) + (ls / n_cls if n_cls else 0.0))
        m = np.max(zl, axis=-1, keepdims=True, initial=-np.inf)
        # |lse - z| <= |m - z| + log(n)
        mag = np.sum(np.abs(u) * (1 + np.abs(m - zl) + math.log(max(n_cls, 1))), axis=-1)
    return ~(mag <= float(np.finfo(cdt).max) / 4)


def xent_reference_overflow(built, expected, actual, ref, grad):
    """Not a bug: the kernel accumulates each sample's loss, and the sum
    for "mean"/"sum", in float64, where the reference (and PyTorch) work in
    the compute dtype.  For float32 logits whose terms overflow float32,
    the reference then gives inf, or NaN from inf - inf, where the exact
    value is finite or of one sign; e.g. float32 logits [0, -max], target
    1, weight [6.37, 2.70], "mean": 3.4028235e38 here, inf there.  Where
    the reference's result is not finite, the result is compared instead
    with the reference computed in float64 and rounded to the result
    dtype (for float64 logits: with the exact loss of probability targets,
    _xent_float64_overflow).  Returns (loss mask, grad mask or None) of elements not to
    compare otherwise."""
    z, t = (np.asarray(v) for v in built.args)
    cdt = _compute_dtype(z.dtype)
    want = expected if grad else (expected, None)
    got = actual if grad else (actual, None)
    big = xent_prob_sum_overflow(built)
    big_grad = None
    if grad and big is not None and big.any():
        k = int(built.kwargs["axis"]) % z.ndim
        big_grad = np.broadcast_to(np.expand_dims(big, k), z.shape)
    loss_mask, grad_mask = _xent_float32_overflow(built, want, got, ref, grad)
    if big_grad is not None:
        grad_mask = big_grad if grad_mask is None else grad_mask | big_grad
    return loss_mask, grad_mask


def _xent_float32_overflow(built, want, got, ref, grad):
    """The float32 part of xent_reference_overflow."""
    z, t = (np.asarray(v) for v in built.args)
    cdt = _compute_dtype(z.dtype)
    if all(w is None or np.isfinite(np.asarray(w, np.float64)).all() for w in want):
        return None, None
    if cdt == F64:
        return _xent_float64_overflow(built, want[0], got[0]), None
    kw = {k: v for k, v in built.kwargs.items() if k not in ("out", "num_threads")}
    if kw["weight"] is not None:
        kw["weight"] = np.asarray(kw["weight"]).astype(cdt).astype(np.float64)
    if t.dtype.kind == "f":
        t = t.astype(cdt).astype(np.float64)
    with np.errstate(all="ignore"):
        exact = getattr(ref, "cross_entropy_grad" if grad else "cross_entropy")(
            z.astype(cdt).astype(np.float64), t, **kw)
    # or within the float32 computation's own bound (plus the rounding to
    # the result dtype) of the float64 value: a loss term w q (-logp) with
    # |logp| << 1 carries an absolute error of about u in logp, a large
    # relative one (w q = -1e39, logp = -4.5e-6: -4.758e33 for -4.725e33);
    # a gradient p sum(u) - u_c with |u| ~ 1e25 one of u |u| ~ 1e18 (0.0
    # for 1.59e16 / N, which a float16 result rounds to inf)
    with np.errstate(all="ignore"):
        lims = bound_xent(built, exact, grad)
    exact, lims = (exact, lims) if grad else ((exact, None), (lims, None))
    masks = []
    for w, g, x64, lim in zip(want, got, exact, lims):
        if w is None:
            masks.append(None)
            continue
        w, g = np.asarray(w, np.float64), np.asarray(g)
        with np.errstate(all="ignore"):
            x64 = np.asarray(x64, np.float64)
            x = x64.astype(g.dtype).astype(np.float64)
            fi = np.finfo(g.dtype)
            lim = (np.nan_to_num(np.asarray(lim, np.float64), nan=np.inf)
                   + float(fi.eps) * np.abs(x64) + float(fi.smallest_subnormal))
            g = g.astype(np.float64)
            same = ((g == x) | (np.isnan(g) & np.isnan(x))
                    | (np.isfinite(x64)
                       & (np.abs(g - x64) <= np.maximum(lim, 1e-4 * np.abs(x64)))))
        masks.append(~np.isfinite(w) & same)
    return tuple(masks)


def _xent_float64_overflow(built, want, got):
    """The float64 part of xent_reference_overflow, for the loss of
    probability targets far outside [0, 1] (the API allows any float):
    with q = 6e307 and -logp = 7 the reference's product q (-logp)
    overflows, and a sample with terms of both signs sums to inf - inf =
    NaN, where the kernel's loss, and the exact one, are finite (fuzzing
    found z ~ 1e-308, q up to 6e307 both signs: 1.047e308 here, NaN
    there).  Where the reference's loss is not finite it is compared
    instead with the exact loss, computed in np.longdouble where that has
    a wider exponent range than float64 (x87 extended, IEEE quad) and
    rounded to float64.  The kernel adds up each sample's terms in float64,
    scaled down when they overflow (test_probability_target_terms_beyond_
    the_range), and the samples' losses for "mean"/"sum" in float64: where
    those exceed the float64 range an overflow depends on the order, and a
    non-finite loss there is allowed.  Returns the loss mask, or None."""
    z, t = (np.asarray(v) for v in built.args)
    if t.dtype.kind != "f":
        return None
    kw = built.kwargs
    k = int(kw["axis"]) % z.ndim
    n_cls = z.shape[k]
    if n_cls == 0:
        return None
    ext = np.longdouble if np.finfo(np.longdouble).maxexp > np.finfo(F64).maxexp else F64
    ls = ext(float(kw["label_smoothing"]))
    w = (ext(1) if kw["weight"] is None
         else np.asarray(kw["weight"]).astype(F64).astype(ext))
    with np.errstate(all="ignore"):
        zl = np.moveaxis(z.astype(F64), k, -1).astype(ext)
        q = np.moveaxis(t.astype(F64), k, -1).astype(ext)
        u = w * (q * (1 - ls) + ls / n_cls)
        m = np.max(zl, axis=-1, keepdims=True)
        # lse - z_c as (m - z_c) + log(s): lse itself would round away
        # log(s) next to z = 1.6e92
        terms = u * ((m - zl) + np.log(np.sum(np.exp(zl - m), axis=-1, keepdims=True)))
        loss, mag = np.sum(terms, -1), np.sum(np.abs(terms), -1)
        # samples with a NaN or a +inf logit are compared as they are; a
        # -inf logit (lse - z_c = inf) or an infinite q_c makes its term,
        # and the loss, infinite where u_c != 0
        finite = ~(np.isnan(zl) | np.isposinf(zl) | np.isnan(q)).any(-1)
        if kw["reduction"] != "none":
            loss, mag, finite = np.sum(loss), np.sum(mag), finite.all()
            if kw["reduction"] == "mean":
                loss = loss / ext(max(zl.size // n_cls, 1))
        x = np.asarray(loss).astype(F64)
        g = np.asarray(got, F64)
        order = np.asarray(mag) > float(np.finfo(F64).max) / (1 if ext is not F64 else 4)
        if ext is not F64 and kw["reduction"] == "none":
            order = False       # each sample's terms: scaled when they overflow
        same = ((g == x) | (np.isfinite(x) & (np.abs(g - x) <= 1e-4 * np.abs(x)))
                | (order & ~np.isfinite(g)) | ((ext is F64) & order))
    return ~np.isfinite(np.asarray(want, F64)) & finite & same


# ---------------------------------------------------------------- the check

@dataclass
class Built:
    """The arguments of one call."""
    args: tuple
    kwargs: dict


def _byte_snapshot(buffers):
    return [b.copy() for b in buffers]


def _assert_bytes_unchanged(buffers, snapshots, what):
    for b, s in zip(buffers, snapshots):
        if b.dtype == object:
            assert all(x is y for x, y in zip(b.ravel().tolist(), s.ravel().tolist())), what
        else:
            assert np.array_equal(_byte_view(b), _byte_view(s), equal_nan=True), what


def _byte_view(a):
    if a.dtype == np.uint8 and a.flags.c_contiguous:
        return a.reshape(-1)
    return np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)


def _buffers_of(values):
    """Byte buffers to watch: the raw buffers made by _materialize, and
    plain arrays (their base, if they are views)."""
    seen, out = set(), []
    for v in values:
        if isinstance(v, np.ndarray):
            b = v
            while isinstance(b.base, np.ndarray):
                b = b.base
            if id(b) not in seen:
                seen.add(id(b))
                out.append(b)
    return out


def run_case(name, build, bound, sc, ref, lenient=None, oracle=None):
    """Call sc.<name> and ref.<name> on two builds of one recipe and check
    the property of the module docstring; `bound(built, values)` gives
    the error bound of a successful call (an array broadcastable to the
    result, or a tuple for cross_entropy_grad); `lenient(built, expected,
    actual)`, if given, the mask of elements not to compare (a pair, of
    the loss and the gradient, for the cross-entropy), each for a reason
    documented under "allowances"; `oracle(built, expected)`, if given,
    more accurate values to compare with than the reference's own (type,
    dtype, shape and NaNs are still the reference's)."""
    mine = build()
    out = mine.kwargs.get("out")
    watched = _buffers_of(list(mine.args) + list(mine.kwargs.values()))
    before = _byte_snapshot(watched)
    out_before = out.copy() if isinstance(out, np.ndarray) else None
    try:
        got, err = getattr(sc, name)(*mine.args, **mine.kwargs), None
    except Exception as e:  # noqa: BLE001 - classified below
        got, err = None, e
    theirs = build()
    try:
        want, err_ref = getattr(ref, name)(*theirs.args, **theirs.kwargs), None
    except Exception as e:  # noqa: BLE001
        want, err_ref = None, e

    if currently_in_test_context():   # statistics, for --hypothesis-show-statistics
        event("raised " + type(err).__name__ if err is not None else "returned")
    if err is not None:
        assert isinstance(err, DOCUMENTED), f"undocumented exception {err!r}"
        assert err_ref is not None, f"softmax_c raised {err!r}, the reference returned"
        assert type(err) is type(err_ref), f"softmax_c raised {err!r}, the reference {err_ref!r}"
        _assert_bytes_unchanged(watched, before, f"{name} raised {err!r} after writing")
        return
    assert err_ref is None, f"softmax_c returned, the reference raised {err_ref!r}"

    # Nothing written but out's elements: put out's old contents back and
    # every watched buffer must be as before.
    if isinstance(out, np.ndarray):
        res_out = got[1] if name == "cross_entropy_grad" else got
        assert res_out is out, "the result is not `out`"
        result = out.copy()
        out[...] = out_before
        _assert_bytes_unchanged(watched, before, f"{name} wrote outside `out`")
        out[...] = result
    else:
        _assert_bytes_unchanged(watched, before, f"{name} modified an input")

    fresh = build()
    values = None if oracle is None else oracle(fresh, want)
    b = bound(fresh, want if values is None else values)
    skip = None if lenient is None else lenient(fresh, want, got)
    if name == "cross_entropy_grad":
        assert_matches(got[0], want[0], b[0], "loss", skip[0])
        assert_matches(got[1], want[1], b[1], "grad", skip[1])
    elif name == "cross_entropy":
        assert_matches(got, want, b, name, skip[0])
    else:
        assert_matches(got, want, b, name, skip, values)


def assert_matches(actual, expected, bound, what, skip=None, values=None):
    """Same type, dtype and shape; NaN at the same places; the same
    infinities; finite values within `bound` (NaN in the bound: unbounded)
    of `expected`, or of `values` if given; no comparison where the mask
    `skip` is set."""
    assert type(actual) is type(expected), f"{what}: {type(actual)} != {type(expected)}"
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a64), np.isnan(e64)
    bad = nan_a != nan_e
    lim = np.broadcast_to(np.nan_to_num(np.asarray(bound, np.float64), nan=np.inf,
                                        posinf=np.inf), e.shape)
    # a bound beyond the result dtype's range allows an infinity (float16),
    # and a finite value where the reference overflowed (one of its terms
    # past the range, e.g. lse - z = 2e308 in a smoothing sum, that the
    # kernel's grouping avoids), of the same sign
    big = lim >= float(np.finfo(a.dtype).max) if a.dtype.kind == "f" else False
    inf_e = np.isinf(e64)
    bad |= inf_e & (a64 != e64) & ~(big & (np.sign(a64) == np.sign(e64)))
    fin = ~nan_e & ~inf_e & ~nan_a
    if values is not None:
        e64 = np.asarray(values, np.float64)
    # an infinity where the bound reaches past the range: a loss summed
    # to 0.99999999999999997 times the largest float64 in the reference,
    # from per-sample losses a few units in the last place smaller than
    # the kernel's, whose sum overflows
    edge = False
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            edge = ((np.abs(e64) + lim >= float(np.finfo(a.dtype).max))
                    & (np.sign(a64) == np.sign(e64)))
    with np.errstate(invalid="ignore"):
        bad |= fin & ~((np.abs(a64 - e64) <= lim) | (np.isinf(a64) & (big | edge)))
    if skip is not None:
        bad &= ~skip
    if bad.any():
        idx = np.argwhere(bad)[:5] if a.ndim else [()]
        lines = [f"  at {tuple(i)}: softmax_c {a64[tuple(i)]!r}, "
                 f"{'reference' if values is None else 'oracle'} {e64[tuple(i)]!r}, "
                 f"bound {lim[tuple(i)]:.3g}" for i in idx]
        raise AssertionError(f"{what}: {int(bad.sum())} of {a.size} elements differ\n"
                             + "\n".join(lines))


# ---------------------------------------------------------------- error bounds

def _u(dt):
    return UNIT_ROUNDOFF[_compute_dtype(dt)]


def _tol(dt):
    return TOL[_compute_dtype(dt)]


def _tiny(dt):
    return float(np.finfo(_compute_dtype(dt)).tiny)


def _ulp_min(dt):
    """A few of the smallest subnormal: the rounding of results and
    intermediates below the smallest normal, where u |x| underflows."""
    return 16 * float(np.finfo(_compute_dtype(dt)).smallest_subnormal)


def _f16_extra(expected):
    """Both sides round a float32 result to float16: one float16 ulp."""
    e = np.abs(np.asarray(expected, np.float64))
    return 2.0**-10 * e + 2.0**-24 if np.asarray(expected).dtype == F16 else 0.0


def _slice_length(built):
    """Elements per slice of a forward call that returned."""
    shape = np.shape(built.args[0])
    axis = built.kwargs.get("axis", -1)
    if axis is None:
        return math.prod(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(shape[int(a)] for a in set(int(a) % len(shape) for a in axes))


def _oracle_error(built, values):
    """Relative error of the values compared with: the float64 reference
    rounded (float32 and float16 inputs, see forward_oracle), or the
    reference itself, whose sums along a strided axis are NumPy's
    sequential ones: n u."""
    dt = np.asarray(values).dtype
    if _compute_dtype(dt) == F32:
        return 4 * _u(dt)
    return _u(dt) * (8 + _slice_length(built))


def bound_softmax(built, values):
    """docs/api.md: relative error tol + u |x_i - max| for results above the
    smallest normal number (|x_i - max| <= -log(y_i)), absolute below; plus
    the error of the values compared with."""
    e = np.abs(np.asarray(values, np.float64))
    dt = np.asarray(values).dtype
    with np.errstate(divide="ignore"):
        d = np.minimum(-np.log(e), -math.log(_tiny(dt)))
    rel = _tol(dt) + _u(dt) * d + _oracle_error(built, values)
    return rel * e + _tiny(dt) + _f16_extra(values)


def bound_log(built, values):
    """docs/api.md for log_softmax and logsumexp: absolute tol max(1, |exact|)."""
    e = np.abs(np.asarray(values, np.float64))
    dt = np.asarray(values).dtype
    return ((_tol(dt) + _oracle_error(built, values)) * np.maximum(1, e)
            + _f16_extra(values))


def forward_oracle(name, ref):
    """For float32 and float16 inputs: the reference computed in float64
    and rounded, far more accurate than the reference in float32 (on a
    strided axis NumPy sums sequentially: a relative error up to n u, 1e-5
    on rows of 4099 elements, where the kernels keep 1e-6)."""
    def oracle(built, want):
        x = np.asarray(built.args[0])
        if _compute_dtype(x.dtype) != F32:
            return want
        kw = {k: v for k, v in built.kwargs.items() if k != "out"}
        with np.errstate(all="ignore"):
            hi = getattr(ref, name)(x.astype(np.float64), **kw)
            return np.asarray(hi).astype(np.asarray(want).dtype)
    return oracle


def _pair64(built):
    a, b = (np.asarray(v) for v in built.args[:2])
    axis = built.kwargs.get("axis", -1)
    return a.astype(np.float64), b.astype(np.float64), axis


def bound_backward(name, built, expected):
    """Forward error of the formula: u per operation, the dot product's
    error (n u for the reference's sum; the kernel's is compensated) and the
    kernel's exp (tol relative, tiny absolute) on |terms|; 4x for two
    implementations."""
    a, b, axis = _pair64(built)
    dt = np.asarray(expected).dtype
    u, tol, tiny = _u(dt), _tol(dt), _tiny(dt)
    n = a.shape[axis] if a.ndim else 1
    e = np.abs(np.asarray(expected, np.float64))
    with np.errstate(all="ignore"):
        if name in ("softmax_jvp", "softmax_vjp"):
            s_abs = np.sum(np.abs(a * b), axis=axis, keepdims=True)
            err = np.abs(a) * (u * np.abs(b) + (n * u + tol) * s_abs)
        elif name == "log_softmax_jvp":
            # exp results below the smallest normal are flushed to 0
            # (csrc/family/exp_steps.h exp_neg): up to tiny |v_j| each
            p = np.exp(a)
            s_abs = np.sum(np.abs(p * b), axis=axis, keepdims=True)
            err = u * np.abs(b) + (n * u + tol) * s_abs + tiny * np.sum(
                np.abs(b), axis=axis, keepdims=True)
        else:  # log_softmax_vjp
            p = np.exp(a)
            g_abs = np.sum(np.abs(b), axis=axis, keepdims=True)
            err = u * np.abs(b) + (p * (n * u + tol) + tiny) * g_abs
        return 4 * (err + u * e) + _ulp_min(dt) + _f16_extra(expected)


def bound_jacobian(built, expected):
    e = np.abs(np.asarray(expected, np.float64))
    dt = np.asarray(expected).dtype
    return 8 * _u(dt) * e + _tiny(dt) + _ulp_min(dt) + _f16_extra(expected)


# ---------------------------------------------------------------- forward

@st.composite
def forward_recipes(draw, logsumexp=False):
    x = draw(specs(allow_list=True))
    r = {"x": x, "axis": draw(axes_strategy(len(x.shape))), "threads": draw(THREADS)}
    if logsumexp:
        r["keepdims"] = draw(st.sampled_from([False, True, 1]))
    else:
        r["where"] = draw(where_recipes(x.shape))
        r["out"] = draw(out_recipes(len(x.shape)))
    return r


def _build_forward(r):
    x, _ = _materialize(r["x"])
    kw = {}
    if not (type(r["axis"]) is int and r["axis"] == -1 and r["x"].seed % 2):
        kw["axis"] = r["axis"]   # the default -1 is sometimes left out
    if r["threads"] is not None:
        kw["num_threads"] = r["threads"]
    if "keepdims" in r:
        kw["keepdims"] = r["keepdims"]
    else:
        where, _ = _make_where(r["where"], r["x"].shape)
        if where is not None:
            kw["where"] = where
        out, _ = _make_out(r["out"], r["x"].shape, _result_dtype(r["x"].dtype)
                           if r["x"].dtype.kind in "fiub" else F64, [x])
        if out is not None or r["out"][0] != "none":
            kw["out"] = out
    return Built((x,), kw)


# ---------------------------------------------------------------- backward

@st.composite
def backward_recipes(draw):
    a = draw(specs(dtype=st.one_of(FLOAT_DTYPE, ANY_DTYPE), allow_list=True,
                   modes=["unit", "unit", "logp", "normal", "wide", "tiny", "neginf", "bytes"]))
    shape = a.shape if draw(st.integers(0, 9)) else draw(shapes())
    bdt = st.just(a.dtype) if draw(st.integers(0, 2)) else st.one_of(FLOAT_DTYPE, ANY_DTYPE)
    b = draw(specs(dtype=bdt, shape=shape, allow_list=True,
                   modes=["normal", "normal", "unit", "wide", "ties", "tiny", "bytes"]))
    return {"a": a, "b": b, "axis": draw(axes_strategy(len(a.shape), tuples=False)),
            "threads": draw(THREADS), "out": draw(out_recipes(len(a.shape)))}


def _build_backward(r):
    a, _ = _materialize(r["a"])
    b, _ = _materialize(r["b"])
    kw = {"axis": r["axis"]}
    if r["threads"] is not None:
        kw["num_threads"] = r["threads"]
    ok = r["a"].dtype.kind in "fiub" and r["b"].dtype.kind in "fiub"
    out, _ = _make_out(r["out"], r["a"].shape,
                       _result_dtype(r["a"].dtype, r["b"].dtype) if ok else F64, [a, b])
    if out is not None or r["out"][0] != "none":
        kw["out"] = out
    return Built((a, b), kw)


@st.composite
def jacobian_recipes(draw):
    y = draw(specs(shape=draw(shapes(max_size=200)), allow_list=True,
                   modes=["unit", "normal", "wide", "tiny", "bytes"]))
    return {"y": y, "axis": draw(axes_strategy(len(y.shape), tuples=False))}


def _build_jacobian(r):
    y, _ = _materialize(r["y"])
    return Built((y,), {"axis": r["axis"]})


# ---------------------------------------------------------------- cross-entropy

INDEX_DTYPES = [np.dtype(t) for t in (np.int64, np.int64, np.int32, np.int8, np.int16,
                                      np.uint8, np.uint16, np.uint64, np.intp)]
IGNORE = weighted((16, -100), (3, st.sampled_from([0, 1, 2, -1, 3, np.int32(1)])),
                  (1, st.sampled_from([2**63, -2**63 - 1, 2**64 - 1, np.uint64(2**64 - 1)])),
                  (1, st.sampled_from([1.5, True, "1", None])))
SMOOTHING = weighted((10, 0.0), (6, st.sampled_from([0.1, 0.5, 1.0, 1, np.float32(0.25)])),
                     (1, st.sampled_from([-0.1, 1.01, np.nan, np.inf, True, "0.1", None])))
REDUCTION = weighted((6, "mean"), (3, "sum"), (4, "none"),
                     (1, st.sampled_from(["MEAN", "avg", None])))


@st.composite
def xent_recipes(draw, grad):
    shape = draw(shapes(min_dims=1, max_dims=4, max_size=1200))
    z = draw(specs(dtype=st.one_of(FLOAT_DTYPE, FLOAT_DTYPE, ANY_DTYPE), shape=shape,
                   modes=["normal", "normal", "wide", "offset", "ties", "neginf", "tiny"]))
    axis = draw(axes_strategy(len(shape), tuples=False))
    kind = draw(weighted((10, "index"), (6, "prob"), (2, "list"),
                         (2, st.sampled_from(["bool", "complex", "object", "wrong_shape"]))))
    r = {"z": z, "axis": axis, "kind": kind, "tdtype": draw(st.sampled_from(INDEX_DTYPES))
         if kind in ("index", "list", "wrong_shape") else draw(FLOAT_DTYPE),
         "tseed": draw(st.integers(0, 2**32 - 1)),
         "tspecials": tuple(draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                     st.integers(0, 9)), max_size=2))),
         "tmode": draw(st.sampled_from(["dist", "dist", "any", "onehot"])),
         "tlayout": draw(layouts(len(shape))),
         "ignore": draw(IGNORE),
         "weight": draw(weighted((8, "none"), (3, "f64"), (2, "f32"), (1, "int"), (1, "zeros"),
                                 (1, "f16"), (1, "list"),
                                 (1, st.sampled_from(["wrong_len", "2d", "complex"])))),
         "wseed": draw(st.integers(0, 2**32 - 1)),
         "reduction": draw(REDUCTION), "smoothing": draw(SMOOTHING), "threads": draw(THREADS)}
    if grad:
        r["out"] = draw(out_recipes(len(shape)))
    return r


def _class_axis(r):
    nd = len(r["z"].shape)
    a = r["axis"]
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool) and -nd <= a < nd:
        return int(a) % nd
    return nd - 1


def _build_target(r):
    shape = r["z"].shape
    k = _class_axis(r)
    n_cls = shape[k]
    batch = shape[:k] + shape[k + 1:]
    rng = np.random.default_rng(r["tseed"])
    kind, dt = r["kind"], r["tdtype"]
    if kind in ("index", "list", "wrong_shape"):
        size = math.prod(batch)
        t = rng.integers(0, n_cls, size) if n_cls else np.full(size, -100)
        ii = np.iinfo(dt)
        ign = r["ignore"] if isinstance(r["ignore"], (int, np.integer)) else -100
        specials = [ign, ign, n_cls - 1, 0, -1, n_cls, -100, ii.max, ii.min, ign]
        t = t.astype(object)
        for pos, idx in r["tspecials"]:
            if size:
                t[int(pos * size)] = specials[idx]
        # values the dtype cannot hold wrap around, as C casts would
        t = np.array([int(v) % 2**(8 * dt.itemsize) for v in t], dtype=np.uint64) \
            .astype(dt.str.replace("i", "u")).view(dt).reshape(batch)
        if kind == "list":
            return t.tolist(), None
        if kind == "wrong_shape":
            t = np.zeros(batch + (2,), dt)
        return _materialize(Spec(dt, t.shape, 0, "", (), r["tlayout"]), t)
    if kind == "prob":
        if r["tmode"] == "any":
            q = _values(Spec(dt, shape, r["tseed"], "wide", r["tspecials"], PLAIN))
        else:
            q = rng.random(shape) ** 4
            if r["tmode"] == "onehot":
                q = (q == q.max(axis=k, keepdims=True, initial=0)).astype(np.float64)
            with np.errstate(invalid="ignore"):
                q = (q / q.sum(axis=k, keepdims=True)).astype(dt)
        return _materialize(Spec(dt, shape, 0, "", (), r["tlayout"]), q)
    if kind == "bool":
        return np.zeros(batch, bool), None
    if kind == "complex":
        return np.zeros(batch, np.complex128), None
    return np.zeros(batch, object), None


def _build_weight(r):
    n_cls = r["z"].shape[_class_axis(r)]
    mode = r["weight"]
    if mode == "none":
        return None
    # Nonnegative weights only: with weights of both signs the mean's
    # denominator cancels and no error bound holds.
    w = np.random.default_rng(r["wseed"]).random(n_cls) * 10
    return {"f64": lambda: w, "f32": lambda: w.astype(np.float32),
            "int": lambda: (w * 10).astype(np.int64), "zeros": lambda: np.zeros(n_cls),
            "f16": lambda: w.astype(np.float16), "wrong_len": lambda: np.ones(n_cls + 1),
            "2d": lambda: np.ones((1, n_cls)), "complex": lambda: w.astype(np.complex128),
            "list": lambda: w.tolist()}[mode]()


def _build_xent(r, grad):
    z, _ = _materialize(r["z"])
    t, _ = _build_target(r)
    kw = {"axis": r["axis"], "weight": _build_weight(r), "reduction": r["reduction"],
          "label_smoothing": r["smoothing"]}
    if r["ignore"] != -100:
        kw["ignore_index"] = r["ignore"]
    if r["threads"] is not None:
        kw["num_threads"] = r["threads"]
    if grad:
        zdt = r["z"].dtype
        out, _ = _make_out(r["out"], r["z"].shape,
                           _result_dtype(zdt) if zdt.kind in "fiub" else F64, [z, t])
        if out is not None or r["out"][0] != "none":
            kw["out"] = out
    return Built((z, t), kw)


def bound_xent(built, expected, grad):
    """Forward error of loss and gradient.  With ``U`` each sample's
    effective target weights -- ``(1 - ls) w[t] onehot(t) + (ls / C) w`` for
    class indices, ``w (q (1 - ls) + ls / C)`` for probabilities -- the loss
    is ``sum_c U_c (-logp_c)`` and the gradient ``scale (p sum(U) - U)``:
    errors tol max(1, |logp_c|) in each term of the loss, and tol + u
    |z - max| (<= -logp, at most log(1/tiny)) relative in p."""
    z, t = (np.asarray(v) for v in built.args)
    kw = built.kwargs
    cdt = _compute_dtype(z.dtype)
    k = int(kw["axis"]) % z.ndim
    ls = float(kw["label_smoothing"])
    n_cls = z.shape[k]
    u, tol, tiny = _u(cdt), _tol(cdt), _tiny(cdt)
    w = (np.ones(n_cls) if kw["weight"] is None
         else np.asarray(kw["weight"]).astype(cdt).astype(np.float64))
    eps = ls / n_cls if n_cls else 0.0
    zl = np.moveaxis(z.astype(cdt), k, -1)
    with np.errstate(all="ignore"):
        lp = np.asarray(_log_softmax_last(zl), np.float64)
        if t.dtype.kind in "iu":
            ign = kw.get("ignore_index", -100)
            keep = t != ign
            tt = np.where(keep, t, 0).astype(np.intp)
            onehot = np.zeros(zl.shape)
            if n_cls:
                np.put_along_axis(onehot, tt[..., None], 1.0, -1)
            wt = np.where(keep, w[tt] if n_cls else 0.0, 0.0)
            U = ((1 - ls) * wt)[..., None] * onehot + eps * w * keep[..., None]
            Ua = np.abs(U)
            denom = float(np.sum(wt))
        else:
            q = np.moveaxis(t.astype(cdt), k, -1).astype(np.float64)
            U = w * (q * (1 - ls) + eps)
            Ua = np.abs(w) * (np.abs(q) * (1 - ls) + eps)   # before q (1 - ls) + eps cancels
            denom = float(zl.size // n_cls if zl.size else 0)
        n_rows = max(zl.size // n_cls if n_cls else math.prod(zl.shape[:-1]), 1)
        # each u_c has a relative error u and, below the smallest normal, an
        # absolute one (ulp_min), times -logp_c
        terms = np.where(Ua == 0, 0.0, (Ua + _ulp_min(cdt) / (4 * (tol + n_cls * u)))
                         * np.maximum(1, np.abs(lp)))
        per = 4 * (tol + n_cls * u) * np.sum(terms, -1)
        mag = np.sum(np.where(Ua == 0, 0.0, Ua * np.abs(lp)), -1)
        red = kw["reduction"]
        scale = 1.0 if red != "mean" else (1 / denom if denom else np.inf)
        loss = np.asarray(expected[0] if grad else expected, np.float64)
        if red == "none":
            lb = per + _ulp_min(cdt)
        else:
            lb = (np.sum(per) + 4 * n_rows * u * np.sum(mag)) * abs(scale) \
                + 4 * n_rows * u * np.abs(loss) + _ulp_min(cdt)
        if not grad:
            return lb
        p = np.exp(lp)
        s_abs = np.sum(Ua, -1, keepdims=True)
        d = np.minimum(-lp, -math.log(tiny))
        gb = abs(scale) * (4 * (tol + u * d + n_cls * u) * p * s_abs
                           + 4 * u * (Ua + p * s_abs) + tiny * s_abs
                           + _ulp_min(cdt) * (1 + n_cls * p))
        gb = np.where(s_abs == 0, 0.0, gb)
        # the mean's denominator: a sum of n_rows weights on each side
        gb = np.moveaxis(gb, -1, k) + 4 * n_rows * u * np.abs(
            np.asarray(expected[1], np.float64)) + _ulp_min(cdt) + _f16_extra(expected[1])
        return lb, gb


def _log_softmax_last(z):
    m = np.max(z, axis=-1, keepdims=True, initial=-np.inf)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=-1, keepdims=True))


# ---------------------------------------------------------------- the tests

FORWARD = ("softmax", "log_softmax", "logsumexp")
BACKWARD = ("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp")
NAMES = FORWARD + BACKWARD + ("softmax_jacobian", "cross_entropy", "cross_entropy_grad")


def recipes(name):
    """The hypothesis strategy of recipes for the function `name`."""
    if name in FORWARD:
        return forward_recipes(logsumexp=name == "logsumexp")
    if name in BACKWARD:
        return backward_recipes()
    if name == "softmax_jacobian":
        return jacobian_recipes()
    return xent_recipes(grad=name == "cross_entropy_grad")


def check(name, r, sc, ref):
    """One call of `name` built from recipe `r`, held to the property of
    the module docstring (raises AssertionError).  The atheris target in
    tests/fuzz/ builds its recipes from bytes and calls this too."""
    if name in FORWARD:
        run_case(name, lambda: _build_forward(r),
                 bound_softmax if name == "softmax" else bound_log, sc, ref,
                 oracle=forward_oracle(name, ref))
    elif name in BACKWARD:
        run_case(name, lambda: _build_backward(r),
                 lambda built, want: bound_backward(name, built, want), sc, ref,
                 lambda built, want, got: backward_unbounded(name, built, want, got))
    elif name == "softmax_jacobian":
        run_case(name, lambda: _build_jacobian(r), bound_jacobian, sc, ref)
    else:
        grad = name == "cross_entropy_grad"
        run_case(name, lambda: _build_xent(r, grad),
                 lambda built, want: bound_xent(built, want, grad), sc, ref,
                 lambda built, want, got: xent_reference_overflow(built, want, got, ref, grad))


# Examples per function (6650 in all): about 25 s for the whole file on 2
# cores, normal build or ASan (.ci/sanitize).
EXAMPLES = {"softmax": 800, "log_softmax": 800, "logsumexp": 600, "softmax_jacobian": 400,
            "cross_entropy": 850, "cross_entropy_grad": 850, **{n: 600 for n in BACKWARD}}


def _make_test(name):
    @_settings(EXAMPLES[name])
    @given(data=st.data())
    def test(sc, ref, data):
        check(name, data.draw(recipes(name), label="recipe"), sc, ref)
    test.__name__ = test.__qualname__ = f"test_fuzz_{name}"
    test.__doc__ = f"{name}: softmax_c against the reference, or the same documented error."
    return test


for _name in NAMES:
    globals()[f"test_fuzz_{_name}"] = _make_test(_name)
del _name


def test_fuzz_helpers_build_the_layouts_they_claim():
    """The builder itself: strided, reversed, transposed, unaligned and
    swapped views hold the logical values, in buffers of NaN bytes."""
    spec = Spec(F64, (3, 4), 1, "normal", (), Layout((1, 0), (-2, 3), (1, 0), True, True,
                                                        True, False))
    v, raw = _materialize(spec)
    np.testing.assert_array_equal(v, _values(spec))
    assert not v.flags.aligned and not v.flags.writeable and not v.dtype.isnative
    assert v.strides[0] * v.strides[1] != 0 and not v.flags.c_contiguous
    buf = np.frombuffer(raw[1:1 + 8 * 9 * 9], ">f8")  # (2 * 4 + 1) x (3 * 3) elements
    assert np.isnan(buf).sum() == buf.size - v.size


# ---------------------------------------------------------------- bugs found here
# Fixed ones stay as regression tests; a known, unfixed one is marked
# KNOWN_BUG (a strict xfail, which fails once the bug is fixed).

KNOWN_BUG = pytest.mark.xfail(MODULE_UNDER_TEST == "softmax_c", strict=True,
                              reason="known bug, found by this file")


@pytest.mark.parametrize("layout", ["rows", "cols"])
def test_backward_sum_overflow_gives_the_formulas_inf(sc, layout):
    """Once bug 1: when sum(y v) (or sum(exp(lp) v), sum(g)) overflows or
    holds an infinity, the compensated sum's correction term is inf - inf
    = NaN; it was added to the infinite total (NaN instead of the
    formula's -inf).  The kernels now take the total alone then."""
    y, v = np.full((2, 64), 1e300), np.full((2, 64), 1e10)
    axis = -1 if layout == "rows" else 0
    with np.errstate(all="ignore"):
        assert np.isneginf(sc.softmax_jvp(y, v, axis=axis)).all()
        assert np.isneginf(sc.log_softmax_vjp(np.full((2, 64), 0.5), np.full((2, 64), 1e308),
                                              axis=axis)).all()


def test_probability_targets_far_outside_the_unit_interval(sc):
    """Once bug 2: the loss of probability targets was U log(s) + D with U
    = sum(u), D = sum(u (m - z)): for q = [1e308, 1e308] U overflowed (inf
    where the loss is 2 log(2) 1e308 = 1.386e308, the reference's and
    PyTorch's), and an infinite q gave inf * (m - z_max) = inf * 0 = NaN
    in D (the loss is +inf).  Such rows now take the terms one by one;
    in float32 lanes sum(u) overflows earlier, so float32 too."""
    with np.errstate(all="ignore"):
        loss = sc.cross_entropy(np.zeros(2), np.array([1e308, 1e308]))
        assert np.isclose(loss, 2 * math.log(2) * 1e308, rtol=1e-14, atol=0)
        assert sc.cross_entropy(np.zeros(2), np.array([np.inf, 0.5])) == np.inf
        # float32: sum(q) = 4e38 overflows float32 (the lanes add q_0 and
        # q_16 at every SIMD level), the loss 4e38 log(2) does not
        z = np.full((2, 64), -100, np.float32)
        z[:, [0, 16]] = 0
        q = np.zeros((2, 64), np.float32)
        q[:, [0, 16]] = 2e38
        got = sc.cross_entropy(z, q, reduction="none")
        lse = np.log(2 + 62 * np.exp(-100.0))
        np.testing.assert_allclose(got, [4e38 * lse] * 2, rtol=1e-6)
        assert sc.cross_entropy_grad(z, q, reduction="none", out=z.copy())[0].tolist() == got.tolist()
        # float64 terms q (-logp) = 1.87e308 of both signs: the reference's
        # products overflow and it gives inf - inf = NaN; the loss is
        # log(3) 1e307 (fuzzing found this, CI run of stop 15)
        z, q = np.zeros((2, 3)), np.array([[1.7e308, -1.7e308, 0.1e308]] * 2)
        for red in ("mean", "none"):
            np.testing.assert_allclose(sc.cross_entropy(z, q, reduction=red),
                                       math.log(3) * 1e307, rtol=1e-14)
            assert sc.cross_entropy_grad(z, q, reduction=red)[0].tolist() == \
                sc.cross_entropy(z, q, reduction=red).tolist()


@pytest.mark.parametrize("layout", ["rows", "cols"])
def test_probability_target_terms_beyond_the_range(sc, layout):
    """Once bug 4: with q = +-1e308 the terms u_c (lse - z_c) themselves
    overflow, and the term-by-term loss was inf - inf = NaN where the loss
    is 8e306 (the lanes' sum(u) overflowed when q_0 and q_4 were both
    1e308, sending the row to the terms).  Such sums are now taken again
    with u scaled by 2^-64.  A loss beyond the range is still inf, as is
    one with a -inf logit."""
    z = np.array([0.1, 0.2, 0.12, 0.21, 0.3, 0.4, 0.35, 0.4])
    q = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 1e308
    zz, qq = np.stack([z, z, z]), np.stack([q, q, np.full(8, 1.7e308)])   # 3.7e308 each: inf
    args = (zz, qq) if layout == "rows" else (zz.T.copy(), qq.T.copy())
    axis = -1 if layout == "rows" else 0
    with np.errstate(all="ignore"):
        got = sc.cross_entropy(*args, axis=axis, reduction="none")
        want = 1e308 * (-0.1 - 0.2 + 0.12 + 0.21 - 0.3 - 0.4 + 0.35 + 0.4)   # 8e306
        np.testing.assert_allclose(got[:2], want, rtol=1e-13)
        assert got[2] == np.inf
        assert sc.cross_entropy_grad(*args, axis=axis, reduction="none")[0].tolist() == got.tolist()
        # weights: q w = 2e308 overflows before any term is formed (fuzzing)
        got_w = sc.cross_entropy(*args, axis=axis, reduction="none", weight=np.full(8, 2.0))
        np.testing.assert_allclose(got_w[:2], 2 * want, rtol=1e-13)
        # U log(s) = -2.07e308 overflows, U log(s) + D = -1.07e308 does not
        # (U = sum u = -3e307, D = 1e308; it was -inf: fuzzing)
        zb, qb = np.zeros((2, 1000)), np.zeros((2, 1000))
        zb[:, 1], qb[:, 0], qb[:, 1] = -100, -3.1e307, 1e306
        bargs = (zb, qb) if layout == "rows" else (zb.T.copy(), qb.T.copy())
        np.testing.assert_allclose(sc.cross_entropy(*bargs, axis=axis, reduction="none"),
                                   2 * (-1.5e307 * math.log(999) + 5e307), rtol=1e-13)
        # a -inf logit: its term, and the loss, is inf (it was NaN: fuzzing)
        zz[:, 0] = -np.inf
        args = (zz, qq) if layout == "rows" else (zz.T.copy(), qq.T.copy())
        assert sc.cross_entropy(*args, axis=axis, reduction="none").tolist() == [np.inf] * 3


def test_reference_overflow_allowance_is_exact():
    """The harness's allowance for a non-finite reference loss (float64
    here, _xent_float64_overflow) accepts the exact loss, and the
    order-dependent overflow only where the magnitudes leave the range: it
    must not accept any finite value against an infinite exact loss."""
    z, q = np.zeros((2, 3)), np.array([[1.7e308, -1.7e308, 0.1e308]] * 2)
    kw = {"axis": -1, "weight": None, "reduction": "none", "label_smoothing": 0.0}
    nan2 = np.full(2, np.nan)
    exact = math.log(3) * 1e307
    assert _xent_float64_overflow(Built((z, q), kw), nan2, np.full(2, exact)).all()
    assert not _xent_float64_overflow(Built((z, q), kw), nan2, np.full(2, exact * 1.01)).any()
    q[:, 2] = 1.7e308           # exact loss 1.87e308 per sample: beyond float64
    for red, got, ok in [("sum", np.inf, True), ("sum", 1e308, False), ("mean", np.nan, True),
                         ("none", np.full(2, np.inf), True), ("none", np.full(2, 1e308), False)]:
        kw["reduction"] = red
        want = np.full(np.shape(got), np.nan)
        assert np.all(_xent_float64_overflow(Built((z, q), kw), want, got) == ok), (red, got)


@pytest.mark.parametrize("n", [40, 300000])   # cache-resident and streamed rows
def test_float32_smoothing_sum_beyond_float32(sc, n):
    """Once bug 3: the smoothing term sum_c w_c (m - z_c) was added in
    float32 lanes for float32 logits, where m - z_c = 6.8e38 overflows
    while the loss (that sum / n) is finite: inf instead of 1.7e37."""
    z = np.zeros((1, n), np.float32)
    z[0, ::2] = -3.4e38
    z[0, 1::2] = 3.4e38
    want = (3.4e38 + 3.4e38) / 2 + math.log(n / 2)      # lse - z averaged, ls = 1
    with np.errstate(all="ignore"):
        got = sc.cross_entropy(z, np.array([1]), label_smoothing=1.0)
        assert np.isclose(got, want, rtol=1e-6)
        loss, _ = sc.cross_entropy_grad(z, np.array([1]), label_smoothing=1.0)
        assert loss == got
