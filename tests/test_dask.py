"""softmax_c.dask against the in-memory functions, within the accuracy
contract of docs/api.md, on dask arrays whose normalized axes are split
into chunks; a few cases on a real multi-process LocalCluster, so that
arguments and results are pickled between processes."""
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import softmax_c as sc  # noqa: E402
import softmax_c.dask as scd  # noqa: E402
from softmax_c import _api  # noqa: E402

from conftest import LONGDOUBLE_IS_EXTENDED, TOL, UNIT_ROUNDOFF, AxisError  # noqa: E402

inf, nan = np.inf, np.nan


def run(y):
    """Compute in this process, one task at a time."""
    return y.compute(scheduler="sync")


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return (axis % ndim,) if isinstance(axis, int) else tuple(a % ndim for a in axis)


def _exact(kind, x, axis, where):
    """`kind` of `x` in long double: exact for the float32 and float64
    bounds wherever the in-memory result is finite."""
    xl = np.asarray(x).astype(np.longdouble)
    if where is not None:
        xl = np.where(where, xl, -inf)
    axes = _axes(axis, xl.ndim)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.max(xl, axis=axes, keepdims=True, initial=-inf)
        e = np.exp(xl - m)
        s = np.sum(e, axis=axes, keepdims=True)
        if kind == "softmax":
            return e / s
        if kind == "log_softmax":
            return (xl - m) - np.log(s)
        return m + np.log(s)


def assert_forward(kind, got, x, axis=-1, where=None, keepdims=False):
    """`got` (computed) is softmax_c's in-memory `kind` of `x`, NaN and
    infinities exactly where it has them, and elsewhere within the
    contract's bound of the exact result -- softmax to ``tol + u|x_i -
    max|`` relative, log_softmax and logsumexp to ``tol * max(1,
    |result|)`` absolute -- so within twice the bound of the in-memory
    result, itself within the bound."""
    if kind == "logsumexp":
        mem = sc.logsumexp(x, axis, keepdims=keepdims)
    else:
        mem = getattr(sc, kind)(x, axis, where=where)
    got = np.asarray(got)
    mem = np.asarray(mem)
    assert got.dtype == mem.dtype and got.shape == mem.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(mem))
    special = ~np.isfinite(mem)
    np.testing.assert_array_equal(got[special], mem[special])
    if mem.dtype == np.float16:  # the float32 result rounded once
        np.testing.assert_allclose(got, mem, rtol=2.0**-10, atol=2.0**-24)
        return
    dt = mem.dtype
    tol, u = TOL[dt], UNIT_ROUNDOFF[dt]
    ok = ~special
    g = got.astype(np.float64)
    refs = [(mem, 2.0)]
    if LONGDOUBLE_IS_EXTENDED:
        exact = _exact(kind, x, axis, where)
        if kind == "logsumexp":
            exact = exact.reshape(mem.shape)
        refs.append((exact, 1.0))
    if kind == "softmax":
        xc = np.asarray(x, dt)
        if where is not None:
            xc = np.where(where, xc, -inf)
        fin = np.where(np.isfinite(xc), xc, -inf)
        m = np.max(fin, axis=_axes(axis, x.ndim), keepdims=True, initial=-inf)
        with np.errstate(invalid="ignore"):
            bound = (tol + u * np.abs(xc.astype(np.float64) - m)) * mem
        normal = ok & (mem >= np.finfo(dt).tiny)
        for ref, times in refs:
            with np.errstate(invalid="ignore"):
                err = np.abs(g - ref)
            assert np.all(err[normal] <= times * bound[normal]), \
                float(np.max(err[normal] / bound[normal]))
        tiny = ok & ~normal  # below the normal range: flushed or tiny in both
        assert np.all(np.abs(got[tiny]) <= np.finfo(dt).tiny)
    else:
        bound = tol * np.maximum(1, np.abs(mem))
        for ref, times in refs:
            with np.errstate(invalid="ignore"):
                err = np.abs(g - ref)
            assert np.all(err[ok] <= times * bound[ok]), float(np.max(err[ok] / bound[ok]))


