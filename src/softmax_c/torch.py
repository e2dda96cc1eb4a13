"""PyTorch interop: softmax_c's kernels as PyTorch autograd functions.

Import it explicitly, ``import softmax_c.torch`` (``import softmax_c``
alone never imports PyTorch); it needs PyTorch installed.

Provides

- :class:`Softmax`, :class:`LogSoftmax` and :class:`CrossEntropy`,
  ``torch.autograd.Function`` subclasses whose forward and (first-order)
  backward both run softmax_c's kernels: ``softmax`` / ``log_softmax``
  forward with ``softmax_vjp`` / ``log_softmax_vjp`` backward, and the
  fused ``cross_entropy_grad`` whose gradient, computed in the same pass
  as the loss, is saved for backward;
- :func:`softmax`, :func:`log_softmax` and :func:`cross_entropy`, the
  same with the signatures of ``torch.softmax`` / ``torch.log_softmax`` /
  ``torch.nn.functional.cross_entropy``;
- softmax_c's fused options on :func:`softmax` and :func:`log_softmax`,
  keyword only: ``scale``, ``softcap``, ``bias``, ``causal`` and ``sink``
  (``softmax(x, -1, scale=d ** -0.5, bias=alibi, causal=True)``), with the
  semantics and errors of :func:`softmax_c.softmax`.  They run through
  :class:`FusedSoftmax`: forward by softmax_c's fused kernel, backward with
  respect to `input` and to `scale`, `bias` and `sink` when they are
  tensors that require grad (each gradient summed over the dimensions its
  option was broadcast along); floats, NumPy arrays, `softcap` and
  `causal` get no gradient.  Excluded positions (a ``-inf`` bias, past the
  causal diagonal) and rows with nothing left get gradient 0, never NaN.
  The ``where=`` option of softmax_c is not taken.

Zero-copy.  Every tensor reaches softmax_c as a NumPy view of its own
memory (``t.detach().numpy()``), whatever its strides: a transposed,
sliced or expanded tensor is read in place, never made contiguous first.
Results are written by the kernels straight into tensors allocated by
PyTorch (``torch.empty_like`` of the input, so in the input's layout when
it is dense), or, for the per-sample losses of ``reduction="none"``,
wrapped with ``torch.from_numpy``.  No data is copied between the two
libraries.  The only copy made is for a tensor carrying PyTorch's lazy
negation bit, which NumPy cannot see (it is resolved first).

What is supported

- CPU tensors, strided layout, float32 and float64 for the differentiable
  inputs (the input of softmax / log_softmax, the logits of the
  cross-entropy).  :func:`softmax` and :func:`log_softmax` without fused
  options take float16 and bfloat16 too, forward and backward in the
  half-width kernels (read and written in place, computed in float32,
  rounded once into the input's dtype; bfloat16 reaches NumPy as
  ``ml_dtypes.bfloat16``, so it needs ml_dtypes installed).  Any other
  device raises ``ValueError``; the fused options and the cross-entropy
  with float16 or bfloat16, and every other dtype, raise ``TypeError``
  (cast first, e.g. ``softmax(x, dim, dtype=torch.float32)``, which
  PyTorch differentiates through).
- Cross-entropy targets: class indices (an integer tensor, int64 as in
  PyTorch, of the logits' shape without the class axis) or class
  probabilities (a float tensor of the logits' shape), with `weight`,
  `ignore_index`, `reduction` and `label_smoothing` as in PyTorch.  The
  gradient flows to the logits only: a `target` or `weight` that requires
  grad raises ``RuntimeError`` when the backward pass reaches it (PyTorch
  itself refuses a `weight` that requires grad; it does differentiate
  probability targets, which this module does not).
- Derivatives of every order.  A plain backward pass runs softmax_c's
  kernels (``softmax_vjp`` / ``log_softmax_vjp``, also for the fused
  options, whose elementwise chain rule is in PyTorch operations; the
  cross-entropy scales the gradient saved by its forward).  When the gradient needs a
  graph of its own (``create_graph=True``: gradient penalties,
  Hessian-vector products), backward is computed with differentiable
  PyTorch operations on the saved output instead (for the cross-entropy,
  on the saved gradient, a second output of the Function that
  ``CrossEntropy.apply`` drops), so double backward, and higher, is
  correct rather than silently first-order.  The functions run in eager
  mode only: ``torch.func`` transforms (``vmap``, ``grad``, ...) cannot
  hand them NumPy views, and ``torch.compile`` breaks the graph around
  them.
- Threads: softmax_c and PyTorch share one OpenMP runtime, and by
  default the kernels use its setting, ``omp_get_max_threads()``, as
  PyTorch's own OpenMP loops do: ``torch.set_num_threads(n)`` (and
  ``threadpoolctl``, ``OMP_NUM_THREADS``) set it for both, in the Python
  thread that calls it.  ``softmax_c.set_num_threads(n)`` is softmax_c's
  own override: the kernels then use `n`, whatever
  ``torch.set_num_threads`` says, and PyTorch's setting is unchanged.

Errors raised by softmax_c itself (a `dim` out of range, a class index out
of range, a target of the wrong shape, a bad fused option, ...) propagate
unchanged, raised before the kernels write anything.

Examples
--------
>>> import torch, softmax_c.torch as sct
>>> x = torch.tensor([[1000., 1.], [0., 0.]], dtype=torch.float64, requires_grad=True)
>>> sct.softmax(x, dim=1)
tensor([[1.0000, 0.0000],
        [0.5000, 0.5000]], dtype=torch.float64, grad_fn=<SoftmaxBackward>)
>>> loss = sct.cross_entropy(x, torch.tensor([1, 0]))
>>> loss.backward()
>>> x.grad
tensor([[ 0.5000, -0.5000],
        [-0.2500,  0.2500]], dtype=torch.float64)
"""
if not __package__:  # pragma: no cover - this file run or imported as a top-level module
    raise ImportError(
        "softmax_c/torch.py was imported as a top-level module (its directory is on "
        "sys.path, where it shadows PyTorch): import it as softmax_c.torch")

