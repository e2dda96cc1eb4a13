"""softmax_c.torch: the PyTorch autograd functions over softmax_c's kernels.

Held to three things: ``torch.autograd.gradcheck`` in float64 (the backward
agrees with finite differences of the forward); PyTorch's own
``torch.softmax`` / ``torch.log_softmax`` / ``F.cross_entropy`` with
autograd, forward and gradients, in float32 and float64; and zero-copy,
checked by spying on the softmax_c functions the module calls and comparing
the data pointers of the arrays they receive and return with those of the
tensors.  The whole file is skipped where PyTorch is not installed.

Tolerances against PyTorch: both sides are accurate to a few units in the
last place of the values they compute (O(1) here: standard normal inputs
times 3), so float64 agrees to 1e-12 relative / 1e-13 absolute and float32
to 2e-6 relative / 2e-6 absolute.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import softmax_c  # noqa: E402
import softmax_c.torch as sct  # noqa: E402
from conftest import AxisError  # noqa: E402

F = torch.nn.functional

TOLS = {torch.float32: dict(rtol=2e-6, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-13)}
FLOAT_DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _ptr(a):
    """The data pointer of ndarray `a`."""
    return a.__array_interface__["data"][0]


def _close(ours, theirs, dtype):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                               equal_nan=True, **TOLS[dtype])


def _randn(rng, shape, dtype, scale=3.0):
    return torch.from_numpy(scale * rng.standard_normal(shape)).to(dtype)


def _layout(x, how):
    """A tensor of the values of `x` in another layout: 'c' as it is, 't'
    transposed (the last two axes), 's' a strided slice of a larger tensor,
    'e' an expanded (stride 0) view."""
    if how == "c":
        return x
    if how == "t":
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if how == "s":
        big = torch.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    raise ValueError(how)


# ---------------------------------------------------------------- import

def _run_python(code):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


def test_import_softmax_c_does_not_import_torch():
    r = _run_python("import softmax_c, sys; assert 'torch' not in sys.modules, 'torch imported'")
    assert r.returncode == 0, r.stderr


def test_import_without_torch_raises_clear_error():
    # None in sys.modules makes `import torch` fail as if it were not installed
    r = _run_python(
        "import sys; sys.modules['torch'] = None\n"
        "try:\n"
        "    import softmax_c.torch\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "softmax_c.torch needs PyTorch: pip install torch"


def test_module_gets_the_real_pytorch():
    """Inside softmax_c/torch.py, `import torch` is PyTorch, not itself."""
    assert sct.__name__ == "softmax_c.torch"
    assert sct.torch is torch is sys.modules["torch"]
    assert sct.torch is not sct and hasattr(sct.torch, "autograd")
    assert softmax_c.torch is sct
    assert issubclass(sct.Softmax, torch.autograd.Function)


# ---------------------------------------------------------------- gradcheck

# (shape, dim, layout)
SOFTMAX_CASES = [
    ((5,), 0, "c"),
    ((3, 4), 0, "c"),
    ((3, 4), 1, "c"),
    ((3, 4), -1, "t"),
    ((3, 4), 0, "t"),
    ((2, 3, 4), 1, "c"),
    ((2, 3, 4), -1, "s"),
]


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim, layout", SOFTMAX_CASES)
def test_gradcheck_softmax(rng, fn, shape, dim, layout):
    x = _layout(_randn(rng, shape, torch.float64, 1.0), layout).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: fn(a, dim), (x,))


def _xent_args(rng, kind, option, shape=(5, 4), dim=1, dtype=torch.float64):
    """(target, kwargs) for logits of `shape` with the classes along `dim`."""
    n = shape[dim]
    batch = tuple(s for d, s in enumerate(shape) if d != dim)
    kw = {}
    if kind == "index":
        t = torch.from_numpy(rng.integers(0, n, size=batch))
        if option in ("ignore", "all"):
            t.view(-1)[::2] = 2  # every other sample ignored
            kw["ignore_index"] = 2
    else:
        p = rng.random(shape)
        t = torch.from_numpy(p / p.sum(axis=dim, keepdims=True)).to(dtype)
    if option in ("weight", "all"):
        kw["weight"] = torch.from_numpy(rng.uniform(0.5, 2.0, n)).to(dtype)
    if option in ("smoothing", "all"):
        kw["label_smoothing"] = 0.2
    return t, kw


XENT_OPTIONS = [("index", o) for o in ("plain", "weight", "ignore", "smoothing", "all")] + \
               [("prob", o) for o in ("plain", "weight", "smoothing", "all")]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind, option", XENT_OPTIONS)
def test_gradcheck_cross_entropy(rng, kind, option, reduction):
    z = _randn(rng, (5, 4), torch.float64, 1.0).requires_grad_()
    t, kw = _xent_args(rng, kind, option)
    assert torch.autograd.gradcheck(
        lambda a: sct.cross_entropy(a, t, reduction=reduction, **kw), (z,))


# (logits shape, layout, dim keyword)
XENT_SHAPES = [((4,), "c", None), ((3, 4, 2), "c", None), ((5, 4), "t", None),
               ((2, 3, 4), "s", -1)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("shape, layout, dim", XENT_SHAPES)
def test_gradcheck_cross_entropy_shapes(rng, shape, layout, dim, kind, reduction):
    z = _layout(_randn(rng, shape, torch.float64, 1.0), layout).requires_grad_()
    k = dim if dim is not None else (1 if len(shape) >= 2 else 0)
    t, kw = _xent_args(rng, kind, "smoothing", shape=shape, dim=k % len(shape))
    assert torch.autograd.gradcheck(
        lambda a: sct.cross_entropy(a, t, reduction=reduction, dim=dim, **kw), (z,))


# ---------------------------------------------------------------- against PyTorch

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim, layout", SOFTMAX_CASES + [((4, 6), 0, "e"),
                                                                ((0, 5), 1, "c")])
def test_softmax_matches_torch(rng, name, dtype, shape, dim, layout):
    ours_fn, theirs_fn = getattr(sct, name), getattr(torch, name)
    base = _randn(rng, shape[1:] if layout == "e" else shape, dtype)
    g = _randn(rng, shape, dtype, 1.0)
    results = []
    for fn in (ours_fn, theirs_fn):
        leaf = base.clone().requires_grad_()
        x = leaf.expand(shape) if layout == "e" else _layout(leaf, layout)
        y = fn(x, dim)
        y.backward(g)
        results.append((y, leaf.grad))
    (y1, g1), (y2, g2) = results
    assert y1.dtype == dtype and y1.shape == shape
    _close(y1, y2, dtype)
    _close(g1, g2, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind, option", XENT_OPTIONS)
def test_cross_entropy_matches_torch(rng, dtype, kind, option, reduction):
    shape = (6, 5, 3)  # (N, C, d1): PyTorch's layout, classes along 1
    z0 = _randn(rng, shape, dtype)
    t, kw = _xent_args(rng, kind, option, shape=shape, dim=1, dtype=dtype)
    # the gradient of the loss from upstream: per sample for "none"
    upstream = (_randn(rng, (6, 3), dtype, 1.0) if reduction == "none"
                else torch.tensor(0.7, dtype=dtype))
    results = []
    for fn in (sct.cross_entropy, F.cross_entropy):
        z = z0.clone().requires_grad_()
        loss = fn(z, t, reduction=reduction, **kw)
        loss.backward(upstream)
        results.append((loss, z.grad))
    (l1, g1), (l2, g2) = results
    assert l1.dtype == dtype and l1.shape == l2.shape
    _close(l1, l2, dtype)
    _close(g1, g2, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_cross_entropy_class_last_dim(rng, dtype):
    """dim=-1 on (N, d, C) logits is F.cross_entropy on the (N, C, d) view."""
    z0 = _randn(rng, (4, 3, 6), dtype)
    t, kw = _xent_args(rng, "index", "all", shape=(4, 3, 6), dim=2, dtype=dtype)
    z1, z2 = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    l1 = sct.cross_entropy(z1, t, dim=-1, **kw)
    l2 = F.cross_entropy(z2.movedim(-1, 1), t, **kw)
    l1.backward()
    l2.backward()
    _close(l1, l2, dtype)
    _close(z1.grad, z2.grad, dtype)


def test_cross_entropy_all_ignored_mean_is_nan():
    z = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.full((3,), -100)
    loss = sct.cross_entropy(z, t)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(z, t))


def test_no_grad_and_inference_mode(rng):
    x = _randn(rng, (3, 5), torch.float32).requires_grad_()
    with torch.no_grad():
        y = sct.softmax(x, 1)
    assert y.grad_fn is None and not y.requires_grad
    with torch.inference_mode():
        z = sct.log_softmax(x.detach(), 1)
    _close(y, torch.softmax(x, 1), torch.float32)
    _close(z, torch.log_softmax(x, 1), torch.float32)


def test_dtype_argument_casts_first(rng):
    """As torch.softmax(x, dim, dtype=...): a float16 input cast to float32,
    its gradient cast back by PyTorch."""
    x = _randn(rng, (3, 5), torch.float16, 1.0).requires_grad_()
    y = sct.softmax(x, 1, dtype=torch.float32)
    assert y.dtype == torch.float32
    y.backward(torch.ones_like(y))
    assert x.grad.dtype == torch.float16


# ---------------------------------------------------------------- zero-copy

@pytest.fixture
def spy(monkeypatch):
    """spy(name): replace softmax_c.<name> with a wrapper recording each
    call's (args, kwargs, result); returns the list of calls."""
    def install(name):
        calls = []
        original = getattr(softmax_c, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            calls.append((args, kwargs, result))
            return result
        monkeypatch.setattr(softmax_c, name, wrapper)
        return calls
    return install


def _same_memory(a, t):
    """ndarray `a` is a view of exactly the memory of tensor `t`."""
    return (_ptr(a) == t.data_ptr() and a.shape == tuple(t.shape)
            and a.strides == tuple(s * t.element_size() for s in t.stride()))


@pytest.mark.parametrize("name, vjp", [("softmax", "softmax_vjp"),
                                       ("log_softmax", "log_softmax_vjp")])
@pytest.mark.parametrize("layout", ["c", "t", "s"])
def test_zero_copy_softmax(rng, spy, name, vjp, layout):
    forward, backward = spy(name), spy(vjp)
    x = _layout(_randn(rng, (4, 6), torch.float32), layout).requires_grad_()
    y = getattr(sct, name)(x, 0)
    (args, kwargs, res), = forward
    assert _same_memory(args[0], x)  # the input read in place, not made contiguous
    assert res is kwargs["out"] and _same_memory(res, y)  # written straight into y
    assert np.shares_memory(y.detach().numpy(), res)

    g = _layout(_randn(rng, (4, 6), torch.float32), layout)
    gx, = torch.autograd.grad(y, x, g)
    (args, kwargs, res), = backward
    assert _same_memory(args[0], y) and _same_memory(args[1], g)
    assert res is kwargs["out"] and _same_memory(res, gx)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_copy_cross_entropy(rng, spy, reduction):
    calls = spy("cross_entropy_grad")
    z = _layout(_randn(rng, (5, 4), torch.float64), "t").requires_grad_()
    t = torch.from_numpy(rng.integers(0, 4, size=5))
    w = torch.from_numpy(rng.uniform(0.5, 2.0, 4))
    loss = sct.cross_entropy(z, t, weight=w, reduction=reduction)
    (args, kwargs, (np_loss, np_grad)), = calls
    assert _same_memory(args[0], z) and _same_memory(args[1], t)
    assert _same_memory(kwargs["weight"], w)
    assert np_grad is kwargs["out"]
    if reduction == "none":  # the per-sample losses wrapped, not copied
        assert np.shares_memory(loss.detach().numpy(), np_loss)


# ---------------------------------------------------------------- errors

ALL_FNS = {
    "softmax": lambda x: sct.softmax(x, 0),
    "log_softmax": lambda x: sct.log_softmax(x, 0),
    "cross_entropy": lambda x: sct.cross_entropy(x, torch.zeros((), dtype=torch.int64)),
}


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_non_cpu_device_is_a_value_error(name):
    with pytest.raises(ValueError, match="meta"):
        ALL_FNS[name](torch.empty(3, device="meta"))


def test_non_cpu_target_and_weight_are_value_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`target`.*meta"):
        sct.cross_entropy(z, torch.zeros(2, dtype=torch.int64, device="meta"))
    with pytest.raises(ValueError, match="`weight`.*meta"):
        sct.cross_entropy(z, torch.zeros(2, dtype=torch.int64),
                          weight=torch.ones(3, device="meta"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_cross_entropy_is_a_type_error(dtype):
    with pytest.raises(TypeError, match=rf"{dtype}.*not support"):
        ALL_FNS["cross_entropy"](torch.zeros(3, dtype=dtype))


# ---------------------------------------------------------------- float16 / bfloat16

HALF_DTYPES = [torch.float16, torch.bfloat16]
# significand bits, with the implicit one; the smallest spacing honoured
HALF_PREC = {torch.float16: (11, 2.0**-24), torch.bfloat16: (8, 2.0**-126)}


def _half_ulp(t, dtype):
    """One unit in the last place of `dtype` at the values t (float64)."""
    p, floor = HALF_PREC[dtype]
    a = np.abs(np.asarray(t, np.float64))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    return np.maximum(np.ldexp(1.0, (e - (p - 1)).astype(int)), floor)


def _f64(t):
    return t.detach().double().numpy()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("layout, dim", [("c", 1), ("c", 0), ("t", 1), ("s", 1), ("c", -1)])
def test_half_against_pytorch(rng, dtype, name, layout, dim):
    """float16 / bfloat16 tensors, forward and gradient: in the input's
    dtype, within one unit in the last place (plus float32's own error where
    a difference cancels) of the float64 result of the same half-width
    values, and within two units of PyTorch's half-width result (each side
    rounds once)."""
    x = _layout(_randn(rng, (7, 300), torch.float32).to(dtype), layout)
    ours_x = x.clone().requires_grad_() if layout == "c" else x.requires_grad_()
    theirs_x = x.detach().clone().requires_grad_()
    y = getattr(sct, name)(ours_x, dim)
    y_t = getattr(torch, name)(theirs_x, dim)
    assert y.dtype == dtype
    x64 = _f64(x)
    want = (torch.softmax if name == "softmax" else torch.log_softmax)(
        torch.from_numpy(x64), dim).numpy()
    bound = _half_ulp(want, dtype) + (0 if name == "softmax" else 1e-6 * np.maximum(1, abs(want)))
    assert np.all(np.abs(_f64(y) - want) <= bound)
    assert np.all(np.abs(_f64(y) - _f64(y_t)) <= 2 * _half_ulp(want, dtype) + bound)

    g = _randn(rng, (7, 300), torch.float32).to(dtype)
    gx, = torch.autograd.grad(y, ours_x, g)
    gx_t, = torch.autograd.grad(y_t, theirs_x, g)
    assert gx.dtype == dtype
    Y, G = _f64(y), _f64(g)
    k = dim % 2
    if name == "softmax":
        gw = Y * (G - (Y * G).sum(k, keepdims=True))
        scale = np.abs(Y) * (np.abs(G) + np.abs(Y * G).sum(k, keepdims=True))
    else:
        P = np.exp(Y)
        gw = G - P * G.sum(k, keepdims=True)
        scale = np.abs(G) + P * np.abs(G).sum(k, keepdims=True)
    assert np.all(np.abs(_f64(gx) - gw) <= _half_ulp(gw, dtype) + 2.0**-20 * scale)
    # PyTorch's gradient starts from its own rounding of y
    tol = 8 * _half_ulp(np.abs(gw).max(), dtype)
    assert np.all(np.abs(_f64(gx) - _f64(gx_t)) <= tol)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("name, vjp", [("softmax", "softmax_vjp"),
                                       ("log_softmax", "log_softmax_vjp")])
@pytest.mark.parametrize("layout", ["c", "t", "s"])
def test_zero_copy_half(rng, spy, dtype, name, vjp, layout):
    """float16 and bfloat16 tensors reach the kernels as views of their own
    memory (bfloat16 through its bit patterns), forward and backward."""
    forward, backward = spy(name), spy(vjp)
    x = _layout(_randn(rng, (4, 6), torch.float32).to(dtype), layout).requires_grad_()
    y = getattr(sct, name)(x, 0)
    (args, kwargs, res), = forward
    assert _same_memory(args[0], x) and args[0].itemsize == 2
    assert res is kwargs["out"] and _same_memory(res, y)
    g = _layout(_randn(rng, (4, 6), torch.float32).to(dtype), layout)
    gx, = torch.autograd.grad(y, x, g)
    (args, kwargs, res), = backward
    assert _same_memory(args[0], y) and _same_memory(args[1], g)
    assert res is kwargs["out"] and _same_memory(res, gx)


def test_bfloat16_without_ml_dtypes_is_a_type_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import fails
    with pytest.raises(TypeError, match="ml_dtypes"):
        sct.softmax(torch.zeros(3, dtype=torch.bfloat16), 0)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
def test_half_with_fused_options_is_a_type_error(dtype):
    with pytest.raises(TypeError, match=rf"{dtype}.*not support"):
        sct.softmax(torch.zeros(2, 3, dtype=dtype), -1, scale=0.5)


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_other_dtypes_and_non_tensors_are_type_errors(name):
    with pytest.raises(TypeError, match="torch.int64"):
        ALL_FNS[name](torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ALL_FNS[name](np.zeros(3))


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=["softmax", "log_softmax"])
def test_bad_dim(fn):
    x = torch.zeros(2, 3)
    with pytest.raises(AxisError):
        fn(x, 2)
    with pytest.raises(AxisError):
        fn(x, -3)
    for dim in [(0,), None, 1.0]:
        with pytest.raises(TypeError, match="dim"):
            fn(x, dim)


def test_cross_entropy_errors_propagate_from_softmax_c():
    z = torch.zeros(3, 4, dtype=torch.float64)
    t = torch.tensor([0, 7, 1])
    with pytest.raises(IndexError) as ours:
        sct.cross_entropy(z, t)
    with pytest.raises(IndexError) as theirs:
        softmax_c.cross_entropy_grad(z.numpy(), t.numpy(), axis=1)
    assert str(ours.value) == str(theirs.value) and "7" in str(ours.value)
    with pytest.raises(ValueError, match="reduction"):
        sct.cross_entropy(z, torch.tensor([0, 1, 1]), reduction="avg")
    with pytest.raises(ValueError):  # ignore_index with probability targets
        sct.cross_entropy(z, torch.full((3, 4), 0.25, dtype=torch.float64), ignore_index=1)
    with pytest.raises(ValueError, match="target"):  # wrong shape
        sct.cross_entropy(z, torch.tensor([0, 1]))
    with pytest.raises(AxisError):
        sct.cross_entropy(z, torch.tensor([0, 1, 1]), dim=2)


@pytest.mark.parametrize("which", ["target", "weight"])
def test_grad_wrt_target_or_weight_is_refused(rng, which):
    z = _randn(rng, (3, 4), torch.float64).requires_grad_()
    t = torch.full((3, 4), 0.25, dtype=torch.float64)
    w = torch.ones(4, dtype=torch.float64)
    (t if which == "target" else w).requires_grad_()
    loss = sct.cross_entropy(z, t, weight=w)
    with pytest.raises(RuntimeError, match=f"`{which}`"):
        loss.backward()


# ---------------------------------------------------------------- double backward

def test_gradient_penalty_matches_pytorch():
    """A gradient penalty needs the gradient's own graph (create_graph=True):
    without it the penalty's second-order part is silently lost."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 4, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    t = torch.tensor([3, 1])
    cases = [(lambda a: (sct.softmax(a, 1) * w).sum(),
              lambda a: (torch.softmax(a, 1) * w).sum()),
             (lambda a: (sct.log_softmax(a, 1) * w).sum(),
              lambda a: (torch.log_softmax(a, 1) * w).sum()),
             (lambda a: sct.cross_entropy(a, t, label_smoothing=0.1),
              lambda a: F.cross_entropy(a, t, label_smoothing=0.1))]
    for ours, theirs in cases:
        grads = []
        for fn in (ours, theirs):
            x = x0.clone().requires_grad_()
            loss = fn(x)
            (g,) = torch.autograd.grad(loss, x, create_graph=True)
            assert g.requires_grad
            (loss + (g ** 2).sum()).backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim, layout", SOFTMAX_CASES + [((), 0, "c")])
def test_gradgradcheck_softmax(rng, fn, shape, dim, layout):
    x = torch.from_numpy(np.asarray(rng.standard_normal(shape)))
    x = (_layout(x, layout) if x.ndim >= 2 else x).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a: fn(a, dim), (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind, option", XENT_OPTIONS)
def test_gradgradcheck_cross_entropy(rng, kind, option, reduction):
    z = _randn(rng, (5, 4), torch.float64, 1.0).requires_grad_()
    t, kw = _xent_args(rng, kind, option)
    assert torch.autograd.gradgradcheck(
        lambda a: sct.cross_entropy(a, t, reduction=reduction, **kw), (z,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("shape, layout, dim", XENT_SHAPES)
def test_gradgradcheck_cross_entropy_shapes(rng, shape, layout, dim, kind, reduction):
    z = _layout(_randn(rng, shape, torch.float64, 1.0), layout).requires_grad_()
    k = dim if dim is not None else (1 if len(shape) >= 2 else 0)
    t, kw = _xent_args(rng, kind, "all" if kind == "prob" else "smoothing", shape=shape,
                       dim=k % len(shape))
    assert torch.autograd.gradgradcheck(
        lambda a: sct.cross_entropy(a, t, reduction=reduction, dim=dim, **kw), (z,))


def test_cross_entropy_double_backward_edge_weights():
    """Every target ignored ("mean" is NaN, as in PyTorch), and weights that
    sum to 0 for a kept sample: the second derivative as PyTorch's."""
    z0 = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f64 = dict(dtype=torch.float64)
    for kw in (dict(reduction="sum", weight=torch.tensor([1., -1., 2., 0.], **f64)),
               dict(reduction="none", weight=torch.tensor([0., 1., 2., 3.], **f64)),
               dict(reduction="mean", ignore_index=1)):
        t = torch.tensor([0, 1, 3]) if "ignore_index" not in kw else torch.tensor([1, 1, 1])
        hs = []
        for fn in (sct.cross_entropy, F.cross_entropy):
            z = z0.clone().requires_grad_()
            loss = fn(z, t, **kw)
            (g,) = torch.autograd.grad(loss.sum(), z, create_graph=True)
            ((g * torch.arange(12.0, dtype=torch.float64).reshape(3, 4)).sum()).backward()
            hs.append(z.grad)
        torch.testing.assert_close(hs[0], hs[1], rtol=1e-12, atol=1e-14, equal_nan=True)


def test_first_order_backward_keeps_the_kernels(rng, spy):
    """Without create_graph the backward is softmax_c's kernel; with it, the
    gradient is the same to rounding and differentiable."""
    calls = spy("softmax_vjp")
    x = _randn(rng, (3, 5), torch.float64).requires_grad_()
    g = _randn(rng, (3, 5), torch.float64)
    (fast,) = torch.autograd.grad(sct.softmax(x, 1), x, g)
    assert len(calls) == 1 and fast.grad_fn is None
    (slow,) = torch.autograd.grad(sct.softmax(x, 1), x, g, create_graph=True)
    assert len(calls) == 1 and slow.grad_fn is not None
    torch.testing.assert_close(slow, fast, rtol=1e-14, atol=1e-15)


def test_cross_entropy_apply_returns_the_loss(rng):
    z = _randn(rng, (3, 4), torch.float64).requires_grad_()
    t = torch.tensor([0, 2, 3])
    loss = sct.CrossEntropy.apply(z, t, None, -100, "mean", 0.0, None)
    assert isinstance(loss, torch.Tensor) and loss.shape == ()
    torch.testing.assert_close(loss, F.cross_entropy(z, t))


# ---------------------------------------------------------------- one OpenMP runtime

# softmax_c and PyTorch share one GNU OpenMP runtime.  The parent's PyTorch
# work runs in a fresh interpreter, so that this test process's own runtime
# never holds a thread pool that a later fork would inherit.
FORK_AFTER_TORCH = """
import multiprocessing as mp, sys
import numpy as np, torch, softmax_c as sc

def child(q):
    x = np.random.default_rng(0).standard_normal((64, 40000)).astype(np.float32)
    q.put((sc.get_num_threads(), float(sc.softmax(x).sum())))

if __name__ == "__main__":
    torch.set_num_threads(2)
    t = torch.randn(512, 4096)
    for _ in range(3):
        torch.softmax(t, -1)        # PyTorch's OpenMP threads, none of softmax_c's
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(10)
    if p.is_alive():
        p.kill()
        sys.exit("HUNG")
    print(q.get(timeout=5))
"""


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork on this platform")
def test_forked_child_computes_after_torch_ran_openmp_threads():
    r = _run_python(FORK_AFTER_TORCH)
    assert r.returncode == 0, (r.stdout, r.stderr)
    threads, total = eval(r.stdout.strip())
    assert threads == 1          # a forked child runs serially
    assert abs(total - 64) < 1e-3


# softmax_c's default thread count is the OpenMP runtime's setting, which
# PyTorch and threadpoolctl change too; set_num_threads is softmax_c's own
# override.  Run in a fresh interpreter: the settings are process state.
THREAD_SETTINGS = """
import threading
import torch, softmax_c as sc, softmax_c.torch as sct
from threadpoolctl import threadpool_limits

def in_other_thread():
    got = []
    t = threading.Thread(target=lambda: got.append(sc.get_num_threads()))
    t.start(); t.join()
    return got[0]

default = sc.get_num_threads()
for n in (1, 3, 7):
    torch.set_num_threads(n)
    assert sc.get_num_threads() == n, ("torch.set_num_threads", n, sc.get_num_threads())
sc.set_num_threads(2)
torch.set_num_threads(5)
assert sc.get_num_threads() == 2 and torch.get_num_threads() == 5
sc.set_num_threads(None)
assert sc.get_num_threads() == 5
torch.set_num_threads(default)
with threadpool_limits(1):
    assert sc.get_num_threads() == 1
    assert in_other_thread() == default  # OpenMP's setting is per thread
    sc.set_num_threads(3)
    assert sc.get_num_threads() == 3     # the override wins
    sc.set_num_threads(None)
assert sc.get_num_threads() == default
print("ok")
"""


def test_default_threads_follow_openmp_setting_and_set_num_threads_overrides():
    pytest.importorskip("threadpoolctl")
    r = _run_python(THREAD_SETTINGS)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)


def test_thread_docstrings_say_the_default_is_openmps():
    docs = {"softmax_c": softmax_c.__doc__, "softmax_c.torch": sct.__doc__,
            "get_num_threads": softmax_c.get_num_threads.__doc__,
            "set_num_threads": softmax_c.set_num_threads.__doc__}
    for name, doc in docs.items():
        text = " ".join(doc.split())
        assert "not ``torch.set_num_threads``" not in text, name
        for needed in ("omp_get_max_threads", "torch.set_num_threads", "threadpoolctl",
                       "set_num_threads(n)"):
            assert needed in text, (name, needed)


# ---------------------------------------------------------------- 0-d tensors

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_zero_d_tensor_like_pytorch(name, dim, dtype):
    """PyTorch takes dim 0 and -1 for a 0-d tensor: one slice of one element."""
    x = torch.tensor(2.0, dtype=dtype, requires_grad=True)
    xt = x.detach().clone().requires_grad_()
    y, yt = getattr(sct, name)(x, dim), getattr(torch, name)(xt, dim)
    assert y.shape == yt.shape == () and y.dtype == dtype
    assert y.item() == yt.item() == (1.0 if name == "softmax" else 0.0)
    (g,), (gt,) = torch.autograd.grad(y, x, torch.tensor(3.0, dtype=dtype)), \
        torch.autograd.grad(yt, xt, torch.tensor(3.0, dtype=dtype))
    assert g.shape == () and g.item() == gt.item()
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(lambda a: getattr(sct, name)(a, dim), (x,))
    for bad in (1, -2):
        with pytest.raises(IndexError):  # AxisError, as PyTorch's IndexError
            getattr(sct, name)(x, bad)
