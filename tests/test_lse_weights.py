"""logsumexp's weights `b` and `return_sign`, against scipy.special.logsumexp
(the semantics they copy) and against the exact result (mpmath).

The weighted row kernel (csrc/family/lse_w.h) runs at every SIMD level in
test_every_level, a subprocess per level as in test_simd_levels.
"""
import json
import warnings

import numpy as np
import pytest

from conftest import AxisError, run_at_level, simd_levels

special = pytest.importorskip("scipy.special")

inf, nan = np.inf, np.nan
DTYPES = [np.float32, np.float64]

# (x, b) rows of special values: zero weights on inf / NaN, all-zero
# weights, -inf rows, negative sums, exact cancellation (also where exp
# overflows: SciPy gives NaN there), infinite and NaN weights.
EDGE = [
    ([inf, 1.0], [0, 1]), ([nan, 1.0], [0, 1]), ([inf, nan], [0, 0]), ([inf, 1.0], [0, 0]),
    ([1.0, 2.0], [0, 0]), ([-inf, -inf], [1, 1]), ([-inf, -inf], [1, -1]), ([1.0, 1.0], [1, -1]),
    ([1000.0, 1000.0], [1, -1]), ([inf, inf], [1, -1]), ([inf, 1.0], [-1, 1]),
    ([inf, 1000.0], [1, -1]), ([nan, 1.0], [1, 1]), ([1.0, 2.0], [nan, 1]), ([-inf, 0.0], [inf, 1]),
    ([-800.0, 0.0], [inf, 1]), ([-10.0, 0.0], [inf, 1]), ([-inf], [nan]), ([1.0, 2.0], [1, -1]),
    ([2.0, 1.0], [1, -1]), ([0.0, 0.0], [inf, -inf]), ([inf, 2.0], [1, 0]), ([-inf, 2.0], [1, 0]),
    ([inf, -inf], [1, nan]), ([inf, 1.0], [1, nan]), ([inf, 1.0], [1, inf]), ([inf, inf], [1, 0]),
    ([3e38, 3e38], [1, 1]), ([1e300, -1e300], [1, 1]), ([-1e300, -1e300], [1, -2]),
    ([5.0], [-0.0]), ([5.0], [-2.0]), ([0.0, 0.0, 0.0], [1, -2, 1]),
]


def scipy_lse(*args, **kw):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return special.logsumexp(*args, **kw)