# ---------------------------------------------------------------- accuracy

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [(5, 13), (16, 300), (3, (1, 99, 100, 0, 100))])
def test_split_rows_of_different_magnitudes(rng, dtype, chunks):
    # Chunks of one row hundreds apart: the pair state keeps the small
    # block's share to full precision.
    x = rng.standard_normal((16, 300)) * rng.choice([1.0, 30.0], (16, 1))
    x[:, 100:200] += rng.choice([300.0, -300.0, 1000.0], (16, 1))
    x[:4, :50] += 5000.0
    x = x.astype(dtype)
    dx = da.from_array(x, chunks=chunks)
    for kind in ("softmax", "log_softmax", "logsumexp"):
        assert_forward(kind, run(getattr(scd, kind)(dx)), x)


def test_against_the_exact_result(rng):
    # Not only close to the in-memory result: within the bound of the
    # exact one (computed in long double).
    x = rng.standard_normal((8, 257)) * 40
    x[:, 128:] -= 500
    dx = da.from_array(x, chunks=(8, 32))
    xl = x.astype(np.longdouble)
    m = xl.max(-1, keepdims=True)
    e = np.exp(xl - m)
    exact = e / e.sum(-1, keepdims=True)
    got = run(scd.softmax(dx))
    normal = exact >= np.finfo(np.float64).tiny
    bound = (1e-14 + 2.0**-53 * np.abs(x - x.max(-1, keepdims=True))) * exact
    assert np.all(np.abs(got - exact)[normal] <= bound[normal])
    lse = run(scd.logsumexp(dx))
    exact_lse = m[:, 0] + np.log(e.sum(-1))
    assert np.all(np.abs(lse - exact_lse) <= 1e-14 * np.maximum(1, np.abs(exact_lse)))


@pytest.mark.parametrize("axis, chunks", [
    (0, (4, 3, 5)), (1, (7, 2, 5)), ((0, 2), (3, 7, 2)), (None, (5, 4, 3)),
    ((), (5, 4, 3)), (-1, (7, 7, 2))])
def test_axes(rng, axis, chunks):
    x = rng.standard_normal((9, 7, 6)) * 10
    x[:, :3] += 200
    dx = da.from_array(x, chunks=chunks)
    for kind in ("softmax", "log_softmax"):
        y = getattr(scd, kind)(dx, axis)
        assert y.chunks == dx.chunks  # never rechunked
        assert_forward(kind, run(y), x, axis)
    for keepdims in (False, True):
        y = scd.logsumexp(dx, axis, keepdims=keepdims)
        mem = sc.logsumexp(x, axis, keepdims=keepdims)
        got = run(y)
        assert np.shape(got) == np.shape(mem) == y.shape
        assert type(got) is type(mem)  # a NumPy scalar for a full reduction
        assert_forward("logsumexp", got, x, axis, keepdims=keepdims)


def test_whole_rows_in_a_block_are_the_in_memory_call(rng):
    x = rng.standard_normal((10, 40)).astype(np.float32)
    dx = da.from_array(x, chunks=(3, 40))
    np.testing.assert_array_equal(run(scd.softmax(dx)), sc.softmax(x))
    np.testing.assert_array_equal(run(scd.log_softmax(dx)), sc.log_softmax(x))


@pytest.mark.parametrize("axis", [-1, 0, (0, 2)])
def test_blocks_computed_in_pieces(rng, monkeypatch, axis):
    # Blocks are handled in cache-sized pieces; pieces of a few rows here.
    monkeypatch.setattr(scd, "_SLAB", 100)
    x = rng.standard_normal((7, 9, 5)) * 40
    x[:, :4] += 300
    x[2, 3, 1] = nan
    x[4, :, 2] = -inf
    w = rng.random((9, 5)) < 0.8
    dx = da.from_array(x, chunks=(3, 4, 2))
    for kind in ("softmax", "log_softmax"):
        assert_forward(kind, run(getattr(scd, kind)(dx, axis)), x, axis)
        assert_forward(kind, run(getattr(scd, kind)(dx, axis, where=w)), x, axis, where=w)
    assert_forward("logsumexp", run(scd.logsumexp(dx, axis)), x, axis)


# ---------------------------------------------------------------- edge values

