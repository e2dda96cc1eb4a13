"""The fused inference options of softmax, log_softmax and logsumexp
(scale, softcap, bias, where, causal, sink; docs/api.md), against the NumPy
reference (softmax_c.reference, float64) and, where it has the operation,
PyTorch's unfused composition."""
import json

import numpy as np
import pytest

from conftest import MODULE_UNDER_TEST, assert_unchanged, run_at_level, simd_levels, snapshot

OPS = ("softmax", "log_softmax", "logsumexp")
DTYPES = (np.float32, np.float64)
U = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


def check(op, got, want, dtype, zscale=10.0, factor=64):
    """got (the kernel's) against want (the reference's, float64): the same
    NaN and infinity positions, and finite values within the accuracy bound
    with z's rounding allowed for: relative for softmax (plus the smallest
    normal), absolute times max(1, |result|) for the others."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN positions"
    fin = np.isfinite(want)
    assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)]), "inf"
    u = U[np.dtype(dtype)]
    bound = factor * u * (1.0 + zscale)
    g, w = got[fin], want[fin]
    if op == "softmax":
        err = np.abs(g - w) <= bound * np.abs(w) + np.finfo(dtype).tiny
    else:
        err = np.abs(g - w) <= bound * np.maximum(1.0, np.abs(w))
    assert err.all(), f"max error {np.max(np.abs(g - w))} at {np.argmin(err)}"


def both(sc, ref, op, x, **kw):
    return getattr(sc, op)(x, **kw), getattr(ref, op)(x, **kw)


# ---------------------------------------------------------------- tanh

@pytest.mark.skipif(MODULE_UNDER_TEST != "softmax_c", reason="the kernels' own tanh")
@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_tanh_within_a_few_ulp(dtype):
    from softmax_c import _kernels
    x = np.concatenate([np.linspace(-20, 20, 100001), np.geomspace(1e-30, 4, 20001),
                        -np.geomspace(1e-30, 4, 20001), [0.0, 1e-45, 0.5, -0.5]]).astype(dtype)
    y = np.empty_like(x)
    _kernels.tanh_rows(x, y)
    want = np.tanh(x.astype(np.longdouble))
    ulp = np.spacing(np.abs(want.astype(dtype))).astype(np.longdouble)
    assert float(np.max(np.abs(y - want) / ulp)) <= 4.0
    s = np.array([np.inf, -np.inf, np.nan], dtype)
    t = np.empty_like(s)
    _kernels.tanh_rows(s, t)
    assert t[0] == 1 and t[1] == -1 and np.isnan(t[2])


# ---------------------------------------------------------------- each option

def _options(rng, shape, dtype):
    B, H, Q, N = shape
    return {
        "scale": dict(scale=0.125),
        "scale_row": dict(scale=rng.uniform(0.1, 2, (B, H, Q))),
        "softcap": dict(softcap=5.0, scale=2.0),
        "bias": dict(bias=rng.standard_normal((Q, N))),
        "bias_mask": dict(bias=np.where(rng.random((Q, N)) < 0.3, -np.inf, 0.0)),
        "where": dict(where=rng.random((Q, N)) < 0.7, scale=1.5),
        "causal": dict(causal=True),
        "causal_k": dict(causal=-2),
        "sink": dict(sink=0.7),
        "sink_row": dict(sink=rng.standard_normal((B, H, Q))),
        "all": dict(scale=0.3, softcap=3.0, bias=rng.standard_normal((H, 1, N)).astype(np.float32),
                    causal=True, sink=rng.standard_normal((H, 1))),
        "cap_causal_where": dict(softcap=2.0, causal=1, where=rng.random((1, 1, Q, N)) < 0.8),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", list(_options(np.random.default_rng(0), (2, 3, 9, 21),
                                                np.float32)))
def test_options_against_reference(sc, ref, rng, op, dtype, case):
    shape = (2, 3, 9, 21)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    kw = _options(rng, shape, dtype)[case]
    got, want = both(sc, ref, op, x, **kw)
    assert got.dtype == np.dtype(dtype)
    check(op, got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", range(1, 41))
def test_tails(sc, ref, rng, dtype, n):
    x = (rng.standard_normal((3, 5, n)) * 4).astype(dtype)
    kw = dict(scale=0.7, softcap=4.0, bias=rng.standard_normal((5, n)), causal=True,
              sink=rng.standard_normal((3, 5)))
    for op in OPS:
        got, want = both(sc, ref, op, x, **kw)
        check(op, got, want, dtype)
    for op in OPS:
        got, want = both(sc, ref, op, x, scale=2.0, bias=rng.standard_normal(n))
        check(op, got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_softcap(sc, ref, rng, dtype):
    x = (rng.standard_normal((2, 40000)) * 10).astype(dtype)
    for op in OPS:
        got, want = both(sc, ref, op, x, softcap=30.0, scale=1 / 0.7)
        check(op, got, want, dtype, zscale=30.0)


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("bshape", [(21,), (9, 21), (1, 3, 1, 21), (2, 1, 9, 1), (3, 9, 1),
                                    (2, 3, 9, 21), ()])
@pytest.mark.parametrize("bdtype", [np.float16, np.float32, np.float64])
def test_bias_broadcast(sc, ref, rng, bshape, bdtype):
    x = rng.standard_normal((2, 3, 9, 21)).astype(np.float32)
    bias = rng.standard_normal(bshape).astype(bdtype)
    for op in OPS:
        got, want = both(sc, ref, op, x, bias=bias, causal=True)
        check(op, got, want, np.float32)


@pytest.mark.parametrize("sshape", [(), (9,), (3, 9), (2, 3, 9), (2, 3, 9, 1), (3, 1), (2, 1, 1)])
def test_per_row_scale_and_sink_shapes(sc, ref, rng, sshape):
    x = rng.standard_normal((2, 3, 9, 21))
    s = rng.uniform(0.1, 2.0, sshape)
    for op in OPS:
        got, want = both(sc, ref, op, x, scale=s, sink=-s)
        check(op, got, want, np.float64)


@pytest.mark.parametrize("k", [True, 0, -1, -3, 5, 20, 21, 100, -9, -100])
@pytest.mark.parametrize("qn", [(9, 21), (21, 9), (1, 17), (12, 12)])
def test_causal_offsets(sc, ref, rng, k, qn):
    x = rng.standard_normal((2,) + qn)
    for op in OPS:
        got, want = both(sc, ref, op, x, causal=k)
        check(op, got, want, np.float64)
    # causal=True is k = n_keys - n_queries
    if k is True:
        got = sc.softmax(x, causal=qn[1] - qn[0])
        np.testing.assert_array_equal(sc.softmax(x, causal=True), got)


def test_causal_masks_without_reading(sc, rng):
    x = rng.standard_normal((4, 6))
    x[np.triu_indices(4, 3)] = np.nan  # j > i + 2: excluded by causal=True
    y = sc.softmax(x, causal=True)
    assert not np.isnan(y).any()
    assert np.all(y[np.triu_indices(4, 3)] == 0)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-14)


def test_decode_row_sees_every_key(sc, rng):
    x = rng.standard_normal((32, 1, 4096)).astype(np.float32)
    np.testing.assert_allclose(sc.softmax(x, causal=True, scale=0.125),
                               sc.softmax(x * np.float32(0.125)), rtol=2e-6, atol=1e-12)


def test_fully_excluded_rows(sc, ref):
    x = np.ones((3, 5))
    assert np.all(sc.softmax(x, causal=-10) == 0)
    assert np.all(sc.log_softmax(x, causal=-10) == -np.inf)
    assert np.all(sc.logsumexp(x, causal=-10) == -np.inf)
    w = np.zeros((3, 5), bool)
    assert np.all(sc.softmax(x, where=w, scale=2.0) == 0)
    assert np.all(sc.logsumexp(x, where=w) == -np.inf)
    b = np.full(5, -np.inf)
    assert np.all(sc.softmax(x, bias=b) == 0)
    # with a sink: nothing of the row, the sink is the logsumexp
    assert np.all(sc.softmax(x, causal=-10, sink=1.5) == 0)
    np.testing.assert_array_equal(sc.logsumexp(x, causal=-10, sink=1.5), 1.5)
    # a row of -inf with an option: nothing left either, never NaN
    xi = np.full((2, 4), -np.inf)
    assert np.all(sc.softmax(xi, scale=2.0) == 0)
    assert np.all(sc.logsumexp(xi, scale=2.0) == -np.inf)


def test_sink(sc, ref, rng):
    x = rng.standard_normal((4, 10))
    y = sc.softmax(x, sink=0.0)
    e = np.exp(x)
    np.testing.assert_allclose(y, e / (e.sum(-1, keepdims=True) + 1.0), rtol=1e-14)
    assert np.all(y.sum(-1) < 1)
    np.testing.assert_allclose(sc.logsumexp(x, sink=0.0), np.log(e.sum(-1) + 1.0), rtol=1e-14)
    np.testing.assert_allclose(sc.log_softmax(x, sink=0.0), np.log(y), rtol=1e-13)
    # a sink of -inf is no sink
    np.testing.assert_allclose(sc.softmax(x, sink=-np.inf), sc.softmax(x), rtol=1e-15)
    # a huge sink dominates
    assert np.all(sc.softmax(x, sink=1000.0) == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf(sc, ref, rng, dtype):
    x = rng.standard_normal((6, 8, 11)).astype(dtype)
    x[0, 3, 2] = np.nan          # kept: row NaN
    x[1, 0, 10] = np.nan         # excluded by causal: no effect
    x[2, 4, 1] = np.inf          # kept: row NaN (logsumexp +inf)
    x[3, 2, :] = -np.inf         # nothing left
    x[4, 5, 0] = -np.inf
    x[5, 6, :] = -np.inf         # NaN among -inf only (the max skips NaN): row NaN
    x[5, 6, 3] = np.nan
    x[5, 1, 0] = np.nan          # a one-element kept prefix of NaN
    for kw in (dict(causal=True), dict(causal=True, scale=2.0, sink=0.5),
               dict(causal=2, bias=np.where(rng.random((8, 11)) < 0.2, -np.inf, 1.0)),
               dict(causal=-1, softcap=3.0, bias=np.ones((8, 11))), dict(scale=0.0),
               dict(scale=-1.5, causal=True)):
        for op in OPS:
            got, want = both(sc, ref, op, x, **kw)
            check(op, got, want, dtype)
    for op in OPS:  # softcap makes +inf finite
        got, want = both(sc, ref, op, x, softcap=3.0)
        check(op, got, want, dtype)


# ---------------------------------------------------------------- layouts, threads, out

def test_layouts(sc, ref, rng):
    base = rng.standard_normal((4, 12, 30))
    bias = rng.standard_normal((12, 30))
    for x in (base[:, :, ::2], base[:, ::-1], base[::2], np.asfortranarray(base)):
        for op in OPS:
            got, want = both(sc, ref, op, x, bias=bias[:x.shape[1], :x.shape[2]], causal=True,
                             scale=0.5)
            check(op, got, want, np.float64)
    ro = base.copy()
    ro.flags.writeable = False
    check("softmax", *both(sc, ref, "softmax", ro, softcap=2.0), np.float64)


@pytest.mark.parametrize("axis", [0, 1, -3])
def test_non_last_axis(sc, ref, rng, axis):
    x = rng.standard_normal((7, 5, 9)).astype(np.float32)
    red = tuple(s for d, s in enumerate(x.shape) if d != axis % 3)
    for op in OPS:
        got, want = both(sc, ref, op, x, axis=axis, scale=rng.uniform(0.5, 1, red), softcap=2.0,
                         bias=rng.standard_normal(x.shape), sink=0.1)
        check(op, got, want, np.float32)
    with pytest.raises(ValueError, match="causal"):
        sc.softmax(x, axis=axis, causal=True)


def test_threads_bitwise(sc, rng):
    x = rng.standard_normal((4, 6, 128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 128)).astype(np.float32)
    for op in OPS:
        one = getattr(sc, op)(x, scale=0.125, bias=b, causal=True, num_threads=1)
        two = getattr(sc, op)(x, scale=0.125, bias=b, causal=True, num_threads=2)
        np.testing.assert_array_equal(one, two)
    x = rng.standard_normal((3, 50000)).astype(np.float32)
    np.testing.assert_array_equal(sc.softmax(x, softcap=30.0, num_threads=1),
                                  sc.softmax(x, softcap=30.0, num_threads=2))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_large_outputs(sc, ref, rng, op):
    """Outputs of 4 MiB or more (softmax: rows made in scratch rows and
    written a row behind through streaming stores), special rows among the
    others (NaN, +inf, all -inf, fully masked, scale <= 0): against the
    reference, and bitwise alike on one and two threads and in place."""
    x = rng.standard_normal((2, 2, 512, 512)).astype(np.float32)
    x[0, 0, 10, 3] = np.nan
    x[0, 1, 20] = -np.inf
    x[1, 0, 300, 5] = np.inf
    bias = np.where(rng.random((512, 512)) < 0.2, -np.inf,
                    rng.standard_normal((512, 512))).astype(np.float32)
    bias[7] = -np.inf
    srow = rng.uniform(0.1, 2, (2, 2, 512))
    srow[1, 1, 40:43] = (-0.5, 0.0, 3.0)
    for kw in (dict(scale=0.125, causal=True), dict(bias=bias), dict(scale=srow, causal=-3),
               dict(softcap=5.0, scale=2.0, causal=True), dict(bias=bias, scale=srow)):
        want = getattr(ref, op)(x, **kw)
        one = getattr(sc, op)(x, num_threads=1, **kw)
        check(op, one, want, np.float32)
        np.testing.assert_array_equal(getattr(sc, op)(x, num_threads=2, **kw), one)
        y = x.copy()
        getattr(sc, op)(y, out=y, num_threads=1, **kw)
        np.testing.assert_array_equal(y, one)
    # rows of 8 KiB whose output rows do not follow each other
    x = rng.standard_normal((512, 2048)).astype(np.float32)
    out = np.empty((512, 4096), np.float32)[:, :2048]
    getattr(sc, op)(x, causal=True, scale=0.5, out=out)
    check(op, out, getattr(ref, op)(x, causal=True, scale=0.5), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hot_path_as_general_path(sc, ref, rng, dtype):
    """C-contiguous inputs with scalar options (the hot path, _fused.pxi's
    fast_fused) give the bits of the general path (a strided view of the
    same values) and the reference's values, for each bias layout."""
    x = rng.standard_normal((2, 3, 5, 37)).astype(dtype)
    strided = np.empty(x.shape[:-1] + (74,), dtype)[..., ::2]
    strided[...] = x
    biases = [None, rng.standard_normal(37).astype(dtype), rng.standard_normal((5, 37)).astype(dtype),
              rng.standard_normal((3, 5, 37)).astype(dtype), rng.standard_normal(x.shape).astype(dtype)]
    biases[2][1, :30] = -np.inf
    for bias in biases:
        for kw in (dict(scale=0.125), dict(scale=3, causal=True), dict(causal=-2, sink=0.5),
                   dict(softcap=4, scale=-0.5), dict(causal=40), dict(sink=-np.inf, causal=1)):
            kw = dict(kw, bias=bias)
            for op in OPS:
                got = getattr(sc, op)(x, **kw)
                np.testing.assert_array_equal(got, getattr(sc, op)(strided, **kw))
                check(op, got, getattr(ref, op)(x, **kw), dtype)
            out = np.empty_like(x)
            assert sc.softmax(x, out=out, **kw) is out
            np.testing.assert_array_equal(out, sc.softmax(strided, **kw))
    v = sc.logsumexp(x[0, 0, 0], scale=2.0)
    assert np.ndim(v) == 0 and v == sc.logsumexp(strided[0, 0, 0], scale=2.0)
    srow = rng.uniform(0.1, 2, x.shape[:-1]).astype(dtype)  # per-row arrays of x's dtype
    krow = rng.standard_normal(x.shape[:-1]).astype(dtype)
    krow[0, 1, 2] = -np.inf
    for kw in (dict(scale=srow), dict(scale=srow, sink=krow, causal=True, bias=biases[3]),
               dict(sink=krow, softcap=2.0, bias=biases[1])):
        for op in OPS:
            got = getattr(sc, op)(x, **kw)
            np.testing.assert_array_equal(got, getattr(sc, op)(strided, **kw))
            check(op, got, getattr(ref, op)(x, **kw), dtype)
    srow[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="scale"):
        sc.softmax(x, scale=srow)
    s64 = 1 / np.sqrt(np.float64(8.0))  # NumPy's float64 scalar, as from np.sqrt
    np.testing.assert_array_equal(sc.softmax(x, scale=s64, causal=True),
                                  sc.softmax(strided, scale=float(s64), causal=True))


