"""The benchmark behind ``python -m softmax_c bench``.

What is measured
----------------
A *case* is one operation (softmax, log_softmax, softmax_vjp,
cross_entropy_grad with class-index int64 targets and the mean reduction)
on one built-in shape, in one dtype, at one thread count.  In every case
each implementation is called the way its users call it:

- ``softmax_c``: ``sc.softmax(x, axis)``, a fresh output per call;
- ``softmax_c(out=)``: the same into a preallocated output (for
  cross_entropy_grad ``out=logits``, the gradient written over the logits:
  the logits are restored before the check, and the timed calls then run on
  the gradient the previous call left, which costs the kernel the same);
- ``numpy``: ``softmax_c.reference``, the plain NumPy versions with the same
  signatures; always there, it is the baseline;
- the peers that are installed (none is required): SciPy
  (``scipy.special.softmax``/``log_softmax``), PyTorch (``torch.softmax``,
  ``torch.log_softmax``, ``torch._softmax_backward_data``, and for
  cross_entropy_grad a training step ``F.cross_entropy(t, target).backward()``
  on a leaf tensor, the classes on dim 1 as PyTorch wants them: a
  ``(-1, C)`` view when they are last; ``torch(out=)`` writes into a
  preallocated tensor),
  JAX (``jax.nn.softmax``/``log_softmax`` under ``jit``, waited for with
  ``block_until_ready``; float64 only when JAX runs with x64 enabled) and
  onnxruntime (softmax and log_softmax: ``sess.run(None, {"x": x})`` on an
  ``InferenceSession`` of a one-node model, Softmax or LogSoftmax of opset
  13 over the case's axis, made before the timing for each case and thread
  count with ``intra_op_num_threads`` the thread count,
  ``inter_op_num_threads`` 1, sequential execution and its threads' spin-wait
  off (by default they spin on after each run and take a core from whatever
  runs next in the interleaved rounds); a fresh output per call, as its
  users call it).

softmax_vjp on the shapes of ``MIXED_SHAPES`` has two more rows, operands
of mixed provenance as in a training step: ``softmax_c(y=block)`` is
``sc.softmax_vjp(y, g, out=o)`` with ``y = sc.softmax(x)`` (one of
softmax_c's output blocks when it is large) and g and o NumPy arrays;
``softmax_c(y=copy)`` the same with y copied into a NumPy array.

Case groups that run only when ``--ops`` names them, on their own shapes
(``GROUP_OPS``), float32 unless ``--dtype`` says otherwise: ``xent_opts``
times ``sc.cross_entropy_grad(x, t, softcap=30.0, z_loss=1e-4)`` on
8x256000 and 4096x32000 against the same call without options and
PyTorch's forward and backward of ``cross_entropy(30 tanh(x / 30), t) +
1e-4 mean(logsumexp**2)``; ``sample`` times
``sc.sample(x, temperature=0.8, top_k=50, top_p=0.9)`` against the Hugging
Face warper chain written in PyTorch (temperature, ``torch.topk``, a sort
for top-p, ``torch.multinomial``), ``sample_t`` ``sc.sample(x,
temperature=0.8)`` against ``torch.multinomial`` of ``softmax(x / 0.8)``
and, as ``torch(probs)``, against ``torch.multinomial`` alone on
probabilities computed beforehand.  Both have ``softmax(out=)``,
``sc.softmax(x, out=)`` on the same logits, as the yardstick, and the full
sort of ``softmax_c.reference.sample`` as the NumPy row.  A draw is checked
by its token lying in the kept set of ``reference.sample_kept``.

The thread count of a case is set with ``sc.set_num_threads`` and
``torch.set_num_threads`` (both restored afterwards) and onnxruntime's session
options; NumPy and SciPy use one thread whatever is asked, and JAX uses its
own pool (its thread flags do not limit it).

Every implementation's result is first checked against the NumPy reference
(relative to the result's scale: 2e-5 in float32, 1e-12 in float64); one
that disagrees or raises is reported with the reason and not timed.  Then
all of them, and a memory copy (``np.copyto``) moving the same number of
bytes, are timed in interleaved rounds (A B C copy A B C copy ...), so that
the drift of a noisy machine hits them alike; in a round each function is
called again and again for a fixed few milliseconds, and the figure is the
median over the rounds of the mean time per call.

How to read it
--------------
Per case and implementation:

- ``median``: the median time of one call;
- ``vs numpy``: the NumPy reference's time / this time (higher is faster);
- ``vs peer``: the fastest peer's time / this time, the peers being SciPy,
  PyTorch, JAX and onnxruntime in any variant ("n/a" when no peer is installed or none
  ran this case);
- ``GB/s``: the bytes the operation must move, divided by the time: its
  inputs read once and its output written once (softmax and log_softmax: x
  and y; softmax_vjp: y, g and the result; cross_entropy_grad: the logits,
  the int64 targets and the gradient);
- ``of copy``: that rate as a fraction of the copy's rate on the same bytes.
  100% means the call runs as fast as copying its data; large inputs cannot
  go much above it.  The copy runs on one thread, so at more threads a figure
  above 100% can mean the kernel uses more memory bandwidth than one core's
  copy.  Inputs that fit in cache copy very fast: small shapes show low
  fractions because the call's fixed cost dominates, not its bandwidth.

The table ends with softmax_c's geometric-mean speed-ups per operation.
Ratios taken in one run are what to compare: absolute times on a shared
machine move 10-20% between runs, and a thread count above the cores that
are free at the time (the header gives the load average) turns each OpenMP
barrier into a wait for the scheduler: milliseconds per call.

``--json`` saves everything with the machine's description; ``--plot``
draws softmax_c's speed-up over the fastest peer in each case, one panel per
operation; ``--from-json FILE`` prints the table of a saved run and draws
its ``--plot`` again, timing nothing.
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import sys
import time

import numpy as np

import softmax_c as sc

from . import reference
# the report (table, summary, header, plots) is its own module; its names
# stay importable from here
from ._bench_report import (COLUMNS, LEGEND, format_header, format_summary,  # noqa: F401
                            format_table, load_json, plot)
from ._info import build_info
from ._bench_peers import (PEERS, _jax, _jax_x64, _numpy, _onnxruntime, _same, _scipy, _torch,
                           _torch_numpy, _torch_sample, _xent_result, installed_peers,
                           peer_module)
from ._bench_peers import _pb_varint, onnx_model  # noqa: F401  (the tests reach them here)

# name -> (shape, axis): the users' workloads.
SHAPES = {
    "1x32000": ((1, 32000), -1),                 # one token's logits over a vocabulary
    "1x131072": ((1, 131072), -1),               # ... over a large vocabulary
    "8x32000": ((8, 32000), -1),                 # a small batch of them
    "64x1000": ((64, 1000), -1),                 # a classifier's batch
    "8x12x512x512": ((8, 12, 512, 512), -1),     # attention scores (batch, heads, q, k)
    "32768x128": ((32768, 128), -1),             # many short rows
    "4096x4096": ((4096, 4096), -1),             # a large square
    "256x32000": ((256, 32000), -1),             # a language model's batch of logits
    "16x262144": ((16, 262144), -1),             # long rows
    "64x1000x32:1": ((64, 1000, 32), 1),         # classes on axis 1, PyTorch's (N, C, d)
}
# the sampling group's vocabularies (not in the default run)
SHAPES.update({
    "1x128256": ((1, 128256), -1),               # one decoding step, a 128k vocabulary
    "1x262144": ((1, 262144), -1),               # ... a 256k vocabulary
    "64x128256": ((64, 128256), -1),             # a batch of 64 decoding steps
})
DEFAULT_SHAPES = ["1x32000", "1x131072", "8x32000", "64x1000", "8x12x512x512", "32768x128",
                  "4096x4096", "256x32000", "16x262144", "64x1000x32:1"]
QUICK_SHAPES = ["64x1000", "8x32000", "256x32000", "64x1000x32:1"]

# The fused inference options (softmax with scale, causal, bias, softcap):
# a group of its own, not in the default run (``--ops fused`` selects it).
# Each runs on its one shape in float32; the rows are softmax_c's fused
# call, the same softmax_c call without the options ("no options": the
# plain softmax of x, the figure the options should cost little over, not
# checked) and PyTorch's unfused composition, as users write it.
FUSED_SHAPES = {
    "8x12x512x512": ((8, 12, 512, 512), -1),
    "32x1x4096": ((32, 1, 4096), -1),          # one query over a KV cache, 32 heads
    "8x256000": ((8, 256000), -1),             # a batch of logits over a large vocabulary
}
# name -> (shape, softmax_c's keywords; "mask" is a 512x512 float32 mask
# of 0 / -inf, broadcast over batch and heads)
FUSED_OPS = {
    "fused_causal": ("8x12x512x512", dict(scale=0.125, causal=True)),
    "fused_decode": ("32x1x4096", dict(scale=0.125, causal=True)),
    "fused_bias": ("8x12x512x512", dict(bias="mask")),
    "fused_softcap": ("8x256000", dict(softcap=30.0, scale=1 / 0.7)),
}
SHAPES.update(FUSED_SHAPES)
# The cross-entropy's options (``--ops xent_opts``, not in the default run):
# cross_entropy_grad with a logit cap and a z-loss, in float32, allocating
# its gradient and with out=, against the same call without options
# ("no options", out=: the figure they should cost little over) and
# PyTorch's forward and backward of the composition.
XENT_OPTS = {"xent_opts": dict(softcap=30.0, z_loss=1e-4)}
SHAPES["4096x32000"] = ((4096, 32000), -1)  # a training batch of a 32k vocabulary
XENT_OPTS_SHAPES = ["8x256000", "4096x32000"]
ALL_OPS = ["softmax", "log_softmax", "softmax_vjp", "cross_entropy_grad"]
# Case groups run only when named in --ops: their own shapes and dtypes
# unless --shapes / --dtype say otherwise.
#   sample    sc.sample(temperature=0.8, top_k=50, top_p=0.9) against the
#             Hugging Face warper chain in PyTorch
#   sample_t  sc.sample(temperature=0.8) against torch.multinomial
SAMPLE_SHAPES = ["1x32000", "1x128256", "1x262144", "64x128256"]
GROUP_OPS = {"sample": (SAMPLE_SHAPES, ["float32"]), "sample_t": (SAMPLE_SHAPES, ["float32"])}
SAMPLE_PARAMS = {"sample": dict(temperature=0.8, top_k=50, top_p=0.9),
                 "sample_t": dict(temperature=0.8)}
SAMPLE_SEED = 12345
# each fused case on its own shape, in float32, whatever --shapes and --dtype say
GROUP_OPS.update({op: ([shape], ["float32"]) for op, (shape, _) in FUSED_OPS.items()})
GROUP_OPS.update({op: (XENT_OPTS_SHAPES, ["float32"]) for op in XENT_OPTS})
DTYPES = ["float32", "float64"]
# the half-width group (softmax, log_softmax and softmax_vjp; `--dtype
# half` is both dtypes): PyTorch's float16 / bfloat16 softmax (and its
# softmax backward) is the peer; bfloat16 arrays are ml_dtypes', imported
# for these cases only
HALF_DTYPES = ["float16", "bfloat16"]
HALF_OPS = ["softmax", "log_softmax", "softmax_vjp"]
# softmax_vjp's shapes that also run with y from softmax_c's output blocks
MIXED_SHAPES = ["16x262144", "256x32000"]

# (repeats, seconds per round) of a full and of a --quick run
FULL_TIMING = (6, 0.02)  # 6 rounds: onnxruntime and the mixed rows fit in the same time
QUICK_TIMING = (3, 0.004)


def available_ops():
    """The operations this build of softmax_c has (cross_entropy_grad is
    recent)."""
    return [op for op in ALL_OPS if hasattr(sc, op)]


# ---------------------------------------------------------------- peers

class Case:
    """One operation on one shape and dtype; `inputs` are built once and
    shared by every thread count and implementation (none writes them)."""

    def __init__(self, op, shape_name, dtype, rng):
        self.op, self.shape_name = op, shape_name
        self.dtype = None if dtype in HALF_DTYPES else np.dtype(dtype)
        self.shape, axis = SHAPES[shape_name]
        self.axis = axis
        k = axis % len(self.shape)
        if dtype in HALF_DTYPES:
            self.dtype = _half_dtype(dtype)
            x = (rng.standard_normal(self.shape, dtype=np.float32) * 4).astype(self.dtype)
        else:
            x = rng.standard_normal(self.shape, dtype=self.dtype)
            x *= 4
        if op in FUSED_OPS:
            kw = dict(FUSED_OPS[op][1])
            self.nbytes = 2 * x.nbytes
            if kw.get("bias") == "mask":
                q, n = self.shape[-2:]
                kw["bias"] = np.where(rng.random((q, n)) < 0.2, -np.inf, 0).astype(self.dtype)
                self.nbytes += kw["bias"].nbytes
            if "softcap" in kw:
                x *= 10  # logits of tens
            self.inputs = {"x": x, "kw": kw}
            self.want = reference.softmax(x, axis, **kw)
            return
        if op in XENT_OPTS:
            kw = dict(XENT_OPTS[op])
            x *= 10  # logits of tens, which the cap bends
            t = rng.integers(0, self.shape[k], size=self.shape[:k] + self.shape[k + 1:],
                             dtype=np.int64)
            self.inputs = {"x": x, "target": t, "kw": kw}
            self.nbytes = 2 * x.nbytes + t.nbytes
            self.want = _xent_opts_reference(x, t, axis, kw)
            return
        if op in ("softmax", "log_softmax"):
            self.inputs = {"x": x}
            self.nbytes = 2 * x.nbytes
        elif op == "softmax_vjp":
            y = reference.softmax(x, axis)
            g = rng.standard_normal(self.shape, dtype=np.float32).astype(self.dtype)
            self.inputs = {"y": y, "g": g, "x": x}  # x: for y = sc.softmax(x)
            self.nbytes = 3 * x.nbytes
        elif op == "cross_entropy_grad":
            batch = self.shape[:k] + self.shape[k + 1:]
            t = rng.integers(0, self.shape[k], size=batch, dtype=np.int64)
            self.inputs = {"x": x, "target": t}
            self.nbytes = 2 * x.nbytes + t.nbytes
        elif op in SAMPLE_PARAMS:
            self.inputs = {"x": x}
            self.nbytes = x.nbytes  # the logits read once; the tokens are a few bytes
        else:
            raise ValueError(f"unknown operation {op!r}")
        self.want = _reference_call(op, self.inputs, axis)


def _xent_opts_reference(x, t, axis, kw):
    """The reference's (loss, grad) of the mean, a block of rows at a time
    (its float64 temporaries of the whole batch would not fit): the sums of
    the blocks over the row count (no target is ignored)."""
    rows = x.shape[0]
    grad = np.empty_like(x)
    total = 0.0
    for r in range(0, rows, 256):
        loss, g = reference.cross_entropy_grad(x[r:r + 256], t[r:r + 256], axis=axis,
                                               reduction="sum", **kw)
        total += float(loss)
        grad[r:r + 256] = g / rows
    return total / rows, grad


def _half_dtype(name):
    """float16, or ml_dtypes' bfloat16 (the bench's own import: the package
    never imports ml_dtypes)."""
    if name == "float16":
        return np.dtype(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        raise RuntimeError("the bfloat16 cases need ml_dtypes: pip install ml_dtypes") from None
    return np.dtype(ml_dtypes.bfloat16)


def _reference_call(op, inp, axis):
    if op in SAMPLE_PARAMS:  # a draw is checked by its membership of the kept set
        kept, _ = reference.sample_kept(inp["x"], axis=axis, **SAMPLE_PARAMS[op])
        return kept
    if op == "softmax_vjp":
        return reference.softmax_vjp(inp["y"], inp["g"], axis)
    if op == "cross_entropy_grad":
        loss, grad = reference.cross_entropy_grad(inp["x"], inp["target"], axis=axis)
        return float(loss), grad
    return getattr(reference, op)(inp["x"], axis)


# ---------------------------------------------------------------- implementations

class Impl:
    """One way of computing an operation.

    ``prepare(case)`` builds what the calls need (outside the timing) and
    returns ``(fn, result, reset)``: `fn` is the timed zero-argument call,
    ``result(fn())`` converts its return value to what the reference
    returns (an ndarray, or ``(loss, grad)``), and `reset` (or None) restores
    inputs that `fn` overwrites, before the correctness check.

    `kind` is "softmax_c", "reference" or "peer".
    """

    def __init__(self, name, kind, prepare):
        self.name, self.kind, self.prepare = name, kind, prepare

    def __repr__(self):
        return f"Impl({self.name!r})"


def _ours(op, out):
    def prepare(case):
        inp, axis = case.inputs, case.axis
        if op in SAMPLE_PARAMS:
            x, prm = inp["x"], SAMPLE_PARAMS[op]
            return (lambda: sc.sample(x, axis=axis, seed=SAMPLE_SEED, **prm)), _same, None
        if op == "softmax_vjp":
            y, g = inp["y"], inp["g"]
            if out:
                o = np.empty_like(y)
                return (lambda: sc.softmax_vjp(y, g, axis, out=o)), _same, None
            return (lambda: sc.softmax_vjp(y, g, axis)), _same, None
        if op == "cross_entropy_grad":
            x, t = inp["x"], inp["target"]
            if out:  # in place: the calls overwrite their own copy of the logits
                xi = x.copy()
                return ((lambda: sc.cross_entropy_grad(xi, t, axis=axis, out=xi)), _xent_result,
                        lambda: np.copyto(xi, x))
            return (lambda: sc.cross_entropy_grad(x, t, axis=axis)), _xent_result, None
        f, x = getattr(sc, op), inp["x"]
        if out:
            o = np.empty_like(x)
            return (lambda: f(x, axis, out=o)), _same, None
        return (lambda: f(x, axis)), _same, None
    return prepare


def _mixed(copy):
    """softmax_vjp(y, g, out=) with y = sc.softmax(x), g and out NumPy
    arrays; with `copy` y is first copied into a NumPy array."""
    def prepare(case):
        inp, axis = case.inputs, case.axis
        y, g = sc.softmax(inp["x"], axis), inp["g"]
        if copy:
            y = np.array(y)
        o = np.empty_like(g)
        return (lambda: sc.softmax_vjp(y, g, axis, out=o)), _same, None
    return prepare


def _softmax_yardstick(case):
    """sc.softmax(x, out=) on the same logits: the yardstick of the sampling
    group's times.  Its check: the most probable token, which every
    filter keeps."""
    x, axis = case.inputs["x"], case.axis
    o = np.empty_like(x)
    return (lambda: sc.softmax(x, axis, out=o)), (lambda r: np.argmax(r, axis=axis)), None


def _fused_ours(out, plain=False):
    def prepare(case):
        x, kw, axis = case.inputs["x"], case.inputs["kw"], case.axis
        if plain:
            kw = {}
        if out:
            o = np.empty_like(x)
            return (lambda: sc.softmax(x, axis, out=o, **kw)), _same, None
        return (lambda: sc.softmax(x, axis, **kw)), _same, None
    return prepare


def _fused_torch(case):
    """PyTorch's unfused composition of the case's options."""
    torch = peer_module("torch")
    x, kw = case.inputs["x"], case.inputs["kw"]
    xt = torch.from_numpy(x)
    scale = kw.get("scale")
    if kw.get("causal"):
        q, n = x.shape[-2:]
        mask = torch.ones(q, n, dtype=torch.bool).triu(n - q + 1)

        def fn():
            return torch.softmax((xt * scale).masked_fill(mask, float("-inf")), dim=-1)
    elif "bias" in kw:
        bt = torch.from_numpy(kw["bias"])

        def fn():
            return torch.softmax(xt + bt, dim=-1)
    else:
        cap = kw["softcap"]

        def fn():
            return torch.softmax(cap * torch.tanh(xt * scale / cap), dim=-1)
    return fn, _torch_numpy, None


def _xent_opts_ours(out, plain=False):
    def prepare(case):
        x, t, kw, axis = case.inputs["x"], case.inputs["target"], case.inputs["kw"], case.axis
        if plain:
            kw = {}
        if out:  # the gradient into one array: no page faults of a fresh one per call
            o = np.empty_like(x)
            return (lambda: sc.cross_entropy_grad(x, t, axis=axis, out=o, **kw)), _xent_result, None
        return (lambda: sc.cross_entropy_grad(x, t, axis=axis, **kw)), _xent_result, None
    return prepare


def _xent_opts_torch(case):
    """PyTorch's forward and backward of the composition: cross_entropy
    of ``cap * tanh(x / cap)`` plus ``z_loss * mean(logsumexp**2)``."""
    torch = peer_module("torch")
    F = torch.nn.functional
    x, t, kw = case.inputs["x"], case.inputs["target"], case.inputs["kw"]
    cap, zl = kw["softcap"], kw["z_loss"]
    xt = torch.from_numpy(x).requires_grad_(True)
    tt = torch.from_numpy(t)

    def step():
        xt.grad = None
        z = cap * torch.tanh(xt / cap)
        loss = F.cross_entropy(z, tt) + zl * torch.logsumexp(z, -1).square().mean()
        loss.backward()
        return loss, xt.grad

    def result(r):
        return float(r[0].detach()), r[1].numpy()
    return step, result, None


def _options_implementations(ours, torch_step):
    """A group of calls with options: softmax_c as called and with out=, the
    same call without the options as the baseline, PyTorch's composition."""
    impls = [Impl("softmax_c", "softmax_c", ours(False)),
             Impl("softmax_c(out=)", "softmax_c", ours(True)),
             Impl("softmax_c(no options)", "baseline", ours(True, plain=True))]
    if peer_module("torch") is not None:
        impls.append(Impl("torch", "peer", torch_step))
    return impls


