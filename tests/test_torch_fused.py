"""softmax_c.torch with the fused options (scale, softcap, bias, causal, sink).

Held to: the values of softmax_c.softmax / log_softmax with the same
options; ``torch.autograd.gradcheck`` (and gradgradcheck) in float64 for
every option and combinations, gradients to the input and to the tensor
options; PyTorch's own composition (``torch.softmax`` of ``cap * tanh(x *
s / cap) + bias``, masked, with the sink as an extra column) for values
and gradients; softmax_c's errors, raised before the kernel runs.  Skipped
where PyTorch is not installed.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import softmax_c  # noqa: E402
import softmax_c.torch as sct  # noqa: E402

F64 = torch.float64
SHAPE = (2, 3, 4)  # (batch, queries, keys)


def _t(rng, shape, dtype=F64, scale=1.0, grad=False):
    t = torch.from_numpy(np.asarray(scale * rng.standard_normal(shape))).to(dtype)
    return t.requires_grad_(grad)


def _finite(r):
    """The output with log_softmax's -inf (excluded positions) as 0: finite
    differences of -inf are NaN, and -inf positions are constant anyway."""
    return torch.where(r == -torch.inf, 0.0, r)


def _options(rng, spec, dtype=F64, grad=True):
    """Options from a spec: name -> a float, a shape (a tensor of that shape),
    or for causal its value."""
    out = {}
    for name, v in spec.items():
        if name in ("softcap", "causal") or isinstance(v, float):
            out[name] = v
        elif name == "scale":  # kept away from 0 so the softcap's tanh is not flat
            s = torch.from_numpy(np.asarray(0.5 + rng.random(v))).to(dtype)
            out[name] = s.requires_grad_(grad)
        else:
            out[name] = _t(rng, v, dtype, grad=grad)
    return out


SPECS = {
    "scale-float": dict(scale=0.7),
    "scale-row": dict(scale=(2, 3)),
    "scale-keepdim": dict(scale=(2, 3, 1)),
    "scale-broadcast": dict(scale=(3,)),
    "scale-0d": dict(scale=()),
    "softcap": dict(softcap=1.5),
    "softcap-scale-row": dict(softcap=1.5, scale=(2, 3)),
    "bias-full": dict(bias=(2, 3, 4)),
    "bias-keys": dict(bias=(4,)),
    "bias-rows": dict(bias=(3, 1)),
    "bias-batch": dict(bias=(2, 1, 1)),
    "causal-true": dict(causal=True),
    "causal-int": dict(causal=2),
    "sink-float": dict(sink=0.3),
    "sink-row": dict(sink=(2, 3)),
    "sink-broadcast": dict(sink=(3,)),
    "sink-keepdim": dict(sink=(2, 1, 1)),
    "sink-0d": dict(sink=()),
    "all": dict(scale=(2, 3), softcap=2.0, bias=(3, 4), causal=0, sink=(2, 3)),
    "all-floats": dict(scale=0.5, softcap=3.0, bias=(4,), causal=True, sink=-0.5),
}
FNS = [(sct.softmax, softmax_c.softmax), (sct.log_softmax, softmax_c.log_softmax)]
FN_IDS = ["softmax", "log_softmax"]


def _np(v):
    return v.detach().numpy() if isinstance(v, torch.Tensor) else v


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("fns", FNS, ids=FN_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_forward_is_softmax_c(rng, fns, dtype, spec):
    ours, theirs = fns
    x = _t(rng, SHAPE, dtype, 3.0)
    opts = _options(rng, spec, dtype)
    y = ours(x, -1, **opts)
    expected = theirs(x.numpy(), -1, **{k: _np(v) for k, v in opts.items()})
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y.detach().numpy(), expected)  # the same kernel: same bits


def test_forward_other_axis(rng):
    # along a non-last axis: scale and sink per row of the other axes
    x = _t(rng, SHAPE)
    s, k = _t(rng, (2, 4)), _t(rng, (2, 4))
    y = sct.softmax(x, 1, scale=s, sink=k)
    np.testing.assert_array_equal(y.numpy(), softmax_c.softmax(x.numpy(), 1, scale=s.numpy(),
                                                               sink=k.numpy()))


def test_no_option_is_the_plain_function(rng):
    x = _t(rng, SHAPE, grad=True)
    assert type(sct.softmax(x, -1).grad_fn).__name__ == "SoftmaxBackward"
    assert type(sct.softmax(x, -1, scale=1.0).grad_fn).__name__ == "FusedSoftmaxBackward"


# ---------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=FN_IDS)
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_gradcheck(rng, fn, spec):
    x = _t(rng, SHAPE, grad=True)
    opts = _options(rng, spec)
    names = [n for n, v in opts.items() if isinstance(v, torch.Tensor)]

    def f(x, *tensors):
        return _finite(fn(x, -1, **{**opts, **dict(zip(names, tensors))}))
    assert torch.autograd.gradcheck(f, (x, *[opts[n] for n in names]))


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=FN_IDS)
@pytest.mark.parametrize("spec", ["softcap-scale-row", "bias-rows", "sink-row", "all"])
def test_gradgradcheck(rng, fn, spec):
    # create_graph=True: the backward in differentiable torch operations
    x = _t(rng, SHAPE, grad=True)
    opts = _options(rng, SPECS[spec])
    names = [n for n, v in opts.items() if isinstance(v, torch.Tensor)]

    def f(x, *tensors):
        return _finite(fn(x, -1, **{**opts, **dict(zip(names, tensors))}))
    assert torch.autograd.gradgradcheck(f, (x, *[opts[n] for n in names]))


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=FN_IDS)
def test_gradcheck_other_axis(rng, fn):
    x = _t(rng, SHAPE, grad=True)
    s, b, k = _t(rng, (2, 4), grad=True), _t(rng, (3, 1), grad=True), _t(rng, (4,), grad=True)
    assert torch.autograd.gradcheck(
        lambda x, s, b, k: fn(x, 1, scale=s, softcap=2.0, bias=b, sink=k), (x, s, b, k))


@pytest.mark.parametrize("fn", [sct.softmax, sct.log_softmax], ids=FN_IDS)
@pytest.mark.parametrize("with_sink", [False, True])
def test_fully_excluded_rows(rng, fn, with_sink):
    # query 0 sees no key (causal=-1), and a -inf bias empties batch 1, query 2;
    # x there is NaN, which an excluded position must not see
    x = _t(rng, SHAPE)
    x[1, 2, :] = torch.nan
    x.requires_grad_()
    bias = torch.zeros(SHAPE, dtype=F64)
    bias[1, 2, :] = -torch.inf
    bias.requires_grad_()
    scale = torch.full((2, 3), 0.8, dtype=F64, requires_grad=True)
    sink = _t(rng, (2, 3), grad=True) if with_sink else None
    y = fn(x, -1, scale=scale, softcap=2.0, bias=bias, causal=-1, sink=sink)
    g = _t(rng, SHAPE)
    grads = torch.autograd.grad(_finite(y), [t for t in (x, scale, bias, sink) if t is not None],
                                g)
    for t in grads:
        assert not t.isnan().any()
    gx, gs, gb = grads[:3]
    assert (gx[:, 0] == 0).all() and (gx[1, 2] == 0).all()
    assert (gb[:, 0] == 0).all() and (gb[1, 2] == 0).all()
    assert (gs[:, 0] == 0).all() and gs[1, 2] == 0
    assert gx[0, 2].abs().sum() > 0  # a row with two keys does get a gradient
    if with_sink:
        assert (grads[3][:, 0] == 0).all() and grads[3][1, 2] == 0
    # the rows that are left still agree with finite differences (a -inf
    # bias moved by eps stays -inf: its numerical gradient is 0 too)
    xs = _t(rng, SHAPE, grad=True)
    b = (bias.detach() + _t(rng, SHAPE)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, b: _finite(fn(x, -1, softcap=2.0, bias=b, causal=-1, sink=sink)), (xs, b))


def test_float_options_and_plain_tensors_get_no_gradient(rng):
    x = _t(rng, SHAPE, grad=True)
    s, b = _t(rng, (2, 3)), _t(rng, (4,))  # not requiring grad
    y = sct.softmax(x, -1, scale=s, bias=b, sink=0.5)
    (y * _t(rng, SHAPE)).sum().backward()
    assert x.grad is not None and s.grad is None and b.grad is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_bias_gradient_in_its_dtype(rng, dtype):
    x = _t(rng, SHAPE, torch.float32, grad=True)
    b = _t(rng, (3, 4), dtype, grad=True)
    sct.softmax(x, -1, bias=b).sum().backward()
    assert b.grad.dtype == dtype and b.grad.shape == b.shape


# ---------------------------------------------------------------- against PyTorch

def _torch_composition(x, log, scale=None, softcap=None, bias=None, causal=None, sink=None):
    """softmax / log_softmax of the options written out in PyTorch
    operations, along the last axis; the sink as an extra column."""
    z = x if scale is None else x * (scale if not isinstance(scale, torch.Tensor)
                                     else scale.unsqueeze(-1))
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if bias is not None:
        z = z + bias
    if causal is not None and causal is not False:
        q, n = x.shape[-2], x.shape[-1]
        off = n - q if causal is True else causal
        keep = torch.arange(n)[None, :] <= torch.arange(q)[:, None] + off
        z = z.masked_fill(~keep, -torch.inf)
    if sink is not None:
        s = sink if isinstance(sink, torch.Tensor) else torch.tensor(sink, dtype=x.dtype)
        z = torch.cat([z, s.expand(x.shape[:-1]).unsqueeze(-1).to(z.dtype)], -1)
    r = torch.log_softmax(z, -1) if log else torch.softmax(z, -1)
    return r[..., :-1] if sink is not None else r


TOLS = {torch.float32: dict(rtol=2e-5, atol=2e-6), F64: dict(rtol=1e-11, atol=1e-13)}


@pytest.mark.parametrize("log", [False, True], ids=FN_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("spec", ["scale-row", "softcap-scale-row", "bias-rows", "causal-true",
                                  "sink-row", "all"])
def test_against_pytorch(rng, log, dtype, spec):
    x = _t(rng, SHAPE, dtype, 3.0, grad=True)
    opts = _options(rng, SPECS[spec], dtype)
    tensors = [x] + [v for v in opts.values() if isinstance(v, torch.Tensor)]
    g = _t(rng, SHAPE, dtype)
    y = (sct.log_softmax if log else sct.softmax)(x, -1, **opts)
    ours = torch.autograd.grad(_finite(y), tensors, g)
    r = _torch_composition(x, log, **opts)
    theirs = torch.autograd.grad(_finite(r), tensors, g)
    np.testing.assert_allclose(y.detach().numpy(), r.detach().numpy(), **TOLS[dtype])
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b.numpy(), **TOLS[dtype])


# ---------------------------------------------------------------- errors

BAD = [
    dict(softcap=-1.0), dict(softcap=float("inf")), dict(scale=float("nan")),
    dict(scale="a"), dict(scale=True), dict(sink=float("nan")), dict(sink=float("inf")),
    dict(causal="yes"), dict(causal=1.5),
    dict(bias=np.zeros((5,))), dict(scale=np.ones((4,))), dict(sink=np.zeros((2, 2))),
    dict(bias=np.zeros((4,), dtype=np.int64)),
]


@pytest.mark.parametrize("fns", FNS, ids=FN_IDS)
@pytest.mark.parametrize("bad", BAD, ids=[str(sorted(b)) + str(i) for i, b in enumerate(BAD)])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_errors_as_softmax_c(rng, monkeypatch, fns, bad, as_tensor):
    ours, theirs = fns
    x = _t(rng, SHAPE, grad=True)
    with pytest.raises(Exception) as expected:
        theirs(x.detach().numpy(), -1, **bad)
    if as_tensor:  # the same option as a tensor, where it can be one
        bad = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
               for k, v in bad.items()}

    def no_kernel(*args, **kwargs):
        raise AssertionError("the kernel ran")
    monkeypatch.setattr(softmax_c._api._kernels, "fused", no_kernel)
    with pytest.raises(expected.type) as got:
        ours(x, -1, **bad)
    assert str(got.value) == str(expected.value)


def test_causal_errors(rng):
    x1 = _t(rng, (4,))
    with pytest.raises(ValueError, match="causal"):
        sct.softmax(x1, 0, causal=True)
    with pytest.raises(ValueError, match="causal"):
        sct.softmax(_t(rng, SHAPE), 1, causal=True)


def test_tensor_option_checks(rng):
    x = _t(rng, SHAPE)
    with pytest.raises(TypeError, match="softcap"):  # no gradient for it: refused, not dropped
        sct.softmax(x, -1, softcap=torch.tensor(2.0, dtype=F64, requires_grad=True))
    with pytest.raises(TypeError, match="bias"):
        sct.softmax(x, -1, bias=torch.zeros(4, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="scale"):
        sct.softmax(x, -1, scale=torch.ones(3, dtype=torch.complex128))
    with pytest.raises(ValueError, match="sink.*device"):
        sct.softmax(x, -1, sink=torch.zeros(3, device="meta"))


# ---------------------------------------------------------------- zero-copy

def test_zero_copy(rng, monkeypatch):
    calls = []
    original = softmax_c.softmax

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)
    monkeypatch.setattr(softmax_c, "softmax", wrapper)
    x = _t(rng, SHAPE).transpose(0, 1)  # not contiguous
    b = _t(rng, (3, 1, 4))
    y = sct.softmax(x, -1, bias=b, causal=True)
    (args, kwargs), = calls
    assert args[0].__array_interface__["data"][0] == x.data_ptr()
    assert kwargs["bias"].__array_interface__["data"][0] == b.data_ptr()
    assert kwargs["out"].__array_interface__["data"][0] == y.data_ptr()