def test_out_and_in_place(sc, ref, rng):
    x = rng.standard_normal((3, 8, 8))
    want = ref.softmax(x, scale=0.5, causal=True)
    out = np.empty_like(x)
    assert sc.softmax(x, scale=0.5, causal=True, out=out) is out
    check("softmax", out, want, np.float64)
    y = x.copy()
    assert sc.softmax(y, scale=0.5, causal=True, out=y) is y
    check("softmax", y, want, np.float64)
    o32 = np.empty(x.shape, np.float64)[:, :, ::-1]
    sc.log_softmax(x, bias=x, out=o32)
    check("log_softmax", o32, ref.log_softmax(x, bias=x), np.float64)
    # out overlapping the bias goes through a copy
    b = rng.standard_normal((3, 8, 8))
    want = ref.softmax(x, bias=b)
    sc.softmax(x, bias=b, out=b)
    check("softmax", b, want, np.float64)


def test_float16_and_ints(sc, ref, rng):
    x = rng.standard_normal((4, 16)).astype(np.float16)
    got = sc.softmax(x, scale=0.5, sink=0.0)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, ref.softmax(x, scale=0.5, sink=0.0), rtol=2e-3)
    xi = rng.integers(-3, 3, (4, 16))
    check("logsumexp", *both(sc, ref, "logsumexp", xi, softcap=2.0), np.float64)