def _edge_rows(dtype):
    x = np.tile(np.linspace(-3, 3, 12), (10, 1))
    x[1, 7] = nan                 # NaN in the second block
    x[2, 2] = inf                 # +inf in the first block
    x[3, :] = -inf                # all -inf
    x[4, :4] = -inf               # a whole block of -inf in a finite row
    x[5, 5] = -inf                # one -inf
    x[6, 4:8] = -inf              # the middle block -inf
    x[6, 0] = nan                 # ... and a NaN elsewhere
    x[7, 11] = inf
    x[7, 0] = -inf
    x[8, :] = np.finfo(dtype).max / 2  # huge and equal
    x[9, :8] = -inf               # two blocks of -inf, a finite one
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_nan_and_infinities_across_block_borders(dtype):
    x = _edge_rows(dtype)
    dx = da.from_array(x, chunks=(4, 4))
    for kind in ("softmax", "log_softmax", "logsumexp"):
        assert_forward(kind, run(getattr(scd, kind)(dx)), x)


def test_empty_arrays_and_empty_blocks(rng):
    x = rng.standard_normal((5, 7))
    dx = da.from_array(x, chunks=((2, 0, 3), (3, 0, 4)))
    for kind in ("softmax", "log_softmax", "logsumexp"):
        assert_forward(kind, run(getattr(scd, kind)(dx)), x)
        assert_forward(kind, run(getattr(scd, kind)(dx, 0)), x, 0)
    for shape, chunks in [((0, 6), (1, 3)), ((4, 0), (2, 1)), ((0, 0), (1, 1))]:
        e = np.empty(shape)
        de = da.from_array(e, chunks=chunks)
        for kind in ("softmax", "log_softmax"):
            assert run(getattr(scd, kind)(de)).shape == shape
        np.testing.assert_array_equal(run(scd.logsumexp(de)), sc.logsumexp(e))
    assert run(scd.logsumexp(da.zeros((3, 0)), axis=None)) == -inf


# ---------------------------------------------------------------- dtypes, meta

@pytest.mark.parametrize("dtype, result", [
    (np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float16),
    (np.int32, np.float64), (np.bool_, np.float64), (np.uint8, np.float64)])
def test_dtypes_and_meta(rng, dtype, result):
    x = (rng.standard_normal((6, 10)) * 4).astype(dtype)
    dx = da.from_array(x, chunks=(3, 4))
    for kind in ("softmax", "log_softmax", "logsumexp"):
        y = getattr(scd, kind)(dx)
        assert y.dtype == result and y._meta.dtype == result
        assert type(y._meta) is np.ndarray
        got = run(y)
        assert got.dtype == result
        assert_forward(kind, got, x)


# ---------------------------------------------------------------- where

@pytest.mark.parametrize("chunks", [(4, 9), (4, 3)])
def test_where(rng, chunks):
    x = rng.standard_normal((6, 9)) * 50
    x[0, 1] = nan  # excluded: never read
    w = rng.random((6, 9)) < 0.6
    w[0, 1] = False
    w[1] = False  # no True position: all 0 / -inf
    w[2, 3:6] = False  # a block without a True position in a live row
    x[3] = -inf
    for kind in ("softmax", "log_softmax"):
        assert_forward(kind, run(getattr(scd, kind)(da.from_array(x, chunks=chunks), where=w)),
                       x, where=w)
        # broadcast, and as a dask array in other chunks
        wb = w[4]
        got = run(getattr(scd, kind)(da.from_array(x, chunks=chunks),
                                     where=da.from_array(wb, chunks=2)))
        assert_forward(kind, got, x, where=wb)


# ---------------------------------------------------------------- cross-entropy

XENT_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, ignore_index=3),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.3, weight=True, reduction="sum", ignore_index=0),
    dict(label_smoothing=1.0),
]


