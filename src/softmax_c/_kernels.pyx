"""The Cython layer of softmax_c: loops over rows, threads, no policy.

Design, so that a newcomer knows where a change goes:

a. csrc/ holds the numerics: C99 kernels on pointers, strides and lengths
   (a batch of contiguous rows, or one panel whose reduction axis is
   strided), per dtype, dispatched at run time to AVX-512F, AVX2+FMA or
   portable C.  No Python, no allocation.
b. This module maps one problem -- an operation along axis k of N-d arrays
   of any strides -- onto those kernels (``_plan``): the other dims are
   sorted by stride and merged where every operand allows, then
     - "rows": the axis is contiguous: batches of rows go to the row
       kernels, one call per run of equally spaced rows;
     - "cols": the axis is strided but another dim is contiguous in every
       operand (a non-last axis of a C-contiguous array): panels of that
       dim go to the column kernels, no transposed copy;
     - "gather": anything else: each row is gathered into a per-thread
       buffer of one row, computed there and scattered back.
   Threads split the rows (or panels x column blocks) with a static
   schedule, with the GIL released; below MIN_BYTES_PER_THREAD bytes per
   thread a call uses fewer threads, down to a serial call that pays no
   thread start-up.  Entry points take ndarrays and read their data
   pointers and strides directly: acquiring typed memoryviews costs about
   0.4 us per array, a third of a 1000-element softmax.
c. _api.py does all validation and policy (dtypes, axes, out=, where=,
   aliasing); everything here trusts its caller: the arrays are aligned,
   float32 or float64 alike, shaped as the operation needs, and an output
   is either one of the inputs (same strides) or overlaps none.
d. reference.py is the NumPy oracle the tests compare against.
"""
import os

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.math cimport log
cimport softmax_c.kernels as sck
from softmax_c._ops cimport *

cnp.import_array()

# Operation codes for _api.py: csrc/sc_ops.h's (the one list of them).
SOFTMAX = SC_OP_SOFTMAX
LOG_SOFTMAX = SC_OP_LOG_SOFTMAX
LOGSUMEXP = SC_OP_LOGSUMEXP
SOFTMAX_JVP = SC_OP_SOFTMAX_JVP
LOG_SOFTMAX_JVP = SC_OP_LOG_SOFTMAX_JVP
LOG_SOFTMAX_VJP = SC_OP_LOG_SOFTMAX_VJP
cdef double INFINITY_ = float("inf")

# Below this many bytes of input per thread a call runs on fewer threads (on
# one thread below twice this).  Measured on 2 cores (Zen 4), out= given,
# threads 1 vs 2: 2 threads win from about 32000 float32 / 16000 float64
# elements for softmax and log_softmax (0.77x at 32x1000 float32, 0.71x at
# 32x1000 float64) and lose below (1.07x at 8x1000 float32); the backward
# products, with no exp, break even about there.
cdef Py_ssize_t MIN_BYTES_PER_THREAD = 64 * 1024
# One row is split across two threads from this many elements (each thread
# then has at least half).  Measured on 2 cores (Zen 4), one row, out=,
# 2 threads / 1 thread: float32 1.06 at 24000, 0.93-1.01 at 32000, 0.79-0.87
# at 48000, 0.52 at 262144; float64 1.03-1.08 at 8192, 0.81-0.86 at 16000,
# 0.70 at 32000 (exp costs 2.7x more per float64 element).  Three short
# parallel regions cost a few microseconds.
cdef Py_ssize_t MIN_SPLIT_ELEMENTS_F32 = 40000
cdef Py_ssize_t MIN_SPLIT_ELEMENTS_F64 = 14000
# The same for the backward products (no exp in softmax_jvp: less work per
# element).  softmax_vjp, one row, 2 threads / 1 thread, no other OpenMP
# runtime busy: float32 1.19 at 40000, 1.07 at 48000, 0.74 at 64000, 0.47
# at 131072; float64 1.11 at 20000, 0.96-0.98 at 28000, 0.87-1.01 at
# 32000, 0.61-0.74 at 40000.  Rounds timed right after PyTorch's (whose
# OpenMP workers keep spinning) now and then gave 1.47-1.59 at 28000-32000,
# where a split has little to gain: float64 splits from 36000.
cdef Py_ssize_t MIN_SPLIT_BWD_ELEMENTS_F32 = 56000
cdef Py_ssize_t MIN_SPLIT_BWD_ELEMENTS_F64 = 36000
# Columns per work item in the cols layout (a multiple of every lane count).
cdef Py_ssize_t COL_BLOCK = 64

cdef enum:
    MAXD = 64          # NumPy's own limit on dimensions
    MAXA = 5           # operands of one problem

cdef enum Mode:
    ROWS = 0
    COLS = 1
    GATHER = 2

cdef struct Plan:
    int mode
    int narr                   # operands
    Py_ssize_t n               # length of the axis
    Py_ssize_t m               # cols: length of the contiguous inner dim
    Py_ssize_t isz[MAXA]       # item size of each operand
    Py_ssize_t ax[MAXA]        # axis stride of each operand, in elements
    int nb                     # batch dims after merging
    Py_ssize_t count           # product of bsize
    Py_ssize_t bsize[MAXD]
    Py_ssize_t bst[MAXA][MAXD] # batch strides of each operand, in bytes


# GNU OpenMP keeps its thread pool's bookkeeping across fork() but not the
# threads: in a child forked after this process ran a parallel region, the
# child's first parallel region waits forever for workers that do not
# exist.  So once threads have run, a forked child computes on one thread.
cdef int _threads_used = 0
cdef int _serial_after_fork = 0


def _after_fork_in_child():
    global _serial_after_fork
    if _threads_used:
        _serial_after_fork = 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def serial_after_fork():
    """True in a child forked after the parent ran OpenMP threads."""
    return bool(_serial_after_fork)


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t parts, int requested) noexcept nogil:
    """Threads for `work` bytes of input in `parts` independent parts."""
    global _threads_used
    if _serial_after_fork:
        return 1
    cdef Py_ssize_t t = work // MIN_BYTES_PER_THREAD
    if t > requested:
        t = requested
    if t > parts:
        t = parts
    if t > 1:
        _threads_used = 1
        return <int>t
    return 1


