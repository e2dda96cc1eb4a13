"""softmax, log_softmax, logsumexp and the backward products of float16
and bfloat16 arrays through the half-width kernels (csrc/family/half.h,
_half.pxi): no float32 copy."""
import numpy as np

from . import _kernels
from ._common import _same_view
from ._kernels import SOFTMAX


def _half_native(x):
    """A float16 or bfloat16 array as the half-width kernels read it: itself
    when native-order and aligned, else a copy of the same dtype (never a
    float32 one)."""
    if x.dtype.isnative and x.flags.aligned:
        return x
    return x.astype(x.dtype.newbyteorder("="))


def _flatten_axes(x, axes):
    """(k, x2): x with `axes` brought last and merged into one axis k."""
    if len(axes) == 1:
        return axes[0], x
    xm = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim))
    k = xm.ndim - len(axes)
    return k, xm.reshape(xm.shape[:k] + (int(np.prod(xm.shape[k:], dtype=np.intp)),))


def _half_forward(op, x, kind, axes, where, out, result, nt):
    """softmax / log_softmax of float16 (kind 0) or bfloat16 (kind 1) `x`
    into the result dtype (x's or float32), through _kernels.forward_half:
    no float32 copy of the input."""
    xh = _half_native(x)
    if where is not None:
        xh = np.where(where, xh, np.array(-np.inf, dtype=xh.dtype))
    k, x2 = _flatten_axes(xh, axes)
    direct = (out is not None and len(axes) == 1 and out.flags.aligned and out.dtype.isnative
              and (not np.may_share_memory(out, xh)
                   or (out.dtype == xh.dtype and _same_view(out, xh))))
    y2 = out if direct else np.empty(x2.shape, dtype=result)
    if x2.size:
        _kernels.forward_half(op, x2, y2, k, kind, nt)
    if direct:
        res = out
    elif len(axes) == 1:
        res = y2
    else:
        xm_shape = np.moveaxis(xh, axes, range(xh.ndim - len(axes), xh.ndim)).shape
        res = np.moveaxis(y2.reshape(xm_shape), range(k, xh.ndim), axes)
    if where is not None:
        np.copyto(res, np.array(0.0 if op == SOFTMAX else -np.inf, dtype=res.dtype),
                  where=~where)
    if out is None or res is out:
        return res
    np.copyto(out, res)
    return out


def _half_backward(op, a, b, k, out, result, kind, nt):
    """Backward product op along axis k of (a, b) into the half-width
    `result` dtype (float16, kind 0, or bfloat16, kind 1), through
    _kernels.backward_half: operands of another dtype (an integer or bool
    one that promotes to `result`) are converted to it first, exactly;
    `out` is written directly when it may be (as _api._backward)."""
    ah = _half_native(a) if a.dtype == result else a.astype(result)
    bh = _half_native(b) if b.dtype == result else b.astype(result)
    # out may be either operand itself (each element of both is read before
    # its own output is written); any other overlap goes through a copy
    direct = (out is not None and out.dtype == result and out.flags.aligned
              and out.dtype.isnative
              and all(_same_view(out, c) or not np.may_share_memory(out, c) for c in (ah, bh)))
    res = out if direct else np.empty(bh.shape, dtype=result)
    if res.size:
        _kernels.backward_half(op, ah, bh, res, k, kind, nt)
    if res is not out and out is not None:
        np.copyto(out, res)
        return out
    return res