def test_logsumexp_keepdims_and_scalar(sc, ref, rng):
    x = rng.standard_normal((3, 4, 5))
    got = sc.logsumexp(x, keepdims=True, scale=2.0, causal=True)
    assert got.shape == (3, 4, 1)
    check("logsumexp", got, ref.logsumexp(x, keepdims=True, scale=2.0, causal=True), np.float64)
    v = sc.logsumexp(x[0, 0], scale=2.0)
    assert np.ndim(v) == 0
    np.testing.assert_allclose(v, ref.logsumexp(x[0, 0], scale=2.0), rtol=1e-14)


@pytest.mark.skipif(MODULE_UNDER_TEST != "softmax_c", reason="the reference takes no masked array")
def test_masked_array(sc, rng):
    x = np.ma.masked_array(rng.standard_normal((3, 6)), mask=rng.random((3, 6)) < 0.3)
    y = sc.softmax(x, scale=2.0)
    assert isinstance(y, np.ma.MaskedArray)
    data = np.where(x.mask, -np.inf, x.data * 2.0)
    e = np.exp(data - data.max(-1, keepdims=True))
    np.testing.assert_allclose(y.filled(0), np.nan_to_num(e / e.sum(-1, keepdims=True)),
                               rtol=1e-13, atol=1e-300)


