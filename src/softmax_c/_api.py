"""The public functions of softmax_c: validation, dtype policy, axes, out=,
where= and threads, in front of the Cython loops of ``_kernels``.

Every check happens before the first write, so a call that raises leaves
its inputs and ``out`` untouched.  Layouts are the Cython layer's business:
any single axis of any strides goes to ``_kernels.forward`` without a copy
of the input.
"""
import os
import warnings

import numpy as np

from . import _kernels, _losses, _validate
from ._common import _fast_threads, _same_view, _threads  # noqa: F401  (_sample_api's too)
from ._fused_api import _fused_forward
from ._half_api import _flatten_axes, _half_backward, _half_forward, _half_native
from ._kernels import (LOG_SOFTMAX, LOG_SOFTMAX_JVP, LOG_SOFTMAX_VJP, LOGSUMEXP, SOFTMAX,
                       SOFTMAX_JVP)
from ._lse_api import _sign_of, _weighted_logsumexp  # noqa: F401  (dask uses _sign_of)


# ---------------------------------------------------------------- outputs

OUTPUT_CACHE_ENV = "SOFTMAX_C_OUTPUT_CACHE_MB"


def _output_cache_limit():
    """Bytes of freed large outputs kept for reuse (see _outbuf.h): the
    SOFTMAX_C_OUTPUT_CACHE_MB environment variable (MiB, 0 keeps none), else
    256 MiB or a sixteenth of the physical memory, whichever is less."""
    text = os.environ.get(OUTPUT_CACHE_ENV, "").strip()
    if text:
        try:
            mib = int(text)
            if mib < 0:
                raise ValueError
            return mib << 20
        except ValueError:
            warnings.warn(f"{OUTPUT_CACHE_ENV} must be a whole number of MiB >= 0, "
                          f"got {text!r}; using the default", RuntimeWarning, stacklevel=2)
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        ram = 1 << 32
    return min(256 << 20, max(ram, 0) // 16)


_kernels.set_output_cache_limit(_output_cache_limit())


# ---------------------------------------------------------------- threads

def get_num_threads():
    """The number of threads a call uses when ``num_threads`` is None.

    It is the value given to ``set_num_threads(n)`` if any: softmax_c's
    own override, for the whole process, which no other library reads or
    changes.  Otherwise it is the OpenMP runtime's setting for the calling
    thread, ``omp_get_max_threads()``, as scikit-learn uses it.  softmax_c
    shares that setting with every library on the same OpenMP runtime
    (PyTorch among them): ``OMP_NUM_THREADS`` sets it at start-up, and
    ``torch.set_num_threads(n)`` and ``threadpoolctl.threadpool_limits(n)``
    change it.  OpenMP keeps it per thread: a limit set in one Python
    thread applies to the calls made from that thread.

    1 when built without OpenMP, and in a forked child process, whoever ran
    OpenMP threads in the parent (softmax_c, PyTorch, scikit-learn, ...:
    GNU OpenMP cannot start a thread team in a child forked after any of
    them did, so a forked child's calls run serially).
    """
    return _kernels.default_threads()


def set_num_threads(n):
    """Set softmax_c's default number of threads (an int >= 1), or ``None``
    to return to the OpenMP runtime's setting.

    ``set_num_threads(n)`` is softmax_c's own override, for every Python
    thread: while it is set, calls without ``num_threads`` use `n`, whatever
    ``omp_get_max_threads()`` says (``OMP_NUM_THREADS``,
    ``torch.set_num_threads``, ``threadpoolctl``), and it changes no other
    library's setting.  Calls still run small inputs on one thread.  See
    :func:`get_num_threads`.

    Raises
    ------
    TypeError
        `n` is not an int or None.
    ValueError
        `n` is less than 1 or greater than ``2**31 - 1`` (the largest
        thread count OpenMP takes), naming `num_threads` and the value.
    """
    _kernels.set_default_threads(0 if n is None else _validate.check_num_threads(n))


# ---------------------------------------------------------------- layout

def _run(op, x, y, k, nt):
    """op along axis k of x into y (same dtype, float32 or float64; for
    logsumexp y has length 1 along k).  y is x, or overlaps no input."""
    if x.size == 0:
        if op == LOGSUMEXP:
            y.fill(-np.inf)
        return
    _kernels.forward(op, x, y, k, nt)


# ---------------------------------------------------------------- forward

def _forward(op, x, axis, where, out, num_threads, dtype=None, options=None):
    if options is not None:
        if where is None:  # the fused hot path's rules: _kernels (_fused.pxi)
            y = _kernels.fast_fused(op, x, axis, out, _fast_threads(num_threads), options)
            if y is not None:
                return y
        if isinstance(x, np.ma.MaskedArray):
            return _masked_forward(op, x, axis, where, out, num_threads, None, options)
        return _fused_forward(op, x, axis, options, where, out, num_threads)
    if where is None and dtype is None:  # the hot path's rules: _kernels (_fast.pxi)
        y = _kernels.fast(op, x, axis, out, _fast_threads(num_threads))
        if y is not None:
            return y
    if isinstance(x, np.ma.MaskedArray):
        return _masked_forward(op, x, axis, where, out, num_threads, dtype)
    nt = _threads(num_threads)
    x = _validate.as_array(x)
    compute, result = _validate.forward_dtypes(x.dtype, dtype)
    axes = _validate.normalize_axis(axis, x.ndim)
    if where is not None:
        where = _validate.check_where(where, x.shape)
    _validate.check_out(out, x.shape, result)
    kind = _validate.half_kind(x.dtype)
    if kind >= 0:
        if kind == 1:  # the hot path takes bfloat16 from now on
            _kernels.note_bfloat16(x.dtype.num)
        return _half_forward(op, x, kind, axes, where, out, result, nt)

    xc = x if x.dtype == compute and x.flags.aligned else x.astype(compute)
    if where is not None:
        xc = np.where(where, xc, compute.type(-np.inf))
    if len(axes) == 1:
        k, x2 = axes[0], xc
    else:  # several axes: bring them last and flatten them into one
        xm = np.moveaxis(xc, axes, range(xc.ndim - len(axes), xc.ndim))
        k = xm.ndim - len(axes)
        x2 = xm.reshape(xm.shape[:k] + (int(np.prod(xm.shape[k:], dtype=np.intp)),))

    direct = (out is not None and out.dtype == compute and len(axes) == 1
              and out.flags.aligned
              and (not np.may_share_memory(out, xc) or _same_view(out, xc)))
    y2 = out if direct else _kernels.empty_like(x2)
    _run(op, x2, y2, k, nt)

    if direct:
        res = out
    elif len(axes) == 1:
        res = y2
    else:
        res = np.moveaxis(y2.reshape(xm.shape), range(k, xm.ndim), axes)
    if where is not None:
        np.copyto(res, 0.0 if op == SOFTMAX else -np.inf, where=~where)
    if out is None:
        return res if res.dtype == result else res.astype(result)
    if res is not out:
        np.copyto(out, res, casting="unsafe")
    return out


def _masked_forward(op, x, axis, where, out, num_threads, dtype=None, options=None):
    """softmax / log_softmax of a masked array: its mask as ``where=~mask``
    (and `where`), the result masked as `x` (viewing `out` if given)."""
    mask = np.ma.getmaskarray(x)
    keep = ~mask
    if where is not None:
        keep &= _validate.check_where(where, x.shape)
    res = _forward(op, np.ma.getdata(x), axis, keep, out, num_threads, dtype, options)
    return np.ma.MaskedArray(res, mask=mask.copy())


def softmax(x, axis=-1, *, scale=None, softcap=None, bias=None, where=None, causal=None,
            sink=None, out=None, num_threads=None, dtype=None):
    """Softmax along `axis`: ``exp(x - max) / sum(exp(x - max))``.

    Parameters
    ----------
    x : array_like
        Input.  float32 and float64 are computed natively; float16 and
        bfloat16 (``ml_dtypes.bfloat16``) are read as they are, computed in
        float32 and returned in their own dtype (or float32, see `dtype`);
        bool and integers are computed and returned as float64.  Other
        dtypes raise TypeError.
        A masked array's mask acts as ``where=~mask`` (combined with
        `where`), and the result is a masked array with the same mask
        (viewing `out` if given); any other ndarray subclass is read as a
        plain ndarray and the result is a plain ndarray.
    axis : int, tuple of ints or None, optional
        The axis or axes normalized together; None means all.  Default -1.
        With the fused options below: one axis.
    scale : float or array_like, optional
        Fused option: ``z = x * scale``; a finite float, or one factor per
        row (an array broadcastable to the shape without `axis`).
    softcap : float, optional
        Fused option: ``z = softcap * tanh(z / softcap)``, softcap > 0.
    bias : array_like, optional
        Fused option: ``z = z + bias``, a float array broadcastable to `x`;
        a bias of ``-inf`` excludes its position (never read).
    where : array_like of bool, optional
        Positions taking part in the normalization (broadcast to `x`).  The
        others are never read and get 0; a slice with no True position is 0.
    causal : bool or int, optional
        Fused option, along the last axis of an array of 2 or more
        dimensions (axis -2 the queries i, axis -1 the keys j): True keeps
        ``j <= i + (n_keys - n_queries)``, an int k keeps ``j <= i + k``;
        the others are excluded (0), never read.
    sink : float or array_like, optional
        Fused option: a logit per row (a float, or an array like `scale`)
        that joins the max and the sum of the exponentials only, so the
        result sums to less than 1.

        With any fused option, the slice is softmax of z over its kept
        positions; a slice with nothing left (and no sink) is 0, never
        NaN.  See docs/api.md, "Fused options".
    out : ndarray, optional
        Where to write the result: the result's shape and dtype, any
        strides; ``out=x`` works in place.
    num_threads : int, optional
        Threads for this call, 1 to ``2**31 - 1`` (more raises
        ValueError); None means :func:`get_num_threads`.  Small inputs run
        on one thread whatever is asked.
    dtype : dtype, optional
        The result's dtype: None (the policy above) or ``np.float32`` for a
        float32 result from float16 or bfloat16 `x` (computed as for the
        half-width result, without its final rounding); the policy's own
        result dtype is accepted too, anything else raises TypeError.

    Returns
    -------
    ndarray
        The softmax, shaped like `x` (`out` if given); a masked array for a
        masked `x`.

    Raises
    ------
    TypeError
        Unsupported dtype, non-bool `where`, `out` not an ndarray or of the
        wrong dtype, `axis` or `num_threads` of the wrong type, a fused
        option of the wrong type.
    ValueError
        `out` of the wrong shape or read-only, `num_threads` < 1 or
        > ``2**31 - 1``, repeated axes; `softcap` <= 0, a non-finite
        `scale`, a NaN or +inf `sink`, an option that does not broadcast,
        `causal` on a 1-d input or another axis than the last.
    numpy.exceptions.AxisError
        `axis` out of range.

    Notes
    -----
    Each slice is shifted by its maximum before exponentiation, so finite
    inputs of any magnitude neither overflow nor lose the largest terms
    [1]_; the sum of the exponentials is accumulated with compensation, so
    the relative error stays below 1e-6 (float32) / 1e-14 (float64), plus
    ``u * |x_i - max|``, for results above the smallest normal number, on
    rows of 2^20 elements and more.  float16 and bfloat16 results are the
    float32 computation rounded once, to nearest even: within one unit in
    the last place of the exact result.  A NaN or +inf in a slice, or a
    slice of only -inf, makes that slice NaN.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing
       the log-sum-exp and softmax functions", IMA J. Numer. Anal. 41(4),
       2021.

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> sc.softmax(np.array([1000., 1.]))
    array([1., 0.])
    >>> sc.softmax(np.array([[1., 1.], [0., np.log(3.)]]))
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    return _forward(SOFTMAX, x, axis, where, out, num_threads, dtype,
                    _validate.fused_options(scale, softcap, bias, causal, sink, dtype))


def log_softmax(x, axis=-1, *, scale=None, softcap=None, bias=None, where=None, causal=None,
                sink=None, out=None, num_threads=None, dtype=None):
    """Log-softmax along `axis`: ``x - logsumexp(x)``.

    Parameters, dtypes, errors and threads as in :func:`softmax`, the
    fused options (scale, softcap, bias, causal, sink) included; with
    `where` or an option, excluded positions (and slices with nothing left)
    get ``-inf``.

    Returns
    -------
    ndarray
        The log-softmax, shaped like `x` (`out` if given); a masked array
        for a masked `x`.

    Notes
    -----
    Computed as ``(x - max) - log(sum(exp(x - max)))``, never as
    ``log(softmax(x))``, so it stays exact where the softmax underflows.
    Absolute error at most 1e-6 (float32) / 1e-14 (float64) times
    ``max(1, |result|)``; float16 and bfloat16 results are the float32
    computation rounded once, to nearest even.

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> sc.log_softmax(np.array([1000., 1.]))
    array([   0., -999.])
    """
    return _forward(LOG_SOFTMAX, x, axis, where, out, num_threads, dtype,
                    _validate.fused_options(scale, softcap, bias, causal, sink, dtype))


def logsumexp(x, axis=-1, *, b=None, keepdims=False, return_sign=False, scale=None,
              softcap=None, bias=None, where=None, causal=None, sink=None, num_threads=None,
              dtype=None):
    """``log(sum(b * exp(x)))`` along `axis`, computed stably.

    Parameters
    ----------
    x : array_like
        Input; dtype policy as in :func:`softmax`.  The masked entries of a
        masked array take no part.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; None means all.  Default -1.
    b : array_like, optional
        Weights, as SciPy's ``scipy.special.logsumexp(b=...)``: real,
        broadcast together with `x` (the result has the broadcast shape,
        reduced), and they may be negative.  A zero weight drops its term,
        even where `x` is +inf or NaN, as long as the result is finite.
        Their dtype takes part in the promotion (``np.result_type(x, b)``,
        then the policy of :func:`softmax`); a Python scalar adapts to `x`.
        Read where they are: a `b` broadcast along the batch or along the
        axis costs no copy.
    keepdims : bool, optional
        Keep the reduced axes with length 1.
    return_sign : bool, optional
        Also return the sign of the sum.  Without it, a negative sum gives
        NaN (as SciPy).
    scale, softcap, bias, where, causal, sink : optional
        The fused options of :func:`softmax` (one axis): the logsumexp of
        z over the kept positions, the sink included; ``-inf`` for a slice
        with nothing left.
    num_threads : int, optional
        As in :func:`softmax`.
    dtype : dtype, optional
        As in :func:`softmax`: None (float16 and bfloat16 input give a
        result of their own dtype) or ``np.float32`` for a float32 result
        from half-width input.

    Returns
    -------
    res : ndarray or scalar
        The reduction (``log|sum|`` with `return_sign`): a NumPy scalar when
        every axis is reduced and `keepdims` is False.  For a masked `x`, a
        masked array masked where a slice has no unmasked entry (``-inf``
        beneath; ``numpy.ma.masked`` for such a scalar).
    sign : ndarray or scalar
        With `return_sign` only: the sign of the sum, of the result's dtype
        and shape: +1, -1, 0 for a zero sum (``res = -inf``), NaN where
        `res` is NaN; -1 for an empty `x`, as SciPy.

    Raises
    ------
    TypeError
        As :func:`softmax`; `b` complex or not numeric; `return_sign` not a
        bool.
    ValueError
        `b` does not broadcast against `x`; as :func:`softmax`.

    Notes
    -----
    As SciPy and PyTorch: a NaN gives NaN, else a +inf gives +inf, and a
    slice that is all -inf or empty gives -inf.  Absolute error at most
    1e-6 (float32) / 1e-14 (float64) times ``max(1, |result|)``.

    With `b`, the weighted terms ``b * exp(x - max)`` (max over the terms
    with a nonzero weight) are summed with compensation, so that positive
    and negative weights cancel as exactly as SciPy's float64 result or
    better.  Where the result so computed is not finite (all weights zero,
    all kept `x` -inf, a kept +inf or NaN, an exact cancellation, an
    infinite or NaN weight), the slice takes SciPy's direct formula
    ``log|sum(b * exp(x))|`` in the working precision, as SciPy does: so a
    zero weight on a +inf or NaN entry gives NaN when every weight of the
    slice is zero, and an exact cancellation of terms whose ``exp``
    overflows gives NaN, exactly as in SciPy.

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> float(sc.logsumexp(np.array([1000., 1000.])))  # 1000 + log(2)
    1000.6931471805599
    >>> r, s = sc.logsumexp(np.array([1., 2.]), b=np.array([1., -1.]), return_sign=True)
    >>> float(r), float(s)  # log(e^2 - e^1), negative
    (1.5413248546129181, -1.0)
    """
    options = _validate.fused_options(scale, softcap, bias, causal, sink)
    path = _validate.logsumexp_path(options, where, b, return_sign, dtype)
    if path == "weighted":
        return _weighted_logsumexp(x, axis, b, keepdims, return_sign, num_threads)
    if path == "fused":
        if options is not None and where is None and not keepdims:
            y = _kernels.fast_fused(LOGSUMEXP, x, axis, None, _fast_threads(num_threads), options)
            if y is not None:
                return y if y.ndim else y[()]
        options = options or dict(scale=None, softcap=None, bias=None, causal=None, sink=None)
        if isinstance(x, np.ma.MaskedArray):
            keep = ~np.ma.getmaskarray(x)
            if where is not None:
                keep &= _validate.check_where(where, x.shape)
            x, where = np.ma.getdata(x), keep
        return _fused_forward(LOGSUMEXP, x, axis, options, where, None, num_threads, keepdims)
    if not keepdims and dtype is None:
        y = _kernels.fast(LOGSUMEXP, x, axis, None, _fast_threads(num_threads))
        if y is not None:
            return y if y.ndim else y[()]
    if isinstance(x, np.ma.MaskedArray):
        return _masked_logsumexp(x, axis, keepdims, num_threads, dtype)
    nt = _threads(num_threads)
    x = _validate.as_array(x)
    compute, result = _validate.forward_dtypes(x.dtype, dtype)
    axes = _validate.normalize_axis(axis, x.ndim)
    kind = _validate.half_kind(x.dtype)
    if kind >= 0:  # read as it is, no float32 copy
        if kind == 1:  # the hot path takes bfloat16 from now on
            _kernels.note_bfloat16(x.dtype.num)
        k, x2 = _flatten_axes(_half_native(x), axes)
        y2 = np.empty(x2.shape[:k] + (1,) + x2.shape[k + 1:], dtype=result)
        if x2.size:
            _kernels.forward_half(LOGSUMEXP, x2, y2, k, kind, nt)
        else:
            y2[...] = np.array(-np.inf, dtype=result)
        kept = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
        res = y2.reshape(kept if keepdims else
                         tuple(s for d, s in enumerate(x.shape) if d not in axes))
        return res if res.ndim else res[()]
    xc = x if x.dtype == compute and x.flags.aligned else x.astype(compute)
    if len(axes) == 1:
        k, x2 = axes[0], xc
    else:
        xm = np.moveaxis(xc, axes, range(xc.ndim - len(axes), xc.ndim))
        k = xm.ndim - len(axes)
        x2 = xm.reshape(xm.shape[:k] + (int(np.prod(xm.shape[k:], dtype=np.intp)),))
    y2 = np.empty(x2.shape[:k] + (1,) + x2.shape[k + 1:], dtype=compute)
    _run(LOGSUMEXP, x2, y2, k, nt)
    kept = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
    res = y2.reshape(kept if keepdims else tuple(s for d, s in enumerate(x.shape) if d not in axes))
    if res.dtype != result:
        res = res.astype(result)
    return res if res.ndim else res[()]


def _masked_logsumexp(x, axis, keepdims, num_threads, dtype=None):
    """logsumexp of the unmasked entries, masked where none is left."""
    data = np.ma.getdata(x)
    _threads(num_threads)
    _validate.forward_dtypes(data.dtype, dtype)
    axes = _validate.normalize_axis(axis, data.ndim)
    mask = np.ma.getmaskarray(x)
    # -inf adds nothing to a sum of exponentials; float16 and bfloat16 stay
    # themselves, integers and bool become float64 as the dtype policy makes them
    fill = np.array(-np.inf, dtype=data.dtype) if _validate.half_kind(data.dtype) >= 0 else -np.inf
    res = logsumexp(np.where(mask, fill, data), axis, keepdims=keepdims,
                    num_threads=num_threads, dtype=dtype)
    empty = np.all(mask, axis=axes, keepdims=keepdims)
    if np.ndim(res) == 0 and not keepdims:
        return np.ma.masked if empty else res
    return np.ma.MaskedArray(res, mask=empty)


# ---------------------------------------------------------------- backward

def _backward(op, a, b, names, axis, out, num_threads):
    res = _kernels.fast_backward(op, a, b, axis, out, _fast_threads(num_threads))
    if res is not None:
        return res
    nt = _threads(num_threads)
    a, b = _validate.as_array(a, names[0]), _validate.as_array(b, names[1])
    compute, result, kind = _validate.backward_dtypes(a.dtype, b.dtype, names)
    _validate.check_same_shape(a, b, names)
    k = _validate.normalize_single_axis(axis, a.ndim)
    _validate.check_out(out, a.shape, result)
    if kind >= 0:
        if kind == 1:  # the hot path takes bfloat16 from now on
            _kernels.note_bfloat16(result.num)
        return _half_backward(op, a, b, k, out, result, kind, nt)

    ac = a if a.dtype == compute and a.flags.aligned else a.astype(compute)
    bc = b if b.dtype == compute and b.flags.aligned else b.astype(compute)
    # out may be either operand itself (each element of both is read before
    # its own output is written); any other overlap goes through a copy.
    direct = (out is not None and out.dtype == compute and out.flags.aligned
              and all(_same_view(out, c) or not np.may_share_memory(out, c) for c in (ac, bc)))
    res = out if direct else _kernels.empty_like(bc)
    if res.size:
        _kernels.backward(op, ac, bc, res, k, nt)
    if out is None:
        return res if res.dtype == result else res.astype(result)
    if res is not out:
        np.copyto(out, res, casting="unsafe")
    return out


def softmax_jvp(y, v, axis=-1, *, out=None, num_threads=None):
    """The softmax Jacobian times a tangent: ``y * (v - sum(y * v))``.

    Parameters
    ----------
    y : array_like
        ``softmax(x, axis)``.
    v : array_like
        The tangent, of the shape of `y`.
    axis : int, optional
        The softmax axis.  Default -1.
    out : ndarray, optional
        Where to write the result (its shape and dtype, any strides); may
        be `y` or `v` itself.
    num_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        ``J v`` for ``J = diag(y) - y yᵀ`` of each slice, in the dtype of
        ``np.result_type(y, v)`` under the forward dtype policy (integers
        give float64; float16 and bfloat16, ``ml_dtypes.bfloat16``, are
        read as they are, computed in float32 and rounded once into
        themselves; either with float32 gives float32).

    Raises
    ------
    ValueError
        `y` and `v` of different shapes; `out` of the wrong shape or
        read-only; `num_threads` < 1 or > ``2**31 - 1``.
    TypeError
        Unsupported dtype, non-int `axis`, `out` not an ndarray or of the
        wrong dtype, a masked array (its mask would mean nothing here; an
        ndarray subclass is read as a plain ndarray).
    numpy.exceptions.AxisError
        `axis` out of range.

    Notes
    -----
    One kernel reads each operand twice and writes once: the dot product
    ``sum(y * v)`` (compensated, so float32 rows of 2^20 elements keep
    float32 accuracy), then the fused update.  The Jacobian is symmetric, so
    this is also the VJP (:func:`softmax_vjp`).  A half-width result is
    within one unit in its last place of the exact product of the
    half-width operands, plus float32's error where ``v - sum(y * v)``
    cancels (docs/api.md, "Accuracy").

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> y = sc.softmax(np.array([0., np.log(3.)]))     # [0.25, 0.75]
    >>> sc.softmax_jvp(y, np.array([1., 0.]))
    array([ 0.1875, -0.1875])
    """
    return _backward(SOFTMAX_JVP, y, v, ("y", "v"), axis, out, num_threads)


def softmax_vjp(y, g, axis=-1, *, out=None, num_threads=None):
    """The cotangent `g` times the softmax Jacobian, ``y * (g - sum(y * g))``:
    the product of :func:`softmax_jvp`, as the Jacobian is symmetric.

    Parameters, returns and errors as in :func:`softmax_jvp`, with `g` the
    cotangent (the gradient of a loss with respect to ``softmax(x)``);
    ``out=g`` overwrites it with the gradient with respect to `x`.
    """
    return _backward(SOFTMAX_JVP, y, g, ("y", "g"), axis, out, num_threads)


def log_softmax_jvp(logp, v, axis=-1, *, out=None, num_threads=None):
    """The log-softmax Jacobian times a tangent: ``v - sum(exp(logp) * v)``.

    Parameters
    ----------
    logp : array_like
        ``log_softmax(x, axis)``.
    v : array_like
        The tangent, of the shape of `logp`.
    axis, out, num_threads
        As in :func:`softmax_jvp`.

    Returns
    -------
    ndarray
        As in :func:`softmax_jvp`.

    Notes
    -----
    ``exp(logp)`` is computed on the fly, never stored; it saturates to
    +inf above about 88 (float32) / 709 (float64), far outside valid
    log-probabilities.
    """
    return _backward(LOG_SOFTMAX_JVP, logp, v, ("logp", "v"), axis, out, num_threads)


def log_softmax_vjp(logp, g, axis=-1, *, out=None, num_threads=None):
    """The cotangent `g` times the log-softmax Jacobian:
    ``g - exp(logp) * sum(g)``.

    Parameters, returns and errors as in :func:`log_softmax_jvp`, with `g`
    the cotangent of the shape of `logp`.
    """
    return _backward(LOG_SOFTMAX_VJP, logp, g, ("logp", "g"), axis, out, num_threads)


def softmax_jacobian(y, axis=-1):
    """The softmax Jacobian ``diag(y) - y yᵀ`` of every slice.

    Parameters
    ----------
    y : array_like
        ``softmax(x, axis)``.
    axis : int, optional
        The softmax axis.  Default -1.

    Returns
    -------
    ndarray
        Shape ``(..., n, n)``: the other axes of `y` in order, then the
        ``n x n`` Jacobian of each slice; diagonal ``y - y * y``,
        off-diagonal ``-y_i y_j``.  Dtype as in :func:`softmax`.

    Raises
    ------
    TypeError
        Unsupported dtype, non-int `axis`, or a masked `y`.
    numpy.exceptions.AxisError
        `axis` out of range.

    Notes
    -----
    The result is an outer product, written once by NumPy's broadcasting
    multiply at memory speed; only the diagonal is touched again.  Prefer
    :func:`softmax_jvp` / :func:`softmax_vjp`, which never form it.
    """
    y = _validate.as_array(y, "y")
    compute, result = _validate.result_dtypes(y.dtype, "y")
    k = _validate.normalize_single_axis(axis, y.ndim)
    yk = np.moveaxis(y if y.dtype == compute else y.astype(compute), k, -1)
    jac = np.multiply(np.negative(yk)[..., :, None], yk[..., None, :])
    diag = np.einsum("...ii->...i", jac)  # a writeable view of the diagonals
    diag += yk
    return jac if jac.dtype == result else jac.astype(result)


# ---------------------------------------------------------------- cross-entropy

def _xent(logits, target, axis, weight, ignore_index, reduction, label_smoothing, out,
          num_threads, want_grad, softcap=None, z_loss=None, return_lse=False):
    """Validate everything, then one kernel call for the per-sample losses
    and (if `want_grad`) the gradient; returns loss or (loss, grad), and
    the per-sample lse last with `return_lse`."""
    nt = _threads(num_threads)
    z = _validate.as_array(logits, "logits")
    compute, result = _validate.result_dtypes(z.dtype, "logits")
    k = _validate.normalize_single_axis(axis, z.ndim)
    t = _validate.as_array(target, "target")
    ttype = _validate.check_target(t, z.shape, k)
    ignore_index = _validate.check_ignore_index(ignore_index, ttype)
    _validate.check_reduction(reduction)
    ls = _validate.check_label_smoothing(label_smoothing)
    n = z.shape[k]
    w = _validate.check_weight(weight, n, compute)
    if want_grad:
        _validate.check_out(out, z.shape, result)
    softcap, z_loss, return_lse = _validate.check_xent_options(softcap, z_loss, return_lse,
                                                               compute)
    # the options' kernel only when an option is given: else the plain
    # kernels, and their bits
    opts = softcap is not None or z_loss != 0.0 or return_lse
    if ttype == "index":
        # the int64 targets for the kernel (-1: ignored), the range check
        # and the mean's denominator (the kept targets' weights)
        if t.dtype.kind == "u" and t.itemsize == 8 or not -2**63 <= ignore_index < 2**63:
            # values or ignore_index beyond int64: NumPy's comparisons
            _validate.check_target_range(t, n, ignore_index)
            keep = t != ignore_index
            tk = np.where(keep, t, 0).astype(np.int64)
            tk[~keep] = -1
            n_kept = int(np.count_nonzero(keep))
            w_kept = (float(n_kept) if w is None
                      else float(np.sum(w.astype(np.float64)[tk[keep]])))
        else:  # one pass in C
            tk, n_kept, w_kept, bad = _kernels.xent_targets(
                t if t.dtype == np.int64 and t.flags.c_contiguous and t.flags.aligned
                else np.require(t, np.int64, ["C", "A"]), n, ignore_index,  # aligned too
                None if w is None else np.ascontiguousarray(w, np.float64))
            if bad is not None:
                _validate.check_target_range(t, n, ignore_index)  # raises, naming it
    # All checks done: from here on nothing raises.

    zc = z if z.dtype == compute and z.flags.aligned else z.astype(compute)
    batch = z.shape[:k] + z.shape[k + 1:]
    kept = z.shape[:k] + (1,) + z.shape[k + 1:]
    if ttype == "index":
        q = None
        tk = tk.reshape(kept)
        denom = w_kept
    else:
        q = t if t.dtype == compute and t.flags.aligned else t.astype(compute)
        # not read; a real array (not a broadcast one) so that its strides
        # let the batch dims merge and the panel kernels apply
        tk = np.zeros(kept, np.int64)
        denom = float(z.size // n) if n else 0.0
        n_kept = int(np.prod(batch))
    wc = None if w is None else np.ascontiguousarray(w, compute)
    wsum = float(n) if w is None else float(np.sum(w, dtype=np.float64))
    scale = 1.0
    if reduction == "mean":
        # no weight to divide by (every target ignored, or the kept ones'
        # weights sum to 0): the mean is NaN, and so is every kept sample's
        # gradient (ignored samples' stay 0), whatever signs the weights have
        scale = 1.0 / denom if denom != 0.0 else float("nan")

    grad = None
    loss_k = np.empty(kept, np.float64)
    if want_grad:
        direct = (out is not None and out.dtype == compute and out.flags.aligned
                  and (_same_view(out, zc) or not np.may_share_memory(out, zc))
                  and (q is None or not np.may_share_memory(out, q)))
        if direct and not _same_view(out, zc):
            # the same kernel (so the same bits) as without out: an out
            # whose layout rules out the panel kernel that the logits allow
            # goes through a fresh array
            direct = (_kernels.xent_uses_panels(zc, q, tk, out, loss_k, k)
                      == _kernels.xent_uses_panels(zc, q, tk, None, loss_k, k))
        grad = out if direct else _kernels.empty_like(zc)
    lse_k = np.empty(kept, np.float64) if opts else None
    # z-loss: unweighted, over the kept samples (the mean's count of them),
    # as Liger's lse_square_scale
    z_mean = 1.0 / n_kept if n_kept else 0.0
    z_scale = z_loss * (z_mean if reduction == "mean" else 1.0)
    if z.size and opts:
        _kernels.cross_entropy(zc, q, tk, grad, loss_k, k, wc, ls, scale, wsum, nt,
                               lse_k, softcap if softcap is not None else 0.0, z_scale)
    elif z.size:
        _kernels.cross_entropy(zc, q, tk, grad, loss_k, k, wc, ls, scale, wsum, nt)
    else:  # no logit: no sample, or no class (every target ignored): each loss
        # is -0.0, as the reference computes it (minus an empty sum)
        loss_k.fill(-0.0)
        if opts:
            lse_k.fill(-np.inf)  # the logsumexp of no class

    per_sample = loss_k.reshape(batch)
    z_terms = None
    if z_loss != 0.0:
        lse_b = lse_k.reshape(batch)
        with np.errstate(over="ignore", invalid="ignore"):
            z_terms = np.asarray(z_loss * np.square(lse_b), np.float64)  # 0-d too: an array
        if q is None:  # ignored samples add nothing, whatever their lse
            z_terms[tk.reshape(batch) < 0] = 0.0
    if reduction == "none":
        if z_terms is not None:
            per_sample = np.asarray(per_sample + z_terms)
        with np.errstate(over="ignore"):  # past the compute dtype's range: inf
            loss = per_sample.astype(compute, copy=False)
    elif denom == 0.0 and reduction == "mean":  # over no target weight: 0 / 0, NaN as in PyTorch
        loss = compute.type(np.nan)
    else:
        total = _losses.reduce_losses(per_sample, np.float64,
                                      denom if reduction == "mean" else None)
        if z_terms is not None:
            total = total + _losses.reduce_losses(z_terms, np.float64,
                                                  n_kept if reduction == "mean" else None)
        if compute == np.float64:  # already in its dtype
            loss = total
        else:
            with np.errstate(over="ignore"):  # past the compute dtype's range: inf
                loss = compute.type(total)
    extra = (lse_k.reshape(batch).astype(compute),) if return_lse else ()
    if not want_grad:
        return (loss,) + extra if extra else loss
    if out is None:
        return (loss, (grad if grad.dtype == result else grad.astype(result))) + extra
    if grad is not out:
        np.copyto(out, grad, casting="unsafe")
    return (loss, out) + extra


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0,
                  return_lse=False, num_threads=None):
    """Cross-entropy between ``softmax(logits)`` and `target`, with the
    semantics of ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : array_like
        Unnormalized scores, the classes along `axis`.  Dtypes as in
        :func:`softmax` (float16 computed in float32, integers in float64).
    target : array_like
        Either class indices (any integer dtype) of the logits' shape
        without the class axis, or class probabilities (float16, float32,
        float64; cast to the compute dtype) of the logits' full shape.  The
        dtype decides which; a bool target is a TypeError.
    axis : int, optional
        The class axis.  Default -1; ``axis=1`` is PyTorch's
        ``(N, C, d1, ...)`` layout.
    weight : array_like, optional
        One weight per class, cast to the compute dtype.
    ignore_index : int, optional
        Index targets equal to it take no part: zero loss and gradient, and
        no share of the mean's denominator.  With probability targets only
        the default -100 is allowed.
    reduction : {"mean", "sum", "none"}, optional
        "mean" divides the summed losses by the summed weights ``w[t]`` of
        the kept samples (their number without `weight`; the number of
        samples with probability targets), as PyTorch does.
    label_smoothing : float, optional
        In [0, 1]: the target is mixed with the uniform distribution over
        the classes.
    softcap : float, optional
        > 0: the logits are capped first, ``z = softcap * tanh(logits /
        softcap)`` (Gemma 2's final-logit cap), and everything else (loss,
        lse, gradient) is of the capped logits.  None: no cap.
    z_loss : float, optional
        >= 0: each kept sample adds ``z_loss * lse**2`` to its loss (PaLM's
        auxiliary z-loss), ``lse`` the logsumexp of its (capped) logits.
        Not weighted by `weight`; "mean" divides the summed z-losses by the
        number of kept samples (not by the summed weights).  Default 0.
    return_lse : bool, optional
        Also return each sample's ``lse`` (ignored samples' too).
    num_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the compute dtype for "mean" and "sum" ("mean" over an
        empty batch, with every target ignored, or with the kept targets'
        weights summing to 0, is NaN); for "none" an array of the batch
        shape, in the compute dtype.
    lse : ndarray
        With `return_lse` only (the result is then ``(loss, lse)``): the
        logsumexp of each sample's (capped) logits, batch shape, compute
        dtype; ``-inf`` for a sample of no class.

    Raises
    ------
    TypeError
        Unsupported dtype of `logits`, `target` or `weight` (a bool
        target), non-int `axis` or `ignore_index`, non-real
        `label_smoothing`, `softcap` or `z_loss`, a non-bool `return_lse`,
        a masked `logits`, `target` or `weight` (an ndarray subclass is read
        as a plain ndarray).
    ValueError
        `target` of the wrong shape, `weight` of the wrong length, unknown
        `reduction`, `label_smoothing` outside [0, 1], `softcap` not > 0
        and finite, `z_loss` negative or not finite, `ignore_index` with
        probability targets, `num_threads` < 1 or > ``2**31 - 1``.
    IndexError
        A class index out of range that is not `ignore_index` (named in the
        message).
    numpy.exceptions.AxisError
        `axis` out of range.

    Notes
    -----
    Each sample's loss is computed as ``logsumexp(z) - z[t]`` (and, for the
    smoothing and probability terms, ``sum_c u_c (logsumexp(z) - z_c)``,
    accumulated as nonnegative terms), never as ``log(softmax(z))``: logits
    of any magnitude give a finite loss.  One read sweep over each row of
    logits: its maximum and the sum of exponentials, online across
    cache-sized chunks, summed with compensation.

    With `softcap`, `z_loss` or `return_lse` the options' kernel runs: the
    capped logits are computed once per element into a scratch row, the
    loss and lse are of them, and rows are never split between threads
    (one and two threads give the same bits).  Without them the results
    are the plain kernels', bit for bit.

    See Also
    --------
    cross_entropy_grad : the loss and its gradient in one pass.

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> float(sc.cross_entropy(np.array([[1000., 1.]]), np.array([1])))
    999.0
    """
    return _xent(logits, target, axis, weight, ignore_index, reduction, label_smoothing,
                 None, num_threads, want_grad=False, softcap=softcap, z_loss=z_loss,
                 return_lse=return_lse)


def cross_entropy_grad(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0,
                       return_lse=False, out=None, num_threads=None):
    """The loss of :func:`cross_entropy` and its gradient with respect to
    `logits`, in one pass over the logits.

    Parameters
    ----------
    logits, target, axis, weight, ignore_index, reduction, label_smoothing
        As in :func:`cross_entropy`.
    softcap, z_loss, return_lse
        As in :func:`cross_entropy`; the gradient is of the whole loss,
        z-loss included, with respect to the uncapped `logits`.
    out : ndarray, optional
        Where to write the gradient: the logits' shape and result dtype
        (float16 for float16 logits), any strides.  ``out=logits`` writes
        the gradient over the logits, allocating nothing of their size.
    num_threads : int, optional
        As in :func:`softmax`.

    Returns
    -------
    loss : numpy scalar or ndarray
        As :func:`cross_entropy` returns it.
    grad : ndarray
        ``d loss / d logits`` for the reduction (for "none", of the sum of
        the per-sample losses); zero on the rows of ignored samples.
    lse : ndarray
        With `return_lse` only (the result is then ``(loss, grad, lse)``),
        as :func:`cross_entropy` returns it.

    Raises
    ------
    As :func:`cross_entropy`, and as :func:`softmax` for a bad `out`.
    Every check runs before the first write: a call that raises leaves the
    logits and `out` untouched.

    Notes
    -----
    With ``p = softmax(z)``, ``C`` classes, ``ls`` the smoothing and
    ``eps = ls / C``, a kept sample's gradient is
    ``(1 - ls) w[t] (p - onehot(t)) + eps (p sum(w) - w)`` for index targets
    and ``p sum(u) - u`` with ``u = w (q (1 - ls) + eps)`` for probability
    targets, times ``1 / denominator`` for "mean" (with a denominator of
    0, NaN on every kept sample, as PyTorch gives with non-negative
    weights).  For one-hot targets and no options it is
    ``(softmax(z) - onehot) / N``.  The kernel reads each
    row of logits twice (max and sum of exponentials; then the gradient)
    and writes the gradient once.

    `z_loss` adds ``2 z_loss lse p`` to each kept sample's gradient (times
    ``1 / kept samples`` for "mean"); with `softcap`, ``z = softcap *
    tanh(logits / softcap)`` and the gradient with respect to `z` is
    multiplied by ``1 - tanh(logits / softcap)**2`` (0 at infinite
    logits).  With options each row of logits is still read once from
    memory: the capped row is kept in a scratch row of the row's length
    (per call), from which the sums and the gradient are made.

    Examples
    --------
    >>> import numpy as np, softmax_c as sc
    >>> loss, grad = sc.cross_entropy_grad(np.zeros((1, 2)), np.array([0]))
    >>> grad
    array([[-0.5,  0.5]])
    """
    return _xent(logits, target, axis, weight, ignore_index, reduction, label_smoothing,
                 out, num_threads, want_grad=True, softcap=softcap, z_loss=z_loss,
                 return_lse=return_lse)
