"""cross_entropy / cross_entropy_grad with softcap, z_loss and return_lse.

The kernels (sc_xent_opt_rows) are held to the float64 NumPy reference
(reference._xent_options) and to PyTorch's composition: cross_entropy of
``cap * tanh(x / cap)`` plus ``z_loss * logsumexp**2`` over the kept
samples, differentiated by autograd.  Over every tail length, both dtypes,
index and probability targets, smoothing, weights, reductions, row and
non-last-axis layouts, special values, threads and SIMD levels.
"""
import json

import numpy as np
import pytest

from conftest import assert_unchanged, call_checked, run_at_level, simd_levels, snapshot

TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def close(got, want, dtype, what):
    """got within TOL of want: relative to max(1, |want|) elementwise for
    losses and lse, and to the largest |want| of the array for gradients
    (their small elements carry the absolute error of the large ones; at
    least 1e-2)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (what, "NaN positions")
    fin = np.isfinite(want)
    assert np.array_equal(got[~fin], want[~fin], equal_nan=True), (what, "infinities")
    if what == "grad":
        # a floor for rows whose gradient is all cancellation (one class)
        scale = max(1e-2, float(np.max(np.abs(want[fin]), initial=0.0)))
    else:
        scale = np.maximum(1.0, np.abs(want[fin]))
    err = np.max(np.abs(got[fin] - want[fin]) / scale, initial=0.0)
    assert err <= TOL[np.dtype(dtype)], (what, err)


def both(sc, ref, x, t, **kw):
    """The kernel's and the reference's (loss, grad, lse), checked alike."""
    dt = x.dtype
    got = call_checked(sc.cross_entropy_grad, x, t, return_lse=True, **kw)
    want = ref.cross_entropy_grad(x, t, return_lse=True, **kw)
    for g, w, what in zip(got, want, ("loss", "grad", "lse")):
        close(g, w, dt, what)
    loss_only = call_checked(sc.cross_entropy, x, t, return_lse=True, **kw)
    # the loss alone takes the same steps: the same bits
    assert np.array_equal(loss_only[0], got[0], equal_nan=True)
    assert np.array_equal(loss_only[1], got[2], equal_nan=True)
    return got


OPTIONS = [dict(softcap=30.0), dict(z_loss=1e-4), dict(softcap=2.5, z_loss=0.1),
           dict(softcap=1.0)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTIONS)
def test_index_targets_every_tail(sc, ref, rng, dt, opt):
    for n in list(range(1, 41)) + [63, 64, 65, 257, 1000]:
        x = rng.normal(0, 6, (5, n)).astype(dt)
        t = rng.integers(0, n, 5)
        t[2] = -100
        for kw in ({}, {"weight": rng.uniform(0.2, 2, n), "label_smoothing": 0.1},
                   {"label_smoothing": 0.3, "reduction": "sum"},
                   {"reduction": "none", "weight": rng.uniform(0, 3, n)}):
            both(sc, ref, x, t, **opt, **kw)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTIONS[:3])
def test_probability_targets(sc, ref, rng, dt, opt):
    for n in (1, 2, 7, 16, 17, 33, 100):
        x = rng.normal(0, 6, (4, n)).astype(dt)
        q = rng.random((4, n))
        q = (q / q.sum(-1, keepdims=True)).astype(dt)
        for kw in ({}, {"weight": rng.uniform(0.2, 2, n), "label_smoothing": 0.2},
                   {"reduction": "none"}):
            both(sc, ref, x, q, **opt, **kw)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_other_axes_and_strides(sc, ref, rng, dt):
    # (N, C, d) along axis 1 (gathered rows), axis 0, a transposed view,
    # every other class, a read-only array
    x3 = rng.normal(0, 5, (3, 11, 7)).astype(dt)
    t3 = rng.integers(0, 11, (3, 7))
    t3[1, 2] = -100
    both(sc, ref, x3, t3, axis=1, softcap=3.0, z_loss=0.01)
    q3 = rng.random((3, 11, 7)).astype(dt)
    both(sc, ref, x3, q3, axis=1, softcap=3.0, z_loss=0.01, label_smoothing=0.1)
    x = rng.normal(0, 5, (40, 9)).astype(dt)
    t = rng.integers(0, 40, 9)
    both(sc, ref, x, t, axis=0, softcap=7.0, z_loss=1e-3, weight=rng.uniform(0.5, 2, 40))
    both(sc, ref, x.T, rng.integers(0, 40, 9), softcap=7.0, z_loss=1e-3)
    wide = rng.normal(0, 5, (6, 50)).astype(dt)
    both(sc, ref, wide[:, ::2], rng.integers(0, 25, 6), softcap=4.0, z_loss=0.2)
    ro = rng.normal(0, 5, (6, 19)).astype(dt)
    ro.setflags(write=False)
    both(sc, ref, ro, rng.integers(0, 19, 6), softcap=4.0, z_loss=0.2)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_special_values(sc, ref, dt):
    big = np.finfo(dt).max
    x = np.array([[0.0, 1.0, -np.inf, 2.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [np.nan, 1.0, 2.0, 3.0],
                  [big, -big, 0.0, 1.0],
                  [np.inf, 0.0, 1.0, 2.0],
                  [1e30, 1e30, -1e30, 0.0]], dt)
    t = np.array([1, 0, 2, 0, 1, 3])
    for opt in (dict(softcap=5.0), dict(softcap=5.0, z_loss=0.5)):
        loss, grad, lse = both(sc, ref, x, t, reduction="none", **opt)
        # capped: -inf is -cap, +inf and huge are +cap; only NaN stays NaN
        assert np.isfinite(loss[[0, 1, 3, 4, 5]]).all() and np.isnan(loss[2])
        assert np.isnan(grad[2]).all() and np.isfinite(grad[[0, 1, 3, 4, 5]]).all()
        # the cap's derivative is 0 at infinite logits
        assert grad[0, 2] == 0 and grad[4, 0] == 0 and (grad[1] == 0).all()
    # uncapped, with z_loss: lse is -inf on an all -inf row (as logsumexp)
    loss, grad, lse = both(sc, ref, x[[0, 3, 5]], t[[0, 3, 5]], z_loss=1e-3, reduction="none")
    lse1 = sc.cross_entropy(x[1:2], t[1:2], return_lse=True, reduction="none",
                            ignore_index=0)[1]
    assert lse1[0] == -np.inf
    # and +inf on a row holding +inf (its loss and gradient NaN, as PyTorch's)
    loss, grad, lse = both(sc, ref, x[[4]], t[[4]], z_loss=1e-3, reduction="none")
    assert lse[0] == np.inf and np.isnan(loss[0])
    assert sc.cross_entropy(x[[4]], np.array([-100]), return_lse=True)[1][0] == np.inf


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_ignored_rows(sc, ref, rng, dt):
    x = rng.normal(0, 3, (6, 13)).astype(dt)
    t = np.array([3, -100, 5, -100, -100, 0])
    x[1, 4] = np.nan  # an ignored row's values do not reach its gradient or the loss
    for red in ("mean", "sum", "none"):
        loss, grad, lse = both(sc, ref, x, t, softcap=2.0, z_loss=0.3, reduction=red)
        assert (grad[[1, 3, 4]] == 0).all()
        # the real lse of ignored rows (of the capped logits)
        c = 2.0 * np.tanh(x[[3, 4]].astype(np.float64) / 2.0)
        want = np.log(np.exp(c).sum(-1))
        np.testing.assert_allclose(lse[[3, 4]], want, rtol=TOL[np.dtype(dt)])
        assert np.isnan(lse[1])
    # every target ignored: "mean" is NaN (no weight), gradient 0
    loss, grad, lse = sc.cross_entropy_grad(x, np.full(6, -100), softcap=2.0, z_loss=0.3,
                                            return_lse=True)
    assert np.isnan(loss) and (grad == 0).all() and np.isfinite(lse[[0, 2, 3, 4, 5]]).all()


def test_z_loss_reduction_as_liger(sc, ref, rng):
    # mean: the cross-entropy over the kept weights, the z-loss over the kept count
    x = rng.normal(0, 3, (8, 10))
    t = rng.integers(0, 10, 8)
    t[[1, 6]] = -100
    w = rng.uniform(0.2, 3, 10)
    zl = 0.05
    plain = sc.cross_entropy(x, t, weight=w)
    _, lse = sc.cross_entropy(x, t, weight=w, return_lse=True)
    kept = t != -100
    want = plain + zl * np.sum(lse[kept] ** 2) / kept.sum()
    np.testing.assert_allclose(sc.cross_entropy(x, t, weight=w, z_loss=zl), want, rtol=1e-13)
    per = sc.cross_entropy(x, t, weight=w, z_loss=zl, reduction="none")
    np.testing.assert_allclose(per[kept], sc.cross_entropy(x, t, weight=w, reduction="none")[kept]
                               + zl * lse[kept] ** 2, rtol=1e-13)
    assert (per[~kept] == 0).all()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_no_option_effect_is_plain(sc, rng, dt):
    # return_lse alone on rows: the plain kernel's bits (the same row steps)
    x = rng.normal(0, 5, (9, 300)).astype(dt)
    t = rng.integers(0, 300, 9)
    t[4] = -100
    for kw in ({}, {"label_smoothing": 0.1, "weight": rng.uniform(0.5, 2, 300)}):
        loss, grad = sc.cross_entropy_grad(x, t, reduction="none", **kw)
        l2, g2, lse = sc.cross_entropy_grad(x, t, reduction="none", return_lse=True, **kw)
        assert np.array_equal(loss, l2) and np.array_equal(grad, g2)
        assert sc.cross_entropy_grad(x, t, z_loss=0.0, **kw)[1].tobytes() == \
            sc.cross_entropy_grad(x, t, **kw)[1].tobytes()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_out_in_place_empty_and_float16(sc, ref, rng, dt):
    x = rng.normal(0, 5, (7, 33)).astype(dt)
    t = rng.integers(0, 33, 7)
    want = sc.cross_entropy_grad(x, t, softcap=3.0, z_loss=0.1, return_lse=True)
    y = x.copy()
    res = sc.cross_entropy_grad(y, t, softcap=3.0, z_loss=0.1, return_lse=True, out=y)
    assert res[1] is y
    assert np.array_equal(y, want[1]) and res[0] == want[0] and np.array_equal(res[2], want[2])
    # in place along axis 0 (gathered rows)
    y = np.ascontiguousarray(x.T)
    res = sc.cross_entropy_grad(y, t, axis=0, softcap=3.0, z_loss=0.1, out=y)
    assert np.array_equal(y.T, want[1])
    # empty batch, no class
    loss, grad, lse = sc.cross_entropy_grad(np.zeros((0, 5), dt), np.zeros(0, np.int64),
                                            softcap=3.0, z_loss=0.1, return_lse=True)
    assert np.isnan(loss) and grad.shape == (0, 5) and lse.shape == (0,)
    loss, lse = sc.cross_entropy(np.zeros((3, 0), dt), np.full(3, -100), z_loss=0.1,
                                 return_lse=True, reduction="none")
    assert (loss == 0).all() and (lse == -np.inf).all()
    # float16 logits: computed in float32, the gradient in float16
    h = rng.normal(0, 5, (4, 21)).astype(np.float16)
    th = rng.integers(0, 21, 4)
    loss, grad, lse = sc.cross_entropy_grad(h, th, softcap=3.0, z_loss=0.1, return_lse=True)
    wl, wg, wlse = ref.cross_entropy_grad(h, th, softcap=3.0, z_loss=0.1, return_lse=True)
    assert grad.dtype == np.float16 and lse.dtype == np.float32
    close(loss, wl, np.float32, "loss")
    close(lse, wlse, np.float32, "lse")
    np.testing.assert_allclose(grad, wg, atol=2e-3 * np.abs(wg).max())


def test_one_sample(sc, ref):
    # 1-D logits: a 0-d target (or a row of probabilities), 0-d results
    x = np.array([1.0, 2.0, 3.0])
    for t in (np.array(1), np.array(-100), np.array([0.2, 0.3, 0.5])):
        for red in ("none", "mean", "sum"):
            got = both(sc, ref, x, t, softcap=2.0, z_loss=0.1, reduction=red)
            assert np.ndim(got[0]) == 0 and np.ndim(got[2]) == 0 and got[1].shape == (3,)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_threads_bitwise(sc, rng, dt):
    # one long row (the plain kernel would split it), few rows, many rows
    for shape in ((1, 300007), (3, 70001), (64, 2000)):
        x = rng.normal(0, 20, shape).astype(dt)
        t = rng.integers(0, shape[1], shape[0])
        for kw in ({"softcap": 30.0, "z_loss": 1e-4}, {"z_loss": 1e-3, "label_smoothing": 0.1}):
            one = sc.cross_entropy_grad(x, t, num_threads=1, return_lse=True, **kw)
            two = sc.cross_entropy_grad(x, t, num_threads=2, return_lse=True, **kw)
            assert one[0] == two[0] and np.array_equal(one[1], two[1])
            assert np.array_equal(one[2], two[2])


@pytest.mark.parametrize("dt, n", [(np.float32, 2000), (np.float64, 1000)])
def test_large_output_streamed(sc, rng, dt, n):
    # a gradient of 4 MiB and more is written through streaming stores:
    # the bits of calls too small for it, at any offset of `out`
    rows = (4 << 20) // (n * np.dtype(dt).itemsize) + 3
    x = rng.normal(0, 20, (rows, n)).astype(dt)
    t = rng.integers(0, n, rows)
    t[5] = -100
    kw = dict(softcap=30.0, z_loss=1e-4, reduction="sum")
    parts = [sc.cross_entropy_grad(x[r:r + 64], t[r:r + 64], return_lse=True, **kw)
             for r in range(0, rows, 64)]
    want_g = np.concatenate([p[1] for p in parts])
    want_lse = np.concatenate([p[2] for p in parts])
    base = np.empty(x.size + 16, dt)
    for off in (0, 1, 5):
        out = base[off:off + x.size].reshape(x.shape)
        loss, g, lse = sc.cross_entropy_grad(x, t, out=out, return_lse=True, **kw)
        assert np.array_equal(g, want_g) and np.array_equal(lse, want_lse), off
    for ls in (0.0, 0.1):
        one = sc.cross_entropy_grad(x, t, label_smoothing=ls, num_threads=1, **kw)
        two = sc.cross_entropy_grad(x, t, label_smoothing=ls, num_threads=2, **kw)
        assert one[0] == two[0] and np.array_equal(one[1], two[1])


@pytest.mark.parametrize("name, value, exc", [
    ("softcap", 0.0, ValueError), ("softcap", -1.0, ValueError), ("softcap", np.nan, ValueError),
    ("softcap", np.inf, ValueError), ("softcap", "1", TypeError), ("softcap", True, TypeError),
    ("softcap", 1e-320, ValueError),
    ("z_loss", -1e-3, ValueError), ("z_loss", np.nan, ValueError), ("z_loss", np.inf, ValueError),
    ("z_loss", "0.1", TypeError), ("z_loss", False, TypeError),
    ("return_lse", 1, TypeError), ("return_lse", None, TypeError), ("return_lse", "yes", TypeError),
])
def test_bad_options_raise_before_writing(sc, ref, rng, name, value, exc):
    x = rng.normal(0, 1, (3, 5)).astype(np.float32)
    t = np.array([0, 1, 2])
    out = np.full_like(x, 7.0)
    before, before_out = snapshot(x), snapshot(out)
    for fn, kw in ((sc.cross_entropy_grad, {"out": out}), (sc.cross_entropy, {}),
                   (ref.cross_entropy_grad, {"out": out})):
        with pytest.raises(exc, match=name):
            fn(x, t, **{name: value}, **kw)
        assert_unchanged(x, before)
        assert_unchanged(out, before_out)
    with pytest.raises(exc, match=name):  # in place: the logits untouched
        sc.cross_entropy_grad(x, t, out=x, **{name: value})
    assert_unchanged(x, before)


def _torch_composition(torch, x, t, *, softcap=None, z_loss=0.0, weight=None,
                       ignore_index=-100, reduction="mean", label_smoothing=0.0, axis=-1):
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    z = xt if softcap is None else softcap * torch.tanh(xt / softcap)
    z = z.movedim(axis, 1) if z.ndim > 1 else z
    tt = torch.tensor(t)
    if tt.is_floating_point():
        tt = tt.movedim(axis, 1) if tt.ndim > 1 else tt
    wt = None if weight is None else torch.tensor(weight, dtype=xt.dtype)
    ce = F.cross_entropy(z, tt, weight=wt, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing)
    lse = torch.logsumexp(z, dim=1 if z.ndim > 1 else 0)
    keep = (tt != ignore_index) if not tt.is_floating_point() else torch.ones_like(lse, dtype=bool)
    zt = torch.where(keep, z_loss * lse * lse, 0.0)
    if reduction == "mean":
        loss = ce + zt.sum() / keep.sum()
    elif reduction == "sum":
        loss = ce + zt.sum()
    else:
        loss = ce + zt
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy(), lse.detach().numpy()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_against_torch(sc, torch, rng, dt):
    for n in (1, 5, 16, 31, 40, 513):
        x = rng.normal(0, 8, (6, n)).astype(dt)
        x[0, 0] = -np.inf
        t = rng.integers(0, n, 6)
        t[3] = -100
        for kw in ({"softcap": 30.0, "z_loss": 1e-4}, {"softcap": 3.0},
                   {"softcap": 5.0, "z_loss": 0.1, "weight": rng.uniform(0.5, 2, n),
                    "label_smoothing": 0.1},
                   {"softcap": 5.0, "z_loss": 0.1, "reduction": "none"},
                   {"softcap": 5.0, "z_loss": 0.1, "reduction": "sum"}):
            loss, grad, lse = sc.cross_entropy_grad(x, t, return_lse=True, **kw)
            wl, wg, wlse = _torch_composition(torch, x, t, **kw)
            close(loss, wl, dt, "loss")
            close(grad, wg, dt, "grad")
            keep = t != -100
            close(lse[keep], wlse[keep], dt, "lse")
    # probability targets, the (N, C, d) layout
    x = rng.normal(0, 8, (3, 12, 5)).astype(dt)
    q = rng.random((3, 12, 5))
    q = (q / q.sum(1, keepdims=True)).astype(dt)
    loss, grad = sc.cross_entropy_grad(x, q, axis=1, softcap=4.0, z_loss=0.01)
    wl, wg, _ = _torch_composition(torch, x, q, axis=1, softcap=4.0, z_loss=0.01)
    close(loss, wl, dt, "loss")
    close(grad, wg, dt, "grad")


def test_torch_wrapper_options(sc, torch, rng):
    import softmax_c.torch as sct
    x = torch.tensor(rng.normal(0, 4, (5, 9)), requires_grad=True)
    t = torch.tensor([0, 3, -100, 8, 2])
    w = torch.tensor(rng.uniform(0.5, 2, 9))
    for red in ("mean", "sum", "none"):
        kw = dict(reduction=red, softcap=3.0, z_loss=0.05, label_smoothing=0.1)
        assert torch.autograd.gradcheck(
            lambda a: sct.cross_entropy(a, t, weight=w, **kw), (x,))
    q = torch.softmax(torch.tensor(rng.normal(0, 1, (5, 9))), -1)
    assert torch.autograd.gradcheck(
        lambda a: sct.cross_entropy(a, q, softcap=2.0, z_loss=0.1, label_smoothing=0.2), (x,))
    # (N, C, d): the classes on dim 1
    x3 = torch.tensor(rng.normal(0, 4, (2, 6, 3)), requires_grad=True)
    t3 = torch.tensor([[0, 5, -100], [2, 2, 1]])
    assert torch.autograd.gradcheck(
        lambda a: sct.cross_entropy(a, t3, softcap=3.0, z_loss=0.05, reduction="none"), (x3,))
    loss, lse = sct.cross_entropy(x, t, softcap=3.0, z_loss=0.05, return_lse=True)
    wl, _, wlse = _torch_composition(torch, x.detach().numpy(), t.numpy(), softcap=3.0,
                                     z_loss=0.05)
    np.testing.assert_allclose(loss.detach().numpy(), wl, rtol=1e-12)
    np.testing.assert_allclose(lse.numpy()[[0, 1, 3, 4]], wlse[[0, 1, 3, 4]], rtol=1e-12)
    assert not lse.requires_grad
    # no double backward through the options (the Hessian product is the plain loss's)
    loss = sct.cross_entropy(x, t, softcap=3.0)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


LEVEL_SCRIPT = r"""
import sys
import numpy as np
import softmax_c as sc
from softmax_c import reference as ref
assert sc.build_info()["simd"] == sys.argv[1]
rng = np.random.default_rng(5)
worst = {}
for dt in (np.float32, np.float64):
    for n in list(range(1, 41)) + [127, 1000]:
        x = rng.normal(0, 8, (5, n)).astype(dt)
        x[1, 0] = -np.inf
        x[4, n // 2] = np.inf
        t = rng.integers(0, n, 5)
        t[2] = -100
        q = rng.random((5, n)).astype(dt)
        for tt, kw in ((t, {"softcap": 3.0, "z_loss": 0.1}),
                       (t, {"softcap": 30.0, "label_smoothing": 0.1}),
                       (q, {"softcap": 3.0, "z_loss": 0.01})):
            got = sc.cross_entropy_grad(x, tt, return_lse=True, reduction="sum", **kw)
            want = ref.cross_entropy_grad(x, tt, return_lse=True, reduction="sum", **kw)
            for g, w, what in zip(got, want, ("loss", "grad", "lse")):
                g = np.asarray(g, np.float64); w = np.asarray(w, np.float64)
                assert np.array_equal(np.isnan(g), np.isnan(w)), what
                f = np.isfinite(w)
                s = max(1e-2, np.abs(w[f]).max()) if what == "grad" else np.maximum(1, np.abs(w[f]))
                e = float(np.max(np.abs(g[f] - w[f]) / s, initial=0))
                key = what + " " + np.dtype(dt).name
                worst[key] = max(worst.get(key, 0.0), e)
# a gradient of 4 MiB and more (streaming stores): the bits of small calls
for dt, n in ((np.float32, 2000), (np.float64, 1000)):
    rows = (4 << 20) // (n * np.dtype(dt).itemsize) + 3
    x = rng.normal(0, 20, (rows, n)).astype(dt)
    t = rng.integers(0, n, rows)
    kw = dict(softcap=30.0, z_loss=1e-4, reduction="sum", label_smoothing=0.1)
    want = np.concatenate([sc.cross_entropy_grad(x[r:r + 64], t[r:r + 64], **kw)[1]
                           for r in range(0, rows, 64)])
    base = np.empty(x.size + 16, dt)
    for off in (0, 3):
        out = base[off:off + x.size].reshape(x.shape)
        assert np.array_equal(sc.cross_entropy_grad(x, t, out=out, **kw)[1], want), (dt, off)
print(__import__("json").dumps(worst))
"""


def test_every_simd_level(sc):
    for level in simd_levels():
        worst = json.loads(run_at_level(level, LEVEL_SCRIPT, level).strip().splitlines()[-1])
        for key, err in worst.items():
            assert err <= (2e-5 if "float32" in key else 1e-12), (level, key, err)