cdef int _plan(Plan *p, tuple arrays, int k, unsigned reduced, bint allow_cols) except -1:
    """Fill p for an operation along axis k of `arrays` (ndarrays of one
    shape, except that operand a has length 1 along k when bit a of
    `reduced` is set: its axis stride then means nothing).  The shape is
    the first operand's."""
    cdef int narr = len(arrays), d, a, i, cnt = 0
    cdef cnp.ndarray arr = <cnp.ndarray>arrays[0]
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(arr)
    cdef cnp.npy_intp *st[MAXA]
    cdef Py_ssize_t size, key
    cdef int order[MAXD]
    cdef bint merge
    p.narr = narr
    p.n = shape[k]
    for a in range(narr):
        arr = <cnp.ndarray>arrays[a]
        st[a] = cnp.PyArray_STRIDES(arr)
        p.isz[a] = cnp.PyArray_ITEMSIZE(arr)
        p.ax[a] = 1 if (reduced >> a) & 1 else st[a][k] // p.isz[a]
    # the other dims of length > 1, largest |stride| of the first operand first
    for d in range(nd):
        if d != k and shape[d] != 1:
            key = abs(st[0][d])
            i = cnt
            while i > 0 and abs(st[0][order[i - 1]]) < key:
                order[i] = order[i - 1]
                i -= 1
            order[i] = d
            cnt += 1
    # merge neighbours that are one dim in every operand
    p.nb = 0
    p.count = 1
    for i in range(cnt):
        d = order[i]
        size = shape[d]
        p.count *= size
        merge = p.nb > 0
        if merge:
            for a in range(narr):
                if p.bst[a][p.nb - 1] != st[a][d] * size:
                    merge = False
                    break
        if merge:
            p.bsize[p.nb - 1] *= size
            for a in range(narr):
                p.bst[a][p.nb - 1] = st[a][d]
        else:
            p.bsize[p.nb] = size
            for a in range(narr):
                p.bst[a][p.nb] = st[a][d]
            p.nb += 1
    p.m = 1
    p.mode = ROWS
    for a in range(narr):
        if p.n != 1 and p.ax[a] != 1:
            p.mode = GATHER
    if allow_cols and p.mode == GATHER and p.nb > 0 and p.bsize[p.nb - 1] > 1:
        merge = True
        for a in range(narr):
            if p.bst[a][p.nb - 1] != p.isz[a]:
                merge = False
        if merge:  # a contiguous inner dim in every operand: panels
            p.mode = COLS
            p.m = p.bsize[p.nb - 1]
            p.count //= p.m
            p.nb -= 1
    return 0


cdef inline void _offsets(const Plan *p, Py_ssize_t idx, int ndims, Py_ssize_t *off) noexcept nogil:
    """Byte offsets in each operand of batch index idx over the first ndims
    batch dims."""
    cdef int a, d
    cdef Py_ssize_t q
    for a in range(p.narr):
        off[a] = 0
    for d in range(ndims - 1, -1, -1):
        q = idx % p.bsize[d]
        idx = idx // p.bsize[d]
        for a in range(p.narr):
            off[a] += q * p.bst[a][d]


cdef struct Job:
    # what one call computes: op, and for the cross-entropy its parameters
    int op
    bint has_q              # xent: probability targets in operand 1
    bint has_g              # xent: a gradient in operand 2
    sc_xent_params prm


cdef inline void _xent_kernel(const Job *job, char **p, const Py_ssize_t *ld, Py_ssize_t a,
                              Py_ssize_t b, bint panel, floating dummy) noexcept nogil:
    """sc_xent_rows (a rows of b classes) or, for a panel, sc_xent_cols (a
    classes by b columns): operands logits, q, grad, target, loss."""
    cdef const floating *q = <floating *>p[1] if job.has_q else NULL
    cdef floating *g = <floating *>p[2] if job.has_g else NULL
    cdef size_t w = 0
    cdef void *work = NULL
    if not panel and q == NULL and g != NULL and <void *>g != <void *>p[0]:
        # scratch rows for large gradients (sc_xent_rows_ws); without them
        # (w == 0, or no memory) the same results, a little slower
        if floating is float:
            w = sc_xent_rows_work_f32(<float *>g, ld[2], a, b)
        else:
            w = sc_xent_rows_work_f64(<double *>g, ld[2], a, b)
        work = malloc(w * sizeof(floating)) if w else NULL
    if work != NULL:
        if floating is float:
            sc_xent_rows_ws_f32(<float *>p[0], ld[0], NULL, ld[1], <int64_t *>p[3], ld[3],
                                <float *>g, ld[2], <double *>p[4], ld[4], a, b, &job.prm,
                                <float *>work, w)
        else:
            sc_xent_rows_ws_f64(<double *>p[0], ld[0], NULL, ld[1], <int64_t *>p[3], ld[3],
                                <double *>g, ld[2], <double *>p[4], ld[4], a, b, &job.prm,
                                <double *>work, w)
        free(work)
    elif floating is float:
        (sc_xent_cols_f32 if panel else sc_xent_rows_f32)(
            <float *>p[0], ld[0], q, ld[1], <int64_t *>p[3], ld[3], g, ld[2], <double *>p[4],
            ld[4], a, b, &job.prm)
    else:
        (sc_xent_cols_f64 if panel else sc_xent_rows_f64)(
            <double *>p[0], ld[0], q, ld[1], <int64_t *>p[3], ld[3], g, ld[2], <double *>p[4],
            ld[4], a, b, &job.prm)


