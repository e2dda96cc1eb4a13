import json

import numpy as np
import pytest
import scipy.stats

import softmax_c as sc
from softmax_c import reference as ref
from conftest import run_at_level

COMBOS = [
    dict(),
    dict(temperature=0.7),
    dict(temperature=1.3, top_k=5),
    dict(temperature=0.9, top_p=0.8),
    dict(min_p=0.1),
    dict(top_k=6, top_p=0.7),
    dict(temperature=0.8, top_k=7, top_p=0.9, min_p=0.05),
]


def _rows(rng, rows, n, dtype):
    x = rng.standard_normal((rows, n)) * rng.uniform(0.5, 4, (rows, 1))
    x[:, : n // 4] = np.round(x[:, : n // 4])          # ties
    x[rng.random((rows, n)) < 0.05] = -np.inf
    x[:, 0] = np.where(np.isneginf(x).all(1), 0.0, x[:, 0])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", COMBOS + [dict(top_p=0.95), dict(top_k=40, min_p=0.2)])
def test_same_tokens_as_reference(kw, dtype):
    rng = np.random.default_rng(1)
    for n in (8, 33, 300, 5000):
        x = _rows(rng, 40, n, dtype)
        got = sc.sample(x, seed=123, **kw)
        want = ref.sample(x, seed=123, **kw)
        kept, _ = ref.sample_kept(x, **kw)
        assert kept[np.arange(40), got].all()
        assert (got == want).mean() >= 0.97, (n, kw)


@pytest.mark.parametrize("kw", COMBOS)
def test_distribution_chisquare(kw):
    rng = np.random.default_rng(7)
    n = 16
    x = _rows(rng, 1, n, np.float32)[0]
    _, prob = ref.sample_kept(x, **kw)
    draws = 10**6
    tok = sc.sample(np.broadcast_to(x, (draws, n)), seed=2024, **kw)
    counts = np.bincount(tok, minlength=n)
    assert counts[prob == 0].sum() == 0
    keep = prob > 0
    if keep.sum() > 1:
        p = scipy.stats.chisquare(counts[keep], prob[keep] * draws).pvalue
        assert p > 1e-6, (kw, p)


def test_threads_and_generator_and_errors():
    rng = np.random.default_rng(3)
    x = _rows(rng, 500, 3000, np.float32)
    kw = dict(temperature=0.8, top_k=50, top_p=0.9)
    a = sc.sample(x, seed=5, num_threads=1, **kw)
    b = sc.sample(x, seed=5, num_threads=2, **kw)
    assert (a == b).all()
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    assert (sc.sample(x, seed=g1) == sc.sample(x, seed=g2)).all()
    assert sc.sample(x).shape == (500,)
    for bad, val in [("temperature", -1.0), ("temperature", np.inf), ("top_k", -1),
                     ("top_k", 2.5), ("top_p", 0.0), ("top_p", 1.5), ("min_p", -0.1),
                     ("min_p", 2.0)]:
        with pytest.raises(ValueError, match=bad):
            sc.sample(x, **{bad: val})
    y = x.copy()
    y[17, 4] = np.nan
    with pytest.raises(ValueError, match="17"):
        sc.sample(y)
    y = x.copy()
    y[3] = -np.inf
    with pytest.raises(ValueError, match="3"):
        sc.sample(y, top_k=5)
    with pytest.raises(ValueError):
        sc.sample(np.zeros((3, 0)))
    assert sc.sample(np.zeros((0, 5))).shape == (0,)


def test_greedy_per_row_axis_logprobs():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [5.0, 5.0, 1.0, 5.0]])
    assert sc.sample(x, temperature=0).tolist() == [1, 0]
    assert sc.sample(x, temperature=np.array([0.0, 0.0]), seed=1).tolist() == [1, 0]
    tok = sc.sample(x, top_k=np.array([1, 1]), seed=1)
    assert tok.tolist() == [1, 0]
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 50, 3)).astype(np.float32)
    for kw in (dict(temperature=0.7, top_p=0.8), dict(temperature=0.0), dict(min_p=0.1)):
        t, lp = sc.sample(z, axis=1, seed=11, return_logprobs=True, **kw)
        assert t.shape == lp.shape == (6, 3)
        tr, lpr = ref.sample(z, axis=1, seed=11, return_logprobs=True, **kw)
        zz = np.moveaxis(z, 1, -1).astype(np.float64)
        T = kw.get("temperature", 1.0) or 1.0
        ls = np.asarray(ref.log_softmax((zz / T)), dtype=np.float64)
        np.testing.assert_allclose(lp, np.take_along_axis(ls, t[..., None], -1)[..., 0],
                                   rtol=1e-5, atol=1e-5)
        assert (t == tr).mean() > 0.9