def xent_opts_implementations():
    return _options_implementations(_xent_opts_ours, _xent_opts_torch)


def fused_implementations():
    return _options_implementations(_fused_ours, _fused_torch)


def mixed_implementations(case):
    """The rows of mixed provenance a case has besides implementations():
    softmax_vjp on the shapes of MIXED_SHAPES only."""
    if (case.op != "softmax_vjp" or case.shape_name not in MIXED_SHAPES
            or case.dtype.itemsize == 2):
        return []
    return [Impl("softmax_c(y=block)", "softmax_c", _mixed(False)),
            Impl("softmax_c(y=copy)", "softmax_c", _mixed(True))]


def implementations(op, dtype="float32"):
    """The implementations compared for `op` in `dtype`: softmax_c's, the
    NumPy reference, and those of every installed peer that has the
    operation."""
    if op in SAMPLE_PARAMS:
        impls = [Impl("softmax_c", "softmax_c", _ours(op, False)),
                 Impl("softmax(out=)", "yardstick", _softmax_yardstick),
                 Impl("numpy", "reference", _numpy(op))]
        if peer_module("torch") is not None:
            impls.append(Impl("torch", "peer", _torch_sample(op, SAMPLE_PARAMS[op])))
            if op == "sample_t":
                impls.append(Impl("torch(probs)", "peer", _torch_sample(op, None)))
        return impls
    if op not in ALL_OPS:
        raise ValueError(f"unknown operation {op!r}")
    impls = [Impl("softmax_c", "softmax_c", _ours(op, False)),
             Impl("softmax_c(out=)", "softmax_c", _ours(op, True)),
             Impl("numpy", "reference", _numpy(op))]
    forward = op in ("softmax", "log_softmax")
    if str(dtype) in HALF_DTYPES:  # PyTorch is the peer of the half-width group
        if peer_module("torch") is not None:
            impls += [Impl("torch", "peer", _torch(op, False)),
                      Impl("torch(out=)", "peer", _torch(op, True))]
        return impls
    if forward and peer_module("scipy") is not None:
        impls.append(Impl("scipy", "peer", _scipy(op)))
    if peer_module("torch") is not None:
        impls.append(Impl("torch", "peer", _torch(op, False)))
        if op != "cross_entropy_grad":
            impls.append(Impl("torch(out=)", "peer", _torch(op, True)))
    if (forward and peer_module("jax") is not None
            and (np.dtype(dtype) != np.float64 or _jax_x64())):
        impls.append(Impl("jax", "peer", _jax(op)))
    if forward and peer_module("onnxruntime") is not None:
        impls.append(Impl("onnxruntime", "peer", _onnxruntime(op)))
    return impls


