"""The NumPy reference (softmax_c.reference) against SciPy and PyTorch, and
its own semantics where they have no counterpart (where=, out=, the dtype
policy, validation).  The reference is the oracle of the other tests, so it
is held to outside implementations here."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from conftest import AxisError, assert_unchanged, snapshot

import softmax_c.reference as ref
from softmax_c import _validate

FORWARD = ["softmax", "log_softmax", "logsumexp"]
AXES = [0, 1, 2, -1, -2, (0,), (0, 2), (2, 0), (0, 1, 2), (), None]
RTOL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-13}


# ---------------------------------------------------------------- against SciPy

@pytest.fixture(scope="module")
def special():
    return pytest.importorskip("scipy.special")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", AXES, ids=repr)
@pytest.mark.parametrize("name", FORWARD)
def test_matches_scipy(special, rng, name, axis, dtype):
    x = rng.normal(0, 5, (3, 4, 5)).astype(dtype)
    got = getattr(ref, name)(x, axis=axis)
    want = getattr(special, name)(x, axis=axis)
    assert np.asarray(got).dtype == dtype
    assert np.shape(got) == np.shape(want)
    if name == "softmax":
        assert_allclose(got, want, rtol=RTOL[np.dtype(dtype)])
    else:
        assert_allclose(got, want, rtol=0, atol=RTOL[np.dtype(dtype)] * 30)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=repr)
def test_logsumexp_keepdims_matches_scipy(special, rng, axis, keepdims):
    x = rng.normal(size=(3, 4, 5))
    got = ref.logsumexp(x, axis=axis, keepdims=keepdims)
    want = special.logsumexp(x, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want)
    assert_allclose(got, want, rtol=1e-14)
    assert type(got) is type(want)  # a NumPy scalar when fully reduced


ROWS = [
    [1000.0, 1.0], [-1000.0, -1000.0], [1e30, -1e30, 0.0], [np.nan, 1.0],
    [np.inf, 1.0], [np.inf, np.inf], [np.inf, -np.inf], [-np.inf, -np.inf],
    [-np.inf, 0.0], [np.inf, np.nan], [5.0],
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_value_rules_match_scipy(special, row):
    """SciPy's NumPy code is what docs/api.md's value rules describe, except for
    log_softmax with a +inf, where SciPy gives -inf at the finite entries
    and docs/api.md a NaN slice."""
    x = np.array(row)
    with np.errstate(all="ignore"):
        for name in FORWARD:
            got, want = getattr(ref, name)(x), getattr(special, name)(x)
            if name == "log_softmax" and np.isposinf(x).any():
                assert np.isnan(got).all()
                continue
            assert_allclose(got, want, rtol=1e-15, equal_nan=True)


def test_empty_and_zero_d_match_scipy(special):
    for shape, axis in [((0,), -1), ((3, 0), -1), ((3, 0), 0), ((0, 4), -1)]:
        x = np.zeros(shape)
        got, want = ref.logsumexp(x, axis=axis), special.logsumexp(x, axis=axis)
        assert np.shape(got) == np.shape(want)
        assert_array_equal(got, want)
        for name in ("softmax", "log_softmax"):  # SciPy raises here
            assert getattr(ref, name)(x, axis=axis).shape == shape
    for name in FORWARD:
        x = np.array(2.5)
        assert_array_equal(getattr(ref, name)(x, axis=None),
                           getattr(special, name)(x, axis=None))


# ---------------------------------------------------------------- against PyTorch

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_forward_matches_torch(torch, rng, axis, dtype):
    x = rng.normal(0, 5, (4, 5, 6)).astype(dtype)
    t = torch.from_numpy(x)
    rtol = RTOL[np.dtype(dtype)]
    assert_allclose(ref.softmax(x, axis), torch.softmax(t, axis).numpy(), rtol=rtol)
    assert_allclose(ref.log_softmax(x, axis), torch.log_softmax(t, axis).numpy(),
                    rtol=0, atol=30 * rtol)
    assert_allclose(ref.logsumexp(x, axis), torch.logsumexp(t, axis).numpy(),
                    rtol=0, atol=30 * rtol)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_backward_matches_torch_func(torch, rng, axis):
    """JVPs and VJPs against torch.func on float64."""
    x = rng.normal(0, 2, (4, 5, 6))
    v = rng.normal(size=x.shape)
    tx, tv = torch.from_numpy(x), torch.from_numpy(v)
    y, logp = ref.softmax(x, axis), ref.log_softmax(x, axis)
    for fn, state, jvp, vjp in [
        (torch.softmax, y, ref.softmax_jvp, ref.softmax_vjp),
        (torch.log_softmax, logp, ref.log_softmax_jvp, ref.log_softmax_vjp),
    ]:
        f = lambda t, fn=fn: fn(t, axis)  # noqa: E731
        _, want_jvp = torch.func.jvp(f, (tx,), (tv,))
        _, pullback = torch.func.vjp(f, tx)
        (want_vjp,) = pullback(tv)
        assert_allclose(jvp(state, v, axis), want_jvp.numpy(), rtol=1e-12, atol=1e-14)
        assert_allclose(vjp(state, v, axis), want_vjp.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_jacobian_matches_torch_func(torch, rng, axis):
    x = rng.normal(size=(3, 4, 5))
    y = ref.softmax(x, axis)
    jac = ref.softmax_jacobian(y, axis)
    rows = torch.from_numpy(np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]))
    want = torch.vmap(torch.func.jacrev(lambda r: torch.softmax(r, -1)))(rows)
    n = x.shape[axis]
    assert jac.shape == np.moveaxis(x, axis, -1).shape + (n,)
    assert_allclose(jac.reshape(-1, n, n), want.numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- cross-entropy vs PyTorch

def torch_cross_entropy(torch, logits, target, axis, weight=None, ignore_index=-100,
                        reduction="mean", label_smoothing=0.0):
    """F.cross_entropy with the class axis moved to PyTorch's dim (1, or 0
    for 1-D logits); returns (loss, grad of the summed loss)."""
    cdim = 1 if logits.ndim > 1 else 0
    lg = torch.tensor(np.moveaxis(logits, axis, cdim), requires_grad=True)
    if target.dtype.kind == "f":
        tg = torch.tensor(np.moveaxis(target.astype(logits.dtype), axis, cdim))
    else:
        tg = torch.tensor(target.astype(np.int64))
    w = None if weight is None else torch.tensor(weight.astype(logits.dtype))
    loss = torch.nn.functional.cross_entropy(
        lg, tg, weight=w, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing)
    loss.sum().backward()
    return loss.detach().numpy(), np.moveaxis(lg.grad.numpy(), cdim, axis)


XENT_SHAPES = [  # logits shape, class axis
    ((6, 5), -1), ((6, 5), 1), ((4, 5, 3), 1), ((4, 3, 5), -1), ((5, 2, 3, 4), 0),
    ((5,), 0), ((5,), -1), ((0, 5), 1), ((7, 1), 1),
]


def _targets(rng, shape, axis, kind, target_dtype):
    n_classes = shape[axis]
    batch = tuple(s for d, s in enumerate(shape) if d != axis % len(shape))
    if kind == "index":
        t = rng.integers(0, n_classes, batch).astype(target_dtype)
        return t
    p = rng.random(shape)
    return (p / p.sum(axis=axis, keepdims=True)).astype(target_dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, target_dtype", [
    ("index", np.int64), ("index", np.int32), ("index", np.uint8), ("index", np.int8),
    ("prob", np.float64), ("prob", np.float32)])
@pytest.mark.parametrize("shape, axis", XENT_SHAPES, ids=str)
def test_cross_entropy_matches_torch(torch, rng, shape, axis, kind, target_dtype, dtype):
    """The option matrix: weight x reduction x label_smoothing, for every
    layout and target kind; loss and gradient against autograd."""
    logits = rng.normal(0, 3, shape).astype(dtype)
    target = _targets(rng, shape, axis, kind, target_dtype)
    n_classes = shape[axis]
    weights = [None, rng.uniform(0.2, 2.0, n_classes)]
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-14)
    for weight in weights:
        for reduction in ["mean", "sum", "none"]:
            for ls in [0.0, 0.25, 1.0]:
                kw = dict(weight=weight, reduction=reduction, label_smoothing=ls)
                want_loss, want_grad = torch_cross_entropy(torch, logits, target, axis, **kw)
                loss = ref.cross_entropy(logits, target, axis=axis, **kw)
                loss2, grad = ref.cross_entropy_grad(logits, target, axis=axis, **kw)
                assert_array_equal(loss, loss2)
                if reduction == "none":
                    assert isinstance(loss, np.ndarray) and loss.shape == want_loss.shape
                else:
                    assert isinstance(loss, np.generic)
                assert loss.dtype == dtype and grad.dtype == dtype
                assert grad.shape == logits.shape
                assert_allclose(loss, want_loss, rtol=rtol, atol=atol, equal_nan=True,
                                err_msg=str(kw))
                assert_allclose(grad, want_grad, rtol=rtol, atol=atol, err_msg=str(kw))


@pytest.mark.parametrize("ignore_index", [-100, 2, -1, 0])
@pytest.mark.parametrize("shape, axis", [((8, 4), 1), ((3, 4, 5), 1), ((4,), 0)], ids=str)
def test_cross_entropy_ignore_index_matches_torch(torch, rng, shape, axis, ignore_index):
    logits = rng.normal(0, 3, shape)
    target = _targets(rng, shape, axis, "index", np.int64)
    flat = target.reshape(-1)
    flat[::3] = ignore_index
    weight = rng.uniform(0.2, 2.0, shape[axis])
    for w in [None, weight]:
        for reduction in ["mean", "sum", "none"]:
            for ls in [0.0, 0.3]:
                kw = dict(weight=w, ignore_index=ignore_index, reduction=reduction,
                          label_smoothing=ls)
                want_loss, want_grad = torch_cross_entropy(torch, logits, target, axis, **kw)
                loss, grad = ref.cross_entropy_grad(logits, target, axis=axis, **kw)
                assert_allclose(loss, want_loss, rtol=1e-12, atol=1e-14, equal_nan=True,
                                err_msg=str(kw))
                assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-14, err_msg=str(kw))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_all_ignored_and_empty_match_torch(torch, rng, reduction):
    logits = rng.normal(size=(3, 4))
    for target in [np.full(3, -100), np.zeros(0, np.int64)]:
        lg = logits[: len(target)]
        for w in [None, np.ones(4)]:
            for ls in [0.0, 0.5]:
                kw = dict(weight=w, reduction=reduction, label_smoothing=ls)
                want_loss, want_grad = torch_cross_entropy(torch, lg, target, 1, **kw)
                loss, grad = ref.cross_entropy_grad(lg, target, axis=1, **kw)
                assert_allclose(loss, want_loss, equal_nan=True)
                assert_array_equal(grad, want_grad)
                if reduction == "mean":
                    assert np.isnan(loss)


def test_cross_entropy_out_of_range_is_index_error_in_both(torch):
    logits = np.zeros((2, 3))
    for bad in [3, -1, -101]:
        target = np.array([0, bad])
        with pytest.raises(IndexError):
            torch_cross_entropy(torch, logits, target, 1)
        with pytest.raises(IndexError, match=str(bad)):
            ref.cross_entropy(logits, target, axis=1)


def test_cross_entropy_extreme_logits_match_torch(torch):
    logits = np.array([[1000.0, 1.0, -1000.0], [-1e30, 0.0, 1e30], [3.0, 3.0, 3.0]])
    target = np.array([1, 2, 0])
    for ls in [0.0, 0.1]:
        want_loss, want_grad = torch_cross_entropy(torch, logits, target, 1, label_smoothing=ls)
        loss, grad = ref.cross_entropy_grad(logits, target, axis=1, label_smoothing=ls)
        assert_allclose(loss, want_loss, rtol=1e-14)
        assert_allclose(grad, want_grad, rtol=1e-14, atol=1e-300)


# ---------------------------------------------------------------- cross-entropy, own checks

def test_cross_entropy_onehot_gradient_is_softmax_minus_target(rng):
    """docs/api.md: one-hot targets, no options: (softmax(logits) - onehot) / N."""
    logits = rng.normal(size=(7, 5))
    target = rng.integers(0, 5, 7)
    onehot = np.eye(5)[target]
    loss, grad = ref.cross_entropy_grad(logits, target)
    assert_allclose(grad, (ref.softmax(logits) - onehot) / 7, rtol=1e-13, atol=1e-16)
    assert_allclose(loss, -np.mean(np.sum(onehot * ref.log_softmax(logits), -1)), rtol=1e-14)
    # probability targets that are one-hot give the same
    loss_p, grad_p = ref.cross_entropy_grad(logits, onehot)
    assert_allclose(loss_p, loss, rtol=1e-14)
    assert_allclose(grad_p, grad, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradient_finite_differences(rng, kind, reduction):
    shape, axis = (4, 3, 5), 1
    logits = rng.normal(size=shape)
    target = _targets(rng, shape, axis, kind, np.int64 if kind == "index" else np.float64)
    kw = dict(axis=axis, weight=rng.uniform(0.5, 2, 3), reduction=reduction,
              label_smoothing=0.2)
    _, grad = ref.cross_entropy_grad(logits, target, **kw)
    h = 1e-6
    num = np.zeros_like(logits)
    for idx in np.ndindex(*shape):
        e = np.zeros_like(logits)
        e[idx] = h
        num[idx] = (np.sum(ref.cross_entropy(logits + e, target, **kw))
                    - np.sum(ref.cross_entropy(logits - e, target, **kw))) / (2 * h)
    assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
    # the gradient of each sample sums to 0 over the classes
    assert_allclose(grad.sum(axis=axis), 0, atol=1e-15)


def test_cross_entropy_none_grad_is_grad_of_sum(rng):
    logits = rng.normal(size=(5, 4))
    target = rng.integers(0, 4, 5)
    loss_n, grad_n = ref.cross_entropy_grad(logits, target, reduction="none")
    loss_s, grad_s = ref.cross_entropy_grad(logits, target, reduction="sum")
    assert_allclose(loss_n.sum(), loss_s, rtol=1e-14)
    assert_allclose(grad_n, grad_s, rtol=1e-15)


def test_cross_entropy_dtypes(rng):
    logits = rng.normal(size=(4, 3))
    target = np.array([0, 2, 1, 0])
    loss, grad = ref.cross_entropy_grad(logits.astype(np.float16), target)
    assert loss.dtype == np.float32 and grad.dtype == np.float16
    loss, grad = ref.cross_entropy_grad(np.array([[1, 2], [3, 4]]), np.array([0, 1]))
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    loss, grad = ref.cross_entropy_grad(logits.astype(np.float32),
                                        ref.softmax(logits).astype(np.float64),
                                        weight=np.ones(3))
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    loss = ref.cross_entropy(logits.astype(np.float32), target, reduction="none")
    assert loss.dtype == np.float32 and loss.shape == (4,)
    loss = ref.cross_entropy(logits[0], np.int64(2), reduction="none")
    assert isinstance(loss, np.ndarray) and loss.shape == ()
    loss = ref.cross_entropy(logits[0], 2)
    assert isinstance(loss, np.float64)


def test_cross_entropy_out(rng):
    logits = rng.normal(size=(4, 6))
    target = np.array([0, 5, 3, 1])
    _, want = ref.cross_entropy_grad(logits, target)
    for out in [np.empty((4, 6)), np.empty((6, 4)).T, np.empty((8, 12))[::2, ::2]]:
        loss, grad = ref.cross_entropy_grad(logits, target, out=out)
        assert grad is out
        assert_allclose(out, want, rtol=1e-15)
    lg = logits.copy()
    loss_in, grad_in = ref.cross_entropy_grad(lg, target, out=lg)
    assert grad_in is lg
    assert_allclose(lg, want, rtol=1e-15)
    lg16 = logits.astype(np.float16)
    _, g16 = ref.cross_entropy_grad(lg16, target, out=lg16)
    assert g16 is lg16


def _bad_xent_calls():
    logits = np.zeros((3, 4))
    idx = np.array([0, 1, 2])
    prob = np.full((3, 4), 0.25)
    ro = np.zeros((3, 4))
    ro.flags.writeable = False
    return [
        ("bool target", (logits, np.array([True, False, True])), {}, TypeError, "target"),
        ("complex target", (logits, idx.astype(complex)), {}, TypeError, "complex"),
        ("index target shape", (logits, np.array([0, 1])), {}, ValueError, "target"),
        ("index target full shape", (logits, np.zeros((3, 4), int)), {}, ValueError, "target"),
        ("prob target shape", (logits, prob[:2]), {}, ValueError, "target"),
        ("out of range", (logits, np.array([0, 4, 1])), {}, IndexError, "4"),
        ("negative index", (logits, np.array([0, -3, 1])), {}, IndexError, "-3"),
        ("weight length", (logits, idx), dict(weight=np.ones(3)), ValueError, "weight"),
        ("weight 2-D", (logits, idx), dict(weight=np.ones((1, 4))), ValueError, "weight"),
        ("weight dtype", (logits, idx), dict(weight=np.ones(4, complex)), TypeError, "weight"),
        ("reduction", (logits, idx), dict(reduction="avg"), ValueError, "reduction"),
        ("reduction None", (logits, idx), dict(reduction=None), ValueError, "reduction"),
        ("smoothing > 1", (logits, idx), dict(label_smoothing=1.5), ValueError,
         "label_smoothing"),
        ("smoothing < 0", (logits, idx), dict(label_smoothing=-0.1), ValueError,
         "label_smoothing"),
        ("smoothing nan", (logits, idx), dict(label_smoothing=float("nan")), ValueError,
         "label_smoothing"),
        ("smoothing str", (logits, idx), dict(label_smoothing="0.1"), TypeError,
         "label_smoothing"),
        ("ignore_index prob", (logits, prob), dict(ignore_index=-1), ValueError,
         "ignore_index"),
        ("ignore_index float", (logits, idx), dict(ignore_index=1.0), TypeError,
         "ignore_index"),
        ("axis tuple", (logits, idx), dict(axis=(1,)), TypeError, "axis"),
        ("axis range", (logits, idx), dict(axis=2), AxisError, "axis"),
        ("logits dtype", (logits.astype(complex), idx), {}, TypeError, "complex"),
        ("num_threads", (logits, idx), dict(num_threads=0), ValueError, "num_threads"),
        ("out dtype", (logits, idx), dict(out=np.zeros((3, 4), np.float32)), TypeError, "out"),
        ("out shape", (logits, idx), dict(out=np.zeros((4, 3))), ValueError, "out"),
        ("out read-only", (logits, idx), dict(out=ro), ValueError, "out"),
        ("out list", (logits, idx), dict(out=[0.0] * 12), TypeError, "out"),
    ]


@pytest.mark.parametrize("label, args, kwargs, exc, word",
                         _bad_xent_calls(), ids=[c[0] for c in _bad_xent_calls()])
def test_cross_entropy_errors(label, args, kwargs, exc, word):
    """Each bad input raises as documented, before anything is written."""
    for fn in (ref.cross_entropy, ref.cross_entropy_grad):
        kw = dict(kwargs)
        if fn is ref.cross_entropy:
            if "out" in kw:
                continue
        elif "out" not in kw:
            kw["out"] = np.full((3, 4), 9.0)
        saved = [snapshot(a) for a in args] + [snapshot(v) for v in kw.values()]
        with pytest.raises(exc) as info:
            fn(*args, **kw)
        assert word in str(info.value), str(info.value)
        for a, s in zip(list(args) + list(kw.values()), saved):
            assert_unchanged(a, s)


def test_cross_entropy_ignore_index_as_a_class(rng):
    """ignore_index may be a valid class: those targets are ignored."""
    logits = rng.normal(size=(6, 3))
    target = np.array([0, 1, 2, 1, 1, 0])
    loss = ref.cross_entropy(logits, target, ignore_index=1)
    keep = target != 1
    assert_allclose(loss, ref.cross_entropy(logits[keep], target[keep]), rtol=1e-15)
    _, grad = ref.cross_entropy_grad(logits, target, ignore_index=1)
    assert_array_equal(grad[~keep], 0)


def test_cross_entropy_ignored_rows_are_not_read():
    logits = np.array([[np.nan, np.inf, 0.0], [1.0, 2.0, 3.0]])
    loss, grad = ref.cross_entropy_grad(logits, np.array([-100, 2]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert_array_equal(grad[0], 0)


# ---------------------------------------------------------------- forward semantics

@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=repr)
def test_where_is_the_slice_of_true_positions(rng, name, axis):
    x = rng.normal(size=(3, 4, 6))
    where = rng.random(x.shape) < 0.5
    where[0, 0, :] = False
    x[~where] = np.nan
    got = getattr(ref, name)(x, axis=axis, where=where)
    fill = 0.0 if name == "softmax" else -np.inf
    axes = _validate.normalize_axis(axis, 3)
    k = 3 - len(axes)
    xm = np.moveaxis(x, axes, range(k, 3))
    wm = np.moveaxis(where, axes, range(k, 3))
    gm = np.moveaxis(got, axes, range(k, 3))
    for idx in np.ndindex(*xm.shape[:k]):
        w = wm[idx]
        assert_array_equal(gm[idx][~w], fill)
        if w.any():
            assert_allclose(gm[idx][w], getattr(ref, name)(xm[idx][w]), rtol=1e-15)
    assert not np.isnan(got).any()


def test_where_value_rules_among_true_positions():
    x = np.array([[np.inf, 1.0, 0.0], [-np.inf, -np.inf, 0.0]])
    w = np.array([True, True, False])
    assert np.isnan(ref.softmax(x, where=w)[:, :2]).all()
    assert_array_equal(ref.softmax(x, where=w)[:, 2], 0)
    assert_array_equal(ref.log_softmax(x, where=w)[:, 2], -np.inf)


@pytest.mark.parametrize("dtype, result", [
    (np.float16, np.float16), (np.float32, np.float32), (np.float64, np.float64),
    (np.bool_, np.float64), (np.int8, np.float64), (np.uint64, np.float64),
    (">f4", np.float32)])
def test_dtype_policy(dtype, result):
    x = np.array([[0, 1, 1]], dtype)
    for name in FORWARD:
        assert np.asarray(getattr(ref, name)(x)).dtype == result
    assert ref.softmax_jvp(x, x).dtype == result
    assert ref.softmax_jacobian(x).dtype == result


def test_float16_computed_in_float32():
    x = np.array([12.0, 11.0], np.float16)  # exp(12) overflows float16
    assert_allclose(ref.softmax(x).astype(float), [0.7310586, 0.2689414], rtol=1e-3)
    assert np.isfinite(ref.logsumexp(np.full(70000, 0, np.float16)))


@pytest.mark.parametrize("dtype", [np.complex128, np.longdouble, object, "U2", "S2",
                                   "M8[s]", "m8[s]"], ids=str)
def test_rejected_dtypes(dtype):
    if np.dtype(dtype) == np.float64:  # longdouble is double on this platform
        return
    x = np.zeros(3, dtype)
    for fn in [ref.softmax, ref.log_softmax, ref.logsumexp, ref.softmax_jacobian]:
        with pytest.raises(TypeError, match="dtype"):
            fn(x)
    for fn in [ref.softmax_jvp, ref.log_softmax_vjp]:
        with pytest.raises(TypeError, match="dtype"):
            fn(x, np.zeros(3))
        with pytest.raises(TypeError, match="dtype"):
            fn(np.zeros(3), x)


def test_out_semantics(rng):
    x = rng.normal(size=(4, 5))
    want = ref.softmax(x)
    for out in [np.empty((4, 5)), np.empty((5, 4)).T, np.empty((8, 10))[::2, ::-2]]:
        assert ref.softmax(x, out=out) is out
        assert_allclose(out, want, rtol=1e-15)
    xc = x.copy()
    assert ref.log_softmax(xc, axis=0, out=xc) is xc
    assert_allclose(xc, ref.log_softmax(x, axis=0), rtol=1e-15)
    v = rng.normal(size=(4, 5))
    y = ref.softmax(x)
    vc = v.copy()
    assert ref.softmax_vjp(y, vc, out=vc) is vc
    assert_allclose(vc, ref.softmax_vjp(y, v), rtol=1e-15)


def test_forward_errors():
    x = np.zeros((2, 3))
    out = np.full((2, 3), 7.0)
    cases = [
        (dict(axis="a"), TypeError, "'a'"), (dict(axis=[0]), TypeError, "axis"),
        (dict(axis=True), TypeError, "axis"), (dict(axis=2), AxisError, "axis"),
        (dict(axis=(0, -2)), ValueError, "axis"),
        (dict(where=np.ones(3, int)), TypeError, "where"),
        (dict(where=np.ones(2, bool)), ValueError, "where"),
        (dict(num_threads=0), ValueError, "num_threads"),
        (dict(num_threads=1.5), TypeError, "num_threads"),
        (dict(num_threads=False), TypeError, "num_threads"),
    ]
    for kwargs, exc, word in cases:
        for fn in (ref.softmax, ref.log_softmax):
            with pytest.raises(exc, match=word):
                fn(x, out=out, **kwargs)
            assert_array_equal(out, 7.0)
    for bad, exc in [(np.zeros((3, 2)), ValueError), (np.zeros((2, 3), np.float32), TypeError),
                     ([[0.0] * 3] * 2, TypeError)]:
        with pytest.raises(exc, match="out"):
            ref.softmax(x, out=bad)
    assert ref.softmax(x, num_threads=np.int64(3)).shape == x.shape


# ---------------------------------------------------------------- backward, own checks

def test_backward_formulas(rng):
    x = rng.normal(size=(3, 6))
    v = rng.normal(size=(3, 6))
    y, logp = ref.softmax(x), ref.log_softmax(x)
    jac = ref.softmax_jacobian(y)
    assert_allclose(ref.softmax_jvp(y, v), np.einsum("bij,bj->bi", jac, v), rtol=1e-12,
                    atol=1e-15)
    assert_allclose(ref.softmax_vjp(y, v), np.einsum("bj,bji->bi", v, jac), rtol=1e-12,
                    atol=1e-15)
    assert_allclose(ref.softmax_jvp(y, v).sum(-1), 0, atol=1e-15)
    assert_allclose(ref.log_softmax_jvp(logp, v), v - np.sum(y * v, -1, keepdims=True),
                    rtol=1e-14)
    assert_allclose(ref.log_softmax_vjp(logp, v), v - y * v.sum(-1, keepdims=True),
                    rtol=1e-14)
    assert_allclose(np.diagonal(jac, axis1=-2, axis2=-1), y - y * y, rtol=1e-15)
    assert_allclose(jac, np.swapaxes(jac, -1, -2))


def test_backward_promotion_and_errors():
    y32 = np.full((2, 3), 1 / 3, np.float32)
    assert ref.softmax_jvp(y32, np.ones((2, 3), np.float64)).dtype == np.float64
    assert ref.softmax_jvp(y32, np.ones((2, 3), np.int64)).dtype == np.float64
    assert ref.softmax_jvp(y32, y32).dtype == np.float32
    h = y32.astype(np.float16)
    assert ref.log_softmax_vjp(h, h).dtype == np.float16
    assert ref.softmax_vjp(np.ones((2, 3), int), np.ones((2, 3), bool)).dtype == np.float64
    for fn, names in [(ref.softmax_jvp, ("y", "v")), (ref.softmax_vjp, ("y", "g")),
                      (ref.log_softmax_jvp, ("logp", "v")),
                      (ref.log_softmax_vjp, ("logp", "g"))]:
        with pytest.raises(ValueError) as info:
            fn(np.zeros((2, 3)), np.zeros((3, 2)))
        msg = str(info.value)
        assert all(n in msg for n in names) and "(2, 3)" in msg and "(3, 2)" in msg
        with pytest.raises(ValueError):  # no broadcasting
            fn(np.zeros((2, 3)), np.zeros(3))
        with pytest.raises(TypeError, match="axis"):
            fn(np.zeros((2, 3)), np.zeros((2, 3)), axis=(0,))
        with pytest.raises(TypeError, match="axis"):
            fn(np.zeros((2, 3)), np.zeros((2, 3)), axis=None)
        with pytest.raises(AxisError):
            fn(np.zeros((2, 3)), np.zeros((2, 3)), axis=2)
        out = np.full((2, 3), 5.0)
        with pytest.raises(TypeError):
            fn(np.zeros((2, 3)), np.zeros((2, 3)), out=out.astype(np.float32))
        with pytest.raises(ValueError):
            fn(np.zeros((2, 3)), np.zeros((2, 4)), out=out)
        assert_array_equal(out, 5.0)
    with pytest.raises(TypeError, match="axis"):
        ref.softmax_jacobian(np.zeros(3), axis=None)


def test_backward_empty():
    for shape in [(0, 3), (3, 0)]:
        z = np.zeros(shape)
        assert ref.softmax_jvp(z, z).shape == shape
        assert ref.log_softmax_vjp(z, z).shape == shape
    assert ref.softmax_jacobian(np.zeros((3, 0))).shape == (3, 0, 0)
    assert ref.softmax_jacobian(np.zeros((0, 4))).shape == (0, 4, 4)


# ---------------------------------------------------------------- _validate

def test_normalize_axis():
    assert _validate.normalize_axis(-1, 3) == (2,)
    assert _validate.normalize_axis(None, 3) == (0, 1, 2)
    assert _validate.normalize_axis(None, 0) == ()
    assert _validate.normalize_axis((2, -3), 3) == (0, 2)
    assert _validate.normalize_axis(np.int32(1), 3) == (1,)
    assert _validate.normalize_axis((), 3) == ()
    with pytest.raises(AxisError):
        _validate.normalize_axis(0, 0)
    with pytest.raises(TypeError, match="got 'a'"):
        _validate.normalize_axis("a", 2)


def test_check_num_threads():
    assert _validate.check_num_threads(np.int64(4)) == 4
    assert type(_validate.check_num_threads(np.int64(4))) is int
    for bad, exc in [(0, ValueError), (-1, ValueError), (True, TypeError),
                     (np.bool_(True), TypeError), (2.0, TypeError), (None, TypeError)]:
        with pytest.raises(exc, match="num_threads"):
            _validate.check_num_threads(bad)


def test_result_dtypes():
    f32, f64, f16 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)
    assert _validate.result_dtypes(f16) == (f32, f16)
    assert _validate.result_dtypes(np.dtype(">f4")) == (f32, f32)
    assert _validate.result_dtypes(np.dtype(np.uint16)) == (f64, f64)
    assert _validate.result_dtypes(np.dtype(bool)) == (f64, f64)
    with pytest.raises(TypeError, match="complex64"):
        _validate.result_dtypes(np.dtype(np.complex64))