def same(got, want, rtol):
    """Equal values (NaN where NaN, infinities where they are), dtype too."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x, b", EDGE)
def test_special_values_as_scipy(sc, dtype, x, b):
    with np.errstate(over="ignore"):
        x, b = np.array(x, dtype), np.array(b, dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for rs in (False, True):
        want = scipy_lse(x, b=b, return_sign=rs)
        got = sc.logsumexp(x, b=b, return_sign=rs)
        if rs:
            same(got[0], want[0], rtol)
            same(got[1], want[1], 0)
        else:
            same(got, want, rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_of_every_tail_length(sc, rng, dtype):
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    for n in list(range(1, 41)) + [63, 64, 65, 511, 512, 513, 5000]:
        x = (rng.normal(0, 5, (6, n))).astype(dtype)
        b = rng.normal(0, 1, (6, n)).astype(dtype)
        b[1] = np.abs(b[1])          # a positive row
        b[2, ::3] = 0                # dropped terms
        x[2, ::3] = np.inf
        x[3, n // 2] = -inf
        got = sc.logsumexp(x, b=b, return_sign=True)
        want = scipy_lse(x, b=b, axis=-1, return_sign=True)
        np.testing.assert_array_equal(got[1], want[1])
        # the results' error follows the sum's condition: compare exp(res)*sign
        # against the sum of |terms|
        np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(want[0]))
        fin = np.isfinite(want[0])
        scale = scipy_lse(x, b=np.abs(b), axis=-1)[fin]
        diff = np.abs(np.exp(got[0][fin].astype(np.float64) - scale) * got[1][fin]
                      - np.exp(want[0][fin].astype(np.float64) - scale) * want[1][fin])
        assert np.all(diff <= rtol * 50), (n, diff.max())
        pos = sc.logsumexp(x[1:2], b=b[1:2])
        same(pos, scipy_lse(x[1:2], b=b[1:2], axis=-1), rtol)


def _exact(x, b):
    """log|sum(b exp(x))| and its sign, in 60 digits (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        s = mpmath.fsum(mpmath.mpf(float(bi)) * mpmath.exp(mpmath.mpf(float(xi)))
                        for xi, bi in zip(x, b) if bi != 0)
        if s == 0:
            return -inf, 0.0
        return float(mpmath.log(abs(s))), float(mpmath.sign(s))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cancellation_as_exact_as_scipy_or_better(sc, rng, dtype):
    """Terms of both signs that nearly cancel: the error of exp(result) *
    sign, relative to the sum of |terms|, at most SciPy's (same dtype) plus
    a few units of roundoff."""
    u = np.finfo(dtype).eps
    for n in (2, 3, 7, 40, 300, 3000):
        for _ in range(5):
            x = rng.normal(0, 3, n).astype(dtype)
            b = rng.normal(0, 1, n).astype(dtype)
            # a last term that cancels the rest to a few percent
            rest = scipy_lse(x[:-1].astype(np.float64), b=b[:-1].astype(np.float64),
                             return_sign=True)
            x[-1] = dtype(rest[0] + np.log1p(rng.uniform(-0.05, 0.05)))
            b[-1] = -rest[1] if rest[1] != 0 else 1
            ex, es = _exact(x, b)
            big = _exact(x, np.abs(b))[0]
            err = {}
            for who, (r, s) in (("sc", sc.logsumexp(x, b=b, return_sign=True)),
                                ("scipy", scipy_lse(x, b=b, return_sign=True))):
                err[who] = abs(np.exp(float(r) - big) * float(s) - np.exp(ex - big) * es)
            assert err["sc"] <= err["scipy"] + 8 * u, (n, err)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_magnitudes_and_exact_cancellation(sc, dtype):
    big = np.finfo(dtype).max / 2
    x = np.array([[big, big, 0.0], [-big, -big, 1.0], [1.0, 1.0, -inf]], dtype)
    b = np.array([[1, -1, 0], [1, -1, 1], [2, -2, 5]], dtype)
    got = sc.logsumexp(x, b=b, return_sign=True)
    want = scipy_lse(x, b=b, axis=-1, return_sign=True)
    same(got[0], want[0], 1e-6)
    same(got[1], want[1], 0)


@pytest.mark.parametrize("bshape", [(7,), (1, 7), (5, 1), (1, 1), (), (4, 5, 7), (4, 1, 1),
                                    (4, 1, 7), (1, 5, 1)])
@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2), None, (1, 2)])
def test_broadcast_weights(sc, rng, bshape, axis):
    x = rng.normal(0, 2, (4, 5, 7))
    b = rng.normal(0, 1, bshape)
    for kd in (False, True):
        got = sc.logsumexp(x, axis, b=b, keepdims=kd, return_sign=True)
        want = scipy_lse(x, axis=axis, b=b, keepdims=kd, return_sign=True)
        np.testing.assert_array_equal(got[1], want[1])
        fin = np.isfinite(want[0])
        np.testing.assert_allclose(np.asarray(got[0])[fin], np.asarray(want[0])[fin],
                                   rtol=1e-9, atol=1e-9)


def test_weights_broadcast_the_input_too(sc, rng):
    x = rng.normal(0, 1, (1, 6))
    b = rng.normal(0, 1, (3, 6))
    got = sc.logsumexp(x, b=b, return_sign=True)
    want = scipy_lse(x, b=b, axis=-1, return_sign=True)
    assert got[0].shape == (3,)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_threads_layouts_read_only_and_strided(sc, rng, dtype, threads):
    x = rng.normal(0, 3, (300, 257)).astype(dtype)
    b = rng.normal(0, 1, (300, 257)).astype(dtype)
    x.flags.writeable = b.flags.writeable = False
    cases = [(x, b, -1), (x[::2, ::3], b[1::2, ::3], -1), (x, b, 0), (x.T, b.T, -1),
             (x[:, :200], b[0, :200], -1), (x, b[:, :1], -1), (x, b[:1, :1], 0)]
    for xx, bb, axis in cases:
        got = sc.logsumexp(xx, axis, b=bb, return_sign=True, num_threads=threads)
        # float64 as the oracle, the error relative to the sum of |terms|
        x64, b64 = xx.astype(np.float64), np.asarray(bb, np.float64)
        want = scipy_lse(x64, axis=axis, b=b64, return_sign=True)
        scale = scipy_lse(x64, axis=axis, b=np.abs(b64))
        np.testing.assert_array_equal(got[1], want[1])
        diff = np.abs(np.exp(got[0] - scale) * got[1] - np.exp(want[0] - scale) * want[1])
        assert diff.max() <= 10 * np.finfo(dtype).eps, (axis, diff.max())
        assert got[0].dtype == dtype