def test_no_options_is_the_plain_path(sc, rng):
    x = rng.standard_normal((5, 100)).astype(np.float32)
    np.testing.assert_array_equal(sc.softmax(x, causal=False), sc.softmax(x))
    np.testing.assert_array_equal(sc.softmax(x, scale=None, sink=None), sc.softmax(x))


# ---------------------------------------------------------------- errors

BAD = [
    (dict(softcap=0.0), ValueError, "softcap"),
    (dict(softcap=-1.0), ValueError, "softcap"),
    (dict(softcap=np.inf), ValueError, "softcap"),
    (dict(softcap="1"), TypeError, "softcap"),
    (dict(softcap=True), TypeError, "softcap"),
    (dict(scale=np.nan), ValueError, "scale"),
    (dict(scale=np.inf), ValueError, "scale"),
    (dict(scale=np.array([1.0, np.inf, 1.0, 1.0])), ValueError, "scale"),
    (dict(scale=np.ones(3)), ValueError, "scale"),
    (dict(scale="a"), TypeError, "scale"),
    (dict(bias=np.ones(4)), ValueError, "bias"),
    (dict(bias=np.ones((2, 4, 5))), ValueError, "bias"),
    (dict(bias=np.ones(5, int)), TypeError, "bias"),
    (dict(where=np.ones(4, bool), scale=1.0), ValueError, "where"),
    (dict(causal=1.5), TypeError, "causal"),
    (dict(causal="yes"), TypeError, "causal"),
    (dict(sink=np.nan), ValueError, "sink"),
    (dict(sink=np.inf), ValueError, "sink"),
    (dict(sink=np.ones(5)), ValueError, "sink"),
    (dict(scale=2.0, axis=(0, 1)), ValueError, "axis"),
]