@pytest.mark.parametrize("opts", XENT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_index_targets(rng, opts, dtype):
    opts = dict(opts)
    n, c = 23, 10
    z = (rng.standard_normal((n, c)) * 20).astype(dtype)
    z[:5, 5:] += dtype(400)
    t = rng.integers(0, c, n)
    t[[2, 9]] = opts.get("ignore_index", -100)
    z[2] = nan  # an ignored sample's logits are not read
    if opts.pop("weight", False):
        opts["weight"] = rng.random(c) + 0.5
    dz = da.from_array(z, chunks=(7, 3))
    got = run(scd.cross_entropy(dz, da.from_array(t, chunks=5), **opts))
    mem = sc.cross_entropy(z, t, **opts)
    assert np.asarray(got).dtype == np.asarray(mem).dtype and np.shape(got) == np.shape(mem)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, mem, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("opts", [dict(), dict(label_smoothing=0.1, weight=True),
                                  dict(reduction="none"), dict(reduction="sum")])
def test_cross_entropy_probabilities_class_axis_1(rng, opts):
    opts = dict(opts)
    z = rng.standard_normal((4, 9, 5)) * 30
    q = rng.random((4, 9, 5))
    q /= q.sum(1, keepdims=True)
    if opts.pop("weight", False):
        opts["weight"] = da.from_array(rng.random(9), chunks=4)  # a dask weight
    dz = da.from_array(z, chunks=(2, 4, 5))
    got = run(scd.cross_entropy(dz, da.from_array(q, chunks=(4, 2, 2)), axis=1, **opts))
    mem = sc.cross_entropy(z, q, axis=1, **{k: np.asarray(v) if k == "weight" else v
                                           for k, v in opts.items()})
    np.testing.assert_allclose(got, mem, rtol=1e-12)


def test_cross_entropy_edge_values(rng):
    z = rng.standard_normal((8, 6))
    z[0, 4] = nan       # kept: NaN loss
    z[1, 1] = inf       # kept: NaN loss
    z[2, 3] = -inf      # on the target: inf
    z[3] = -inf         # all -inf
    z[4, :3] = 1e300
    t = np.array([0, 0, 3, 1, 2, 5, -100, 4])
    z[6] = nan          # ignored
    dz = da.from_array(z, chunks=(3, 3))
    for red in ("none", "sum", "mean"):
        got = run(scd.cross_entropy(dz, t, reduction=red))
        mem = sc.cross_entropy(z, t, reduction=red)
        np.testing.assert_allclose(got, mem, rtol=1e-12)
    # one float (1-D logits) and a 0-d target
    got = run(scd.cross_entropy(da.from_array(z[5], chunks=2), np.int64(2), reduction="none"))
    np.testing.assert_allclose(got, sc.cross_entropy(z[5], np.int64(2), reduction="none"))


def test_cross_entropy_nothing_to_average(rng):
    z = da.from_array(rng.standard_normal((6, 4)), chunks=(2, 2))
    t = np.full(6, -100)
    assert np.isnan(run(scd.cross_entropy(z, t)))
    assert run(scd.cross_entropy(z, t, reduction="sum")) == 0
    w = np.array([0.0, 1.0, 1.0, 1.0])
    assert np.isnan(run(scd.cross_entropy(z, np.zeros(6, int), weight=w)))
    empty = da.zeros((0, 4), chunks=(1, 2))
    got = run(scd.cross_entropy(empty, np.zeros(0, int)))
    assert np.isnan(got) and got.dtype == np.float64
    assert run(scd.cross_entropy(empty, np.zeros(0, int), reduction="none")).shape == (0,)
    # the overflow-free mean of two losses near the largest float
    big = np.array([[0.0, -0.9 * np.finfo(np.float64).max]] * 2)
    got = run(scd.cross_entropy(da.from_array(big, chunks=1), np.array([1, 1])))
    assert got == sc.cross_entropy(big, np.array([1, 1])) and np.isfinite(got)


def test_cross_entropy_float16_logits(rng):
    z = (rng.standard_normal((5, 8)) * 3).astype(np.float16)
    t = rng.integers(0, 8, 5)
    got = run(scd.cross_entropy(da.from_array(z, chunks=(2, 3)), t))
    mem = sc.cross_entropy(z, t)
    assert got.dtype == mem.dtype == np.float32
    np.testing.assert_allclose(got, mem, rtol=1e-5)


# ---------------------------------------------------------------- errors

def test_bad_arguments_raise_when_the_graph_is_built():
    x = da.zeros((4, 6), chunks=2)
    for call, exc in [
        (lambda: scd.softmax(x.astype(np.complex128)), TypeError),
        (lambda: scd.softmax(x, 2), AxisError),
        (lambda: scd.log_softmax(x, (0, 0)), ValueError),
        (lambda: scd.logsumexp(x, 1.5), TypeError),
        (lambda: scd.softmax(x, num_threads=0), ValueError),
        (lambda: scd.softmax(x, num_threads=True), TypeError),
        (lambda: scd.softmax(x, where=np.ones(6)), TypeError),
        (lambda: scd.softmax(x, where=np.ones(5, bool)), ValueError),
        (lambda: scd.softmax(da.ma.masked_equal(x, 0)), TypeError),
        (lambda: scd.cross_entropy(x, np.zeros(3, int)), ValueError),
        (lambda: scd.cross_entropy(x, np.zeros(4, bool)), TypeError),
        (lambda: scd.cross_entropy(x, np.zeros(4, int), weight=np.ones(5)), ValueError),
        (lambda: scd.cross_entropy(x, np.zeros(4, int), reduction="avg"), ValueError),
        (lambda: scd.cross_entropy(x, np.zeros(4, int), label_smoothing=2.0), ValueError),
        (lambda: scd.cross_entropy(x, np.zeros(4, int), ignore_index=1.0), TypeError),
        (lambda: scd.cross_entropy(x, np.zeros((4, 6)), ignore_index=1), ValueError),
        (lambda: scd.cross_entropy(x, np.zeros(4, int), axis=(1,)), TypeError),
    ]:
        with pytest.raises(exc):
            call()
    # out-of-range classes depend on the values: raised by compute
    y = scd.cross_entropy(x, np.array([0, 1, 6, 2]))
    with pytest.raises(IndexError, match="class index 6"):
        run(y)


# ---------------------------------------------------------------- laziness, graph

def test_building_the_graph_computes_nothing(monkeypatch):
    calls = []
    for name in ("softmax", "log_softmax", "logsumexp"):
        real = getattr(_api, name)
        monkeypatch.setattr(_api, name, lambda *a, _real=real, **k: calls.append(a[0].shape)
                            or _real(*a, **k))

    def boom():
        raise AssertionError("the input was computed")

    x = da.from_delayed(dask.delayed(boom)(), (4, 6), np.float64)
    for chunks in ((4, 6), (2, 3)):
        xs = x.rechunk(chunks)
        ys = [scd.softmax(xs), scd.log_softmax(xs), scd.logsumexp(xs),
              scd.cross_entropy(xs, np.zeros(4, int))]
        assert all(isinstance(y, da.Array) for y in ys)
    assert calls == []
    run(scd.softmax(da.ones((4, 6), chunks=(2, 3))))
    assert calls and max(s[-1] for s in calls) <= 3  # no task saw a whole row


def test_no_rechunk_and_threads_passed_through(monkeypatch):
    seen = []
    real = _api.logsumexp
    monkeypatch.setattr(_api, "logsumexp", lambda *a, **k: seen.append(k["num_threads"])
                        or real(*a, **k))
    x = da.ones((4, 8), chunks=(2, 3))
    y = scd.log_softmax(x)
    assert not any("rechunk" in str(name) for name in y.dask.layers)
    run(y)
    assert set(seen) == {1}  # the default inside tasks; merges always run on one
    seen.clear()
    run(scd.logsumexp(x, num_threads=2))
    assert 2 in seen
    seen.clear()
    run(scd.softmax(x, num_threads=None))
    assert None in seen


def test_import_softmax_c_does_not_import_dask():
    code = "import sys, softmax_c; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the state

def test_states_merge_to_the_whole_slice(rng):
    x = rng.standard_normal((3, 20)) * 100
    x[0, 10:] -= 700
    x[1, :10] = -inf
    x[2, 15] = inf
    parts = [scd.lse_state(x[:, i:i + 5]) for i in range(0, 20, 5)]
    assert parts[0].shape == (3, 1, 2)
    merged = scd.merge_states(np.concatenate(parts, axis=1), axis=1)
    np.testing.assert_allclose(scd.state_lse(merged)[:, 0], sc.logsumexp(x), rtol=1e-15)
    assert scd.state_lse(scd.lse_state(np.array([nan, inf]))) != scd.state_lse(
        scd.lse_state(np.array([nan, inf])))  # NaN
    assert scd.state_lse(scd.lse_state(np.array([-inf, -inf])))[0] == -inf
    assert scd.state_lse(scd.lse_state(np.empty(0)))[0] == -inf


# ---------------------------------------------------------------- on a cluster

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


@pytest.mark.slow  # worker processes; the main CI run has it
def test_on_a_local_cluster(client, rng):
    x = (rng.standard_normal((12, 64)) * 30).astype(np.float32)
    x[:, 32:] += 300
    x[3, 40] = nan
    x[5] = -inf
    dx = da.from_array(x, chunks=(6, 16))
    for kind in ("softmax", "log_softmax", "logsumexp"):
        got = client.compute(getattr(scd, kind)(dx)).result()
        assert_forward(kind, got, x)
    got = client.compute(scd.log_softmax(dx, 0)).result()
    assert_forward("log_softmax", got, x, 0)
    w = rng.random(64)
    t = rng.integers(0, 64, 12)
    t[4] = -100
    z = x.copy()
    z[3, 40] = 0
    z[5] = 1
    loss = client.compute(scd.cross_entropy(da.from_array(z, chunks=(6, 16)), t, weight=w,
                                            label_smoothing=0.1)).result()
    np.testing.assert_allclose(loss, sc.cross_entropy(z, t, weight=w, label_smoothing=0.1),
                               rtol=1e-5)
    with pytest.raises(IndexError):
        client.compute(scd.cross_entropy(dx, np.full(12, 64))).result()


# ---------------------------------------------------------------- weights and signs

def _wcase(rng, dtype=np.float64):
    x = (rng.standard_normal((6, 40)) * 3).astype(dtype)
    b = rng.standard_normal((6, 40)).astype(dtype)
    x[0, 20:] += 400                 # blocks of very different magnitude
    x[1, 3], b[1, 3] = inf, 0        # a zero weight drops a +inf
    x[2] = -inf
    x[3, 5] = nan
    b[4] = 0                         # every weight zero ...
    x[4, 7] = inf                    # ... on a +inf: NaN, as SciPy
    b[5] = np.abs(b[5])
    return x, b


def _same_as_memory(got, want, rtol):
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [(3, 40), (2, 7), (6, (1, 20, 19))])
def test_weights_and_sign_as_in_memory(rng, dtype, chunks):
    x, b = _wcase(rng, dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    dx = da.from_array(x, chunks=chunks)
    for bb in (b, b[0], b[:, :1], da.from_array(b, chunks=(3, 9))):
        want = sc.logsumexp(x, b=np.asarray(bb), return_sign=True)
        _same_as_memory(run(da.stack(scd.logsumexp(dx, b=bb, return_sign=True))), want, rtol)
        _same_as_memory([run(scd.logsumexp(dx, b=bb))], [sc.logsumexp(x, b=np.asarray(bb))], rtol)


def test_weights_cancel_across_blocks_exactly(rng):
    """Terms of both signs in different blocks: the merged sum is as exact
    as one kernel call over the whole row (mpmath as the oracle)."""
    mpmath = pytest.importorskip("mpmath")
    x = rng.standard_normal(64) * 2
    b = rng.standard_normal(64)
    half = sc.logsumexp(x[:32], b=b[:32], return_sign=True)
    x[32:] = x[:32]
    b[32:] = -b[:32] * (1 + 1e-9)    # the second half cancels the first to 1e-9
    got = run(da.stack(scd.logsumexp(da.from_array(x, chunks=8), b=b, return_sign=True)))
    with mpmath.workdps(50):
        s = mpmath.fsum(mpmath.mpf(float(bi)) * mpmath.exp(mpmath.mpf(float(xi)))
                        for xi, bi in zip(x, b))
    assert got[1] == float(mpmath.sign(s)) == -half[1]
    assert abs(got[0] - float(mpmath.log(abs(s)))) < 1e-6  # 1e-9 cancellation: ~1e-7 digits


def test_weights_axes_keepdims_and_scalars(rng):
    x, b = _wcase(rng)
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-5.0).reshape(6, 4, 10)
    b = b.reshape(6, 4, 10)
    dx = da.from_array(x, chunks=(2, 3, 4))
    for axis in (0, 1, (0, 2), None):
        for kd in (False, True):
            got = scd.logsumexp(dx, axis, b=b, keepdims=kd, return_sign=True)
            want = sc.logsumexp(x, axis, b=b, keepdims=kd, return_sign=True)
            _same_as_memory(dask.compute(*got, scheduler="sync"), want, 1e-12)
    r, s = scd.logsumexp(dx, None, b=b, return_sign=True)
    assert np.ndim(run(r)) == 0 and isinstance(run(r), np.floating)