def test_bitwise_the_same_for_any_thread_count(sc, rng):
    x = rng.normal(0, 3, (64, 1000))
    b = rng.normal(0, 1, 1000)
    one = sc.logsumexp(x, b=b, return_sign=True, num_threads=1)
    two = sc.logsumexp(x, b=b, return_sign=True, num_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_empty(sc):
    for x, b in ((np.zeros(0), np.zeros(0)), (np.zeros((3, 0)), np.zeros((1, 0))),
                 (np.zeros((0, 4)), np.ones(4))):
        got = sc.logsumexp(x, b=b, return_sign=True)
        want = scipy_lse(x, b=b, axis=-1, return_sign=True)
        same(got[0], want[0], 0)
        same(got[1], want[1], 0)


def test_return_sign_without_weights(sc, rng):
    x = rng.normal(0, 1, (5, 6))
    x[1] = -inf
    x[2, 0] = nan
    x[3, 1] = inf
    for xx in (x, np.zeros((2, 0)), np.array(3.0).reshape(1), x.astype(np.float32)):
        got = sc.logsumexp(xx, return_sign=True)
        want = scipy_lse(xx, axis=-1, return_sign=True)
        same(got[0], want[0], 1e-6)
        same(got[1], want[1], 0)
    r, s = sc.logsumexp(x, axis=None, return_sign=True)
    assert np.ndim(r) == 0 and np.ndim(s) == 0


def test_dtype_promotion_as_scipy(sc):
    x32 = np.ones(3, np.float32)
    for b in (np.ones(3, np.float32), np.ones(3), 2, 2.5, [1, 2, 3], np.ones(3, int),
              np.ones(3, bool), np.ones(3, np.float16)):
        assert sc.logsumexp(x32, b=b).dtype == scipy_lse(x32, b=b).dtype, b
    assert sc.logsumexp(np.ones(3, np.int32), b=np.ones(3, np.float32)).dtype == np.float64
    assert sc.logsumexp(np.ones(3, np.float16), b=np.ones(3, np.float16)).dtype == np.float16


def test_masked_input_with_weights(sc, rng):
    if sc.__name__ != "softmax_c":
        pytest.skip("the NumPy reference refuses masked arrays")
    x = np.ma.MaskedArray(rng.normal(0, 1, (3, 4)), mask=[[0, 1, 0, 0], [1, 1, 1, 1], [0] * 4])
    b = rng.normal(0, 1, (3, 4))
    r, s = sc.logsumexp(x, b=b, return_sign=True)
    assert np.ma.is_masked(r) and r.mask.tolist() == [False, True, False]
    want = scipy_lse(x.data, b=np.where(x.mask, 0, b), axis=-1, return_sign=True)
    np.testing.assert_allclose(r[[0, 2]], want[0][[0, 2]], rtol=1e-12)
    np.testing.assert_array_equal(s[[0, 2]], want[1][[0, 2]])


def test_bad_arguments_name_the_parameter(sc):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="`b` of shape \\(4,\\)"):
        sc.logsumexp(x, b=np.ones(4))
    with pytest.raises(TypeError, match="`b` must be real"):
        sc.logsumexp(x, b=np.ones(3, complex))
    with pytest.raises(TypeError, match="`b` has unsupported dtype"):
        sc.logsumexp(x, b=np.array(["a", "b", "c"]))
    with pytest.raises(TypeError, match="`b` has unsupported dtype"):
        sc.logsumexp(x, b=np.array([None, 1, 2], object))
    for bad in (1, "yes", None, np.array([True])):
        with pytest.raises(TypeError, match="`return_sign` must be a bool"):
            sc.logsumexp(x, return_sign=bad)
    with pytest.raises(AxisError):
        sc.logsumexp(x, 2, b=np.ones(3))
    assert sc.logsumexp(x, return_sign=np.bool_(False)).shape == (2,)


LEVEL_SCRIPT = r"""
import json, sys, warnings
import numpy as np
import softmax_c as sc
from scipy.special import logsumexp as L
warnings.simplefilter("ignore")
np.seterr(all="ignore")
assert sc.build_info()["simd"] == sys.argv[1]
rng = np.random.default_rng(1)
bad = []
for dt in (np.float32, np.float64):
    rtol = 1e-5 if dt == np.float32 else 1e-12
    for n in list(range(1, 41)) + [127, 128, 129, 600]:
        x = rng.normal(0, 4, (7, n)).astype(dt)
        b = rng.normal(0, 1, (7, n)).astype(dt)
        b[1] = np.abs(b[1]); b[2, ::2] = 0; x[2, ::2] = np.inf; x[3, 0] = np.nan
        x[4] = -np.inf; b[5] = 0; x[6, -1] = np.inf
        for bb in (b, b[0], b[:, :1]):
            got = sc.logsumexp(x, b=bb, return_sign=True)
            want = L(x, b=bb, axis=-1, return_sign=True)
            ok = np.abs(want[0]) > 1e-2
            if not (np.array_equal(got[1], want[1], equal_nan=True)
                    and np.array_equal(np.isnan(got[0]), np.isnan(want[0]))
                    and np.allclose(got[0][ok], want[0][ok], rtol=rtol * 10, equal_nan=True)):
                bad.append([str(np.dtype(dt)), n])
print(json.dumps(bad))
"""


@pytest.mark.parametrize("level", simd_levels())
def test_every_level(sc, level):
    if sc.__name__ != "softmax_c":
        pytest.skip("the SIMD levels are softmax_c's")
    assert json.loads(run_at_level(level, LEVEL_SCRIPT, level).strip().splitlines()[-1]) == []