@pytest.mark.parametrize("op", ("softmax", "log_softmax"))
@pytest.mark.parametrize("kw,exc,name", BAD)
def test_bad_options_raise_before_writing(sc, op, kw, exc, name):
    x = np.arange(20.0).reshape(4, 5)
    out = np.full_like(x, 7.0)
    before, xb = snapshot(out), snapshot(x)
    with pytest.raises(exc, match=name):
        getattr(sc, op)(x, out=out, **kw)
    assert_unchanged(out, before)
    assert_unchanged(x, xb)


@pytest.mark.parametrize("kw,exc,name", BAD)
def test_bad_options_logsumexp(sc, kw, exc, name):
    with pytest.raises(exc, match=name):
        sc.logsumexp(np.arange(20.0).reshape(4, 5), **kw)


def test_causal_needs_two_dims_and_last_axis(sc):
    for op in OPS:
        with pytest.raises(ValueError, match="causal"):
            getattr(sc, op)(np.ones(5), causal=True)
        with pytest.raises(ValueError, match="causal"):
            getattr(sc, op)(np.ones((3, 5)), axis=0, causal=True)


# ---------------------------------------------------------------- SIMD levels

LEVEL_SCRIPT = r"""
import json, sys
import numpy as np
import softmax_c as sc
from softmax_c import reference as ref
assert sc.build_info()["simd"] == sys.argv[1]
rng = np.random.default_rng(1)
worst = 0.0
for dt in (np.float32, np.float64):
    u = 2.0**-24 if dt == np.float32 else 2.0**-53
    for n in list(range(1, 41)) + [63, 64, 65, 200, 1000]:
        x = (rng.standard_normal((2, 7, n)) * 4).astype(dt)
        x[1, 3, 0] = np.nan
        b = rng.standard_normal((7, n))
        b[2, ::3] = -np.inf
        # with a sink (the general row), without (the plain steps over the
        # kept prefix: scale folded in, or z made with softcap / bias)
        for kw in (dict(scale=rng.uniform(0.5, 1.5, (2, 7)), softcap=5.0, bias=b, causal=True,
                        sink=0.3),
                   dict(scale=rng.uniform(0.5, 1.5, (2, 7)), causal=True),
                   dict(scale=0.7, softcap=5.0, bias=b, causal=-1)):
            for op in ("softmax", "log_softmax", "logsumexp"):
                g = np.asarray(getattr(sc, op)(x, **kw), np.float64)
                w = np.asarray(getattr(ref, op)(x, **kw), np.float64)
                assert np.array_equal(np.isnan(g), np.isnan(w)), (op, n)
                f = np.isfinite(w)
                assert np.array_equal(g[~f & ~np.isnan(w)], w[~f & ~np.isnan(w)]), (op, n)
                s = np.abs(w[f]) if op == "softmax" else np.maximum(1, np.abs(w[f]))
                e = np.abs(g[f] - w[f]) / (s * u * 11 + np.finfo(dt).tiny)
                worst = max(worst, float(e.max(initial=0)))
        t = np.linspace(-10, 10, 1001).astype(dt)
        y = np.empty_like(t)
        from softmax_c import _kernels
        _kernels.tanh_rows(t, y)
        ex = np.tanh(t.astype(np.longdouble))
        assert np.max(np.abs(y - ex) / np.spacing(np.abs(ex.astype(dt)))) <= 4
# a large output: softmax rows pipelined through scratch rows
x = rng.standard_normal((4, 512, 512)).astype(np.float32)
x[1, 40, 7] = np.nan
b = np.where(rng.random((512, 512)) < 0.2, -np.inf, 0).astype(np.float32)
for kw in (dict(scale=0.125, causal=True), dict(bias=b), dict(softcap=5.0, causal=True)):
    g = sc.softmax(x, **kw).astype(np.float64)
    w = ref.softmax(x, **kw)
    assert np.array_equal(np.isnan(g), np.isnan(w)), kw
    f = np.isfinite(w)
    e = np.abs(g[f] - w[f]) / (np.abs(w[f]) * 2.0**-24 * 11 + np.finfo(np.float32).tiny)
    worst = max(worst, float(e.max(initial=0)))
print(json.dumps(worst))
"""


