"""Every SIMD level the build has, forced with SOFTMAX_C_SIMD, against the
NumPy reference.

The rest of the suite runs the best level of the machine (AVX-512 on the
project's machines), so without this the AVX2 and portable kernels would
never run.  Each level runs in a subprocess (the level is chosen once per
process) over every tail length around the vector widths, both dtypes,
every operation, the row and column-panel layouts, and special values.
"""
import json

import pytest

from conftest import run_at_level, simd_levels

SCRIPT = r"""
import json, math, sys
import numpy as np
import softmax_c as sc
from softmax_c import reference as ref

level = sys.argv[1]
assert sc.build_info()["simd"] == level, sc.build_info()["simd"]
rng = np.random.default_rng(0)
worst = {}

def rel(got, want, scale):
    got = np.asarray(got, np.float64); want = np.asarray(want, np.float64)
    fin = np.isfinite(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN positions"
    assert np.array_equal(np.isinf(got) & ~fin, np.isinf(want) & ~fin), "inf positions"
    scale = np.broadcast_to(np.asarray(scale, np.float64), want.shape)[fin]
    return float(np.max(np.abs(got[fin] - want[fin]) / scale, initial=0.0))

for dt in (np.float32, np.float64):
    for n in list(range(1, 70)) + [127, 128, 129, 255, 256, 257, 1000]:
        x = rng.normal(0, 5, (5, n)).astype(dt)
        x[1, 0] = np.nan
        x[2, :] = -np.inf
        x[3, n // 2] = np.inf
        x64 = x.astype(np.float64)
        for op in ("softmax", "log_softmax", "logsumexp"):
            for xx, axis in ((x, -1), (np.ascontiguousarray(x.T), 0)):
                got = getattr(sc, op)(xx, axis)
                want = getattr(ref, op)(xx.astype(np.float64), axis)
                scale = 1.0 if op == "softmax" else np.maximum(1.0, np.abs(np.nan_to_num(want)))
                worst[(op, str(np.dtype(dt)))] = max(worst.get((op, str(np.dtype(dt))), 0.0),
                                                     rel(got, want, scale))
        y = ref.softmax(rng.normal(0, 3, (4, n)), -1).astype(dt)
        v = rng.normal(0, 1, (4, n)).astype(dt)
        for name in ("softmax_vjp", "log_softmax_jvp", "log_softmax_vjp"):
            a = y if name == "softmax_vjp" else np.log(y).astype(dt)
            for aa, vv, axis in ((a, v, -1), (np.ascontiguousarray(a.T), np.ascontiguousarray(v.T), 0)):
                got = getattr(sc, name)(aa, vv, axis)
                want = getattr(ref, name)(aa.astype(np.float64), vv.astype(np.float64), axis)
                worst[(name, str(np.dtype(dt)))] = max(worst.get((name, str(np.dtype(dt))), 0.0),
                                                       rel(got, want, 1.0 + np.abs(want)))
        z = rng.normal(0, 4, (6, n)).astype(dt)
        t = rng.integers(0, n, 6)
        w = rng.uniform(0.5, 2, n)
        zp = rng.normal(0, 4, (n, 37)).astype(dt)   # a panel: 37 samples along axis 0
        tp = rng.integers(0, n, 37)
        tp[::5] = -100
        qp = rng.random((n, 37))
        qp = (qp / qp.sum(axis=0)).astype(dt)
        for kw in ({}, {"weight": w, "label_smoothing": 0.1}):
            for zz, tt, axis in ((z, t, -1), (np.ascontiguousarray(z.T), t, 0), (zp, tp, 0),
                                 (zp, qp, 0)):
                loss, g = sc.cross_entropy_grad(zz, tt, axis=axis, reduction="sum", **kw)
                wl, wg = ref.cross_entropy_grad(zz.astype(np.float64), tt, axis=axis,
                                                reduction="sum", **kw)
                key = ("cross_entropy_grad", str(np.dtype(dt)))
                worst[key] = max(worst.get(key, 0.0), rel(loss, wl, max(1.0, abs(wl))),
                                 rel(g, wg, 1.0))
# the loss's log(s), taken for groups of rows (lanes) at once: rows of k
# zeros then -inf have s = k exactly, so the loss is log(k), within 2 ulp
# (of the loss's dtype) of math.log's, whichever lane or group a row lands in, rows or panel
ks = np.unique(np.r_[1:70, np.geomspace(70, 5000, 60).astype(int), 4096, 4097])
for dt in (np.float32, np.float64):
    z = np.full((ks.size, ks.max()), -np.inf, dt)
    for r, k in enumerate(ks):
        z[r, :k] = 0
    want = np.array([math.log(k) for k in ks])
    t0 = np.zeros(ks.size, np.int64)
    for zz, axis in ((z, -1), (np.ascontiguousarray(z.T), 0)):
        loss = sc.cross_entropy(zz, t0, axis=axis, reduction="none")
        ulps = np.abs(loss - want) / np.spacing(np.maximum(want, 1e-30).astype(loss.dtype))
        assert loss[0] == 0.0 and ulps.max() <= 2, (dt, axis, ulps.max(), ks[ulps.argmax()])
        for idx in ([5], [3, 4, 5], [9, 5, 2, 7, 1, 0, 8, 6, 4]):  # the same bits in any group
            sub = zz[idx] if axis == -1 else zz[:, idx]
            got = sc.cross_entropy(sub, t0[idx], axis=axis, reduction="none")
            assert np.array_equal(got, loss[idx]), (dt, axis, idx)
# outputs of 4 MiB and more (streamed final passes) at offsets of the
# output within a line: bitwise the same rows in calls too small to stream
for dt, n in ((np.float32, 300), (np.float64, 150), (np.float32, 1000)):
    rows = (4 << 20) // (n * np.dtype(dt).itemsize) + 2
    x = rng.normal(0, 5, (rows, n)).astype(dt)
    x[7, 3] = np.nan
    base = np.empty(x.size + 16, dt)
    for op in ("softmax", "log_softmax"):
        want = np.concatenate([getattr(sc, op)(x[r:r + 50]) for r in range(0, rows, 50)])
        for off in (0, 1, 4, 7, 15):
            out = base[off:off + x.size].reshape(x.shape)
            assert getattr(sc, op)(x, out=out) is out
            assert np.array_equal(out, want, equal_nan=True), (op, dt, n, off)
# cross-entropy gradients of 4 MiB and more in rows of 8 KiB and more (written a
# row behind, sc_xent_rows_ws): the rows of calls too small for it
for dt, n in ((np.float32, 2049), (np.float64, 4100)):
    rows = (4 << 20) // (n * np.dtype(dt).itemsize) + 2
    z = rng.normal(0, 5, (rows, n)).astype(dt)
    t = rng.integers(0, n, rows)
    t[3] = -100
    base = np.empty(z.size + 16, dt)
    for kw in ({}, {"label_smoothing": 0.1}):
        wl, wg = zip(*(sc.cross_entropy_grad(z[r:r + 50], t[r:r + 50], reduction="none", **kw)
                       for r in range(0, rows, 50)))
        for off in (0, 1, 7):
            out = base[off:off + z.size].reshape(z.shape)
            loss, g = sc.cross_entropy_grad(z, t, reduction="none", out=out, **kw)
            assert np.array_equal(loss, np.concatenate(wl)), ("xent rows", dt, kw, off)
            assert np.array_equal(g, np.concatenate(wg)), ("xent rows", dt, kw, off)
# one row split across threads: bitwise the one-thread result at this level
# too (the piece cuts follow this level's sum chunk)
for dt, n in ((np.float32, 300007), (np.float64, 100003)):
    x = rng.normal(0, 30, (1, n)).astype(dt)
    for op in ("softmax", "log_softmax", "logsumexp"):
        one = getattr(sc, op)(x, num_threads=1)
        assert np.array_equal(getattr(sc, op)(x, num_threads=2), one), (op, dt)
        key = ("split " + op, str(np.dtype(dt)))
        want = getattr(ref, op)(x.astype(np.float64))
        scale = 1.0 if op == "softmax" else np.maximum(1.0, np.abs(want))
        worst[key] = rel(one, want, scale)
    y = ref.softmax(x.astype(np.float64)).astype(dt)
    v = rng.normal(0, 1, (1, n)).astype(dt)
    for name in ("softmax_vjp", "log_softmax_vjp"):
        a = y if name == "softmax_vjp" else np.log(y)
        one = getattr(sc, name)(a, v, num_threads=1)
        assert np.array_equal(getattr(sc, name)(a, v, num_threads=2), one), (name, dt)
    # rows of at most 1 MiB (the cached path) and past it (the one sweep)
    for xx in (x[:, :200003], rng.normal(0, 30, (1, 300007)).astype(dt)):
        nx = xx.shape[1]
        t = np.array([nx // 3])
        q = rng.random((1, nx))
        q = (q / q.sum()).astype(dt)
        for tt, kw in ((t, {}), (t, {"label_smoothing": 0.1}), (q, {})):
            one = sc.cross_entropy_grad(xx, tt, num_threads=1, **kw)
            two = sc.cross_entropy_grad(xx, tt, num_threads=2, **kw)
            assert one[0] == two[0] and np.array_equal(one[1], two[1]), ("xent", kw, dt, nx)
print(json.dumps({"%s %s" % k: v for k, v in worst.items()}))
"""


@pytest.mark.parametrize("level", simd_levels())
def test_level_against_reference(level):
    worst = json.loads(run_at_level(level, SCRIPT, level).strip().splitlines()[-1])
    for key, err in worst.items():
        tol = 2e-6 if "float32" in key else 1e-13
        assert err <= tol, f"{level}: {key} error {err:.3g} > {tol}"