# Rows built so that sums land within rounding of the cuts: blocks of equal
# values (a top-p target top_p * mass that a running sum of equal weights
# meets exactly in exact arithmetic), rounded normals (many ties), lengths
# across the vector widths and the sums' chunk; every row is repeated under
# many uniforms (rows are keyed by index), so u covers the kept mass densely.
LEVELS_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import softmax_c as sc
nt = int(sys.argv[1])
rng = np.random.default_rng(11)
rows = []
for n in (7, 17, 255, 257, 1000, 4099, 20000):
    for kind in range(4):
        if kind == 0:
            x = rng.standard_normal(n) * 3
        elif kind == 1:
            x = np.round(rng.standard_normal(n) * 2)
        elif kind == 2:
            x = np.full(n, -1.0); x[rng.permutation(n)[: max(2, n // 3)]] = 2.0
        else:
            x = rng.standard_normal(n) * 0.01
        rows.append(x)
out = {}
for dt in (np.float32, np.float64):
    for i, x in enumerate(rows):
        xs = np.tile(x.astype(dt), (24, 1))
        for kw in (dict(temperature=0.8), dict(top_p=0.5), dict(top_p=0.9, temperature=0.7),
                   dict(top_p=1 / 3), dict(min_p=0.05), dict(min_p=0.3, top_p=0.75),
                   dict(top_k=50, top_p=0.9, temperature=0.8), dict(top_k=3, top_p=0.5),
                   dict(temperature=0)):
            t, lp = sc.sample(xs, seed=2024 + i, return_logprobs=True, num_threads=nt, **kw)
            out[f"{dt.__name__} {i} {kw}"] = hashlib.sha1(t.tobytes() + lp.tobytes()).hexdigest()
# one long row: split across the threads when nt is 2
for dt in (np.float32, np.float64):
    x = (rng.standard_normal(70000) * 3).astype(dt)
    for kw in (dict(temperature=0.8), dict(min_p=0.05), dict(top_p=0.9), dict(top_k=50, top_p=0.9)):
        t = [sc.sample(x, seed=s, return_logprobs=True, num_threads=nt, **kw) for s in range(8)]
        out[f"long {dt.__name__} {kw}"] = repr([(int(a), float(b)) for a, b in t])
out["level"] = sc.build_info()["simd"]
print(json.dumps(out))
"""


@pytest.mark.slow  # six subprocesses; the main CI run has it
def test_simd_levels_and_threads_same_tokens():
    """An int seed gives the same tokens (and log-probabilities, to the bit)
    at every SIMD level and thread count."""
    runs = {}
    for level in ("scalar", "avx2", "avx512f"):
        for nt in (1, 2):
            got = json.loads(run_at_level(level, LEVELS_SCRIPT, nt))
            if got.pop("level") == level:   # else a level this machine lacks
                runs[level, nt] = got
    assert len(runs) >= 4
    first = next(iter(runs.values()))
    for key, got in runs.items():
        diff = [c for c in first if got[c] != first[c]]
        assert not diff, (key, diff[:5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hot_path_as_general_path(dtype):
    """The hot path (C-contiguous rows, scalar parameters) gives the general
    path's tokens and log-probabilities to the bit."""
    rng = np.random.default_rng(4)
    x = _rows(rng, 12, 3000, dtype)
    for kw in COMBOS + [dict(temperature=0)]:
        t, lp = sc.sample(x, seed=5, return_logprobs=True, **kw)
        args = {k: (np.int64 if k == "top_k" else np.float64)(v) for k, v in kw.items()}
        # (NumPy scalars, not Python ones: the general path)
        t2, lp2 = sc.sample(np.asfortranarray(x), seed=5, return_logprobs=True, **args)
        np.testing.assert_array_equal(t, t2)
        np.testing.assert_array_equal(lp, lp2)
        t1 = sc.sample(x[3], seed=5, **kw)
        assert t1.shape == () and t1 == sc.sample(x[3:4, ::-1][:, ::-1], seed=5, **args)[0]


def test_torch_sample():
    torch = pytest.importorskip("torch")
    import softmax_c.torch as sct
    x = torch.randn(4, 100)
    t = sct.sample(x, top_k=10, seed=3)
    assert t.dtype == torch.int64
    assert (t.numpy() == sc.sample(x.numpy(), top_k=10, seed=3)).all()


SPLIT_COMBOS = COMBOS + [dict(top_p=0.95), dict(top_k=40, min_p=0.2), dict(temperature=0),
                         dict(top_p=0.5, min_p=0.3), dict(top_k=1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_split_into_pieces_same_tokens(dtype):
    """A row cut into any number of pieces (as when it is split across
    threads) gives the one-piece token and log-probability, to the bit:
    every filter combination, lengths across the chunk (256) and top-p's
    segment (32768), many uniforms per row."""
    from softmax_c import _kernels
    from softmax_c import _sample_params as sp
    rng = np.random.default_rng(21)
    for n in (1, 5, 40, 257, 1000, 33000, 70000):
        rows = 3 if n > 10000 else 16
        x = _rows(rng, rows, n, dtype)
        for kw in SPLIT_COMBOS:
            z, _, prm = sp.prepare(x, kw.get("temperature", 1.0), kw.get("top_k"),
                                   kw.get("top_p"), kw.get("min_p"), -1)
            t1, l1, b1 = _kernels.sample_rows(z, prm, 99, True, 1)
            assert b1 == -1
            for pieces in (2, 5) if n > 1000 else (3, 40):
                t2, l2, b2 = _kernels.sample_rows(z, prm, 99, True, 2, pieces)
                assert b2 == -1
                np.testing.assert_array_equal(t2, t1, err_msg=f"{n} {kw} {pieces}")
                np.testing.assert_array_equal(l2, l1, err_msg=f"{n} {kw} {pieces}")
            if n <= 1000:
                kept, _ = ref.sample_kept(x, **kw)
                assert kept[np.arange(rows), t1].all()


def test_split_rows_bad_rows_and_threads():
    """Split rows with a NaN, +inf or only -inf are refused as unsplit ones;
    long rows with fewer rows than threads give the one-thread tokens."""
    from softmax_c import _kernels
    from softmax_c import _sample_params as sp
    rng = np.random.default_rng(5)
    x = _rows(rng, 4, 3000, np.float32)
    x[1, 2999] = np.nan
    x[2] = -np.inf
    x[3, 7] = np.inf
    z, _, prm = sp.prepare(x, 1.0, None, None, None, -1)
    for r in (1, 2, 3):
        zz = np.ascontiguousarray(np.concatenate([z[:1], z[r:r + 1]]))
        assert _kernels.sample_rows(zz, prm[:2], 3, False, 2, 5)[2] == 1
    for n in (131072, 262144):
        x = _rows(rng, 1, n, np.float32)
        for kw in (dict(temperature=0.8), dict(min_p=0.05), dict(top_k=50, top_p=0.9),
                   dict(top_p=0.9)):
            a = [sc.sample(x, seed=s, num_threads=1, **kw)[0] for s in range(4)]
            b = [sc.sample(x, seed=s, num_threads=2, **kw)[0] for s in range(4)]
            c = [sc.sample(x, seed=s, **kw)[0] for s in range(4)]   # the default count
            assert a == b == c, (n, kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_temperature_is_a_multiply_by_its_reciprocal(dtype):
    """z = x * (1/T), 1/T rounded to the compute dtype: logits that x / T
    tells apart but the product does not tie, and the tie goes to the lower
    index (top_k=1); and the other way round."""
    rng = np.random.default_rng(0)
    T = 0.7
    r, t = dtype(1.0 / T), dtype(T)
    a = rng.uniform(1, 2, 4000).astype(dtype)
    b = np.nextafter(a, dtype(3))
    tie = a[(a * r == b * r) & (a / t != b / t)][:5]
    split = a[(a * r != b * r) & (a / t == b / t)][:5]
    assert tie.size and split.size
    for v in tie:
        x = np.array([v, np.nextafter(v, dtype(3))], dtype=dtype)
        assert sc.sample(x, temperature=T, top_k=1, seed=1) == 0
        assert ref.sample(x, temperature=T, top_k=1, seed=1) == 0
    for v in split:
        x = np.array([v, np.nextafter(v, dtype(3))], dtype=dtype)
        assert sc.sample(x, temperature=T, top_k=1, seed=1) == 1
        assert ref.sample(x, temperature=T, top_k=1, seed=1) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_p_crossing_far_below_the_maximum(dtype):
    """top-p whose mass crosses more than 16 nats below the maximum, in the
    histogram's far buckets: the kept set is the reference's, and pieces do
    not change the token."""
    from softmax_c import _kernels
    from softmax_c import _sample_params as sp
    rng = np.random.default_rng(8)
    n = 40000
    x = np.zeros((6, n))
    x -= rng.uniform(17, 25, (6, n)) * (rng.random((6, n)) < 0.9)
    x[np.arange(6), rng.integers(0, n, 6)] = 3.0
    x = x.astype(dtype)
    for p in (0.99999999, 0.999999999):
        kept, _ = ref.sample_kept(x, top_p=p)
        near = x >= x.max(1, keepdims=True) - 16
        assert (kept.sum(1) > near.sum(1)).all()     # past the first buckets
        z, _, prm = sp.prepare(x, 1.0, None, p, None, -1)
        t1, _, _ = _kernels.sample_rows(z, prm, 4, False, 1)
        assert kept[np.arange(6), t1].all()
        for pieces in (1, 3):
            t, _, _ = _kernels.sample_rows(z, prm, 4, False, 1, pieces)
            np.testing.assert_array_equal(t, t1)


@pytest.mark.parametrize("shape", [(1000,), (3, 1000), (2, 70000)])
def test_float16_as_float32(shape):
    """float16 logits are sampled as their float32 values (docs/api.md): the
    tokens and log-probabilities of the float32 copy, on the hot path's
    layouts too (C-contiguous, last axis, Python-number parameters)."""
    x = np.random.default_rng(7).normal(0, 3, shape).astype(np.float16)
    for kw in [dict(), dict(temperature=0.8, top_k=50, top_p=0.9), dict(min_p=0.1)]:
        got = sc.sample(x, seed=11, return_logprobs=True, **kw)
        want = sc.sample(x.astype(np.float32), seed=11, return_logprobs=True, **kw)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