# ---------------------------------------------------------------- checking and timing

def _tol(dtype):
    """Relative to the result's scale: a few units of the dtype's last place."""
    return {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-5}.get(np.dtype(dtype).name, 1e-12)


def _compare(name, got, want, tol):
    """None if the array `got` matches `want` to `tol` relative to the
    scale of `want` (its largest magnitude), else why not."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"{name} has shape {got.shape}, expected {want.shape}"
    if got.dtype != want.dtype:
        return f"{name} is {got.dtype}, expected {want.dtype}"
    if want.dtype.itemsize == 2:  # half-width: compared in float64
        got, want = got.astype(np.float64), want.astype(np.float64)
    scale = float(np.max(np.abs(want), initial=0.0, where=np.isfinite(want))) or 1.0
    if np.allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True):
        return None
    with np.errstate(invalid="ignore"):
        err = np.nanmax(np.abs(got.astype(np.float64) - want)) / scale
    return f"{name} differs by {err:.1e} of its scale {scale:.1e} (tolerance {tol:.0e})"


def _check(got, want, dtype):
    """None if an implementation's result agrees with the reference's,
    else a one-line reason."""
    tol = _tol(dtype)
    if isinstance(want, np.ndarray) and want.dtype == bool:  # sampling: tokens in the kept set
        got = np.asarray(got)
        if got.shape != want.shape[:-1] or got.dtype.kind not in "iu":
            return f"tokens of shape {got.shape} and dtype {got.dtype}"
        rows = want.reshape(-1, want.shape[-1])
        tok = got.reshape(-1)
        if ((tok < 0) | (tok >= rows.shape[1])).any():
            return "a token out of range"
        if not rows[np.arange(rows.shape[0]), tok].all():
            return "a token outside the kept set"
        return None
    if isinstance(want, tuple):  # cross_entropy_grad: (loss, grad)
        loss, grad = got
        if not math.isclose(loss, want[0], rel_tol=tol, abs_tol=tol):
            return f"loss {loss!r}, expected {want[0]!r}"
        return _compare("gradient", grad, want[1], tol)
    return _compare("result", got, want, tol)


def _time_rounds(fns, repeats, min_time):
    """Median seconds per call of each fn, timed in interleaved rounds.

    A round calls one fn again and again until `min_time` has passed (so a
    call that turns slow, say a thread descheduled on a busy machine, cannot
    stretch a round by more than one call), and records the mean time per
    call; the result is the median over `repeats` rounds.
    """
    for fn in fns:
        fn()  # warm-up: first-call costs (JIT, page faults of out=) are not timed
    samples = [[] for _ in fns]
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collection inside a timed loop
    try:
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                n, t0 = 0, clock()
                while True:
                    fn()
                    n += 1
                    elapsed = clock() - t0
                    if elapsed >= min_time:
                        break
                samples[i].append(elapsed / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [float(np.median(s)) for s in samples]


class _Threads:
    """Sets softmax_c's and PyTorch's thread counts per case and restores
    both on exit.  (PyTorch and softmax_c share the OpenMP runtime, so
    torch.set_num_threads also moves softmax_c's OpenMP default: PyTorch's
    count is restored first.)"""

    def __enter__(self):
        self.torch = peer_module("torch")
        self.torch_prev = self.torch.get_num_threads() if self.torch else None
        self.sc_prev = sc.get_num_threads()
        sc.set_num_threads(None)
        self.sc_default = sc.get_num_threads()
        return self

    def set(self, n):
        if self.torch is not None:
            self.torch.set_num_threads(n)
        sc.set_num_threads(n)

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self.torch_prev)
        # An explicit count equal to OpenMP's default cannot be told apart
        # from none: both restore to the same number.
        sc.set_num_threads(None if self.sc_prev == self.sc_default else self.sc_prev)
        return False


def _plan(ops, shapes, dtypes):
    """[(op, shapes, dtypes)]: the given shapes and dtypes, else each op's own
    (a group's, or the default shapes and both dtypes); the half-width
    dtypes only for HALF_OPS."""
    plan = []
    for op in ops:
        own_shapes, own_dtypes = GROUP_OPS.get(op, (DEFAULT_SHAPES, DTYPES))
        if op in FUSED_OPS or op in XENT_OPTS:
            plan.append((op, own_shapes, own_dtypes))
            continue
        dts = list(dtypes) if dtypes is not None else own_dtypes
        dts = [dt for dt in dts if dt not in HALF_DTYPES or op in HALF_OPS]
        if dts:
            plan.append((op, list(shapes) if shapes is not None else own_shapes, dts))
    return plan


def _union(lists):
    """The names of `lists` in order of first appearance."""
    return list(dict.fromkeys(name for names in lists for name in names))


def run(ops=None, shapes=None, dtypes=None, threads=None, repeats=FULL_TIMING[0],
        min_time=FULL_TIMING[1], progress=True):
    """Run the comparison; returns a list of result dicts, one per case and
    implementation, in the order op, shape, dtype, threads, implementation.
    `shapes` and `dtypes` None: each operation's own (_plan).

    A result holds op, shape, dtype, threads, impl, kind, median_s,
    speedup_vs_numpy, speedup_vs_peer (None when no peer ran),
    fastest_peer, bytes, gbps, copy_median_s, copy_gbps, copy_fraction and
    error: None, or why the implementation was not timed (then the timing
    fields are None).
    """
    plan = _plan(available_ops() if ops is None else list(ops), shapes, dtypes)
    threads = sorted(set([1, os.cpu_count() or 1] if threads is None else threads))
    ncases = sum(len(sh) * len(dts) for _, sh, dts in plan) * len(threads)
    bar = _Progress(ncases) if progress else None
    rng = np.random.default_rng(0)
    results = []
    with _Threads() as thr:
        for op, op_shapes, op_dtypes in plan:
            for sname in op_shapes:
                for dt in op_dtypes:
                    if bar:
                        bar.label(f"{op} {sname} {dt}: preparing")
                    case = Case(op, sname, dt, rng)
                    copy_src = np.ones(case.nbytes // 2, np.uint8)
                    copy_dst = np.empty_like(copy_src)
                    for nt in threads:
                        if bar:
                            bar.label(f"{op} {sname} {dt} threads={nt}")
                        thr.set(nt)
                        results += _run_case(case, nt, copy_src, copy_dst, repeats, min_time)
                        if bar:
                            bar.step()
                    del case, copy_src, copy_dst
    if bar:
        bar.done()
    return results


def _run_case(case, nt, copy_src, copy_dst, repeats, min_time):
    if case.op in FUSED_OPS:
        impls = fused_implementations()
    elif case.op in XENT_OPTS:
        impls = xent_opts_implementations()
    else:
        impls = implementations(case.op, case.dtype) + mixed_implementations(case)
    fns, errors = [], {}
    for impl in impls:
        try:
            fn, result, reset = impl.prepare(case)
            if reset is not None:
                reset()
            err = None if impl.kind == "baseline" else _check(result(fn()), case.want, case.dtype)
        except Exception as e:  # a peer without this call, or a bug: reported, not timed
            err = f"raised {type(e).__name__}: {e}".splitlines()[0]
        if err is None:
            fns.append(fn)
        else:
            errors[impl.name] = err
    timed = [i for i in impls if i.name not in errors]
    times = _time_rounds(fns + [lambda: np.copyto(copy_dst, copy_src)], repeats, min_time)
    t_copy = times.pop()
    t_of = dict(zip((i.name for i in timed), times))
    t_ref = t_of.get("numpy")
    peer_times = {i.name: t_of[i.name] for i in timed if i.kind == "peer"}
    best_peer = min(peer_times, key=peer_times.get) if peer_times else None
    out = []
    for impl in impls:
        t = t_of.get(impl.name)
        row = {"op": case.op, "shape": case.shape_name, "dtype": case.dtype.name, "threads": nt,
               "impl": impl.name, "kind": impl.kind, "median_s": t,
               "speedup_vs_numpy": None, "speedup_vs_peer": None, "fastest_peer": best_peer,
               "bytes": case.nbytes, "gbps": None, "copy_median_s": t_copy,
               "copy_gbps": case.nbytes / t_copy / 1e9, "copy_fraction": None,
               "error": errors.get(impl.name)}
        if t is not None:
            row["speedup_vs_numpy"] = t_ref / t if t_ref else None
            row["speedup_vs_peer"] = peer_times[best_peer] / t if best_peer else None
            row["gbps"] = case.nbytes / t / 1e9
            row["copy_fraction"] = t_copy / t
        out.append(row)
    return out


class _Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, else one
    line per finished case (for logs)."""

    def __init__(self, n, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.n, self.i, self.t0, self.text = n, 0, time.perf_counter(), ""
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def label(self, text):
        self.text = text
        if self.tty:
            self._draw()

    def step(self):
        self.i += 1
        self._draw()

    def _draw(self):
        width = 24
        filled = int(width * self.i / max(self.n, 1))
        el = time.perf_counter() - self.t0
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.i}/{self.n} "
                f"{int(el) // 60}:{int(el) % 60:02d}  {self.text}")[:110]
        self.stream.write("\r" + line.ljust(110) if self.tty else line + "\n")
        self.stream.flush()

    def done(self):
        if self.tty:
            self.text = "done"
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------- the machine