def test_sign_without_weights_and_empty(rng):
    x, _ = _wcase(rng)
    dx = da.from_array(x, chunks=(2, 7))
    _same_as_memory([run(v) for v in scd.logsumexp(dx, return_sign=True)],
                    sc.logsumexp(x, return_sign=True), 1e-13)
    e = np.zeros((3, 0))
    got = scd.logsumexp(da.from_array(e), b=np.zeros(0), return_sign=True)
    _same_as_memory([run(v) for v in got], sc.logsumexp(e, b=np.zeros(0), return_sign=True), 0)


def test_weights_bad_arguments_raise_when_the_graph_is_built():
    dx = da.ones((4, 6), chunks=2)
    with pytest.raises(ValueError, match="`b` of shape"):
        scd.logsumexp(dx, b=np.ones(5))
    with pytest.raises(ValueError, match="`b` of shape"):
        scd.logsumexp(dx, b=np.ones((3, 4, 6)))     # b may not enlarge x here
    with pytest.raises(TypeError, match="`b` must be real"):
        scd.logsumexp(dx, b=da.ones(6, dtype=complex))
    with pytest.raises(TypeError, match="`return_sign` must be a bool"):
        scd.logsumexp(dx, return_sign=1)
    assert scd.logsumexp(dx, b=da.ones(6, dtype=np.float32, chunks=3)).dtype == np.float64
    assert scd.logsumexp(dx.astype(np.float32), b=2).dtype == np.float32


