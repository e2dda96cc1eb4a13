"""Plain NumPy versions of every public function of softmax_c.

They have the same signatures, dtype policy, validation and value rules as
the fast functions (docs/api.md), and are written to be read: they are the oracle
the tests hold the fast functions to and the baseline the benchmarks measure
against.  `num_threads` is checked as by the fast functions and otherwise
unused.  Each function computes in its compute dtype (float32 for float16
inputs) with NumPy's own reductions, so on long rows and strided axes its
rounding errors are NumPy's, not those of the accuracy bound of docs/api.md.

Choices where docs/api.md is silent, shared with the fast functions:

- A 0-d input has no axis: ``axis=None`` or ``axis=()`` make its single
  element a slice of its own (softmax 1, log_softmax 0, logsumexp the value,
  as ``scipy.special.softmax(x, axis=None)`` gives); an int axis raises
  ``AxisError``, as NumPy does.
- ``axis=()`` on any input makes every element a slice of one element.
- ``logsumexp`` returns a NumPy scalar when every axis is reduced and
  `keepdims` is False (as SciPy does), else an array.
- Cross-entropy: the loss has the logits' *compute* dtype (float32 for
  float16 logits, float64 for integer logits); for ``reduction="none"`` it
  is an array of the batch shape (0-d for 1-D logits).  The gradient has the
  logits' *result* dtype (float16 for float16 logits), so that
  ``out=logits`` works for every accepted dtype.  Rows whose target is
  ``ignore_index`` get a zero gradient and are never read.
"""
import numpy as np

from ._losses import reduce_losses
from ._validate import (
    as_array,
    backward_dtypes,
    check_bool,
    check_ignore_index,
    check_label_smoothing,
    check_num_threads,
    check_out,
    check_reduction,
    check_same_shape,
    check_target,
    check_target_range,
    check_xent_options,
    check_weight,
    check_weights,
    check_fused,
    check_where,
    fused_options,
    normalize_axis,
    normalize_single_axis,
    forward_dtypes,
    logsumexp_path,
    result_dtypes,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_jvp",
    "softmax_vjp",
    "log_softmax_jvp",
    "log_softmax_vjp",
    "softmax_jacobian",
    "cross_entropy",
    "cross_entropy_grad",
]


def _check_threads(num_threads):
    if num_threads is not None:
        check_num_threads(num_threads)


def _finish(res, result_dtype, out):
    """Cast `res` to the result dtype, or write it to `out` and return
    `out`."""
    if out is None:
        return np.asarray(res).astype(result_dtype, copy=False)  # 0-d: an array, not a scalar
    np.copyto(out, res, casting="unsafe")
    return out


# ---------------------------------------------------------------- forward