@pytest.mark.skipif(MODULE_UNDER_TEST != "softmax_c", reason="the kernels' levels")
def test_every_simd_level():
    for level in simd_levels():
        out = run_at_level(level, LEVEL_SCRIPT, level, timeout=300)
        assert json.loads(out) < 64, (level, out)


# ---------------------------------------------------------------- PyTorch

def test_against_torch(sc, rng):
    torch = pytest.importorskip("torch")
    B, H, Q, N = 2, 3, 16, 16
    x = rng.standard_normal((B, H, Q, N)).astype(np.float32)
    mask = np.where(rng.random((Q, N)) < 0.2, -1e9, 0.0).astype(np.float32)
    tx, tm = torch.from_numpy(x), torch.from_numpy(mask)
    want = torch.softmax(tx * 0.125 + tm, dim=-1).numpy()
    np.testing.assert_allclose(sc.softmax(x, scale=0.125, bias=mask), want, rtol=3e-6,
                               atol=1e-7)
    causal = torch.ones(Q, N, dtype=torch.bool).triu(1)
    want = torch.softmax((tx * 0.125).masked_fill(causal, float("-inf")), dim=-1).numpy()
    np.testing.assert_allclose(sc.softmax(x, scale=0.125, causal=True), want, rtol=3e-6,
                               atol=1e-7)
    want = torch.log_softmax((tx * 0.125).masked_fill(causal, float("-inf")), dim=-1).numpy()
    np.testing.assert_allclose(sc.log_softmax(x, scale=0.125, causal=True), want, rtol=3e-6,
                               atol=2e-6)
    logits = (rng.standard_normal((4, 3000)) * 40).astype(np.float32)
    tl = torch.from_numpy(logits)
    want = torch.softmax(30.0 * torch.tanh(tl / 0.7 / 30.0), dim=-1).numpy()
    np.testing.assert_allclose(sc.softmax(logits, softcap=30.0, scale=1 / 0.7), want,
                               rtol=2e-5, atol=1e-30)
    want = torch.logsumexp(30.0 * torch.tanh(tl / 30.0), dim=-1).numpy()
    np.testing.assert_allclose(sc.logsumexp(logits, softcap=30.0), want, rtol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_outputs_stream(sc, ref, rng, dtype):
    # 4 MiB or more in rows of 1 KiB or more: rows made in a work row and
    # written through streaming stores (family/fused.h); same values
    x = (rng.standard_normal((2, 4, 256, 520)) * 3).astype(dtype)
    bias = np.where(rng.random((256, 520)) < 0.1, -np.inf, rng.standard_normal((256, 520)))
    x[0, 0, 5, 3] = np.nan
    for kw in (dict(scale=0.125, causal=True), dict(bias=bias, sink=0.5),
               dict(softcap=3.0, causal=-7, scale=2.0)):
        for op in ("softmax", "log_softmax"):
            got, want = both(sc, ref, op, x, **kw)
            check(op, got, want, dtype)
            out = np.empty(x.shape[:-1] + (x.shape[-1] + 3,), dtype)[..., 1:-2]
            getattr(sc, op)(x, out=out, **kw)
            np.testing.assert_array_equal(out, got)


def test_options_do_not_combine_with_dtype_or_weights(sc):
    """dtype= with a fused option, and logsumexp's b= / return_sign= with a
    fused option or where=, raise TypeError naming the parameter."""
    x = np.ones((2, 3), np.float16)
    for op in OPS:
        with pytest.raises(TypeError, match="dtype"):
            getattr(sc, op)(x, scale=0.5, dtype=np.float32)
    y = np.ones((2, 3))
    with pytest.raises(TypeError, match="`b`"):
        sc.logsumexp(y, b=np.ones(3), scale=0.5)
    with pytest.raises(TypeError, match="`b`"):
        sc.logsumexp(y, return_sign=True, where=np.ones(3, bool))
