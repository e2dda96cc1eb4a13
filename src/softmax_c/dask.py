"""softmax_c on dask arrays: ``softmax``, ``log_softmax``, ``logsumexp`` and
``cross_entropy`` with the signatures and semantics of the in-memory
functions, built lazily as dask graphs whose tasks call softmax_c's kernels
on NumPy blocks.

The normalized axes may be split into chunks; they are never rechunked and
no row is gathered in one task.  Each block reduces its part of every row
to a *state* (:func:`lse_state`), the states of a row are merged in a tree
(:func:`merge_states`, through ``dask.array.reduction``), and a second
blockwise pass normalizes every block against its row's merged state.
When every normalized axis is a single chunk, each block is simply one call
of the in-memory function.

``num_threads`` defaults to 1 here: dask already runs one task per core,
and threads inside each task would compete with it.  Pass a larger value
when there are fewer concurrent tasks than cores, or None for the worker's
softmax_c default (:func:`softmax_c.get_num_threads`).

Importing this module imports dask; ``import softmax_c`` alone never does.
"""
import functools
import math

import dask.array as da
import numpy as np

from . import _api, _kernels, _validate

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy",
           "lse_state", "merge_states", "state_lse"]

_F64 = np.dtype(np.float64)


# ---------------------------------------------------------------- the state

def lse_state(x, axis=-1, *, num_threads=1):
    """The state of every slice of the NumPy array `x` along `axis`: the
    pair ``(a, b)`` with ``logsumexp(x) = a + b``, stacked on a new last
    axis of length 2, in float64, the reduced axes kept with length 1.

    `a` is the slice's maximum when that is finite and 0 otherwise; `b` is
    ``softmax_c.logsumexp(x - a)``, so for a finite slice ``0 <= b <=
    log(n)``.  Kept apart, the two carry the sum of exponentials to full
    precision whatever the magnitude of the maximum, which ``a + b``
    rounded would not.  `b` follows the logsumexp rules: NaN for a slice
    with a NaN, else ``+inf`` for one with a ``+inf``, ``-inf`` for an
    empty or all ``-inf`` slice.

    `x` is cast to its compute dtype first (float16 to float32, integers
    and bool to float64).
    """
    x = _validate.as_array(x)
    compute, _ = _validate.result_dtypes(x.dtype)
    axes = _validate.normalize_axis(axis, x.ndim)
    return _state(_cast(x, compute), axes, num_threads)


# Bytes of a block handled per kernel call in the block functions: the
# shifted copy of a piece this size stays in the L2 cache between the
# subtraction and the kernel, instead of a block-sized temporary.
_SLAB = 1 << 20


