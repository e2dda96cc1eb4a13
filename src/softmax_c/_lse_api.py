"""logsumexp with SciPy's weights `b` and `return_sign`, through the
weighted row kernel (csrc/family/lse_w.h)."""
import numpy as np

from . import _kernels, _validate
from ._common import _threads


def _sign_of(res):
    """SciPy's sign of an unweighted logsumexp: +1, 0 for -inf, NaN for NaN."""
    with np.errstate(invalid="ignore"):
        sign = np.where(res == -np.inf, 0.0, 1.0).astype(np.result_type(res))
    sign[np.isnan(res)] = np.nan
    return sign


def _weighted_logsumexp(x, axis, b, keepdims, return_sign, num_threads):
    """logsumexp with `b` and/or `return_sign` (SciPy's semantics)."""
    return_sign = _validate.check_bool(return_sign, "return_sign")
    if b is None:  # the unweighted kernels, the sign from the result
        from ._api import logsumexp  # the public function, for the unweighted sum
        res = logsumexp(x, axis, keepdims=keepdims, num_threads=num_threads)
        if not return_sign:
            return res
        data = np.ma.getdata(res)
        if isinstance(res, np.ma.MaskedArray) or res is np.ma.masked:
            return res, np.ma.MaskedArray(_sign_of(np.asarray(data)), mask=np.ma.getmask(res))
        sign = _sign_of(np.asarray(res))
        if np.size(x) == 0:
            sign[...] = -1.0
        return res, (sign if sign.ndim else sign[()])
    if isinstance(x, np.ma.MaskedArray):
        return _masked_weighted_logsumexp(x, axis, b, keepdims, return_sign, num_threads)
    nt = _threads(num_threads)
    x = _validate.as_array(x)
    _validate.result_dtypes(x.dtype)
    bw, bdt, shape = _validate.check_weights(b, x.shape)
    compute, result = _validate.result_dtypes(x.dtype if bdt is None
                                              else np.result_type(x.dtype, bdt))
    axes = _validate.normalize_axis(axis, len(shape))
    # convert each operand at its own size, then broadcast: stride-0 views,
    # which the kernels read in place
    xc = x if x.dtype == compute and x.flags.aligned else x.astype(compute)
    bc = bw if bw.dtype == compute and bw.flags.aligned else bw.astype(compute)
    xc = np.broadcast_to(xc, shape)
    bc = np.broadcast_to(bc, shape)
    if len(axes) == 1:
        k, x2, b2 = axes[0], xc, bc
    else:  # several axes: last, flattened into one (a copy where they do not merge)
        k = len(shape) - len(axes)
        flat = tuple(s for d, s in enumerate(shape) if d not in axes) + (
            int(np.prod([shape[d] for d in axes], dtype=np.intp)),)
        x2, b2 = (np.moveaxis(a, axes, range(k, len(shape))).reshape(flat) for a in (xc, bc))
    res = np.empty(x2.shape[:k] + (1,) + x2.shape[k + 1:], dtype=compute)
    sign = np.empty_like(res) if return_sign else None
    if x2.size == 0:  # SciPy: -inf, sign -1
        res.fill(-np.inf)
        if return_sign:
            sign.fill(-1.0)
    else:
        _kernels.logsumexp_w(x2, b2, res, sign, k, nt)
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))
    dims = kept if keepdims else tuple(s for d, s in enumerate(shape) if d not in axes)
    out = []
    for r in (res, sign) if return_sign else (res,):
        r = r.reshape(dims)
        if r.dtype != result:
            r = r.astype(result)
        out.append(r if r.ndim else r[()])
    return tuple(out) if return_sign else out[0]


def _masked_weighted_logsumexp(x, axis, b, keepdims, return_sign, num_threads):
    """Weighted logsumexp of the unmasked entries (masked ones: x = -inf
    and weight 0, which add nothing whatever b holds there), masked where a
    slice has no unmasked entry."""
    data = np.ma.getdata(x)
    mask = np.ma.getmaskarray(x)
    _validate.result_dtypes(data.dtype)
    bw, _, shape = _validate.check_weights(b, data.shape)
    axes = _validate.normalize_axis(axis, len(shape))
    if type(b) not in (int, float, bool):  # keep a Python scalar's weak dtype
        b = np.where(mask, bw.dtype.type(0), bw)
    res = _weighted_logsumexp(np.where(mask, -np.inf, data), axis, b, keepdims, return_sign,
                              num_threads)
    empty = np.all(np.broadcast_to(mask, shape), axis=axes, keepdims=keepdims)
    parts = res if return_sign else (res,)
    if np.ndim(parts[0]) == 0 and not keepdims:
        parts = tuple(np.ma.masked if empty else p for p in parts)
    else:
        parts = tuple(np.ma.MaskedArray(p, mask=empty) for p in parts)
    return parts if return_sign else parts[0]
