"""The peers of ``python -m softmax_c bench``: SciPy, PyTorch, JAX and
onnxruntime, each called as its users call it, imported only when installed.

Each ``_<peer>(op)`` returns a function that builds the timed call for a
case (or None where the peer lacks the operation): ``(call, result,
restore)``, as softmax_c.bench's implementations do.
"""
import numpy as np

import softmax_c as sc

from . import reference

PEERS = ["scipy", "torch", "jax", "onnxruntime"]
_peer_cache = {}


def _same(r):
    return r


def _first(r):
    return r[0]


def peer_module(name):
    """The peer's module if it imports, else None; never raises.  Imported
    on first use only, so that `--help` does not pay for PyTorch."""
    if name not in _peer_cache:
        mod = None
        try:
            if name == "scipy":
                import scipy.special  # noqa: F401
                import scipy as mod
            elif name == "torch":
                import torch as mod
                import torch.nn.functional  # noqa: F401
            elif name == "jax":
                import jax as mod
                import jax.numpy  # noqa: F401
            elif name == "onnxruntime":
                import onnxruntime as mod
        except Exception:  # not installed, or broken: either way not a peer
            mod = None
        _peer_cache[name] = mod
    return _peer_cache[name]


def installed_peers():
    """{name: version} of the peers that import."""
    return {name: getattr(peer_module(name), "__version__", "?")
            for name in PEERS if peer_module(name) is not None}


def _jax_x64():
    jax = peer_module("jax")
    try:
        return jax.numpy.asarray(np.zeros(1, np.float64)).dtype == np.float64
    except Exception:
        return False


# ---------------------------------------------------------------- cases


def _xent_result(r):
    loss, grad = r
    return float(loss), grad


def _numpy(op):
    def prepare(case):
        inp, axis = case.inputs, case.axis
        if op in ("sample", "sample_t"):  # the full-sort reference
            from .bench import SAMPLE_PARAMS, SAMPLE_SEED
            x, prm = inp["x"], SAMPLE_PARAMS[op]
            return (lambda: reference.sample(x, axis=axis, seed=SAMPLE_SEED, **prm)), _same, None
        if op == "softmax_vjp":
            y, g = inp["y"], inp["g"]
            return (lambda: reference.softmax_vjp(y, g, axis)), _same, None
        if op == "cross_entropy_grad":
            x, t = inp["x"], inp["target"]
            return (lambda: reference.cross_entropy_grad(x, t, axis=axis)), _xent_result, None
        f, x = getattr(reference, op), inp["x"]
        return (lambda: f(x, axis)), _same, None
    return prepare


def _scipy(op):
    def prepare(case):
        f = getattr(peer_module("scipy").special, op)
        x, axis = case.inputs["x"], case.axis
        return (lambda: f(x, axis=axis)), _same, None
    return prepare