def _slabs(shape, axes, itemsize):
    """Index tuples cutting an array of `shape` into pieces of about
    `_SLAB` bytes along its first axis that is not reduced."""
    free = [d for d in range(len(shape)) if d not in axes and shape[d] > 1]
    if not free:
        yield (Ellipsis,)
        return
    p = free[0]
    row = itemsize * math.prod(shape) // shape[p]
    step = max(1, _SLAB // max(row, 1))
    for i in range(0, shape[p], step):
        yield (slice(None),) * p + (slice(i, i + step),)


def _last_axis_rows(xc, axes):
    """Whether `xc` is C-contiguous rows along its one reduced axis, the
    last: the block steps of _kernels then take it as a (rows, n) matrix."""
    return (axes == (xc.ndim - 1,) and xc.flags.c_contiguous and xc.flags.aligned
            and xc.dtype.isnative)


def _state(xc, axes, nt, where=None):
    """lse_state of `xc` (in its compute dtype; only read), with the
    positions where `where` is False left out."""
    dt = xc.dtype
    if where is None and _last_axis_rows(xc, axes):
        # rows: a max sweep and an exp-sum sweep per row, in the kernels
        st = np.empty(xc.shape[:-1] + (1, 2), _F64)
        rows, n = math.prod(xc.shape[:-1]), xc.shape[-1]
        _kernels.block_states(xc.reshape(rows, n), st.reshape(rows, 2), _nt(nt))
        return st
    kept = tuple(1 if d in axes else n for d, n in enumerate(xc.shape))
    a = np.zeros(kept, dt)
    b = np.full(kept, -np.inf, dt)
    buf = None
    # slab by slab, the maximum too: each slab is read from memory once
    # (by the max) and its other passes find it in cache
    for sl in _slabs(xc.shape, axes, dt.itemsize):
        xs = xc[sl]
        if xs.size == 0:
            continue
        ws = None if where is None else where[sl]
        with np.errstate(invalid="ignore"):
            m = np.max(xs, axis=axes, keepdims=True, initial=-np.inf,
                       where=True if ws is None else ws)
            # A non-finite maximum (NaN, +inf, all -inf, empty) shifts by 0:
            # the kernel then sees the values themselves and gives the
            # rule's NaN, +inf or -inf.
            m = np.where(np.isfinite(m), m, dt.type(0))
        a[sl] = m
        if buf is None or buf.shape != xs.shape:
            buf = np.empty(xs.shape, dt)
        with np.errstate(invalid="ignore"):
            np.subtract(xs, m, out=buf)
        if ws is not None:
            np.copyto(buf, -np.inf, where=~ws)
        b[sl] = _api.logsumexp(buf, axes, keepdims=True, num_threads=nt)
    return np.stack([a.astype(_F64), b.astype(_F64)], axis=-1)


def _lse(xc, axes, nt):
    """The kernel's logsumexp, keeping dims; an empty block needs none
    (-inf), which also keeps dask's probing of empty metadata away from
    the kernels."""
    if xc.size == 0:
        return np.full(tuple(1 if d in axes else n for d, n in enumerate(xc.shape)),
                       -np.inf, xc.dtype)
    return _api.logsumexp(xc, axes, keepdims=True, num_threads=nt)


def merge_states(states, axis):
    """Merge the states (``(..., 2)`` arrays from :func:`lse_state`) along
    `axis` (an int or a tuple of ints, counted among the axes before the
    last), keeping it with length 1: the state of the concatenated slices.

    It is a logaddexp of the pairs: ``A = max(a)`` over the states that
    hold something (``b > -inf``, NaN included), then ``B =
    logsumexp(b + (a - A))``.  So NaN anywhere gives NaN, else ``+inf``
    gives ``+inf``, and only empty or all ``-inf`` parts give ``-inf``.
    """
    s = np.asarray(states, _F64)
    axes = _validate.normalize_axis(axis, s.ndim - 1)
    a, b = s[..., 0], s[..., 1]
    with np.errstate(invalid="ignore"):
        live = ~(b == -np.inf)
        big = np.max(np.where(live, a, -np.inf), axis=axes, keepdims=True, initial=-np.inf)
        big = np.where(big == -np.inf, 0.0, big)  # nothing held: shift by 0
        d, e = _diff(a, big)
        rest = _lse(d + (b + e), axes, 1)
    return np.stack([big, np.asarray(rest, _F64)], axis=-1)


def _diff(a, b):
    """``a - b`` as an unevaluated sum ``d + e`` (float64, exact: Knuth's
    TwoSum), so that the rounding of a large difference of shifts costs no
    digits in ``exp(a - b)``."""
    d = a - b
    bv = d - a
    e = (a - (d - bv)) - (b + bv)
    return d, e


def state_lse(states):
    """``logsumexp`` from states: ``a + b``, float64."""
    s = np.asarray(states, _F64)
    return s[..., 0] + s[..., 1]


# ---------------------------------------------------------------- arguments

def _threads(num_threads):
    return None if num_threads is None else _validate.check_num_threads(num_threads)


def _nt(nt):
    """A block step's thread count: nt, or the worker's default for None."""
    return _api.get_num_threads() if nt is None else nt


def _as_dask(x, name):
    """`x` as a dask array of NumPy blocks (a NumPy array or array-like is
    wrapped, in dask's default chunks)."""
    if isinstance(x, da.Array):
        meta = x._meta
        if isinstance(meta, np.ma.MaskedArray):
            raise TypeError(
                f"`{name}` is a dask array of masked arrays, which softmax_c.dask does "
                f"not take: pass {name}.map_blocks(numpy.ma.getdata) with `where`")
        if not isinstance(meta, np.ndarray):
            raise TypeError(
                f"`{name}` is a dask array of {type(meta).__module__}."
                f"{type(meta).__name__} blocks: softmax_c computes on NumPy "
                f"blocks on the CPU")
        return x
    return da.asarray(_validate.as_array(x, name))


def _known(x, axes, name):
    for d in axes:
        if any(math.isnan(c) for c in x.chunks[d]):
            raise ValueError(
                f"`{name}` has unknown chunk sizes along axis {d}: call "
                f"{name}.compute_chunk_sizes() first")



def _chunked_like(w, x, name):
    """w (NumPy or dask) broadcast to dask array x's shape and chunks: the
    dims it has in full take x's chunks, its length-1 dims are broadcast
    without being copied; ValueError naming `name` if it does not
    broadcast."""
    try:
        if np.broadcast_shapes(w.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"`{name}` of shape {w.shape} does not broadcast to the input's "
            f"shape {tuple(x.shape)}") from None
    w = w.reshape((1,) * (x.ndim - w.ndim) + w.shape)
    own = tuple(x.chunks[d] if w.shape[d] == x.shape[d] else (1,) for d in range(x.ndim))
    w = w.rechunk(own) if isinstance(w, da.Array) else da.from_array(w, chunks=own)
    return da.broadcast_to(w, x.shape, chunks=x.chunks)

def _where(where, x):
    """`where` checked as the in-memory functions check it, as a dask
    array of x's shape and chunks (broadcast lazily, block by block)."""
    if isinstance(where, da.Array):
        w = where
        if w.dtype != np.bool_:
            raise TypeError(f"`where` must be a boolean array, got dtype {w.dtype}")
    else:
        w = np.asarray(where)
        if w.dtype != np.bool_:
            raise TypeError(f"`where` must be a boolean array, got dtype {w.dtype}")
    return _chunked_like(w, x, "where")


def _cast(block, dtype):
    b = np.asarray(block)
    return b if b.dtype == dtype else b.astype(dtype)


# ---------------------------------------------------------------- block functions

def _whole_block(xb, wb=None, *, fn, axes, nt):
    """A block holding whole slices: the in-memory function itself."""
    return getattr(_api, fn)(xb, axes, where=wb, num_threads=nt)


def _state_block(xb, wb=None, *, axes, compute, nt):
    return _state(_cast(xb, compute), axes, nt, wb)


def _state_merge(s, axis, keepdims):
    return merge_states(s, axis)


def _state_keep(s, axis, keepdims):
    return s


def _softmax_block(xb, sb, tb, wb=None, *, axes, compute, result, nt):
    """softmax of a block of split rows: the block's own softmax times
    ``exp(lse_block - lse_row)``, the exponent from the two states."""
    xc = _cast(xb, compute)
    if wb is None and _last_axis_rows(xc, axes):
        # rows: y = exp(x - A) * exp(-B) against the row's merged state
        # (A, B), an exp sweep and a scale sweep, as the in-memory kernel
        rows, n = math.prod(xc.shape[:-1]), xc.shape[-1]
        # from softmax_c's output blocks, as in memory: a block freed by a
        # finished task is reused without faulting its pages in again
        y = _kernels.empty_like(xc)
        _kernels.block_softmax(xc.reshape(rows, n), y.reshape(rows, n),
                               np.ascontiguousarray(tb, _F64).reshape(rows, 2), _nt(nt))
        return y if y.dtype == result else y.astype(result)
    a, b, big, rest = sb[..., 0], sb[..., 1], tb[..., 0], tb[..., 1]
    with np.errstate(invalid="ignore", over="ignore"):
        whole = np.isfinite(rest)  # the row is neither NaN, +inf nor all -inf
        # exp(d) of an exact argument, times exp of the small rest: the
        # factor is accurate to a few units in float64 however far apart
        # the block's and the row's maxima are
        d, e = _diff(a, big)
        f = np.where(whole, np.exp(d) * np.exp(e + (b - rest)), np.nan).astype(compute)
    y = np.empty(xc.shape, compute)
    for sl in _slabs(xc.shape, axes, compute.itemsize):
        xs = xc[sl]
        if xs.size == 0:
            continue
        if wb is not None:
            xs = np.where(wb[sl], xs, compute.type(-np.inf))
        ys = y[sl]
        _api.softmax(xs, axes, out=ys, num_threads=nt)
        np.multiply(ys, f[sl], out=ys)  # while the piece is in cache
    # a block with nothing of a finite row (all -inf, or empty): its own
    # softmax is NaN, its share is 0
    nothing = whole & (b == -np.inf)
    if nothing.any():
        np.copyto(y, 0, where=nothing)
    if wb is not None:
        np.copyto(y, 0, where=~wb)
    return y if y.dtype == result else y.astype(result)


def _log_softmax_block(xb, tb, wb=None, *, axes, compute, result):
    """log_softmax of a block of split rows: ``(x - A) - B`` with the row's
    merged state; the first difference is exact to the conditioning of
    ``x - max`` whatever the magnitude of x."""
    big = tb[..., 0].astype(compute)
    rest = tb[..., 1]
    # a row with a +inf is NaN (as NaN and all -inf rows come out by
    # themselves: NaN - x, -inf - -inf)
    rest = np.where(rest == np.inf, np.nan, rest).astype(compute)
    xc = _cast(xb, compute)
    y = _kernels.empty_like(xc)
    with np.errstate(invalid="ignore"):
        for sl in _slabs(xc.shape, axes, compute.itemsize):
            ys = y[sl]
            np.subtract(xc[sl], big[sl], out=ys)
            np.subtract(ys, rest[sl], out=ys)  # while the piece is in cache
    if wb is not None:
        np.copyto(y, -np.inf, where=~wb)
    return y if y.dtype == result else y.astype(result)


def _lse_chunk(xb, axis, keepdims, *, compute, nt):
    return _lse(_cast(xb, compute), axis, nt)


def _lse_combine(s, axis, keepdims):
    return _lse(s, axis, 1)


def _lse_aggregate(s, axis, keepdims, *, result):
    r = np.asarray(_api.logsumexp(s, axis, keepdims=keepdims, num_threads=1))
    r = r.astype(result, copy=False)
    return r[()] if r.ndim == 0 else r  # a NumPy scalar, as in memory


# ---------------------------------------------------------------- graphs

def _row_states(x, w, axes, compute, nt):
    """The per-block states of x (``(..., 2)``, one per block along the
    axes) and the rows' merged states (one block along the axes)."""
    ind = tuple(range(x.ndim))
    pair = x.ndim
    args = (x, ind) if w is None else (x, ind, w, ind)
    states = da.blockwise(
        _state_block, ind + (pair,), *args, new_axes={pair: 2},
        adjust_chunks={d: 1 for d in axes}, axes=axes, compute=compute, nt=nt,
        dtype=_F64, meta=np.empty((0,) * (x.ndim + 1), _F64), align_arrays=False)
    total = da.reduction(
        states, chunk=_state_keep, combine=_state_merge, aggregate=_state_merge,
        axis=axes, keepdims=True, dtype=_F64, meta=np.empty((0,) * (x.ndim + 1), _F64),
        name="softmax_c-merge-states")
    return states, total


def _forward(fn, x, axis, where, num_threads):
    nt = _threads(num_threads)
    x = _as_dask(x, "x")
    compute, result = _validate.result_dtypes(x.dtype)
    axes = _validate.normalize_axis(axis, x.ndim)
    w = None if where is None else _where(where, x)
    _known(x, axes, "x")
    meta = np.empty((0,) * x.ndim, result)
    if all(len(x.chunks[d]) == 1 for d in axes):
        args = (x,) if w is None else (x, w)
        return da.map_blocks(_whole_block, *args, fn=fn, axes=axes, nt=nt,
                             dtype=result, meta=meta, token=f"softmax_c-{fn}")
    states, total = _row_states(x, w, axes, compute, nt)
    ind = tuple(range(x.ndim))
    pair = x.ndim
    extra = () if w is None else (w, ind)
    if fn == "softmax":
        return da.blockwise(
            _softmax_block, ind, x, ind, states, ind + (pair,), total, ind + (pair,), *extra,
            axes=axes, compute=compute, result=result, nt=nt, dtype=result, meta=meta,
            align_arrays=False, concatenate=True, token="softmax_c-softmax-normalize")
    return da.blockwise(
        _log_softmax_block, ind, x, ind, total, ind + (pair,), *extra,
        axes=axes, compute=compute, result=result, dtype=result, meta=meta,
        align_arrays=False, concatenate=True, token="softmax_c-log_softmax-normalize")


def softmax(x, axis=-1, *, where=None, num_threads=1):
    """Softmax along `axis` of a dask array, lazily: as
    :func:`softmax_c.softmax`, with the same dtypes, value rules and
    accuracy, returning a dask array of `x`'s shape and chunks.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Input (an array-like is wrapped with ``dask.array.asarray``).  Its
        blocks must be NumPy arrays; masked blocks raise TypeError (pass
        the mask as `where`).
    axis : int, tuple of ints or None, optional
        The axis or axes normalized together; they may be split into any
        chunks.  Default -1.
    where : array_like or dask array of bool, optional
        As in :func:`softmax_c.softmax`: positions taking part; the others
        get 0, and a slice with no True position is 0.
    num_threads : int or None, optional
        Threads of each kernel call inside a task.  Default 1 (dask runs
        tasks in parallel already); None for the worker's default.

    Returns
    -------
    dask.array.Array

    Raises
    ------
    As :func:`softmax_c.softmax`, when the graph is built.

    Notes
    -----
    When every normalized axis is one chunk, each block is one call of
    :func:`softmax_c.softmax`.  Otherwise each block's state per slice
    (:func:`lse_state`) is merged along the split axes in a tree
    (:func:`merge_states`), and each block becomes its own softmax times
    ``exp(lse_block - lse_row)``; a C-contiguous block reduced along its
    last axis without `where` takes the kernels' steps directly, its
    state a max sweep and an exp-sum sweep per row, its softmax
    ``exp(x - A) * exp(-B)`` against the row's merged state ``(A, B)``.
    """
    return _forward("softmax", x, axis, where, num_threads)


def log_softmax(x, axis=-1, *, where=None, num_threads=1):
    """Log-softmax along `axis` of a dask array, lazily: as
    :func:`softmax_c.log_softmax`.  Parameters as in :func:`softmax`;
    excluded positions (and slices with no True position) get ``-inf``.

    Notes
    -----
    With split axes each block becomes ``(x - A) - B``, ``(A, B)`` the
    row's merged state (:func:`merge_states`): ``x - A`` rounds once, as
    ``x - max`` does in memory.
    """
    return _forward("log_softmax", x, axis, where, num_threads)


def logsumexp(x, axis=-1, *, b=None, keepdims=False, return_sign=False, num_threads=1):
    """``log(sum(b * exp(x)))`` along `axis` of a dask array, lazily: as
    :func:`softmax_c.logsumexp` (NaN gives NaN, else +inf gives +inf, an
    empty or all -inf slice -inf; SciPy's `b` and `return_sign`).

    Parameters
    ----------
    x : dask.array.Array or array_like
        Input; NumPy blocks only.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce, in any chunks.  Default -1.
    b : dask.array.Array or array_like, optional
        Weights, which may be negative, broadcastable to `x`'s shape (here
        `b` may not enlarge `x`); dtypes as in memory.  A NumPy `b` is
        broadcast block by block without a copy.
    keepdims : bool, optional
        Keep the reduced axes with length 1.
    return_sign : bool, optional
        Also return the sign of the sum (a second dask array); without it
        a negative sum gives NaN.
    num_threads : int or None, optional
        As in :func:`softmax`.

    Returns
    -------
    dask.array.Array, or a pair of them with `return_sign`
        0-d when every axis is reduced without `keepdims`; it computes to
        a NumPy scalar, as the in-memory function returns.

    Notes
    -----
    Each block's logsumexp (a kernel call) is merged with the others by
    logsumexp again, in a tree: the absolute error stays within the
    in-memory bound.  With `b`, when the reduced axes are split, each
    block's state per slice is ``(a, r, sign)``: `a` the maximum over the
    terms of nonzero weight, ``r = log|s|`` and the sign of ``s = sum(b *
    exp(x - a))`` (the weighted kernel, compensated); the states merge in
    the tree through the weighted kernel again, with TwoSum shifts, so
    that terms of both signs in different blocks cancel as exactly as in
    one.  SciPy's fallback formula for non-finite results is followed for
    a zero weight on a +inf or NaN entry (NaN when the result is not
    finite); where SciPy's ``exp(x)`` overflows in that formula (an exact
    cancellation of terms above ``log(max float)``, a negative sum
    without `return_sign` that underflows), a split slice gives the
    mathematical -inf or NaN where the in-memory call may follow SciPy.
    """
    nt = _threads(num_threads)
    x = _as_dask(x, "x")
    return_sign = _validate.check_bool(return_sign, "return_sign")
    if b is not None or return_sign:
        return _weighted_logsumexp(x, axis, b, keepdims, return_sign, nt)
    compute, result = _validate.result_dtypes(x.dtype)
    axes = _validate.normalize_axis(axis, x.ndim)
    _known(x, axes, "x")
    out_ndim = x.ndim if keepdims else x.ndim - len(axes)
    return da.reduction(
        x, chunk=functools.partial(_lse_chunk, compute=compute, nt=nt), combine=_lse_combine,
        aggregate=functools.partial(_lse_aggregate, result=result), axis=axes, keepdims=keepdims,
        dtype=result, meta=np.empty((0,) * out_ndim, result), name="softmax_c-logsumexp")


# ---------------------------------------------------------------- weighted logsumexp

def _weights(b, x):
    """`b` checked as in memory, as a dask array of x's shape and chunks
    (broadcast lazily; its length-1 dims are not copied), and the dtype it
    takes part in the promotion with (None for a Python scalar)."""
    if isinstance(b, da.Array):
        w = _as_dask(b, "b")
        _validate.check_weights(np.empty((0,) * w.ndim, w.dtype), ())  # dtype only
        dt = w.dtype
    else:
        w, dt, _ = _validate.check_weights(b, x.shape)
    return _chunked_like(w, x, "b"), dt


def _wstate_block(xb, bb, *, axes, compute, nt):
    """The weighted state of a block's slices, ``(..., 4)`` float64:
    ``a`` (max of x over nonzero weights, 0 when not finite), ``r`` and
    ``sign`` (``log|s|`` and the sign of ``s = sum(b * exp(x - a))`` over
    those terms), and a flag: a zero weight on a +inf or NaN x (SciPy's
    fallback formula makes such a slice NaN when its result is not
    finite)."""
    xc, bc = _cast(xb, compute), _cast(bb, compute)
    kept = shape = tuple(1 if d in axes else n for d, n in enumerate(xc.shape))
    a = np.zeros(kept, compute)
    r = np.full(shape, -np.inf, compute)
    sg = np.zeros(shape, compute)
    flag = np.zeros(shape, bool)
    for sl in _slabs(xc.shape, axes, compute.itemsize):
        xs, bs = xc[sl], np.broadcast_to(bc[sl], xc[sl].shape)
        if xs.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            zero = bs == 0
            flag[sl] = np.any(zero & ~(xs < np.inf) & ~(xs == -np.inf), axis=axes, keepdims=True)
            xk = np.where(zero, compute.type(-np.inf), xs)
            m = np.max(xk, axis=axes, keepdims=True)
            m = np.where(np.isfinite(m), m, compute.type(0))
            np.subtract(xk, m, out=xk)
        a[sl] = m
        r[sl], sg[sl] = _api.logsumexp(xk, axes, b=bs, keepdims=True, return_sign=True,
                                       num_threads=nt)
    return np.stack([a.astype(_F64), r.astype(_F64), sg.astype(_F64), flag.astype(_F64)],
                    axis=-1)


def _wmerge(s, axis, keepdims):
    """Merge weighted states along `axis`: ``A = max(a)`` over the states
    that hold something, then ``(R, sign) = logsumexp(r + (a - A), b=sign)``
    with the shift as an exact TwoSum pair (the weighted kernel sums the
    signed terms with compensation)."""
    s = np.asarray(s, _F64)
    axes = _validate.normalize_axis(axis, s.ndim - 1)
    a, r, sg, flag = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    with np.errstate(invalid="ignore"):
        live = ~(r == -np.inf)
        big = np.max(np.where(live, a, -np.inf), axis=axes, keepdims=True, initial=-np.inf)
        big = np.where(big == -np.inf, 0.0, big)
        d, e = _diff(a, big)
        # a state's sign is 0 only for an empty sum (r = -inf); NaN states
        # keep a NaN weight, which the kernel turns into NaN
        wt = np.where(live, sg, 1.0)
        R, S = _api.logsumexp(d + (r + e), axes, b=wt, keepdims=True, return_sign=True,
                              num_threads=1)
        F = np.max(flag, axis=axes, keepdims=True)
    return np.stack([big, R, S, F], axis=-1)


def _wfinish(t, *, part, rs, result):
    """The result (part 0) or the sign (part 1) from merged states."""
    a, r, sg, flag = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
    with np.errstate(invalid="ignore"):
        res = a + r
        bad = (flag > 0) & ~np.isfinite(res)  # SciPy's fallback formula: NaN
        res = np.where(bad, np.nan, res)
        sg = np.where(bad | np.isnan(res), np.nan, np.where(res == -np.inf, 0.0, sg))
        if not rs:
            res = np.where(sg < 0, np.nan, res)
    out = (res if part == 0 else sg).astype(result)
    return out


def _wwhole(xb, bb, *, axes, result, nt):
    """A block holding whole slices: the in-memory call."""
    r = _api.logsumexp(xb, axes, b=bb, keepdims=True, num_threads=nt)
    return np.asarray(r).astype(result, copy=False)


def _wwhole_sign(xb, bb, *, axes, result, nt):
    """As _wwhole with return_sign: result and sign stacked on a last axis."""
    r = _api.logsumexp(xb, axes, b=bb, keepdims=True, return_sign=True, num_threads=nt)
    return np.stack([np.asarray(v).astype(result, copy=False) for v in r], axis=-1)


def _pick(t, *, part):
    return t[..., part]


def _sign_block(r, *, empty):
    return np.full(r.shape, -1.0, r.dtype) if empty else _api._sign_of(np.asarray(r))


def _scalar(r):
    return r[()] if np.ndim(r) == 0 else r


def _weighted_logsumexp(x, axis, b, keepdims, rs, nt):
    """logsumexp with `b` and/or `return_sign` on dask arrays."""
    _validate.result_dtypes(x.dtype)
    if b is None:  # return_sign only: the sign follows from the result
        res = logsumexp(x, axis, keepdims=keepdims, num_threads=nt)
        sg = res.map_blocks(_sign_block, empty=x.size == 0, dtype=res.dtype, meta=res._meta)
        if res.ndim == 0:
            res, sg = res.map_blocks(_scalar), sg.map_blocks(_scalar)
        return res, sg
    w, bdt = _weights(b, x)
    compute, result = _validate.result_dtypes(
        x.dtype if bdt is None else np.result_type(x.dtype, bdt))
    axes = _validate.normalize_axis(axis, x.ndim)
    _known(x, axes, "x")
    ind = tuple(range(x.ndim))
    pair = x.ndim
    if x.size == 0:  # SciPy: -inf, sign -1
        shape = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
        res = da.full(shape, -np.inf, dtype=result)
        sg = da.full(shape, -1.0, dtype=result)
    else:
        meta = np.empty((0,) * x.ndim, result)
        if all(len(x.chunks[d]) == 1 for d in axes) and not rs:
            res = da.blockwise(
                _wwhole, ind, x, ind, w, ind, adjust_chunks={d: 1 for d in axes}, axes=axes,
                result=result, nt=nt, dtype=result, meta=meta, align_arrays=False,
                token="softmax_c-logsumexp-w")
            sg = res
        elif all(len(x.chunks[d]) == 1 for d in axes):
            both = da.blockwise(
                _wwhole_sign, ind + (pair,), x, ind, w, ind, new_axes={pair: 2},
                adjust_chunks={d: 1 for d in axes}, axes=axes, result=result, nt=nt,
                dtype=result, meta=np.empty((0,) * (x.ndim + 1), result), align_arrays=False,
                token="softmax_c-logsumexp-w")
            res, sg = (both.map_blocks(_pick, part=p, drop_axis=pair, dtype=result, meta=meta)
                       for p in (0, 1))
        else:
            states = da.blockwise(
                _wstate_block, ind + (pair,), x, ind, w, ind, new_axes={pair: 4},
                adjust_chunks={d: 1 for d in axes}, axes=axes, compute=compute, nt=nt,
                dtype=_F64, meta=np.empty((0,) * (x.ndim + 1), _F64), align_arrays=False,
                token="softmax_c-logsumexp-w-states")
            total = da.reduction(
                states, chunk=_state_keep, combine=_wmerge, aggregate=_wmerge, axis=axes,
                keepdims=True, dtype=_F64, meta=np.empty((0,) * (x.ndim + 1), _F64),
                name="softmax_c-logsumexp-w-merge")
            res, sg = (total.map_blocks(_wfinish, part=p, rs=rs, result=result,
                                        drop_axis=pair, dtype=result, meta=meta)
                       for p in (0, 1))
    if not keepdims:
        res, sg = (v.squeeze(axis=axes) for v in (res, sg))
    if res.ndim == 0:  # computes to a NumPy scalar, as in memory
        res, sg = res.map_blocks(_scalar), sg.map_blocks(_scalar)
    return (res, sg) if rs else res


# ---------------------------------------------------------------- cross-entropy

def _index_targets(tb, *, n, ignore_index):
    """Class indices as int64, -1 where ignored; an index out of range
    raises IndexError naming it, as in memory."""
    tb = np.asarray(tb)
    _validate.check_target_range(tb, n, ignore_index)
    out = np.full(tb.shape, -1, np.int64)
    keep = tb != ignore_index
    out[keep] = tb[keep]
    return out


def _xent_block(zb, tb, off, targ, wb, *, k, n, ls, compute, index):
    """One block of logits: per sample, its share of the loss (the target
    term if the target class is in the block, the smoothing or probability
    terms of the block's classes) and, for index targets, of the mean's
    denominator ``w[t]``; both float64, stacked on a last axis of 2.

    Each term is ``u_c (lse - z_c)`` with ``lse - z_c`` formed as
    ``(A - z_c) + B`` from the row's merged state: non-negative terms, no
    cancellation, as in memory."""
    zc = _cast(zb, compute)
    big = tb[..., 0].astype(compute)
    rest = tb[..., 1]
    rest = np.where(rest == np.inf, np.nan, rest).astype(compute)  # +inf logit: NaN loss
    eps = ls / n if n else 0.0
    shape = zc.shape[:k] + (1,) + zc.shape[k + 1:]
    loss = np.zeros(shape, _F64)
    wt = np.zeros(shape, _F64)
    wk = None
    if wb is not None:
        wk = np.asarray(wb, compute).reshape((-1,) + (1,) * (zc.ndim - k - 1))
    with np.errstate(invalid="ignore", over="ignore"):
        if index:
            keep = targ >= 0
            local = targ - int(off[0])
            here = keep & (local >= 0) & (local < zc.shape[k])
            if here.any():
                idx = np.where(here, local, 0)
                dt = (big - np.take_along_axis(zc, idx, axis=k)) + rest
                w_t = (np.ones(shape, _F64) if wb is None
                       else np.asarray(wb, compute)[idx].astype(_F64))
                np.copyto(loss, (1.0 - ls) * w_t * dt.astype(_F64), where=here)
                np.copyto(wt, w_t, where=here)
            if eps:
                d = (big - zc) + rest
                if wk is not None:
                    d *= wk
                smooth = np.sum(d, axis=k, keepdims=True, dtype=_F64)
                loss += np.where(keep, eps * smooth, 0.0)
        else:
            u = _cast(targ, compute)
            if ls:
                u = u * compute.type(1.0 - ls) + compute.type(eps)
            if wk is not None:
                u = u * wk
            d = (big - zc) + rest
            d *= u
            loss = np.sum(d, axis=k, keepdims=True, dtype=_F64)
    return np.stack([loss, wt], axis=-1)


def _add(a, axis, keepdims):
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN losses are results
        return np.sum(a, axis=axis, keepdims=keepdims)


def _sum(a, axis):
    """A float64 sum in a tree, as ``a.sum(axis)`` but quiet about
    overflow, as the in-memory function is."""
    ndim = a.ndim - (a.ndim if axis is None else 1)
    return da.reduction(a, chunk=_add, aggregate=_add, axis=axis, dtype=_F64,
                        meta=np.empty((0,) * ndim, _F64), name="softmax_c-sum")


def _finish(plain, scaled, denom, *, scale, mean, compute):
    """The reduced loss as in memory: the float64 sum of the per-sample
    losses, or where that overflows with finite losses the sum of the
    losses scaled by a power of two, scaled back after the division."""
    plain, scaled, denom = float(plain), float(scaled), float(denom)
    if mean and denom == 0.0:  # no target weight: 0 / 0, NaN as in PyTorch
        return compute.type(np.nan)
    total, back = (plain, 1.0) if math.isfinite(plain) else (scaled, scale)
    with np.errstate(over="ignore", invalid="ignore"):
        if mean:
            total = np.float64(total / denom)
        return compute.type(np.float64(total * back))


def cross_entropy(logits, target, *, axis=-1, weight=None, ignore_index=-100,
                  reduction="mean", label_smoothing=0.0, num_threads=1):
    """Cross-entropy of dask arrays, lazily: as
    :func:`softmax_c.cross_entropy` (PyTorch's semantics), with the class
    axis `axis` split into any chunks.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Unnormalized scores, the classes along `axis`; dtypes as in memory.
    target : dask.array.Array or array_like
        Class indices (an integer dtype; the logits' shape without the class
        axis) or class probabilities (float16/32/64; the logits' shape).
        Rechunked to the logits' chunks where they differ.
    axis, weight, ignore_index, reduction, label_smoothing
        As in :func:`softmax_c.cross_entropy`; `weight` may be a dask array.
    num_threads : int or None, optional
        As in :func:`softmax`.

    Returns
    -------
    dask.array.Array
        For "mean" and "sum" a 0-d array computing to a NumPy scalar of the
        compute dtype; for "none" the per-sample losses, of the batch shape,
        in the compute dtype.

    Raises
    ------
    As :func:`softmax_c.cross_entropy`, when the graph is built, except the
    IndexError of a class index out of range, which depends on the values
    and so is raised by ``compute()``.
    """
    nt = _threads(num_threads)
    z = _as_dask(logits, "logits")
    compute, _ = _validate.result_dtypes(z.dtype, "logits")
    k = _validate.normalize_single_axis(axis, z.ndim)
    t = _as_dask(target, "target")
    ttype = _validate.check_target(t, z.shape, k)
    ignore_index = _validate.check_ignore_index(ignore_index, ttype)
    _validate.check_reduction(reduction)
    ls = _validate.check_label_smoothing(label_smoothing)
    _known(z, range(z.ndim), "logits")
    n = z.shape[k]
    w = _weight(weight, n, compute, z.chunks[k])
    index = ttype == "index"

    ind = tuple(range(z.ndim))
    pair = z.ndim
    if index:
        t = t.rechunk(z.chunks[:k] + z.chunks[k + 1:])
        t = da.expand_dims(t, k).map_blocks(
            _index_targets, n=n, ignore_index=ignore_index, dtype=np.int64,
            meta=np.empty((0,) * z.ndim, np.int64))
    else:
        t = t.rechunk(z.chunks)
    starts = np.cumsum((0,) + z.chunks[k][:-1]).astype(np.int64)
    off = da.from_array(starts, chunks=1)
    states, total = _row_states(z, None, (k,), compute, nt)
    del states  # only the merged state is needed: the block states are not kept
    wargs = (None, None) if w is None else (w, (k,))
    parts = da.blockwise(
        _xent_block, ind + (pair,), z, ind, total, ind + (pair + 1,), off, (k,), t, ind,
        *wargs, new_axes={pair: 2}, adjust_chunks={k: 1}, k=k, n=n, ls=ls,
        compute=compute, index=index, dtype=_F64,
        meta=np.empty((0,) * (z.ndim + 1), _F64), align_arrays=False, concatenate=True,
        token="softmax_c-cross-entropy-terms")
    per = _sum(parts, k)  # the blocks' shares, per sample
    losses = per[..., 0]
    if reduction == "none":
        return losses.astype(compute)
    batch = int(np.prod(losses.shape, dtype=np.int64))
    scale = 2.0 ** batch.bit_length()
    plain = _sum(losses, None)
    scaled = _sum(losses / scale, None)
    if index:
        denom = _sum(per[..., 1], None)
    else:  # one per sample, as in memory (none without a class)
        denom = da.asarray(np.float64(batch if n else 0))
    return da.blockwise(
        _finish, (), plain, (), scaled, (), denom, (), scale=scale,
        mean=reduction == "mean", compute=compute, dtype=compute,
        meta=np.empty((), compute), token="softmax_c-cross-entropy")


def _weight(weight, n, compute, chunks):
    """`weight` checked as in memory, as a dask array in the class axis's
    chunks and the compute dtype."""
    if weight is None:
        return None
    if isinstance(weight, da.Array):
        w = _as_dask(weight, "weight")
        _validate.result_dtypes(w.dtype, "weight")
        if w.shape != (n,):
            raise ValueError(
                f"`weight` must be 1-D with one entry per class ({n}), got shape {w.shape}")
        return w.astype(compute).rechunk((chunks,))
    return da.from_array(_validate.check_weight(weight, n, compute), chunks=(chunks,))