# The kernels of the forward operations and the backward products, by
# layout, operation and dtype: filled once at import from the kernels of
# _kernels.pxd; NULL where an operation has no kernel of that signature.
ctypedef void (*fwd_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
ctypedef void (*fwd_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
ctypedef void (*bwd_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t,
                         size_t, size_t) noexcept nogil
ctypedef void (*bwd_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t,
                         size_t, size_t) noexcept nogil

cdef fwd_f32 _FWD_F32[2][SC_OP_COUNT]     # [ROWS or COLS][op]
cdef fwd_f64 _FWD_F64[2][SC_OP_COUNT]
cdef bwd_f32 _BWD_F32[2][SC_OP_COUNT]
cdef bwd_f64 _BWD_F64[2][SC_OP_COUNT]


cdef void _set_fwd(int layout, int op, fwd_f32 f32, fwd_f64 f64) noexcept:
    _FWD_F32[layout][op] = f32
    _FWD_F64[layout][op] = f64


cdef void _set_bwd(int layout, int op, bwd_f32 f32, bwd_f64 f64) noexcept:
    _BWD_F32[layout][op] = f32
    _BWD_F64[layout][op] = f64


cdef void _fill_kernel_tables() noexcept:
    memset(_FWD_F32, 0, sizeof(_FWD_F32))
    memset(_FWD_F64, 0, sizeof(_FWD_F64))
    memset(_BWD_F32, 0, sizeof(_BWD_F32))
    memset(_BWD_F64, 0, sizeof(_BWD_F64))
    # (_rows_kernel gives softmax rows the scratch form, sc_softmax_rows_ws)
    _set_fwd(ROWS, SC_OP_SOFTMAX, sc_softmax_rows_f32, sc_softmax_rows_f64)
    _set_fwd(ROWS, SC_OP_LOG_SOFTMAX, sc_log_softmax_rows_f32, sc_log_softmax_rows_f64)
    _set_fwd(ROWS, SC_OP_LOGSUMEXP, sc_logsumexp_rows_f32, sc_logsumexp_rows_f64)
    _set_bwd(ROWS, SC_OP_SOFTMAX_JVP, sc_softmax_jvp_rows_f32, sc_softmax_jvp_rows_f64)
    _set_bwd(ROWS, SC_OP_LOG_SOFTMAX_JVP, sc_log_softmax_jvp_rows_f32, sc_log_softmax_jvp_rows_f64)
    _set_bwd(ROWS, SC_OP_LOG_SOFTMAX_VJP, sc_log_softmax_vjp_rows_f32, sc_log_softmax_vjp_rows_f64)
    _set_fwd(COLS, SC_OP_SOFTMAX, sc_softmax_cols_f32, sc_softmax_cols_f64)
    _set_fwd(COLS, SC_OP_LOG_SOFTMAX, sc_log_softmax_cols_f32, sc_log_softmax_cols_f64)
    _set_fwd(COLS, SC_OP_LOGSUMEXP, sc_logsumexp_cols_f32, sc_logsumexp_cols_f64)
    _set_bwd(COLS, SC_OP_SOFTMAX_JVP, sc_softmax_jvp_cols_f32, sc_softmax_jvp_cols_f64)
    _set_bwd(COLS, SC_OP_LOG_SOFTMAX_JVP, sc_log_softmax_jvp_cols_f32, sc_log_softmax_jvp_cols_f64)
    _set_bwd(COLS, SC_OP_LOG_SOFTMAX_VJP, sc_log_softmax_vjp_cols_f32, sc_log_softmax_vjp_cols_f64)


_fill_kernel_tables()


cdef inline void _fwd_kernel(int layout, int op, const floating *x, Py_ssize_t ldx, floating *y,
                             Py_ssize_t ldy, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """The table's kernel of forward op in `layout`; (a, b): rows and row
    length, or the panel's n and m."""
    if floating is float:
        _FWD_F32[layout][op](x, ldx, y, ldy, a, b)
    else:
        _FWD_F64[layout][op](x, ldx, y, ldy, a, b)


cdef inline void _bwd_kernel(int layout, int op, const floating *u, Py_ssize_t ldu,
                             const floating *v, Py_ssize_t ldv, floating *out, Py_ssize_t ldo,
                             Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """The table's kernel of backward product op in `layout`, as _fwd_kernel."""
    if floating is float:
        _BWD_F32[layout][op](u, ldu, v, ldv, out, ldo, a, b)
    else:
        _BWD_F64[layout][op](u, ldu, v, ldv, out, ldo, a, b)


cdef inline void _fwd_rows(int op, const floating *x, Py_ssize_t ldx, floating *y, Py_ssize_t ldy,
                           Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    """Forward op on `rows` rows of n elements."""
    cdef size_t w
    cdef void *work
    if op != SC_OP_SOFTMAX:
        _fwd_kernel(ROWS, op, x, ldx, y, ldy, rows, n)
        return
    # scratch rows for large outputs (sc_softmax_rows_ws); without them
    # (w == 0, or no memory) the same results, a little slower
    if floating is float:
        w = sc_softmax_rows_work_f32(y, ldy, rows, n)
    else:
        w = sc_softmax_rows_work_f64(y, ldy, rows, n)
    work = malloc(w * sizeof(floating)) if w else NULL
    if floating is float:
        sc_softmax_rows_ws_f32(x, ldx, y, ldy, rows, n, <float *>work, w if work != NULL else 0)
    else:
        sc_softmax_rows_ws_f64(x, ldx, y, ldy, rows, n, <double *>work, w if work != NULL else 0)
    free(work)


cdef inline void _rows_kernel(const Job *job, char **p, const Py_ssize_t *ld, Py_ssize_t rows,
                              Py_ssize_t n, floating dummy) noexcept nogil:
    """The row kernel of job on operands p (output last; for the
    cross-entropy: logits, q, grad, target, loss), ld their row strides in
    elements.  `dummy` only selects the dtype."""
    cdef int op = job.op
    if op == SC_OP_XENT:
        _xent_kernel(job, p, ld, rows, n, False, dummy)
    elif sc_op_is_forward(op):
        _fwd_rows(op, <floating *>p[0], ld[0], <floating *>p[1], ld[1], rows, n)
    else:
        _bwd_kernel(ROWS, op, <floating *>p[0], ld[0], <floating *>p[1], ld[1],
                    <floating *>p[2], ld[2], rows, n)


cdef inline void _cols_kernel(const Job *job, char **p, const Py_ssize_t *ld, Py_ssize_t n,
                              Py_ssize_t m, floating dummy) noexcept nogil:
    """The panel kernel of job on operands p (output last; the
    cross-entropy's as in _rows_kernel), ld their axis strides in elements
    (for the operands without the axis -- logsumexp's output, the
    cross-entropy's targets and losses -- their column stride)."""
    cdef int op = job.op
    if op == SC_OP_XENT:
        _xent_kernel(job, p, ld, n, m, True, dummy)
    elif sc_op_is_forward(op):
        _fwd_kernel(COLS, op, <floating *>p[0], ld[0], <floating *>p[1], ld[1], n, m)
    else:
        _bwd_kernel(COLS, op, <floating *>p[0], ld[0], <floating *>p[1], ld[1],
                    <floating *>p[2], ld[2], n, m)


cdef void _rows_range(const Job *job, char **base, const Plan *p, Py_ssize_t g0,
                      Py_ssize_t g1, floating dummy) noexcept nogil:
    """Rows g0..g1 of the batch (row-major over the batch dims), in runs of
    equally spaced rows along the last batch dim."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t ld[MAXA]
    cdef Py_ssize_t step[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t R = p.bsize[p.nb - 1] if p.nb else 1
    cdef Py_ssize_t g = g0, r, seg
    cdef int a
    for a in range(p.narr):
        step[a] = p.bst[a][p.nb - 1] if p.nb else 0
        ld[a] = step[a] // p.isz[a]
    while g < g1:
        r = g % R
        seg = R - r
        if seg > g1 - g:
            seg = g1 - g
        _offsets(p, g // R, p.nb - 1 if p.nb else 0, off)
        for a in range(p.narr):
            ptr[a] = base[a] + off[a] + r * step[a]
        _rows_kernel(job, ptr, ld, seg, p.n, dummy)
        g += seg


cdef void _cols_item(const Job *job, char **base, const Plan *p, Py_ssize_t it,
                     Py_ssize_t nblk, floating dummy) noexcept nogil:
    """Column block it % nblk of panel it // nblk."""
    cdef Py_ssize_t off[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t j0 = (it % nblk) * COL_BLOCK, w = p.m - j0
    cdef int a
    if w > COL_BLOCK:
        w = COL_BLOCK
    _offsets(p, it // nblk, p.nb, off)
    for a in range(p.narr):
        ptr[a] = base[a] + off[a] + j0 * p.isz[a]
    _cols_kernel(job, ptr, p.ax, p.n, w, dummy)


cdef void _gather_row(const Job *job, char **base, const Plan *p, Py_ssize_t r,
                      floating *buf) noexcept nogil:
    """Row r through buf: gather the operands that have the axis into rows
    of buf, compute there, scatter the output back.  Operands without the
    axis (logsumexp's output; the cross-entropy's targets and losses) are
    used in place."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t ld[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t i, n = p.n
    cdef int a, out, nrow = 0
    cdef floating *src
    cdef floating *row
    _offsets(p, r, p.nb, off)
    # zeroed only for -Wmaybe-uninitialized, which cannot see that the loop
    # below sets every operand
    memset(ptr, 0, sizeof(ptr))
    memset(ld, 0, sizeof(ld))
    # which operand is written along the axis
    if job.op == SC_OP_XENT:
        out = 2 if job.has_g else -1
    elif job.op == SC_OP_LOGSUMEXP:
        out = -1
    else:
        out = p.narr - 1
    for a in range(p.narr):
        ptr[a] = base[a] + off[a]
        ld[a] = 1
        if (job.op == SC_OP_XENT and a >= 3) or (job.op == SC_OP_LOGSUMEXP and a == 1):
            continue            # no axis: used in place
        if a == out:
            continue
        if job.op == SC_OP_XENT and ((a == 1 and not job.has_q) or (a == 2 and not job.has_g)):
            continue            # a placeholder operand, never read
        row = buf + nrow * n
        nrow += 1
        src = <floating *>ptr[a]
        for i in range(n):
            row[i] = src[i * p.ax[a]]
        ptr[a] = <char *>row
        ld[a] = n
    if out >= 0:
        # compute in place in the last gathered row (every kernel allows
        # its output to be its last input; the cross-entropy's gradient may
        # be the logits but not the probability targets: a row of its
        # own), then scatter
        row = buf + (nrow if job.op == SC_OP_XENT and job.has_q else nrow - 1) * n
        ptr[out] = <char *>row
        ld[out] = n
        _rows_kernel(job, ptr, ld, 1, n, buf[0])
        src = <floating *>(base[out] + off[out])
        for i in range(n):
            src[i * p.ax[out]] = row[i]
    else:
        _rows_kernel(job, ptr, ld, 1, n, buf[0])


cdef int _execute(const Job *job, char **base, const Plan *p, int nthreads,
                  floating dummy) except -1:
    cdef Py_ssize_t rows = p.count, c, it, r
    cdef Py_ssize_t nblk = (p.m + COL_BLOCK - 1) // COL_BLOCK
    cdef int nt
    cdef floating *buf = NULL
    cdef int failed = 0
    cdef int *pfailed = &failed
    cdef Py_ssize_t off[MAXA]
    nt = _split_threads(job.op, rows, p.n, sizeof(floating), nthreads) if p.mode == ROWS else 1
    if nt > 1:
        with nogil:
            for r in range(rows):
                _offsets(p, r, p.nb, off)
                if job.op == SC_OP_XENT:
                    _split_row_xent(job, <floating *>(base[0] + off[0]),
                                    <floating *>(base[1] + off[1]) if job.has_q else NULL,
                                    <int64_t *>(base[3] + off[3]),
                                    <floating *>(base[2] + off[2]) if job.has_g else NULL,
                                    <double *>(base[4] + off[4]), p.n, nt)
                elif sc_op_is_forward(job.op):
                    _split_row(job.op, <floating *>(base[0] + off[0]),
                               <floating *>(base[1] + off[1]), p.n, nt)
                else:
                    _split_row_bwd(job.op, <floating *>(base[0] + off[0]),
                                   <floating *>(base[1] + off[1]),
                                   <floating *>(base[2] + off[2]), p.n, nt)
    elif p.mode == ROWS:
        nt = _threads_for(rows * p.n * <Py_ssize_t>sizeof(floating), rows, nthreads)
        if nt == 1:
            with nogil:
                _rows_range(job, base, p, 0, rows, dummy)
        else:
            for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
                _rows_range(job, base, p, rows * c // nt, rows * (c + 1) // nt, dummy)
    elif p.mode == COLS:
        nt = _threads_for(rows * p.n * p.m * <Py_ssize_t>sizeof(floating), rows * nblk, nthreads)
        if nt == 1:
            with nogil:
                for it in range(rows * nblk):
                    _cols_item(job, base, p, it, nblk, dummy)
        else:
            for it in prange(rows * nblk, nogil=True, schedule='static', num_threads=nt):
                _cols_item(job, base, p, it, nblk, dummy)
    else:
        nt = _threads_for(rows * p.n * <Py_ssize_t>sizeof(floating), rows, nthreads)
        with nogil, parallel(num_threads=nt):
            buf = <floating *> malloc(3 * p.n * sizeof(floating) + sizeof(floating))
            if buf == NULL:
                pfailed[0] = 1
            else:
                for r in prange(rows, schedule='static'):
                    _gather_row(job, base, p, r, buf)
                free(buf)
        if failed:
            raise MemoryError(f"softmax_c: could not allocate row buffers of {p.n} elements")
    return 0


cdef int _run(Job *job, tuple arrays, int k, unsigned reduced, int nthreads) except -1:
    """job along axis k of `arrays` (see _plan); the first operand's dtype
    (float32 or float64) is the compute dtype."""
    cdef Plan p
    cdef int a
    cdef char *base[MAXA]
    _plan(&p, arrays, k, reduced, True)
    for a in range(p.narr):
        base[a] = <char *>cnp.PyArray_DATA(<cnp.ndarray>arrays[a])
    if p.isz[0] == 4:
        _execute[float](job, base, &p, nthreads, 0)
    else:
        _execute[double](job, base, &p, nthreads, 0)
    return 0


def forward(int op, cnp.ndarray x, cnp.ndarray y, int k, int nthreads):
    """Unary op along axis k of x into y (both float32 or both float64, not
    empty; for logsumexp y has length 1 along k)."""
    cdef Job job
    job.op = op
    _run(&job, (x, y), k, 2 if op == SC_OP_LOGSUMEXP else 0, nthreads)


def backward(int op, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int k, int nthreads):
    """Binary op along axis k of (a, b) into out (one dtype, one shape, not
    empty; out is a, b, or overlaps neither)."""
    cdef Job job
    job.op = op
    _run(&job, (a, b, out), k, 0, nthreads)


def xent_uses_panels(cnp.ndarray logits, q, cnp.ndarray target, grad, cnp.ndarray loss, int k):
    """Whether cross_entropy with these operands would take the panel
    kernel (whose sums run per lane: other bits than the row kernel's)."""
    cdef Plan p
    _plan(&p, (logits, q if q is not None else logits, grad if grad is not None else logits,
               target, loss), k, 8 | 16, True)
    return p.mode == COLS


def cross_entropy(cnp.ndarray logits, q, cnp.ndarray target, grad, cnp.ndarray loss, int k,
                  weight, double label_smoothing, double scale, double weight_sum, int nthreads):
    """Per-sample losses (into `loss`, float64, of the logits' shape with
    length 1 along k) and, when `grad` is an array, the gradient times
    `scale`.  `q`: probability targets of the logits' shape, or None;
    `target`: int64 class indices (< 0: ignored) shaped like `loss` (any
    int64 array of that shape when q is given); `weight`: a contiguous
    array of the logits' dtype, or None.  grad may be logits itself."""
    cdef Job job
    job.op = SC_OP_XENT
    job.has_q = q is not None
    job.has_g = grad is not None
    job.prm.weight = cnp.PyArray_DATA(<cnp.ndarray>weight) if weight is not None else NULL
    job.prm.label_smoothing = label_smoothing
    job.prm.scale = scale
    job.prm.weight_sum = weight_sum
    _run(&job, (logits, q if job.has_q else logits, grad if job.has_g else logits, target, loss),
         k, 8 | 16, nthreads)


cdef int _default_threads = 0   # set_num_threads' value; 0: OpenMP's default


cdef inline int _threads_default() noexcept nogil:
    if _serial_after_fork:
        return 1
    return _default_threads if _default_threads > 0 else omp_get_max_threads()


def set_default_threads(int n):
    """The thread count of calls without num_threads (0: OpenMP's default)."""
    global _default_threads
    _default_threads = n


def default_threads():
    return _threads_default()


cdef extern from "_outbuf.h":
    int SC_OB_ENABLED
    size_t SC_OB_MIN
    void sc_ob_init(size_t limit)
    void sc_ob_set_limit(size_t limit)
    void sc_ob_stats(size_t *v)
    object sc_ob_capsule()

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

# The memory handler of large fresh outputs (_outbuf.h), or None.
cdef object _OB_HANDLER = sc_ob_capsule() if SC_OB_ENABLED else None
sc_ob_init(0)


def set_output_cache_limit(size_t nbytes):
    """Keep at most nbytes of freed large outputs for reuse (0: none);
    kept blocks beyond it go back to the system now."""
    sc_ob_set_limit(nbytes)


def output_cache_stats():
    """The output blocks' state: limit, bytes kept, blocks kept, reuses,
    new mappings (all 0 where they are not used)."""
    cdef size_t v[5]
    sc_ob_stats(v)
    return {"enabled": bool(SC_OB_ENABLED), "limit": v[0], "kept_bytes": v[1],
            "kept_blocks": v[2], "reused": v[3], "mapped": v[4]}


cdef cnp.ndarray _new_out(int nd, cnp.npy_intp *dims, int typenum):
    """cnp.PyArray_EMPTY(nd, dims, typenum, 0), from the output blocks if it
    is large."""
    cdef size_t nbytes = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef int i
    for i in range(nd):
        nbytes *= <size_t>dims[i]
    if _OB_HANDLER is None or nbytes < SC_OB_MIN:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    old = PyDataMem_SetHandler(_OB_HANDLER)
    try:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(old)


def empty_like(cnp.ndarray a):
    """np.empty_like(a), from the output blocks if it is large."""
    if _OB_HANDLER is None or <size_t>cnp.PyArray_NBYTES(a) < SC_OB_MIN:
        return np.empty_like(a)
    old = PyDataMem_SetHandler(_OB_HANDLER)
    try:
        return np.empty_like(a)
    finally:
        PyDataMem_SetHandler(old)


cdef inline bint _plain(cnp.ndarray a, int typenum) noexcept:
    """a is C-contiguous, aligned, native-order, of dtype typenum."""
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


def fast(int op, x, out=None, int nthreads=0):
    """The hot path, or None where it does not apply.

    For an exact ndarray x that is C-contiguous, aligned, native float32 or
    float64 and not 0-d: op along the last axis with nthreads threads (0:
    the default count), into `out` if it is such an array of x's shape and dtype that is
    writeable and is x or does not overlap it, else into a new array (for
    logsumexp, of x's shape without the last axis).  Anything else returns
    None and the caller takes the general path, which also owns every
    error message.
    """
    if not cnp.PyArray_CheckExact(x):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray y
    cdef int typenum = cnp.PyArray_TYPE(a), nd = cnp.PyArray_NDIM(a)
    cdef char *lo
    cdef char *hi
    if (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or nd == 0 \
            or not _plain(a, typenum):
        return None
    if out is None:
        y = _new_out(nd - 1 if op == SC_OP_LOGSUMEXP else nd, cnp.PyArray_DIMS(a), typenum)
    else:
        if op == SC_OP_LOGSUMEXP or not cnp.PyArray_CheckExact(out):
            return None
        y = <cnp.ndarray>out
        if not (_plain(y, typenum) and cnp.PyArray_ISWRITEABLE(y)
                and cnp.PyArray_SAMESHAPE(a, y)):
            return None
        if cnp.PyArray_DATA(y) != cnp.PyArray_DATA(a):
            lo = <char *>cnp.PyArray_DATA(a)
            hi = <char *>cnp.PyArray_DATA(y)
            if lo < hi + cnp.PyArray_NBYTES(y) and hi < lo + cnp.PyArray_NBYTES(a):
                return None   # partial overlap: the general path copies
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, nd - 1)
    if n == 0 or cnp.PyArray_SIZE(a) == 0:
        if op == SC_OP_LOGSUMEXP and cnp.PyArray_SIZE(y):
            y.fill(-float("inf"))
        return y
    cdef Py_ssize_t rows = cnp.PyArray_SIZE(a) // n
    cdef Py_ssize_t ldy = 1 if op == SC_OP_LOGSUMEXP else n
    cdef int req = nthreads if nthreads > 0 else _threads_default()
    cdef int nt = _split_threads(op, rows, n, cnp.PyArray_ITEMSIZE(a), req)
    if nt > 1:
        if typenum == cnp.NPY_FLOAT32:
            _split_rows[float](op, <const float *>cnp.PyArray_DATA(a),
                               <float *>cnp.PyArray_DATA(y), rows, n, ldy, nt)
        else:
            _split_rows[double](op, <const double *>cnp.PyArray_DATA(a),
                                <double *>cnp.PyArray_DATA(y), rows, n, ldy, nt)
        return y
    nt = _threads_for(rows * n * cnp.PyArray_ITEMSIZE(a), rows, req)
    if typenum == cnp.NPY_FLOAT32:
        _contiguous[float](op, <const float *>cnp.PyArray_DATA(a), <float *>cnp.PyArray_DATA(y),
                           rows, n, ldy, nt)
    else:
        _contiguous[double](op, <const double *>cnp.PyArray_DATA(a), <double *>cnp.PyArray_DATA(y),
                            rows, n, ldy, nt)
    return y


cdef inline bint _disjoint(cnp.ndarray a, cnp.ndarray b) noexcept:
    """The byte ranges of two C-contiguous arrays do not overlap."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return not (pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a))


def fast_backward(int op, a, b, out=None, int nthreads=0):
    """The hot path of the backward products, or None where it does not
    apply: exact ndarrays a and b, C-contiguous, aligned, native, of one
    dtype (float32 or float64) and shape, not 0-d, not empty; the last
    axis, nthreads threads (0: the default count); `out` None or such an
    array that is a, b or overlaps neither.  The caller's general path owns
    every error."""
    if not (cnp.PyArray_CheckExact(a) and cnp.PyArray_CheckExact(b)):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>a
    cdef cnp.ndarray v = <cnp.ndarray>b
    cdef cnp.ndarray y
    cdef int typenum = cnp.PyArray_TYPE(x), nd = cnp.PyArray_NDIM(x)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or nd == 0
            or cnp.PyArray_SIZE(x) == 0 or not _plain(x, typenum) or not _plain(v, typenum)
            or not cnp.PyArray_SAMESHAPE(x, v)):
        return None
    if out is None:
        y = _new_out(nd, cnp.PyArray_DIMS(x), typenum)
    else:
        if not cnp.PyArray_CheckExact(out):
            return None
        y = <cnp.ndarray>out
        if not (_plain(y, typenum) and cnp.PyArray_ISWRITEABLE(y)
                and cnp.PyArray_SAMESHAPE(x, y)):
            return None
        if not ((cnp.PyArray_DATA(y) == cnp.PyArray_DATA(x) or _disjoint(x, y))
                and (cnp.PyArray_DATA(y) == cnp.PyArray_DATA(v) or _disjoint(v, y))):
            return None
    cdef Job job
    job.op = op
    _run(&job, (x, v, y), nd - 1, 0, nthreads if nthreads > 0 else _threads_default())
    return y


cdef inline int _split_threads(int op, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t isz,
                               int requested) noexcept nogil:
    """Threads to split each row across, or 1 for row-parallel/serial work:
    rows fewer than the threads asked for, and at least half of the
    MIN_SPLIT_* elements of the row per thread (the cross-entropy, a
    forward pass with a cheap last sweep, takes the forward's)."""
    global _threads_used
    cdef Py_ssize_t t, least
    if rows >= requested or _serial_after_fork:
        return 1
    if sc_op_is_forward(op) or op == SC_OP_XENT:
        least = MIN_SPLIT_ELEMENTS_F64 if isz == 8 else MIN_SPLIT_ELEMENTS_F32
    else:
        least = MIN_SPLIT_BWD_ELEMENTS_F64 if isz == 8 else MIN_SPLIT_BWD_ELEMENTS_F32
    t = 2 * n // least
    if t > requested:
        t = requested
    if t >= 2:
        _threads_used = 1
        return <int>t
    return 1


cdef inline Py_ssize_t _cut(Py_ssize_t K, Py_ssize_t ch, Py_ssize_t n, Py_ssize_t t,
                            Py_ssize_t nt) noexcept nogil:
    """Where piece t of nt starts: the row's K chunks of ch elements shared
    out evenly, the last chunk ending at n."""
    cdef Py_ssize_t c = (K * t // nt) * ch
    return c if c < n else n


cdef floating _split_max(const floating *x, Py_ssize_t n, Py_ssize_t K, Py_ssize_t ch,
                         floating *maxes, int nt) noexcept nogil:
    """The max of a row cut into nt pieces (K chunks of ch), one per thread;
    `maxes`: room for nt values."""
    cdef Py_ssize_t t, lo = 0, hi = 0
    cdef floating mx
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        maxes[t] = sck.piece_max(x + lo, hi - lo)
    mx = maxes[0]
    for t in range(1, nt):
        if maxes[t] > mx:
            mx = maxes[t]
    return mx


cdef void _split_row(int op, const floating *x, floating *y, Py_ssize_t n, int nt) noexcept nogil:
    """One row of softmax, log_softmax or logsumexp (y: the one output) on
    nt threads, in pieces cut at multiples of the kernels' sum chunk, so
    that the result is bitwise the one-thread result (softmax_c.h, "one row
    across threads"): piece maxima; exp stored (softmax) and chunk sums per
    piece; the sums added in order; each piece scaled or shifted."""
    cdef Py_ssize_t ch = <Py_ssize_t>sck.piece_chunk(x[0])
    cdef Py_ssize_t K = (n + ch - 1) // ch, t, lo = 0, hi = 0
    cdef double *sums = <double *>malloc(K * sizeof(double) + nt * sizeof(floating))
    cdef floating mx, a
    cdef double s
    if sums == NULL or n == 0:
        free(sums)
        _serial_row(op, x, y, n)
        return
    mx = _split_max(x, n, K, ch, <floating *>(sums + K), nt)
    if not (mx > -INFINITY_ and mx < INFINITY_):
        free(sums)               # the special values' rules: the row kernel
        _serial_row(op, x, y, n)
        return
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_expsum(x + lo, y + lo if op == SC_OP_SOFTMAX else NULL, hi - lo, mx,
                          sums + K * t // nt)
    s = sck.piece_total(sums, K)
    free(sums)
    if op == SC_OP_LOGSUMEXP:
        y[0] = <floating>(<double>mx + log(s))
        return
    a = <floating>(1.0 / s) if op == SC_OP_SOFTMAX else <floating>log(s)
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        if op == SC_OP_SOFTMAX:
            sck.piece_scale(y + lo, hi - lo, a)
        else:
            sck.piece_log_softmax(x + lo, y + lo, hi - lo, mx, a)


cdef void _split_row_xent(const Job *job, const floating *z, const floating *q,
                          const int64_t *tp, floating *g, double *loss, Py_ssize_t n,
                          int nt) noexcept nogil:
    """One row of the cross-entropy on nt threads, by softmax_c.h's recipe
    ("the cross-entropy of one row in pieces"): bitwise the one-thread
    result.  Rows the recipe leaves to the row kernel go there."""
    cdef Py_ssize_t ch = <Py_ssize_t>sck.piece_chunk(z[0])
    cdef Py_ssize_t K = (n + ch - 1) // ch, t, k, lo = 0, hi = 0
    cdef int64_t target = 0 if q != NULL else tp[0]
    cdef bint sums_ud = q != NULL or job.prm.label_smoothing / <double>n != 0.0
    cdef double *sums = NULL
    cdef double *usums
    cdef double *dsums
    cdef floating mx
    cdef double U = 0.0, D = 0.0, zt = 0.0, s
    cdef double f[3]
    if n * <Py_ssize_t>sizeof(floating) > <Py_ssize_t>sck.piece_xent_max_bytes(z[0]):
        _split_row_xent_sweep(job, z, q, tp, g, loss, n, nt)
        return
    if n > 0 and (q != NULL or 0 <= target < n):
        sums = <double *>malloc(3 * K * sizeof(double) + nt * sizeof(floating))
    if sums == NULL:
        _serial_xent(job, z, q, tp, g, loss, n)
        return
    usums = sums + K
    dsums = sums + 2 * K
    mx = _split_max(z, n, K, ch, <floating *>(sums + 3 * K), nt)
    if not (mx > -INFINITY_ and mx < INFINITY_):
        free(sums)
        _serial_xent(job, z, q, tp, g, loss, n)
        return
    if sums_ud:
        for t in prange(nt, schedule='static', num_threads=nt):
            lo = _cut(K, ch, n, t, nt)
            hi = _cut(K, ch, n, t + 1, nt)
            sck.piece_xent_ud(z, q, lo, hi - lo, n, mx, &job.prm, usums + K * t // nt,
                              dsums + K * t // nt)
        for k in range(K):
            U += usums[k]
            D += dsums[k]
        if not (-INFINITY_ < U < INFINITY_ and -INFINITY_ < D < INFINITY_):
            free(sums)
            _serial_xent(job, z, q, tp, g, loss, n)
            return
    if q == NULL:
        zt = z[target]
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_expsum(z + lo, g + lo if g != NULL else NULL, hi - lo, mx, sums + K * t // nt)
    s = sck.piece_total(sums, K)
    free(sums)
    loss[0] = sck.piece_xent_finish(q, target, zt, g, n, mx, s, U, D, &job.prm, f)
    if g != NULL:
        for t in prange(nt, schedule='static', num_threads=nt):
            lo = _cut(K, ch, n, t, nt)
            hi = _cut(K, ch, n, t + 1, nt)
            sck.piece_xent_scale(g, q, target, lo, hi - lo, n, &job.prm, f)


cdef void _split_row_xent_sweep(const Job *job, const floating *z, const floating *q,
                                const int64_t *tp, floating *g, double *loss, Py_ssize_t n,
                                int nt) noexcept nogil:
    """A row past the cached path's size on nt threads, by softmax_c.h's
    recipe ("one row of more than sc_piece_xent_max_bytes"): the one-sweep
    path's chunk maxima and chunk sums per piece, its running sums replayed
    in order on one thread, the gradient per piece; bitwise the one-thread
    result."""
    cdef Py_ssize_t ch = <Py_ssize_t>sck.piece_chunk(z[0])
    cdef Py_ssize_t K = (n + ch - 1) // ch, t, lo = 0, hi = 0
    cdef int64_t target = 0 if q != NULL else tp[0]
    cdef double *ws = NULL
    cdef double f[4]
    if q != NULL or 0 <= target < n:
        ws = <double *>malloc(4 * K * sizeof(double))
    if ws == NULL:
        _serial_xent(job, z, q, tp, g, loss, n)
        return
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_xent_sweep_max(z, lo, hi - lo, ws)
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_xent_sweep_sums(z, q, lo, hi - lo, n, &job.prm, ws)
    if sck.piece_xent_sweep_finish(z, q, target, n, &job.prm, ws, g != NULL, loss, f):
        free(ws)
        _serial_xent(job, z, q, tp, g, loss, n)
        return
    free(ws)
    if g != NULL:
        for t in prange(nt, schedule='static', num_threads=nt):
            lo = _cut(K, ch, n, t, nt)
            hi = _cut(K, ch, n, t + 1, nt)
            sck.piece_xent_sweep_grad(z, q, target, g, lo, hi - lo, n, &job.prm, f)


cdef inline void _serial_xent(const Job *job, const floating *z, const floating *q,
                              const int64_t *tp, floating *g, double *loss,
                              Py_ssize_t n) noexcept nogil:
    cdef char *ptr[5]
    cdef Py_ssize_t ld[5]
    ptr[0] = <char *>z
    ptr[1] = <char *>q if q != NULL else <char *>z
    ptr[2] = <char *>g if g != NULL else <char *>z
    ptr[3] = <char *>tp
    ptr[4] = <char *>loss
    ld[0] = ld[1] = ld[2] = n
    ld[3] = ld[4] = 1
    _xent_kernel(job, ptr, ld, 1, n, False, z[0])


cdef void _split_row_bwd(int op, const floating *a, const floating *b, floating *out,
                         Py_ssize_t n, int nt) noexcept nogil:
    """One row of a backward product on nt threads, in pieces cut at
    multiples of the kernels' chunk: chunk sums per piece, added in order,
    then each piece of the output; bitwise the one-thread result."""
    cdef int bop = sc_op_bwd(op)
    cdef Py_ssize_t ch = <Py_ssize_t>sck.piece_bwd_chunk(a[0])
    cdef Py_ssize_t K = (n + ch - 1) // ch, t, lo = 0, hi = 0
    cdef double *sums = <double *>malloc(K * sizeof(double))
    cdef floating d
    if sums == NULL:
        _bwd_kernel(ROWS, op, a, n, b, n, out, n, 1, n)
        return
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_bwd_sums(bop, a + lo, b + lo, hi - lo, sums + K * t // nt)
    d = <floating>sck.piece_total(sums, K)
    free(sums)
    for t in prange(nt, schedule='static', num_threads=nt):
        lo = _cut(K, ch, n, t, nt)
        hi = _cut(K, ch, n, t + 1, nt)
        sck.piece_bwd_out(bop, a + lo, b + lo, out + lo, hi - lo, d)


cdef inline void _serial_row(int op, const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    _fwd_rows(op, x, n, y, n, 1, n)


cdef void _split_rows(int op, const floating *x, floating *y, Py_ssize_t rows, Py_ssize_t n,
                      Py_ssize_t ldy, int nt) noexcept:
    cdef Py_ssize_t r
    with nogil:
        for r in range(rows):
            _split_row(op, x + r * n, y + r * ldy, n, nt)


cdef void _contiguous(int op, const floating *x, floating *y, Py_ssize_t rows, Py_ssize_t n,
                      Py_ssize_t ldy, int nt) noexcept:
    cdef Py_ssize_t c
    if nt == 1:
        with nogil:
            _fwd_rows(op, x, n, y, ldy, rows, n)
        return
    for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
        _fwd_rows(op, x + (rows * c // nt) * n, n, y + (rows * c // nt) * ldy, ldy,
                  rows * (c + 1) // nt - rows * c // nt, n)


def xent_targets(cnp.ndarray t, Py_ssize_t n, long long ignore_index, weight):
    """Class index targets for the kernel, checked, in one pass.

    `t`: a C-contiguous int64 array; `weight`: None or a C-contiguous
    float64 array of n entries.  Returns ``(tk, kept, wsum, bad)``: tk an
    int64 copy of t with -1 where t is ignore_index, the number of kept
    targets, the sum of their weights (their number without weights), and
    None, or the first index (in C order) that is out of range and not
    ignore_index, in which case tk is not complete."""
    cdef Py_ssize_t i, size = cnp.PyArray_SIZE(t), kept = 0
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(t), cnp.PyArray_DIMS(t),
                                             cnp.NPY_INT64, 0)
    cdef const int64_t *src = <const int64_t *>cnp.PyArray_DATA(t)
    cdef int64_t *dst = <int64_t *>cnp.PyArray_DATA(out)
    cdef const double *w = NULL
    cdef double wsum = 0.0
    cdef int64_t v
    if weight is not None:
        w = <const double *>cnp.PyArray_DATA(<cnp.ndarray>weight)
    for i in range(size):
        v = src[i]
        if v == ignore_index:
            dst[i] = -1
        elif 0 <= v < n:
            dst[i] = v
            kept += 1
            if w != NULL:
                wsum += w[v]
        else:
            return out, kept, wsum, v
    return out, kept, (wsum if w != NULL else <double>kept), None


def same_view(cnp.ndarray a, cnp.ndarray b):
    """Whether a and b are views of the same elements in the same layout
    (data pointer, shape and strides equal): an output that may be
    written in place over an input."""
    cdef int d, nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_DATA(a) != cnp.PyArray_DATA(b) or cnp.PyArray_NDIM(b) != nd:
        return False
    for d in range(nd):
        if (cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d)
                or (cnp.PyArray_DIM(a, d) > 1
                    and cnp.PyArray_STRIDE(a, d) != cnp.PyArray_STRIDE(b, d))):
            return False
    return True


def max_threads():
    """OpenMP's current default team size (honours OMP_NUM_THREADS and
    threadpoolctl); 1 without OpenMP."""
    return omp_get_max_threads()


def build_facts():
    """What only the compiled module knows, for build_info()."""
    cdef int level = sc_simd_level()
    cdef int compiled = sc_simd_compiled()
    return {
        "openmp": bool(SC_HAVE_OPENMP),
        "simd": sc_simd_name(level).decode(),
        "simd_supported": sc_simd_name(sc_simd_supported()).decode(),
        "simd_compiled": [sc_simd_name(l).decode() for l in range(3) if compiled & (1 << l)],
        "cflags": SC_CFLAGS.decode(),
    }