def _load():
    """The 1-minute load average, or None where there is none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info(threads=None, load_start=None):
    """The machine, build and versions a run's figures belong to;
    `load_start` is the load average before the run (other work running on
    the machine makes multi-thread figures unreliable)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = build_info()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "softmax_c": info["version"]}
    versions.update(installed_peers())
    return {"cpu": cpu, "cores": os.cpu_count(), "simd": info["simd"],
            "simd_compiled": info.get("simd_compiled"), "openmp": info.get("openmp"),
            "threads": threads, "platform": f"{platform.system()} {platform.machine()}",
            "versions": versions,
            "peers_missing": [p for p in PEERS if peer_module(p) is None],
            "load_average": {"start": load_start, "end": _load()},
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


# ---------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line on stderr and exit 2, instead of argparse's usage dump."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _split(parser, text, allowed, what):
    items = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        parser.error(f"unknown {what} {', '.join(bad) if bad else repr(text)}; "
                     f"choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _parse_threads(parser, text):
    try:
        threads = [int(v) for v in text.split(",")]
    except ValueError:
        threads = None
    if not threads or any(t < 1 for t in threads):
        parser.error(f"--threads must be a comma list of ints >= 1, got {text!r}")
    return threads


def _check_writable(parser, path, option):
    """Fail now, not after the run, if `path` cannot be written."""
    if os.path.isdir(path):
        parser.error(f"{option} {path!r} is a directory")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
        if not existed:
            os.remove(path)
    except OSError as e:
        parser.error(f"cannot write {option} {path!r}: {e.strerror or e}")


def main(argv=None):
    ops_avail = available_ops()
    parser = _Parser(
        prog="python -m softmax_c bench",
        description="Time softmax_c against the NumPy reference and the installed peers "
                    "(SciPy, PyTorch, JAX, onnxruntime), check every result, and report speed-ups, GB/s "
                    "and the fraction of this machine's memory-copy speed.")
    parser.add_argument("--quick", action="store_true",
                        help=f"shapes {','.join(QUICK_SHAPES)} (unless --shapes) and fewer "
                             "repeats: under a minute")
    parser.add_argument("--ops", default=None,
                        help=f"comma list of {','.join(ops_avail + list(GROUP_OPS))} (default: "
                             f"{','.join(ops_avail)}; the groups {','.join(GROUP_OPS)} have "
                             "their own shapes and float32; 'fused': the four fused_*)")
    parser.add_argument("--dtype", default=None,
                        help="comma list of float32, float64, float16, bfloat16 (the last two "
                             "softmax, log_softmax and softmax_vjp only, against PyTorch's; "
                             "'half' is both; "
                             "bfloat16 needs ml_dtypes) (default: float32,float64)")
    parser.add_argument("--threads", default=None,
                        help=f"comma list of thread counts (default: 1,{os.cpu_count() or 1})")
    parser.add_argument("--shapes", default=None,
                        help=f"comma list of {','.join(SHAPES)} (default: all); "
                             "':1' means the softmax runs over axis 1")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write the results and the machine's description as JSON")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="draw softmax_c's speed-up over the fastest peer in each case, "
                             "one panel per operation (over NumPy when no peer ran; needs "
                             "matplotlib)")
    parser.add_argument("--from-json", default=None, metavar="FILE",
                        help="time nothing: print the table of a run saved with --json, and "
                             "draw its --plot")
    args = parser.parse_args(argv)

    if args.from_json is not None:
        given = [opt for opt, value in (("--quick", args.quick), ("--ops", args.ops),
                                        ("--dtype", args.dtype), ("--threads", args.threads),
                                        ("--shapes", args.shapes), ("--json", args.json))
                 if value not in (None, False)]
        if given:
            parser.error(f"--from-json reads a finished run: {', '.join(given)} cannot apply")
    ops_text = args.ops if args.ops is not None else ",".join(ops_avail)
    ops_text = ",".join(",".join(FUSED_OPS) if o == "fused" else o for o in ops_text.split(","))
    ops = _split(parser, ops_text,
                 ops_avail + [g for g in GROUP_OPS if hasattr(sc, g.split("_")[0])
                              or g in FUSED_OPS or g in XENT_OPTS], "operation")
    dtypes = None
    if args.dtype is not None:
        dtypes = _split(parser, args.dtype, DTYPES + HALF_DTYPES + ["half"], "dtype")
        if "half" in dtypes:
            i = dtypes.index("half")
            dtypes = list(dict.fromkeys(dtypes[:i] + HALF_DTYPES + dtypes[i + 1:]))
        if any(d in HALF_DTYPES for d in dtypes) and not any(o in HALF_OPS for o in ops):
            parser.error(f"--dtype {args.dtype}: the half-width cases are {', '.join(HALF_OPS)}")
    if args.shapes:
        shapes = _split(parser, args.shapes, list(SHAPES), "shape")
    else:
        shapes = QUICK_SHAPES if args.quick and not set(ops) & set(GROUP_OPS) else None
    threads = (_parse_threads(parser, args.threads) if args.threads is not None
               else [1, os.cpu_count() or 1])
    threads = sorted(set(threads))
    if args.plot is not None:
        if os.path.splitext(args.plot)[1].lower() not in (".png", ".svg", ".pdf"):
            parser.error(f"--plot {args.plot!r}: the file name must end in .png, .svg or .pdf")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.exit(2, "--plot needs matplotlib: pip install matplotlib\n")
        _check_writable(parser, args.plot, "--plot")
    if args.json is not None:
        _check_writable(parser, args.json, "--json")
    if args.from_json is not None:
        try:
            doc = load_json(args.from_json)
        except (OSError, ValueError) as e:
            parser.error(f"--from-json {args.from_json!r}: {getattr(e, 'strerror', None) or e}")
        print(format_header(doc["machine"]))
        print()
        print(format_table(doc["results"]))
        return _write_plot(doc["results"], args.plot) if args.plot is not None else 0

    repeats, min_time = QUICK_TIMING if args.quick else FULL_TIMING
    plan = _plan(ops, shapes, dtypes)
    load_start = _load()
    try:
        results = run(ops, shapes, dtypes, threads, repeats=repeats, min_time=min_time)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    info = machine_info(threads, load_start)
    print(format_header(info))
    print()
    print(format_table(results))

    status = 0
    if args.json is not None:
        doc = {"machine": info,
               "settings": {"ops": ops, "shapes": _union(sh for _, sh, _ in plan),
                            "dtypes": _union(dts for _, _, dts in plan), "threads": threads,
                            "quick": args.quick, "repeats": repeats, "round_s": min_time},
               "results": results}
        try:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        except OSError as e:
            sys.stderr.write(f"cannot write --json {args.json!r}: {e.strerror or e}\n")
            status = 1
    if args.plot is not None:
        status = _write_plot(results, args.plot) or status
    wrong = [r for r in results if r["kind"] == "softmax_c" and r["error"] is not None]
    if wrong:
        sys.stderr.write(f"softmax_c disagreed with the NumPy reference or failed in {len(wrong)} "
                         "row(s): see 'not timed' above\n")
        status = 1
    return status


def _write_plot(results, path):
    """Draw --plot; 0, or 1 after a one-line message when it cannot be
    drawn or written."""
    try:
        plot(results, path)
    except OSError as e:
        sys.stderr.write(f"cannot write --plot {path!r}: {e.strerror or e}\n")
        return 1
    except ValueError as e:
        sys.stderr.write(f"nothing to plot in --plot {path!r}: {e}\n")
        return 1
    return 0