def _torch_numpy(r):
    if str(r.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: ml_dtypes' (bench cases only)
        import ml_dtypes
        import torch
        return r.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return r.numpy()


def _torch_from_numpy(torch, a):
    """A tensor over `a`'s memory; a bfloat16 (ml_dtypes) array through its
    bits, which torch.from_numpy does not take."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _torch(op, out):
    def prepare(case):
        torch = peer_module("torch")
        inp, axis = case.inputs, case.axis
        if op == "softmax_vjp":
            yt, gt = _torch_from_numpy(torch, inp["y"]), _torch_from_numpy(torch, inp["g"])
            backward = torch._softmax_backward_data
            if out:
                o = torch.empty_like(yt)
                return ((lambda: backward(gt, yt, axis, yt.dtype, grad_input=o)), _torch_numpy,
                        None)
            return (lambda: backward(gt, yt, axis, yt.dtype)), _torch_numpy, None
        if op == "cross_entropy_grad":
            return _torch_xent(torch, inp["x"], inp["target"], axis)
        xt = _torch_from_numpy(torch, inp["x"])
        if out:
            f = torch._softmax if op == "softmax" else torch._log_softmax
            o = torch.empty_like(xt)
            return (lambda: f(xt, axis, False, out=o)), _torch_numpy, None
        f = torch.softmax if op == "softmax" else torch.log_softmax
        return (lambda: f(xt, axis)), _torch_numpy, None
    return prepare


def _torch_xent(torch, x, target, axis):
    """A training step as PyTorch users write it: the classes on dim 1 (a
    2-D view ``(-1, C)`` when they are last, as in ``logits.view(-1, C)``;
    else the axis moved to 1, a strided view), the loss's backward filling
    ``t.grad`` of a leaf tensor."""
    F = torch.nn.functional
    k = axis % x.ndim
    if k == x.ndim - 1 and x.ndim != 2:  # 1-D too: one sample, (1, C)
        xv, tv = x.reshape(-1, x.shape[k]), target.reshape(-1)

        def back(g):
            return g.reshape(x.shape)
    else:
        xv, tv = np.moveaxis(x, k, 1), target

        def back(g):
            return np.moveaxis(g, 1, k)
    t = torch.from_numpy(xv).requires_grad_(True)
    tt = torch.from_numpy(tv)

    def step():
        t.grad = None
        loss = F.cross_entropy(t, tt)
        loss.backward()
        return loss, t.grad

    def result(r):
        loss, grad = r
        return float(loss.detach()), back(grad.numpy())
    return step, result, None


def _torch_sample(op, params):
    """Sampling as PyTorch users compose it: with `params`, Hugging Face's
    warper chain (temperature, top-k, top-p by a sort, then
    torch.multinomial); `params` None: torch.multinomial alone on
    probabilities computed beforehand (what a sampler without filters
    costs at the least)."""
    def prepare(case):
        torch = peer_module("torch")
        x, axis = case.inputs["x"], case.axis
        xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, axis, -1)))
        gen = torch.Generator().manual_seed(0)

        def tokens(r):
            return r.squeeze(-1).numpy()
        if params is None:
            probs = torch.softmax(xt / 0.8, -1)
            return (lambda: torch.multinomial(probs, 1, generator=gen)), tokens, None
        t, k, p = params.get("temperature", 1.0), params.get("top_k"), params.get("top_p")
        ninf = -float("inf")

        def step():
            z = xt / t
            if k:
                kth = torch.topk(z, k, dim=-1).values[..., -1:]
                z = z.masked_fill(z < kth, ninf)
            if p is not None:
                s, idx = torch.sort(z, descending=True, dim=-1)
                ps = s.softmax(-1)
                drop = ps.cumsum(-1) - ps > p
                z = z.scatter(-1, idx, s.masked_fill(drop, ninf))
            return torch.multinomial(z.softmax(-1), 1, generator=gen)
        return step, tokens, None
    return prepare


def _jax(op):
    def prepare(case):
        jax = peer_module("jax")
        fn, axis = getattr(jax.nn, op), case.axis
        f = jax.jit(lambda a: fn(a, axis=axis))  # axis a constant of the traced function
        xj = jax.device_put(case.inputs["x"])
        return (lambda: f(xj).block_until_ready()), np.asarray, None
    return prepare


# ONNX's element types (TensorProto.DataType) of the dtypes compared


# ONNX's element types (TensorProto.DataType) of the dtypes compared
_ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}


def _pb_varint(n):
    n &= (1 << 64) - 1  # a negative int64 as its two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field, value):
    """One protobuf field: an int as a varint, bytes or str length-delimited."""
    if isinstance(value, int):
        return _pb_varint(field << 3) + _pb_varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _pb_varint(field << 3 | 2) + _pb_varint(len(value)) + value


def onnx_model(op_type, shape, dtype, axis):
    """The serialized ONNX model (a ModelProto) of one node, y = op_type(x,
    axis), on a float tensor of `shape`: written field by field, so that
    neither the onnx package nor its protobuf classes are needed."""
    def value_info(name):
        dims = b"".join(_pb(1, _pb(1, int(d))) for d in shape)  # Dimension.dim_value
        tensor = _pb(1, _ONNX_TYPES[np.dtype(dtype)]) + _pb(2, dims)  # elem_type, shape
        return _pb(1, name) + _pb(2, _pb(1, tensor))  # name, TypeProto.tensor_type
    attr = _pb(1, "axis") + _pb(3, int(axis)) + _pb(20, 2)  # name, i, type INT
    node = _pb(1, "x") + _pb(2, "y") + _pb(3, "n") + _pb(4, op_type) + _pb(5, attr)
    graph = _pb(1, node) + _pb(2, "g") + _pb(11, value_info("x")) + _pb(12, value_info("y"))
    opset = _pb(1, "") + _pb(2, 13)
    return _pb(1, 8) + _pb(2, "softmax_c bench") + _pb(7, graph) + _pb(8, opset)  # IR 8


def _onnxruntime(op):
    def prepare(case):
        ort = peer_module("onnxruntime")
        x = case.inputs["x"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = sc.get_num_threads()  # the case's count, set by _Threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only
        # Its pool's threads spin-wait after each run by default, taking a core
        # from whatever the interleaved rounds run next: off, as for a session
        # that shares its cores with other work.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = onnx_model("Softmax" if op == "softmax" else "LogSoftmax", x.shape, x.dtype,
                           case.axis)
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        run, feed = sess.run, {"x": x}
        return (lambda: run(None, feed)), _first, None
    return prepare