@pytest.mark.slow  # worker processes; the main CI run has it
def test_weights_on_a_local_cluster(client, rng):
    x, b = _wcase(rng, np.float32)
    got = client.compute(da.stack(scd.logsumexp(da.from_array(x, chunks=(3, 16)),
                                                b=da.from_array(b, chunks=(2, 20)),
                                                return_sign=True))).result()
    _same_as_memory(got, sc.logsumexp(x, b=b, return_sign=True), 1e-6)


def test_graphs_of_different_inputs_have_different_keys(rng):
    """Output keys are tokenized from the inputs: two graphs computed
    together (or persisted on one cluster) never take each other's blocks
    (blockwise's `name=` fixes the key outright, so the functions pass
    `token=`)."""
    r = rng.standard_normal((4, 8))
    for chunks in ((2, 4), (4, 8)):
        x = da.from_array(r, chunks=chunks)
        for fn in (scd.softmax, scd.log_softmax, scd.logsumexp,
                   lambda z: scd.logsumexp(z, b=r, return_sign=True)[1]):
            assert fn(x).name != fn(x * 2).name
        got = dask.compute(scd.softmax(x), scd.softmax(x * 2), scheduler="sync")
        np.testing.assert_allclose(got[1], sc.softmax(r * 2), rtol=1e-13)
        t = np.zeros(4, int)
        assert scd.cross_entropy(x, t).name != scd.cross_entropy(x * 2, t).name


@pytest.mark.slow  # a LocalCluster of its own
def test_bench_script_runs(capsys):
    """benchmarks/bench_dask.py (run by hand) on a tiny array."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "benchmarks", "bench_dask.py")
    if not os.path.exists(path):
        pytest.skip("needs the source tree")
    pytest.importorskip("distributed")
    spec = importlib.util.spec_from_file_location("bench_dask", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--rows", "64", "--cols", "512", "--chunks", "32", "128", "--repeat", "1"])
    out = capsys.readouterr().out
    for name in ("softmax_c.dask", "composition", "in memory"):
        assert name in out