try:
    # An absolute import: the real PyTorch, never this module (softmax_c.torch).
    import torch
except ImportError as exc:
    _msg = "softmax_c.torch needs PyTorch: pip install torch"
    if getattr(exc, "name", None) != "torch":  # installed, but broken
        _msg += f" (importing torch failed: {exc})"
    raise ImportError(_msg) from exc

import numpy as np

import softmax_c as _sc
from . import _validate

__all__ = ["Softmax", "LogSoftmax", "FusedSoftmax", "CrossEntropy", "softmax", "log_softmax",
           "cross_entropy"]

_FLOATS = (torch.float32, torch.float64)
_HALF = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------- checks and views

def _check_cpu(t, name):
    """Raise unless `t` is a strided CPU tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(
            f"`{name}` is on device {str(t.device)!r}: softmax_c.torch runs on CPU "
            f"tensors only (move it with .cpu())")
    if t.layout != torch.strided:
        raise TypeError(f"`{name}` has layout {t.layout}: softmax_c.torch needs a dense "
                        f"(torch.strided) tensor")


def _check_tensor(t, name):
    """Raise unless `t` is a strided CPU tensor of a dtype NumPy can view
    (softmax_c checks the dtype further)."""
    _check_cpu(t, name)
    if t.dtype == torch.bfloat16 or t.is_complex():
        raise TypeError(f"`{name}` has unsupported dtype {t.dtype}")


def _check_float(t, name, half=False):
    """Raise unless `t` is a strided float32/float64 CPU tensor (with
    `half`, float16 and bfloat16 too): the dtypes the autograd function
    differentiates."""
    _check_cpu(t, name)
    if t.dtype in _FLOATS or (half and t.dtype in _HALF):
        return
    if t.dtype in _HALF:
        raise TypeError(
            f"`{name}` has dtype {t.dtype}, which this softmax_c.torch function does not "
            f"support (float32 and float64 only; Softmax and LogSoftmax without options "
            f"take float16 and bfloat16): cast it first, e.g. with dtype=torch.float32 or "
            f"{name}.float()")
    raise TypeError(f"`{name}` has unsupported dtype {t.dtype}: expected torch.float32 or "
                    f"torch.float64")


def _numpy(t):
    """A NumPy view of the memory of CPU tensor `t`, with its strides: no
    copy, except to resolve a lazy negation bit, which NumPy cannot see.
    bfloat16, which ``Tensor.numpy`` refuses, is viewed as its 16-bit
    patterns, then as ``ml_dtypes.bfloat16``."""
    t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_bfloat16())
    return t.numpy()


def _bfloat16():
    """The NumPy bfloat16 dtype (ml_dtypes', imported only here: a
    bfloat16 tensor needs it to reach softmax_c as a NumPy view)."""
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError("bfloat16 tensors need the ml_dtypes package (its NumPy bfloat16 "
                        "dtype): pip install ml_dtypes, or cast to torch.float32") from None
    return np.dtype(ml_dtypes.bfloat16)


def _axis(dim, ndim):
    """`dim` for softmax_c: -1 for the last axis (the library's fast path
    takes exactly -1), else the non-negative axis.  TypeError for a non-int
    `dim`, AxisError out of range, as softmax_c raises them."""
    k = _validate.normalize_single_axis(dim, ndim, "dim")
    return -1 if k == ndim - 1 else k


# ---------------------------------------------------------------- autograd functions

def _slices(t):
    """`_numpy(t)`, with a 0-d tensor as a 1-element array: PyTorch takes a
    0-d tensor as one slice of one element (dim 0 or -1)."""
    a = _numpy(t)
    return a.reshape(1) if a.ndim == 0 else a


def _forward(ctx, input, dim, fn):
    """Softmax and LogSoftmax forward: `fn` (softmax_c.softmax or
    log_softmax) into a tensor PyTorch allocates; the output is saved."""
    _check_float(input, "input", half=True)
    k = _axis(dim, max(input.ndim, 1))
    out = torch.empty_like(input)
    fn(_slices(input), axis=k, out=_slices(out))
    ctx.axis = k
    ctx.save_for_backward(out)
    return out


def _backward(ctx, grad_output, vjp):
    """Their backward: `vjp` (softmax_vjp or log_softmax_vjp) of the saved
    output and `grad_output`."""
    (saved,) = ctx.saved_tensors
    grad_input = torch.empty_like(saved)
    vjp(_slices(saved), _slices(grad_output), axis=ctx.axis, out=_slices(grad_input))
    return grad_input, None


class Softmax(torch.autograd.Function):
    """Softmax along `dim`, forward and backward by softmax_c's kernels.

    ``Softmax.apply(input, dim)``; prefer :func:`softmax`.

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor, float32, float64, float16 or bfloat16, any shape and
        strides (read in place, never copied).  float16 and bfloat16 are
        computed in float32, the output and the gradient rounded once
        into the input's dtype.
    dim : int
        The axis normalized (negative counts from the end).  A 0-d `input`
        takes 0 or -1, as in PyTorch: one slice of one element (softmax
        1, log-softmax 0, gradient 0).

    Returns
    -------
    torch.Tensor
        ``exp(x - max) / sum(exp(x - max))`` along `dim`: the shape and
        dtype of `input`, in its layout when it is dense.

    Raises
    ------
    ValueError
        `input` not on the CPU (the message names its device).
    TypeError
        `input` not a float16/bfloat16/float32/float64 strided tensor (the
        message names its dtype), bfloat16 without ml_dtypes installed, or
        `dim` not an int.
    numpy.exceptions.AxisError
        `dim` out of range.

    Notes
    -----
    The output is saved for backward, where ``grad_input = y * (g -
    sum(y * g))`` along `dim`: :func:`softmax_c.softmax_vjp`, or, with
    ``create_graph=True``, the same formula in PyTorch operations, which
    PyTorch differentiates again.
    """

    @staticmethod
    def forward(ctx, input, dim):
        return _forward(ctx, input, dim, _sc.softmax)

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():  # create_graph: the gradient gets a graph of its own
            (y,) = ctx.saved_tensors
            return y * (grad_output - (y * grad_output).sum(ctx.axis, keepdim=True)), None
        return _backward(ctx, grad_output, _sc.softmax_vjp)


class LogSoftmax(torch.autograd.Function):
    """Log-softmax along `dim`, forward and backward by softmax_c's kernels.

    ``LogSoftmax.apply(input, dim)``; prefer :func:`log_softmax`.
    Parameters, returns and errors as in :class:`Softmax`.

    Notes
    -----
    Computed as ``(x - max) - log(sum(exp(x - max)))``.  The output is
    saved for backward, where ``grad_input = g - exp(logp) * sum(g)``
    along `dim`: :func:`softmax_c.log_softmax_vjp`, or, with
    ``create_graph=True``, the same formula in PyTorch operations.
    """

    @staticmethod
    def forward(ctx, input, dim):
        return _forward(ctx, input, dim, _sc.log_softmax)

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():  # create_graph: the gradient gets a graph of its own
            (logp,) = ctx.saved_tensors
            return grad_output - logp.exp() * grad_output.sum(ctx.axis, keepdim=True), None
        return _backward(ctx, grad_output, _sc.log_softmax_vjp)


class CrossEntropy(torch.autograd.Function):
    """Cross-entropy of logits and targets, with the semantics of
    ``torch.nn.functional.cross_entropy``, by softmax_c's fused kernel.

    ``CrossEntropy.apply(input, target, weight, ignore_index, reduction,
    label_smoothing, dim[, softcap, z_loss, return_lse])``, every argument positional (PyTorch tracks
    only positional tensors); prefer :func:`cross_entropy`.

    Parameters
    ----------
    input : torch.Tensor
        Logits, a CPU float32/float64 tensor, ``(C,)``, ``(N, C)`` or
        ``(N, C, d1, ...)``; any strides.
    target : torch.Tensor
        Class indices (an integer tensor, e.g. int64, of the shape of
        `input` without the class axis) or class probabilities (a float
        tensor of the shape of `input`, cast to its dtype).  Not
        differentiated.
    weight : torch.Tensor or None
        One weight per class, cast to the dtype of `input`.  Not
        differentiated.
    ignore_index : int
        An index target equal to it takes no part (index targets only).
    reduction : {"mean", "sum", "none"}
        As in PyTorch; "mean" divides by the summed weights of the kept
        targets.
    label_smoothing : float
        In [0, 1].
    dim : int or None
        The class axis; None means PyTorch's: 1, or 0 for 1-D `input`.
    softcap, z_loss, return_lse
        As in :func:`softmax_c.cross_entropy` (None, 0.0, False: none).

    Returns
    -------
    torch.Tensor
        The loss, of the dtype of `input`: 0-d for "mean" and "sum" ("mean"
        with every target ignored, or the kept targets' weights summing to
        0, is NaN, as in PyTorch), the batch shape for "none".

    Raises
    ------
    ValueError
        A tensor not on the CPU (its device named), and what
        :func:`softmax_c.cross_entropy_grad` raises as ValueError (target
        of the wrong shape, bad `reduction`, `label_smoothing`, `weight`
        length, `ignore_index` with probability targets).
    TypeError
        `input` not float32/float64 (its dtype named), an unsupported
        target or weight dtype, a non-int `dim`.
    IndexError
        A class index out of range that is not `ignore_index`.
    RuntimeError
        In backward, when `target` or `weight` requires grad.

    Notes
    -----
    Forward computes the loss and its gradient with respect to the logits
    in one pass (:func:`softmax_c.cross_entropy_grad`) and saves the
    gradient; backward only scales it by `grad_output` (for "none", each
    sample's row by its own element of `grad_output`).  The saved gradient
    is one tensor of the size of `input`, as PyTorch's own saved
    log-softmax; `target` and `weight` are saved too, as PyTorch saves
    them (changing them in place before backward raises PyTorch's
    in-place error).

    The Function has two outputs, the loss and the gradient;
    ``CrossEntropy.apply`` returns the loss.  The gradient, saved as an
    output, carries a double backward (``create_graph=True``): its own
    backward is the Hessian of the loss times a vector, ``A v - A sum(A
    v) / (c S)`` per sample with ``A = grad + c u = c S softmax(input)``,
    where ``u`` holds the target weight of each class, ``S = sum(u)`` and
    ``c`` is the reduction's scale, in differentiable PyTorch operations.
    """

    @staticmethod
    def forward(ctx, input, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0, dim=None, softcap=None, z_loss=0.0, return_lse=False):
        _check_float(input, "input")
        _check_tensor(target, "target")
        if weight is not None:
            _check_tensor(weight, "weight")
        if dim is None:
            dim = 1 if input.ndim >= 2 else 0
        k = _validate.normalize_single_axis(dim, input.ndim, "dim")
        grad = torch.empty_like(input)
        res = _sc.cross_entropy_grad(
            _numpy(input), _numpy(target), axis=k,
            weight=None if weight is None else _numpy(weight), ignore_index=ignore_index,
            reduction=reduction, label_smoothing=label_smoothing, softcap=softcap,
            z_loss=z_loss, return_lse=return_lse, out=_numpy(grad))
        loss = np.asarray(res[0])
        # the lse, when asked for: a third output, not differentiated
        lse = torch.from_numpy(res[2]) if return_lse else torch.empty(0, dtype=input.dtype)
        ctx.mark_non_differentiable(lse)
        # the Hessian product below is of the plain loss
        ctx.options = softcap is not None or z_loss not in (None, 0, 0.0)
        if not loss.flags.writeable:  # torch.from_numpy warns on read-only arrays
            loss = loss.copy()
        ctx.axis = k
        ctx.reduction = reduction
        ctx.ignore_index = ignore_index
        ctx.label_smoothing = float(label_smoothing)
        ctx.not_differentiable = [name for name, t in (("target", target), ("weight", weight))
                                  if t is not None and t.requires_grad]
        ctx.set_materialize_grads(False)
        # The gradient is also an output (dropped by apply): saved as an
        # output, it carries the graph of a double backward to `input`.
        ctx.save_for_backward(grad, target, weight)
        return torch.from_numpy(loss), grad, lse

    @classmethod
    def apply(cls, *args, **kwargs):
        """The loss (the Function's first output); with `return_lse` (the
        tenth argument) ``(loss, lse)``."""
        res = super().apply(*args, **kwargs)
        return (res[0], res[2]) if len(args) > 9 and args[9] else res[0]

    @staticmethod
    def backward(ctx, grad_output, grad_grad, grad_lse=None):
        if ctx.not_differentiable:
            name = ctx.not_differentiable[0]
            raise RuntimeError(
                f"softmax_c.torch.CrossEntropy is not differentiable with respect to "
                f"`{name}`, which requires grad: pass {name}.detach()")
        grad, target, weight = ctx.saved_tensors
        grad_input = None
        if grad_output is not None:
            if ctx.reduction == "none":  # one factor per sample, along its row of classes
                grad_output = grad_output.unsqueeze(ctx.axis)
            grad_input = grad * grad_output
        if grad_grad is not None:  # only a double backward reaches the gradient output
            if ctx.options:
                raise RuntimeError(
                    "softmax_c.torch.CrossEntropy: no double backward with `softcap` or "
                    "`z_loss` (the first backward works)")
            hvp = _xent_hessian_product(ctx, grad, target, weight, grad_grad)
            grad_input = hvp if grad_input is None else grad_input + hvp
        return grad_input, None, None, None, None, None, None, None, None, None


def _xent_hessian_product(ctx, grad, target, weight, v):
    """The Hessian of the loss times `v`, from the saved gradient, in
    differentiable torch operations.

    Per sample, with ``u`` the target weights of each class (``w[t]``
    times one-hot, smoothed; or ``w * q`` for probability targets), ``S =
    sum(u)`` and ``c`` the reduction's scale, the gradient is ``c (S p -
    u)`` and the Hessian ``c S (diag(p) - p pᵀ)``.  ``A = grad + c u = c S
    p`` is affine in the gradient, so the product ``A v - A sum(A v) / (c
    S)`` stays differentiable to any order through the saved gradient,
    which is an output of this Function.  Samples with ``S = 0`` (ignored
    ones) have a constant gradient: 0.
    """
    k, dtype, shape = ctx.axis, grad.dtype, grad.shape
    n = shape[k]
    ls = ctx.label_smoothing
    w = (torch.ones(n, dtype=dtype) if weight is None else weight.detach().to(dtype))
    along = [1] * len(shape)
    along[k] = n
    w_b = w.reshape(along)  # the class weights along the class axis
    if target.dtype.is_floating_point:
        u = w_b * (target.detach().to(dtype) * (1.0 - ls) + ls / n)
        denom = float(grad.numel() // n)
    else:
        t = target.detach()
        keep = (t != ctx.ignore_index).unsqueeze(k)
        t0 = torch.where(keep, t.unsqueeze(k), 0).long()
        onehot = torch.zeros(shape, dtype=dtype).scatter_(k, t0, 1.0)
        w_t = torch.take_along_dim(w_b, t0, k) if len(shape) else w[t0]
        u = keep * ((1.0 - ls) * w_t * onehot + (ls / n) * w_b)
        denom = float((keep * w_t).sum())
    scale = 1.0
    if ctx.reduction == "mean":
        scale = 1.0 / denom if denom != 0.0 else float("nan")
    total = u.sum(k, keepdim=True)
    live = total != 0
    a = torch.where(live, grad + scale * u, 0.0)
    av = (a * v).sum(k, keepdim=True)
    return a * v - a * torch.where(live, av / torch.where(live, scale * total, 1.0), 0.0)


# ---------------------------------------------------------------- fused options

def _option_array(value, name):
    """A tensor option (scale, bias, sink) as the NumPy view softmax_c
    takes; anything else (a float, an array, None) as it is, for softmax_c
    to check."""
    if isinstance(value, torch.Tensor):
        _check_tensor(value, name)
        return _numpy(value)
    return value


def _per_row_view(t, shape, k):
    """Tensor `t` (a per-row scale or sink) as softmax_c reads it: of the
    input's ndim with length 1 along axis k, by the rule of
    softmax_c._validate._per_row (length 1 along k as it is, else broadcast
    to the reduced shape).  Differentiable, so its gradient reaches `t`."""
    kshape = tuple(1 if d == k else s for d, s in enumerate(shape))
    if t.ndim == len(shape) and t.ndim and t.shape[k] == 1:
        return t.expand(kshape)
    reduced = tuple(s for d, s in enumerate(shape) if d != k)
    return t.expand(reduced).unsqueeze(k)


class FusedSoftmax(torch.autograd.Function):
    """Softmax or log-softmax along `dim` with softmax_c's fused options,
    forward by softmax_c's fused kernel, backward with respect to `input`
    and the tensor options.

    ``FusedSoftmax.apply(input, dim, log, scale, softcap, bias, causal,
    sink)``, every argument positional (PyTorch tracks only positional
    tensors); prefer :func:`softmax` / :func:`log_softmax`.

    The row normalized is ``z = softcap * tanh(input * scale / softcap) +
    bias`` (softcap optional), with the positions excluded by a `-inf`
    bias or `causal` taking no part and `sink` joining the denominator
    only: the semantics of :func:`softmax_c.softmax`.

    Notes
    -----
    With ``y`` the output and ``g`` the incoming gradient, the gradient
    with respect to ``z`` is ``dz = y * (g - sum(y * g))`` (softmax,
    :func:`softmax_c.softmax_vjp`; it holds with a sink, where ``y`` sums to
    less than 1) or ``dz = g - exp(y) * sum(g)`` with ``g`` zeroed at the
    excluded positions (log-softmax, :func:`softmax_c.log_softmax_vjp`);
    ``dz`` is 0 at excluded positions.  Then ``d input = dz * scale * (1 -
    t**2)``, ``d scale = sum(dz * input * (1 - t**2))`` along `dim`, with
    ``t = tanh(input * scale / softcap)`` (``t = 0`` without softcap),
    ``d bias = dz``, and ``d sink = -sum(g * y) * y_sink`` (softmax) or
    ``-sum(g) * y_sink`` (log-softmax), ``y_sink = exp(sink - lse)`` the
    sink's share of the denominator, ``lse`` the logsumexp of the row with
    the sink, computed by the forward pass (one more pass) only when `sink`
    requires grad.  Each gradient is summed over the dimensions its option
    was broadcast along.  With ``create_graph=True`` the same formulas run
    in differentiable PyTorch operations (``y_sink = 1 - sum(exp(...))``
    there), so higher derivatives are correct.
    """

    @staticmethod
    def forward(ctx, input, dim, log, scale, softcap, bias, causal, sink):
        _check_float(input, "input")
        k = _axis(dim, max(input.ndim, 1))
        for name, v in (("softcap", softcap), ("causal", causal)):
            if isinstance(v, torch.Tensor) and v.requires_grad:
                raise TypeError(f"`{name}` gets no gradient: pass a float (or "
                                f"{name}.item()), not a tensor that requires grad")
        options = dict(scale=_option_array(scale, "scale"), softcap=softcap,
                       bias=_option_array(bias, "bias"), causal=causal,
                       sink=_option_array(sink, "sink"))
        fn = _sc.log_softmax if log else _sc.softmax
        out = torch.empty_like(input)
        fn(_slices(input), axis=k, out=_slices(out), **options)
        lse = None
        if isinstance(sink, torch.Tensor) and ctx.needs_input_grad[7]:
            lse = torch.from_numpy(np.ascontiguousarray(
                _sc.logsumexp(_slices(input), axis=k, keepdims=True, **options)))
        ctx.axis, ctx.log, ctx.softcap = k, log, softcap
        ctx.scale = None if isinstance(scale, torch.Tensor) else scale  # float or array
        ctx.bias_meta = (bias.shape, bias.dtype) if isinstance(bias, torch.Tensor) else None
        # x is needed only under softcap (its tanh) or for scale's gradient
        keep_x = softcap is not None or ctx.needs_input_grad[3]
        ctx.save_for_backward(input if keep_x else None, out,
                              scale if isinstance(scale, torch.Tensor) else None,
                              sink if isinstance(sink, torch.Tensor) else None, lse)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, y, scale_t, sink_t, lse = ctx.saved_tensors
        k, log = ctx.axis % max(y.ndim, 1), ctx.log  # non-negative: per-row views need it
        graph = torch.is_grad_enabled()  # create_graph: differentiable operations only
        g = grad_output
        if log:  # excluded positions (-inf) are constant: their g takes no part
            g = torch.where(y == -torch.inf, 0.0, g).to(y.dtype)
        if graph:
            if log:
                dz = g - y.exp() * g.sum(k, keepdim=True)
            else:
                dz = y * (g - (y * g).sum(k, keepdim=True))
        else:
            dz = torch.empty_like(y)
            vjp = _sc.log_softmax_vjp if log else _sc.softmax_vjp
            vjp(_slices(y), _slices(g), axis=k, out=_slices(dz))
        need = ctx.needs_input_grad
        grad_x = grad_scale = grad_bias = grad_sink = None

        if need[0] or need[3]:
            shape = y.shape
            if scale_t is not None:
                s = _per_row_view(scale_t, shape, k)
            elif ctx.scale is not None and np.ndim(ctx.scale) > 0:
                s = _per_row_view(torch.as_tensor(np.asarray(ctx.scale, dtype=np.float64)),
                                  shape, k)
            else:
                s = 1.0 if ctx.scale is None else float(ctx.scale)
            if ctx.softcap is not None:
                t = torch.tanh(x * s / ctx.softcap)
                d = 1.0 - t * t
            else:
                d = None
            zero = dz == 0  # excluded positions: x there may be anything, even NaN
            if need[0]:
                f = s if d is None else s * d
                grad_x = dz if isinstance(f, float) and f == 1.0 else dz * f
                grad_x = torch.where(zero, 0.0, grad_x).to(y.dtype)
            if need[3]:
                dxs = x if d is None else torch.where(x.isinf(), 0.0, x * d)
                e = torch.where(zero, 0.0, dz * dxs).sum(k, keepdim=True)
                grad_scale = _unview(e, scale_t, shape, k)
        if need[5]:
            shape, dtype = ctx.bias_meta
            grad_bias = dz.sum_to_size(shape).to(dtype) if len(shape) else dz.sum().to(dtype)
        if need[7]:
            if log:
                total = g.sum(k, keepdim=True)
            else:
                total = (g * y).sum(k, keepdim=True)
            if graph:
                p = y.exp() if log else y
                y_sink = 1.0 - p.sum(k, keepdim=True)
            else:
                sv = _per_row_view(sink_t.detach().to(lse.dtype), y.shape, k)
                y_sink = torch.where(lse == -torch.inf, 0.0, (sv - lse).exp())
            grad_sink = _unview(-total * y_sink, sink_t, y.shape, k)
        return grad_x, None, None, grad_scale, None, grad_bias, None, grad_sink


def _unview(grad, t, shape, k):
    """The gradient of per-row tensor `t` from that of its
    :func:`_per_row_view` (length 1 along k): summed back to `t`'s shape
    and dtype."""
    if not (t.ndim == len(shape) and t.ndim and t.shape[k] == 1):
        grad = grad.squeeze(k) if grad.ndim else grad
    if t.ndim == 0:
        return grad.sum().to(t.dtype)
    return grad.sum_to_size(t.shape).to(t.dtype)


# ---------------------------------------------------------------- functional forms

def _fused_apply(input, dim, dtype, log, scale, softcap, bias, causal, sink):
    """Softmax / LogSoftmax without options (the plain kernels, their bits),
    FusedSoftmax with any."""
    if dtype is not None:
        input = input.to(dtype)
    if scale is None and softcap is None and bias is None and causal is None and sink is None:
        return (LogSoftmax if log else Softmax).apply(input, dim)
    return FusedSoftmax.apply(input, dim, log, scale, softcap, bias, causal, sink)


def softmax(input, dim, dtype=None, *, scale=None, softcap=None, bias=None, causal=None,
            sink=None):
    """Softmax along `dim`, differentiable, by softmax_c: as
    ``torch.softmax(input, dim, dtype=None)``, with softmax_c's fused
    options.

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor, float32, float64, float16 or bfloat16 (the last two
        without fused options), or any dtype with `dtype` given.
    dim : int
        The axis normalized; required, as in ``torch.softmax``.
    dtype : torch.dtype, optional
        `input` is cast to it first (by PyTorch, which also casts the
        gradient back), e.g. torch.float32 for a float32 result from
        float16 input.
    scale, softcap, bias, causal, sink : optional
        Keyword only: the fused options of :func:`softmax_c.softmax`, with
        its semantics and errors.  `scale` (a float or a per-row tensor),
        `bias` (a tensor broadcastable to `input`, float16/32/64) and `sink`
        (a float or a per-row tensor) may be tensors that require grad:
        they get gradients, summed over the dimensions they were broadcast
        along (see :class:`FusedSoftmax`); floats, NumPy arrays, `softcap`
        and `causal` get none.  With any option, `dim` is one axis and
        `causal` needs `dim` the last axis.

    Returns
    -------
    torch.Tensor
        The softmax, of the shape of `input`.

    Raises
    ------
    As :class:`Softmax`.

    Examples
    --------
    >>> import torch, softmax_c.torch as sct
    >>> sct.softmax(torch.tensor([0., 1.0986122886681098], dtype=torch.float64), 0)
    tensor([0.2500, 0.7500], dtype=torch.float64)
    >>> sct.softmax(torch.zeros(2, 2, dtype=torch.float64), 1, causal=True, sink=0.0)
    tensor([[0.5000, 0.0000],
            [0.3333, 0.3333]], dtype=torch.float64)
    """
    return _fused_apply(input, dim, dtype, False, scale, softcap, bias, causal, sink)


def log_softmax(input, dim, dtype=None, *, scale=None, softcap=None, bias=None, causal=None,
                sink=None):
    """Log-softmax along `dim`, differentiable, by softmax_c: as
    ``torch.log_softmax(input, dim, dtype=None)``, with softmax_c's fused
    options.

    Parameters, returns and errors as in :func:`softmax`.

    Examples
    --------
    >>> import torch, softmax_c.torch as sct
    >>> sct.log_softmax(torch.tensor([1000., 1.], dtype=torch.float64), 0)
    tensor([   0., -999.], dtype=torch.float64)
    """
    return _fused_apply(input, dim, dtype, True, scale, softcap, bias, causal, sink)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, dim=None, softcap=None, z_loss=0.0,
                  return_lse=False):
    """Cross-entropy loss, differentiable with respect to `input`, by
    softmax_c's fused kernel: as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : torch.Tensor
        Logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``: CPU, float32 or
        float64, any strides.
    target : torch.Tensor
        Class indices (integer, the shape of `input` without the class
        axis) or class probabilities (float, the shape of `input`).
    weight : torch.Tensor, optional
        One weight per class.
    ignore_index : int, optional
        Index targets equal to it are skipped.  Default -100.
    reduction : {"mean", "sum", "none"}, optional
        Default "mean".
    label_smoothing : float, optional
        In [0, 1].  Default 0.
    dim : int, optional
        Keyword only, not in PyTorch: the class axis, e.g. ``-1`` for
        ``(N, ..., C)`` logits.  Default: 1, or 0 for 1-D `input`.
    softcap, z_loss, return_lse : optional
        Keyword only, as in :func:`softmax_c.cross_entropy`: logits capped
        as ``softcap * tanh(input / softcap)``, ``z_loss * lse**2`` added
        per kept sample, the per-sample lse returned.  The gradient with
        respect to `input` goes through the cap and the z-loss (no double
        backward with them); the returned lse is not differentiable.

    Returns
    -------
    torch.Tensor
        As :class:`CrossEntropy`; with `return_lse`, ``(loss, lse)``.

    Raises
    ------
    As :class:`CrossEntropy`.

    Examples
    --------
    >>> import torch, softmax_c.torch as sct
    >>> sct.cross_entropy(torch.tensor([[1000., 1.]]), torch.tensor([1]))
    tensor(999.)
    """
    return CrossEntropy.apply(input, target, weight, ignore_index, reduction,
                              label_smoothing, dim, softcap, z_loss, return_lse)


def sample(logits, **kwargs):
    """softmax_c.sample on a CPU tensor (no autograd): the same keywords;
    returns an int64 tensor (and a float64 tensor of log-probabilities
    with return_logprobs=True)."""
    import torch
    if logits.device.type != "cpu":
        raise ValueError("softmax_c.torch.sample takes CPU tensors")
    x = logits.detach()
    if x.dtype == torch.bfloat16:
        x = x.float()
    res = _sc.sample(x.numpy(), **kwargs)
    if isinstance(res, tuple):
        return tuple(torch.from_numpy(r) for r in res)
    return torch.from_numpy(res)