def _sum(a, axis):
    """``np.sum(a, axis, keepdims=True)``, pairwise along `axis` (an int or a
    tuple) whatever the layout: NumPy adds pairwise only along a contiguous
    inner loop, and term by term along a strided axis, where the rounding
    error grows with the length."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(sorted(k % a.ndim for k in axes))
    rest = a.ndim - len(axes)
    moved = np.moveaxis(a, axes, range(rest, a.ndim))
    n = int(np.prod(moved.shape[rest:], dtype=np.int64))
    s = np.sum(np.ascontiguousarray(moved).reshape(moved.shape[:rest] + (n,)), axis=-1)
    return np.expand_dims(s, axes)


def _shifted(x, axes, where):
    """``(x - max, where)`` per slice along `axes` of the compute-dtype
    array `x`: the max over the True positions of `where`, and 0 for a
    slice with no True position (whose entries then stay masked).  NaN and
    +inf propagate through the max, so the value rules follow."""
    if where is None:
        m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
        return x - m
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf, where=where)
    m = np.where(np.any(where, axis=axes, keepdims=True), m, 0)
    # Positions where `where` is False are replaced, never used: a NaN
    # there cannot reach the result.
    return np.where(where, x - m, -np.inf)


def _prepare(x, axis, where, out, num_threads, dtype=None):
    _check_threads(num_threads)
    x = as_array(x)
    compute, result = forward_dtypes(x.dtype, dtype)
    axes = normalize_axis(axis, x.ndim)
    if where is not None:
        where = check_where(where, x.shape)
    check_out(out, x.shape, result)
    return x.astype(compute), axes, where, result



def _fused(op, x, axis, options, where, out, num_threads, keepdims=False):
    """softmax / log_softmax / logsumexp (op 0, 1, 2) with the fused
    options, in float64 whatever the input, step by step as docs/api.md
    states them: z = x * scale; z = softcap * tanh(z / softcap);
    z = z + bias; positions excluded by `where`, `causal` or a bias of
    -inf take no part (0 / -inf); the sink joins the max and the sum."""
    _check_threads(num_threads)
    x = as_array(x)
    compute, result = result_dtypes(x.dtype)
    f = check_fused(x.shape, axis, compute, where=where, **options)
    if op != 2:
        check_out(out, x.shape, result)
    k = f.axis
    z = x.astype(np.float64)
    keep = np.ones(x.shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        z = z * (f.scale if isinstance(f.scale, float) else f.scale.astype(np.float64))
        if f.softcap is not None:
            z = f.softcap * np.tanh(z / f.softcap)
        if f.bias is not None:
            b = f.bias.astype(np.float64)
            z = z + b
            keep = keep & (b != -np.inf)
        if f.where is not None:
            keep = keep & f.where
        if f.causal is not None:
            i = np.arange(x.shape[-2])[:, None]
            j = np.arange(x.shape[-1])[None, :]
            keep = keep & (j <= i + f.causal)
        z = np.where(keep, z, -np.inf)
        m = np.max(z, axis=k, keepdims=True, initial=-np.inf)
        nan = np.any(np.isnan(z), axis=k, keepdims=True)
        posinf = np.any(z == np.inf, axis=k, keepdims=True)
        if f.sink is not None:
            sk = f.sink if isinstance(f.sink, float) else f.sink.astype(np.float64)
            m = np.maximum(m, sk)
        empty = m == -np.inf
        mm = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(z - mm)
        s = _sum(e, k)
        if f.sink is not None:
            s = s + np.exp(sk - mm)
        bad = nan | posinf | np.isnan(m)
        if op == 0:
            y = np.where(keep, e / s, 0.0)
            y = np.where(empty, 0.0, y)
            y = np.where(bad & keep, np.nan, y)
        elif op == 1:
            y = np.where(keep, z - mm - np.log(s), -np.inf)
            y = np.where(empty, -np.inf, y)
            y = np.where(bad & keep, np.nan, y)
        else:
            y = np.where(empty, -np.inf, mm + np.log(s))
            y = np.where(posinf, np.inf, y)
            y = np.where(nan | np.isnan(m), np.nan, y)
            if not keepdims:
                y = np.squeeze(y, axis=k)
            y = y.astype(result)
            return y[()] if y.ndim == 0 else y
    return _finish(y, result, out)


def softmax(x, axis=-1, *, scale=None, softcap=None, bias=None, where=None, causal=None,
            sink=None, out=None, num_threads=None, dtype=None):
    """Softmax along `axis`: ``exp(x - max) / sum(exp(x - max))``.

    The NumPy version of :func:`softmax_c.softmax`: the same parameters, result,
    dtype policy and exceptions; `num_threads` is checked and otherwise unused.
    Shifting by the slice maximum keeps ``exp`` from overflowing (Blanchard,
    Higham & Higham, "Accurately computing the log-sum-exp and softmax
    functions", IMA J. Numer. Anal. 41(4), 2021).

    >>> import numpy as np
    >>> from softmax_c import reference
    >>> reference.softmax(np.array([1000., 1.]))
    array([1., 0.])
    """
    options = fused_options(scale, softcap, bias, causal, sink, dtype)
    if options is not None:
        return _fused(0, x, axis, options, where, out, num_threads)
    xc, axes, where, result = _prepare(x, axis, where, out, num_threads, dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        e = np.exp(_shifted(xc, axes, where))
        y = e / _sum(e, axes)
        if where is not None:
            y = np.where(where, y, 0)  # 0/0 of slices without True position
    return _finish(y, result, out)


def log_softmax(x, axis=-1, *, scale=None, softcap=None, bias=None, where=None, causal=None,
                sink=None, out=None, num_threads=None, dtype=None):
    """Log-softmax along `axis`: ``(x - max) - log(sum(exp(x - max)))``.

    The NumPy version of :func:`softmax_c.log_softmax`: the same parameters,
    result, dtype policy and exceptions.
    """
    options = fused_options(scale, softcap, bias, causal, sink, dtype)
    if options is not None:
        return _fused(1, x, axis, options, where, out, num_threads)
    xc, axes, where, result = _prepare(x, axis, where, out, num_threads, dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        z = _shifted(xc, axes, where)
        y = z - np.log(_sum(np.exp(z), axes))
        if where is not None:
            y = np.where(where, y, -np.inf)
    return _finish(y, result, out)


def logsumexp(x, axis=-1, *, b=None, keepdims=False, return_sign=False, scale=None,
              softcap=None, bias=None, where=None, causal=None, sink=None, num_threads=None,
              dtype=None):
    """``log(sum(b * exp(x)))`` along `axis`, as ``max + log(sum(b * exp(x - max)))``.

    The NumPy version of :func:`softmax_c.logsumexp`: the same parameters,
    result (a NumPy scalar when every axis is reduced without `keepdims`),
    dtype policy and exceptions.  With `b` or `return_sign`, SciPy's
    semantics: zero weights drop their terms (x set to -inf there), the max
    is over the kept terms, the weighted sum is taken in float64 (``np.sum``,
    pairwise), and a slice whose result that way is not finite takes the
    direct ``log|sum(b * exp(x))|`` in the working precision.
    """
    options = fused_options(scale, softcap, bias, causal, sink)
    path = logsumexp_path(options, where, b, return_sign, dtype)
    if path == "weighted":
        return _logsumexp_weighted(x, axis, b, keepdims, return_sign, num_threads)
    if path == "fused":
        options = options or dict(scale=None, softcap=None, bias=None, causal=None, sink=None)
        return _fused(2, x, axis, options, where, None, num_threads, keepdims)
    xc, axes, _, result = _prepare(x, axis, None, None, num_threads, dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        m = np.max(xc, axis=axes, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0)
        s = np.log(_sum(np.exp(xc - m), axes)) + m
    if not keepdims:
        s = s.reshape(tuple(n for d, n in enumerate(xc.shape) if d not in axes))
    s = s.astype(result, copy=False)
    return s[()] if s.ndim == 0 else s


def _logsumexp_weighted(x, axis, b, keepdims, return_sign, num_threads):
    return_sign = check_bool(return_sign, "return_sign")
    _check_threads(num_threads)
    x = as_array(x)
    result_dtypes(x.dtype)
    if b is None:
        b = np.ones((), dtype=np.bool_)
    bw, bdt, shape = check_weights(b, x.shape)
    compute, result = result_dtypes(x.dtype if bdt is None else np.result_type(x.dtype, bdt))
    axes = normalize_axis(axis, len(shape))
    xc = np.broadcast_to(x.astype(compute), shape)
    bc = np.broadcast_to(bw.astype(compute), shape)
    red = dict(axis=axes, keepdims=True)
    if xc.size == 0:
        res = np.full(tuple(1 if d in axes else n for d, n in enumerate(shape)), -np.inf, compute)
        sign = np.full_like(res, -1.0)
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
            xk = np.where(bc == 0, -np.inf, xc)
            m = np.max(xk, **red)
            mf = np.where(np.isfinite(m), m, 0).astype(np.float64)
            s = np.sum(bc.astype(np.float64) * np.exp(xk.astype(np.float64) - mf), **red)
            res = (np.log(np.abs(s)) + mf).astype(compute)
            sign = np.sign(s).astype(compute)
            if not return_sign:
                res = np.where(sign < 0, np.nan, res)
            ok = np.isfinite(m) & np.isfinite(res)
            direct = np.sum(bc * np.exp(xc), **red)  # SciPy's formula where `ok` is False
            res = np.where(ok, res, np.log(np.abs(direct) if return_sign else direct))
            sign = np.where(ok, sign, np.sign(direct))
    if not keepdims:
        dims = tuple(n for d, n in enumerate(shape) if d not in axes)
        res, sign = res.reshape(dims), sign.reshape(dims)
    res, sign = res.astype(result), sign.astype(result)
    res, sign = (res[()] if res.ndim == 0 else res), (sign[()] if sign.ndim == 0 else sign)
    return (res, sign) if return_sign else res


# ---------------------------------------------------------------- backward

def _prepare_pair(a, b, names, axis, out, num_threads):
    _check_threads(num_threads)
    a, b = as_array(a), as_array(b)
    compute, result, _ = backward_dtypes(a.dtype, b.dtype, names)
    check_same_shape(a, b, names)
    k = normalize_single_axis(axis, a.ndim)
    check_out(out, a.shape, result)
    return a.astype(compute), b.astype(compute), k, result


def softmax_jvp(y, v, axis=-1, *, out=None, num_threads=None):
    """The softmax Jacobian times a tangent: ``y * (v - sum(y * v))``.

    The NumPy version of :func:`softmax_c.softmax_jvp`: the same parameters,
    result and exceptions.
    """
    y, v, k, result = _prepare_pair(y, v, ("y", "v"), axis, out, num_threads)
    with np.errstate(invalid="ignore", over="ignore"):
        res = y * (v - _sum(y * v, k))
    return _finish(res, result, out)


def softmax_vjp(y, g, axis=-1, *, out=None, num_threads=None):
    """The softmax VJP, the same product as :func:`softmax_jvp`.

    The NumPy version of :func:`softmax_c.softmax_vjp`.
    """
    y, g, k, result = _prepare_pair(y, g, ("y", "g"), axis, out, num_threads)
    with np.errstate(invalid="ignore", over="ignore"):
        res = y * (g - _sum(y * g, k))
    return _finish(res, result, out)


def log_softmax_jvp(logp, v, axis=-1, *, out=None, num_threads=None):
    """The log-softmax Jacobian times a tangent: ``v - sum(exp(logp) * v)``.

    The NumPy version of :func:`softmax_c.log_softmax_jvp`: the same parameters,
    result and exceptions.
    """
    logp, v, k, result = _prepare_pair(logp, v, ("logp", "v"), axis, out, num_threads)
    with np.errstate(invalid="ignore", over="ignore"):
        res = v - _sum(np.exp(logp) * v, k)
    return _finish(res, result, out)


def log_softmax_vjp(logp, g, axis=-1, *, out=None, num_threads=None):
    """The log-softmax VJP: ``g - exp(logp) * sum(g)``.

    The NumPy version of :func:`softmax_c.log_softmax_vjp`: the same parameters,
    result and exceptions.
    """
    logp, g, k, result = _prepare_pair(logp, g, ("logp", "g"), axis, out, num_threads)
    with np.errstate(invalid="ignore", over="ignore"):
        res = g - np.exp(logp) * _sum(g, k)
    return _finish(res, result, out)


def softmax_jacobian(y, axis=-1):
    """The softmax Jacobian ``diag(y) - y yᵀ`` of each slice, `axis` moved last.

    The NumPy version of :func:`softmax_c.softmax_jacobian`: the same
    parameters, result (shape ``(..., n, n)``) and exceptions.
    """
    y = as_array(y)
    compute, result = result_dtypes(y.dtype, "y")
    k = normalize_single_axis(axis, y.ndim)
    yk = np.moveaxis(y.astype(compute), k, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        jac = -yk[..., :, None] * yk[..., None, :]
        diag = np.einsum("...ii->...i", jac)  # a writeable view
        diag += yk
    return jac.astype(result, copy=False)


# ---------------------------------------------------------------- cross-entropy

def _xent(logits, target, axis, weight, ignore_index, reduction,
          label_smoothing, out, num_threads, want_grad, softcap=None, z_loss=0.0,
          return_lse=False):
    """Validate, then compute the loss and (if `want_grad`) the gradient."""
    _check_threads(num_threads)
    logits = as_array(logits)
    compute, result = result_dtypes(logits.dtype, "logits")
    k = normalize_single_axis(axis, logits.ndim)
    target = as_array(target)
    ttype = check_target(target, logits.shape, k)
    ignore_index = check_ignore_index(ignore_index, ttype)
    check_reduction(reduction)
    ls = check_label_smoothing(label_smoothing)
    n_classes = logits.shape[k]
    w = check_weight(weight, n_classes, compute)
    if want_grad:
        check_out(out, logits.shape, result)
    softcap, z_loss, return_lse = check_xent_options(softcap, z_loss, return_lse, compute)
    if ttype == "index":
        check_target_range(target, n_classes, ignore_index)
    # All checks done: from here on nothing raises.
    if softcap is not None or z_loss != 0.0 or return_lse:
        return _xent_options(logits, target, k, w, ignore_index, reduction, ls, out,
                             want_grad, softcap, z_loss, return_lse, ttype, compute, result)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        # Work with the class axis last.
        z = np.moveaxis(logits.astype(compute), k, -1)
        if ttype == "index":
            loss_i, denom, dz = _xent_index(z, target, w, ignore_index, reduction, ls,
                                            want_grad)
        else:
            q = np.moveaxis(target.astype(compute), k, -1)
            loss_i, denom, dz = _xent_prob(z, q, w, reduction, ls, want_grad)

        if reduction == "none":
            loss = np.asarray(loss_i)
        elif reduction == "sum":
            loss = reduce_losses(loss_i, compute)
        elif denom == 0:  # "mean" over no target weight: NaN, as PyTorch's 0 / 0
            loss = compute.type(np.nan)
        else:  # "mean"
            loss = reduce_losses(loss_i, compute, denom)
    if not want_grad:
        return loss
    grad = _finish(np.moveaxis(dz, -1, k), result, out)
    return loss, grad


def _xent_index(z, t, w, ignore_index, reduction, ls, want_grad):
    """Class index targets `t` for class-last logits `z`: the per-sample
    losses, the denominator of "mean", and the gradient (or None).  As in PyTorch, with C classes and ``w = 1`` when
    no weight is given, the loss of a kept sample is

        (1 - ls) * w[t] * -logp[t]  +  (ls / C) * sum_c w[c] * -logp[c]

    and "mean" divides the sum by ``sum(w[t])`` over the kept samples."""
    n_classes = z.shape[-1]
    dtype = z.dtype
    keep = t != ignore_index
    t = np.where(keep, t, 0).astype(np.intp)
    # Ignored rows take no part: their logits are not read.
    z = np.where(keep[..., None], z, 0)
    logp = _log_softmax_last(z)
    if n_classes:
        logp_t = np.take_along_axis(logp, t[..., None], -1)[..., 0]
    else:  # no class: every target is ignored (else check_target_range raised)
        logp_t = np.zeros(t.shape, dtype)
    if w is None or not n_classes:
        w_t = keep.astype(dtype)
    else:
        w_t = np.where(keep, w[t], 0).astype(dtype)
    loss_i = (1 - ls) * w_t * -logp_t
    eps = ls / n_classes if n_classes else 0.0
    if eps:
        # in float64: float32 logits 6.8e38 apart overflow z - lse, not the
        # smoothing term itself (the kernels redo such rows in double)
        lp = _log_softmax_last(z.astype(np.float64))
        smooth_i = -np.sum(lp if w is None else lp * w, axis=-1)
        loss_i = loss_i + np.where(keep, eps * smooth_i, 0).astype(dtype)

    denom = np.sum(w_t, dtype=dtype)  # the weight of the kept samples
    dz = None
    if want_grad:
        # d(-logp[t])/dz = p - onehot(t); d(sum_c w_c * -logp_c)/dz = p * sum(w) - w
        p = np.exp(logp)
        dz = ((1 - ls) * w_t)[..., None] * p
        if n_classes:
            np.put_along_axis(dz, t[..., None],
                              np.take_along_axis(dz, t[..., None], -1)
                              - ((1 - ls) * w_t)[..., None], -1)
        if eps:
            wsum = n_classes if w is None else np.sum(w, dtype=dtype)
            dz = dz + eps * (p * wsum - (1 if w is None else w))
        if reduction == "mean":
            # a zero denominator: NaN on every kept sample (PyTorch's NLL
            # term, -w[t] / 0 with w[t] = 0, makes the whole row NaN)
            dz = dz / denom if denom != 0 else np.full_like(dz, np.nan)
        dz = np.where(keep[..., None], dz, 0).astype(dtype, copy=False)
    return loss_i, denom, dz


def _xent_prob(z, q, w, reduction, ls, want_grad):
    """Class probability targets `q` for class-last logits `z`: as PyTorch,
    the target is smoothed to ``q * (1 - ls) + ls / C``, a sample's loss is
    ``sum_c w[c] * q[c] * -logp[c]`` and "mean" divides by the number of
    samples."""
    n_classes = z.shape[-1]
    dtype = z.dtype
    if ls:
        q = q * dtype.type(1 - ls) + dtype.type(ls / n_classes if n_classes else 0.0)
    wq = q if w is None else q * w
    logp = _log_softmax_last(z)
    loss_i = -np.sum(wq * logp, axis=-1)
    # PyTorch: numel / C samples, and NaN for "mean" when there is no logit
    denom = dtype.type(z.size // n_classes if z.size else 0)
    dz = None
    if want_grad:
        dz = np.exp(logp) * np.sum(wq, axis=-1, keepdims=True) - wq
        if reduction == "mean":
            dz = dz / denom
        dz = dz.astype(dtype, copy=False)
    return loss_i, denom, dz


def _xent_options(logits, target, k, w, ignore_index, reduction, ls, out, want_grad,
                  softcap, z_loss, return_lse, ttype, compute, result):
    """The cross-entropy with softcap, z-loss or lse, in float64: the plain
    terms (_xent_index, _xent_prob) of the capped logits
    ``c = softcap * tanh(logits / softcap)``, plus per kept sample
    ``z_loss * lse**2`` (not weighted; "mean" divides their sum by the
    number of kept samples), its gradient ``2 z_loss lse softmax(c)`` and
    the chain rule through the cap, ``d c / d logits = 1 - tanh**2``."""
    f8 = np.dtype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        x = np.moveaxis(logits.astype(f8), k, -1)
        if softcap is not None:
            th = np.tanh(x / softcap)
            z = softcap * th
        else:
            z = x
        m = np.max(z, axis=-1, initial=-np.inf)
        # logsumexp's values: -inf for a row of -inf, +inf for one holding
        # +inf, NaN for one holding NaN
        m_safe = np.where(np.isfinite(m), m, 0.0)
        lse = np.log(np.sum(np.exp(z - m_safe[..., None]), axis=-1)) + m_safe
        lse = np.where(np.isinf(m), m, lse)
        lse = np.where(np.isnan(z).any(axis=-1), np.nan, lse)
        w64 = None if w is None else w.astype(f8)
        if ttype == "index":
            keep = target != ignore_index
            loss_i, denom, dz = _xent_index(z, target, w64, ignore_index, reduction, ls,
                                            want_grad)
        else:
            keep = np.ones(z.shape[:-1], bool)
            q = np.moveaxis(target.astype(compute).astype(f8), k, -1)
            loss_i, denom, dz = _xent_prob(z, q, w64, reduction, ls, want_grad)
        n_kept = int(np.count_nonzero(keep))
        z_i = np.where(keep, z_loss * lse * lse, 0.0) if z_loss else np.zeros_like(lse)
        if reduction == "none":
            loss = np.asarray(loss_i + z_i).astype(compute)
        elif reduction == "sum":
            loss = compute.type(reduce_losses(loss_i, f8) + np.sum(z_i))
        elif denom == 0:
            loss = compute.type(np.nan)
        else:
            loss = compute.type(reduce_losses(loss_i, f8, denom)
                                + (np.sum(z_i) / n_kept if z_loss else 0.0))
        extra = (lse.astype(compute),) if return_lse else ()
        if not want_grad:
            return (loss,) + extra if extra else loss
        if z_loss:
            zs = z_loss / n_kept if reduction == "mean" and n_kept else z_loss
            p = np.exp(z - lse[..., None])
            dz = dz + np.where(keep[..., None], 2.0 * zs * lse[..., None] * p, 0.0)
        if softcap is not None:
            dz = np.where(keep[..., None], dz * (1.0 - th * th), 0.0)
        grad = _finish(np.moveaxis(dz, -1, k), result, out)
    return (loss, grad) + extra


def _log_softmax_last(z):
    m = np.max(z, axis=-1, keepdims=True, initial=-np.inf)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=-1, keepdims=True))


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0,
                  return_lse=False, num_threads=None):
    """The cross-entropy loss of `logits` against `target`, PyTorch's semantics.

    The NumPy version of :func:`softmax_c.cross_entropy`: the same parameters,
    result and exceptions, computed from :func:`log_softmax` along `axis` with
    NumPy's reductions.
    """
    return _xent(logits, target, axis, weight, ignore_index, reduction,
                 label_smoothing, None, num_threads, want_grad=False, softcap=softcap,
                 z_loss=z_loss, return_lse=return_lse)


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0,
                       return_lse=False, out=None, num_threads=None):
    """``(loss, grad)``: the cross-entropy and its gradient with respect to `logits`.

    The NumPy version of :func:`softmax_c.cross_entropy_grad`: the same
    parameters, results and exceptions.  With ``p = softmax(z)``, a kept
    sample's gradient is ``(1 - ls) * w[t] * (p - onehot(t)) + (ls / C) *
    (p * sum(w) - w)`` for index targets and ``p * sum(w * q) - w * q`` for
    (smoothed) probability targets ``q``, times the reduction's factor.
    `softcap`, `z_loss`, `return_lse`: as :func:`softmax_c.cross_entropy`,
    computed in float64 (``_xent_options``).

    >>> import numpy as np
    >>> from softmax_c import reference
    >>> loss, grad = reference.cross_entropy_grad(np.zeros((1, 2)), np.array([0]))
    >>> grad
    array([[-0.5,  0.5]])
    """
    return _xent(logits, target, axis, weight, ignore_index, reduction,
                 label_smoothing, out, num_threads, want_grad=True, softcap=softcap,
                 z_loss=z_loss, return_lse=return_lse)


def sample_kept(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, axis=-1):
    """The kept set of softmax_c.sample by a full stable sort: a bool array
    shaped like the logits moved to (batch..., n), and the filtered
    probabilities (float64, 0 outside the kept set, renormalised)."""
    from ._sample_params import log_min_p, prepare
    z, batch, prm = prepare(logits, temperature, top_k, top_p, min_p, axis)
    rows, n = z.shape
    kept = np.zeros((rows, n), dtype=bool)
    prob = np.zeros((rows, n))
    for r in range(rows):
        x = z[r]
        if np.isnan(x).any() or np.isposinf(x).any() or np.isneginf(x).all():
            raise ValueError(f"`logits` row {r} holds a NaN or +inf, or only -inf")
        t, k, p, mp = prm[r]
        lmin = log_min_p(mp)
        if t == 0:
            i = int(np.argmax(x))
            kept[r, i] = True
            prob[r, i] = 1.0
            continue
        zz = x * x.dtype.type(1.0 / t)   # 1/T in float64, rounded to the dtype
        zmax = zz.max()
        if not np.isfinite(zmax):
            raise ValueError(f"`logits` row {r}: the maximum overflows at temperature {t}")
        d = zz - zmax
        order = np.lexsort((np.arange(n), -zz))      # (-z, index)
        e = np.exp(d.astype(np.float64))
        m = n if k == 0 or k >= n else int(k)
        cand = order[:m]
        if p < 1:
            ce = e[cand]
            before = np.concatenate(([0.0], np.cumsum(ce)[:-1]))
            keep = before < p * ce.sum()
            keep[0] = True
            cand = cand[keep]
        cand = cand[d[cand] >= x.dtype.type(lmin)] if lmin > -np.inf else cand
        if cand.size == 0:
            cand = order[:1]
        kept[r, cand] = True
        w = np.where(kept[r], e, 0.0)
        prob[r] = w / w.sum()
    return kept.reshape(batch + (n,)), prob.reshape(batch + (n,))


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, seed=None,
           axis=-1, return_logprobs=False, num_threads=None):
    """softmax_c.sample by sample_kept and the same counter-based uniform
    per row (_sample_params.uniforms): the first kept token, in index
    order, whose running sum of weights exceeds u times their sum."""
    from ._sample_params import key_from_seed, prepare, uniforms
    kept, _ = sample_kept(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                          min_p=min_p, axis=axis)
    z, batch, prm = prepare(logits, temperature, top_k, top_p, min_p, axis)
    key = key_from_seed(seed)
    rows, n = z.shape
    u = uniforms(key, rows)
    kept = kept.reshape(rows, n)
    tok = np.empty(rows, dtype=np.int64)
    lp = np.empty(rows)
    for r in range(rows):
        x = z[r]
        t = prm[r, 0]
        zz = x * x.dtype.type(1.0 / t) if t > 0 else x
        d = (zz - zz.max()).astype(np.float64)
        e = np.exp(d)
        w = np.where(kept[r], e, 0.0)
        c = np.cumsum(w)
        i = int(np.searchsorted(c, u[r] * c[-1], side="right"))
        if i >= n or w[i] == 0:
            i = int(np.flatnonzero(w)[-1])
        tok[r] = i
        lp[r] = d[i] - np.log(e.sum())
    tok = tok.reshape(batch)
    return (tok, lp.reshape(batch)) if return_logprobs else tok
