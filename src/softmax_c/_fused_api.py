"""softmax / log_softmax / logsumexp with the fused options (scale,
softcap, bias, causal, sink): their checks and the fused kernel's loop
(csrc/family/fused.h, _fused.pxi)."""
import numpy as np

from . import _kernels, _validate
from ._common import _same_view, _threads
from ._kernels import LOGSUMEXP


def _fused_forward(op, x, axis, options, where, out, num_threads, keepdims=False):
    """softmax / log_softmax / logsumexp with the fused options: checks,
    then the fused kernel (family/fused.h) over blocks of (query, key)
    rows along the axis, moved last (a copy when it is not contiguous)."""
    nt = _threads(num_threads)
    x = _validate.as_array(x)
    compute, result = _validate.result_dtypes(x.dtype)
    f = _validate.check_fused(x.shape, axis, compute, where=where, **options)
    if op != LOGSUMEXP:
        _validate.check_out(out, x.shape, result)
    k, nd, isz = f.axis, x.ndim, compute.itemsize

    bias = f.bias
    if f.where is not None:  # excluded positions: a bias of -inf
        mask = np.where(f.where, compute.type(0), compute.type(-np.inf))
        bias = mask if bias is None else bias + mask

    def last(a):  # axis k moved last, as a view
        return a if k == nd - 1 else np.moveaxis(a, k, -1)

    xc = x if x.dtype == compute and x.flags.aligned else x.astype(compute)
    xm = last(xc)
    if xm.shape[-1] > 1 and xm.strides[-1] != isz:
        xm = np.ascontiguousarray(xm)  # not fused yet: a non-contiguous reduced axis
    bm = None
    if bias is not None:
        bm = last(np.broadcast_to(bias, x.shape))
        if (bm.shape[-1] > 1 and bm.strides[-1] not in (0, isz)) or not bm.flags.aligned:
            bm = np.ascontiguousarray(bm)
    per_row = []
    for v in (f.scale, f.sink):
        if v is None or isinstance(v, float):
            per_row.append(None)
        else:
            a = last(np.broadcast_to(v, tuple(1 if d == k else s for d, s in enumerate(x.shape))))
            a = a[..., 0]
            per_row.append(a if a.flags.aligned else np.ascontiguousarray(a))
    sm, km = per_row

    shape = xm.shape
    if op == LOGSUMEXP:
        ym = np.empty(shape[:-1], dtype=compute)
        direct = False
    else:
        inputs = [a for a in (bm, sm, km) if a is not None]
        om = last(out) if out is not None else None
        direct = (out is not None and out.dtype == compute and out.flags.aligned
                  and (om.shape[-1] <= 1 or om.strides[-1] == isz)
                  and (_same_view(om, xm) or not np.may_share_memory(om, xm))
                  and not any(np.may_share_memory(om, a) for a in inputs))
        ym = om if direct else _kernels.empty_like(xm)

    n = shape[-1]
    if nd >= 2:
        batch, Q = shape[:-2], shape[-2]
    else:
        batch, Q = (), 1

    def row_and_batch(a, full):
        """Row stride and batch strides (elements) of a (None: absent);
        `full`: a has the last (reduced) axis."""
        if a is None:
            return 0, None
        st = [s // isz for s in a.strides]
        if not full:
            st = st + [0]
        if nd >= 2:
            return st[-2], st[:-2]
        return 0, []

    lx, bx = row_and_batch(xm, True)
    ly, by = row_and_batch(ym, op != LOGSUMEXP)
    lb, bb = row_and_batch(bm, True)
    ls, bs = row_and_batch(sm, False)
    lk, bk = row_and_batch(km, False)
    if op == LOGSUMEXP and nd >= 2:
        ly = ym.strides[-1] // isz
    # a causal mask that keeps every key of the first query keeps all
    causal = f.causal is not None and f.causal < n - 1
    # (batch dims, then the rows) x (x, y, bias, scale, sink) strides
    dims = list(batch) + [Q]
    sts = [[0 if b is None else b[d] for b in (bx, by, bb, bs, bk)] for d in range(len(batch))]
    sts.append([lx, ly, lb, ls, lk])
    if not causal:  # the query index does not matter: dims merge where every stride allows
        while len(dims) > 1 and all(sts[-2][e] == sts[-1][e] * dims[-1] for e in range(5)):
            dims[-2:] = [dims[-2] * dims[-1]]
            sts[-2:] = [sts[-1]]
    batch, Q = dims[:-1], dims[-1]
    lx, ly, lb, ls, lk = sts[-1]
    bst = np.array(sts[:-1], dtype=np.int64).reshape(len(batch), 5)
    inc = 1 if bm is None or bm.shape[-1] <= 1 else bm.strides[-1] // isz
    sink_v = 0.0 if f.sink is None else (f.sink if isinstance(f.sink, float) else 0.0)
    if x.size and n:
        _kernels.fused(op, xm, ym, bm, sm, km, np.array(batch, dtype=np.int64), bst, Q, n,
                       (lx, ly, lb, ls, lk),
                       f.scale if isinstance(f.scale, float) else 1.0,
                       f.softcap or 0.0, inc, causal, f.causal or 0,
                       f.sink is not None, sink_v, nt)
    elif op == LOGSUMEXP:  # no element in a row: the sink alone, or -inf
        ym[...] = -np.inf if f.sink is None else (
            f.sink if isinstance(f.sink, float) else km)

    if op == LOGSUMEXP:
        res = np.expand_dims(ym, k) if keepdims else ym
        if res.dtype != result:
            res = res.astype(result)
        return res if res.ndim else res[()]
    if direct:
        return out
    res = ym if k == nd - 1 else np.moveaxis(ym, -1, k)
    if out is None:
        return res if res.dtype == result else res.astype(result)
    np.copyto(out, res, casting="unsafe")
    return out
