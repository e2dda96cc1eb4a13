# Half-width storage (textually part of _kernels.pyx): float16 and
# bfloat16 inputs through the kernels of csrc/family/half.h, which read them
# as they are (no float32 copy) and write the input's dtype or float32.
# The same plans as _plan.pxi (rows, cols, gather); the gather layout
# gathers the half-width row into a per-thread buffer of its own dtype.
# One long row is not split across threads here.

from libc.stdint cimport uint16_t

# Rows longer than this keep their exponentials in a scratch row of ours
# (softmax_rows_ws): csrc/family/half.h's SC_HALF_BUF, its stack buffer.
DEF HALF_BUF = 8192


cdef void _half_call(int op, bint cols, int kind, bint o32, const uint16_t *x, Py_ssize_t ldx,
                     char *y, Py_ssize_t ldy, size_t a, size_t b) noexcept nogil:
    """The half-width kernel of op, layout, input kind (0 float16, 1
    bfloat16) and output (o32: float32, else the input's dtype)."""
    cdef float *work
    if cols == 0 and o32 == 0 and op == SC_OP_SOFTMAX and b > HALF_BUF:
        # a scratch row for the exponentials, evaluated twice without it
        # (no memory: the same results, slower)
        work = <float *>malloc(b * sizeof(float))
        if kind == 0:
            sc_softmax_rows_ws_f16(x, ldx, <uint16_t *>y, ldy, a, b, work,
                                   b if work != NULL else 0)
        else:
            sc_softmax_rows_ws_bf16(x, ldx, <uint16_t *>y, ldy, a, b, work,
                                    b if work != NULL else 0)
        free(work)
    elif cols == 0 and o32 == 0 and kind == 0 and op == SC_OP_SOFTMAX:
        sc_softmax_rows_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 0 and kind == 0 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_rows_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 0 and kind == 0 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_rows_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 0 and kind == 1 and op == SC_OP_SOFTMAX:
        sc_softmax_rows_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 0 and kind == 1 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_rows_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 0 and kind == 1 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_rows_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 0 and op == SC_OP_SOFTMAX:
        sc_softmax_rows_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 0 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_rows_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 0 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_rows_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 1 and op == SC_OP_SOFTMAX:
        sc_softmax_rows_to32_bf16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 1 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_rows_to32_bf16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 0 and o32 == 1 and kind == 1 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_rows_to32_bf16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 0 and op == SC_OP_SOFTMAX:
        sc_softmax_cols_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 0 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_cols_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 0 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_cols_f16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 1 and op == SC_OP_SOFTMAX:
        sc_softmax_cols_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 1 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_cols_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 0 and kind == 1 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_cols_bf16(x, ldx, <uint16_t *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 0 and op == SC_OP_SOFTMAX:
        sc_softmax_cols_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 0 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_cols_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 0 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_cols_to32_f16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 1 and op == SC_OP_SOFTMAX:
        sc_softmax_cols_to32_bf16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 1 and op == SC_OP_LOG_SOFTMAX:
        sc_log_softmax_cols_to32_bf16(x, ldx, <float *>y, ldy, a, b)
    elif cols == 1 and o32 == 1 and kind == 1 and op == SC_OP_LOGSUMEXP:
        sc_logsumexp_cols_to32_bf16(x, ldx, <float *>y, ldy, a, b)


cdef struct HalfJob:
    int op
    int kind
    bint o32


cdef void _half_rows_range(const HalfJob *job, char **base, const Plan *p, Py_ssize_t g0,
                           Py_ssize_t g1) noexcept nogil:
    """Rows g0..g1 of the batch, in runs of equally spaced rows (as
    _rows_range)."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t step[MAXA]
    cdef Py_ssize_t R = p.bsize[p.nb - 1] if p.nb else 1
    cdef Py_ssize_t g = g0, r, seg
    cdef int a
    for a in range(2):
        step[a] = p.bst[a][p.nb - 1] if p.nb else 0
    while g < g1:
        r = g % R
        seg = R - r
        if seg > g1 - g:
            seg = g1 - g
        _offsets(p, g // R, p.nb - 1 if p.nb else 0, off)
        _half_call(job.op, False, job.kind, job.o32,
                   <const uint16_t *>(base[0] + off[0] + r * step[0]), step[0] // p.isz[0],
                   base[1] + off[1] + r * step[1], step[1] // p.isz[1], seg, p.n)
        g += seg


cdef void _half_cols_item(const HalfJob *job, char **base, const Plan *p, Py_ssize_t it,
                          Py_ssize_t nblk) noexcept nogil:
    """Column block it % nblk of panel it // nblk."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t j0 = (it % nblk) * COL_BLOCK, w = p.m - j0
    if w > COL_BLOCK:
        w = COL_BLOCK
    _offsets(p, it // nblk, p.nb, off)
    _half_call(job.op, True, job.kind, job.o32,
               <const uint16_t *>(base[0] + off[0] + j0 * p.isz[0]), p.ax[0],
               base[1] + off[1] + j0 * p.isz[1], p.ax[1], p.n, w)


cdef void _half_gather_row(const HalfJob *job, char **base, const Plan *p, Py_ssize_t r,
                           char *buf) noexcept nogil:
    """Row r through buf (n half-width inputs, then n outputs): gather,
    compute, scatter (logsumexp's output is written in place)."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t i, n = p.n
    cdef uint16_t *xin = <uint16_t *>buf
    cdef char *yrow = buf + ((2 * n + 63) // 64) * 64
    cdef const uint16_t *src
    _offsets(p, r, p.nb, off)
    src = <const uint16_t *>(base[0] + off[0])
    for i in range(n):
        xin[i] = src[i * p.ax[0]]
    if job.op == SC_OP_LOGSUMEXP:
        _half_call(job.op, False, job.kind, job.o32, xin, n, base[1] + off[1], 1, 1, n)
        return
    _half_call(job.op, False, job.kind, job.o32, xin, n, yrow, n, 1, n)
    if job.o32:
        for i in range(n):
            (<float *>(base[1] + off[1]))[i * p.ax[1]] = (<float *>yrow)[i]
    else:
        for i in range(n):
            (<uint16_t *>(base[1] + off[1]))[i * p.ax[1]] = (<uint16_t *>yrow)[i]


def forward_half(int op, cnp.ndarray x, cnp.ndarray y, int k, int kind, int nthreads):
    """Unary op along axis k of x (float16, kind 0, or bfloat16, kind 1;
    not empty) into y (x's dtype or float32; for logsumexp length 1 along
    k).  y is x (same strides) or overlaps it nowhere."""
    cdef HalfJob job
    cdef Plan p
    cdef char *base[MAXA]
    cdef Py_ssize_t rows, it, r, c, nblk
    cdef int nt
    cdef char *buf = NULL
    cdef int failed = 0
    cdef int *pfailed = &failed
    job.op = op
    job.kind = kind
    job.o32 = cnp.PyArray_ITEMSIZE(y) == 4
    _plan(&p, (x, y), k, 2 if op == SC_OP_LOGSUMEXP else 0, True)
    base[0] = <char *>cnp.PyArray_DATA(x)
    base[1] = <char *>cnp.PyArray_DATA(y)
    rows = p.count
    nblk = (p.m + COL_BLOCK - 1) // COL_BLOCK
    if p.mode == ROWS:
        nt = _threads_for(rows * p.n * 2, rows, nthreads)
        if nt == 1:
            with nogil:
                _half_rows_range(&job, base, &p, 0, rows)
        else:
            for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
                _half_rows_range(&job, base, &p, rows * c // nt, rows * (c + 1) // nt)
    elif p.mode == COLS:
        nt = _threads_for(rows * p.n * p.m * 2, rows * nblk, nthreads)
        if nt == 1:
            with nogil:
                for it in range(rows * nblk):
                    _half_cols_item(&job, base, &p, it, nblk)
        else:
            for it in prange(rows * nblk, nogil=True, schedule='static', num_threads=nt):
                _half_cols_item(&job, base, &p, it, nblk)
    else:
        nt = _threads_for(rows * p.n * 2, rows, nthreads)
        with nogil, parallel(num_threads=nt):
            buf = <char *> malloc(6 * p.n + 128)
            if buf == NULL:
                pfailed[0] = 1
            else:
                for r in prange(rows, schedule='static'):
                    _half_gather_row(&job, base, &p, r, buf)
                free(buf)
        if failed:
            raise MemoryError(f"softmax_c: could not allocate row buffers of {p.n} elements")


# The backward products of half-width operands (csrc/family/backward.h with
# half-width storage): y or logp, v or g and the result all of one
# half-width dtype, by layout, input kind and operation; filled at import.
ctypedef void (*bwd_h)(const uint16_t *, ptrdiff_t, const uint16_t *, ptrdiff_t, uint16_t *,
                       ptrdiff_t, size_t, size_t) noexcept nogil

cdef bwd_h _BWD_H[2][2][SC_OP_COUNT]     # [ROWS or COLS][kind][op]


cdef void _set_bwd_h(int layout, int op, bwd_h f16, bwd_h bf16) noexcept:
    _BWD_H[layout][0][op] = f16
    _BWD_H[layout][1][op] = bf16


cdef void _fill_half_tables() noexcept:
    memset(_BWD_H, 0, sizeof(_BWD_H))
    _set_bwd_h(ROWS, SC_OP_SOFTMAX_JVP, sc_softmax_jvp_rows_f16, sc_softmax_jvp_rows_bf16)
    _set_bwd_h(ROWS, SC_OP_LOG_SOFTMAX_JVP, sc_log_softmax_jvp_rows_f16,
               sc_log_softmax_jvp_rows_bf16)
    _set_bwd_h(ROWS, SC_OP_LOG_SOFTMAX_VJP, sc_log_softmax_vjp_rows_f16,
               sc_log_softmax_vjp_rows_bf16)
    _set_bwd_h(COLS, SC_OP_SOFTMAX_JVP, sc_softmax_jvp_cols_f16, sc_softmax_jvp_cols_bf16)
    _set_bwd_h(COLS, SC_OP_LOG_SOFTMAX_JVP, sc_log_softmax_jvp_cols_f16,
               sc_log_softmax_jvp_cols_bf16)
    _set_bwd_h(COLS, SC_OP_LOG_SOFTMAX_VJP, sc_log_softmax_vjp_cols_f16,
               sc_log_softmax_vjp_cols_bf16)


_fill_half_tables()


cdef void _half_bwd_rows_range(const HalfJob *job, char **base, const Plan *p, Py_ssize_t g0,
                               Py_ssize_t g1) noexcept nogil:
    """Rows g0..g1 of the batch, in runs of equally spaced rows (as
    _rows_range); operands a, b, out."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t step[MAXA]
    cdef Py_ssize_t R = p.bsize[p.nb - 1] if p.nb else 1
    cdef Py_ssize_t g = g0, r, seg
    cdef int a
    cdef bwd_h f = _BWD_H[<int>ROWS][job.kind][job.op]
    for a in range(3):
        step[a] = p.bst[a][p.nb - 1] if p.nb else 0
    while g < g1:
        r = g % R
        seg = R - r
        if seg > g1 - g:
            seg = g1 - g
        _offsets(p, g // R, p.nb - 1 if p.nb else 0, off)
        f(<const uint16_t *>(base[0] + off[0] + r * step[0]), step[0] // 2,
          <const uint16_t *>(base[1] + off[1] + r * step[1]), step[1] // 2,
          <uint16_t *>(base[2] + off[2] + r * step[2]), step[2] // 2, seg, p.n)
        g += seg


cdef void _half_bwd_cols_item(const HalfJob *job, char **base, const Plan *p, Py_ssize_t it,
                              Py_ssize_t nblk) noexcept nogil:
    """Column block it % nblk of panel it // nblk."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t j0 = (it % nblk) * COL_BLOCK, w = p.m - j0
    if w > COL_BLOCK:
        w = COL_BLOCK
    _offsets(p, it // nblk, p.nb, off)
    _BWD_H[<int>COLS][job.kind][job.op](
        <const uint16_t *>(base[0] + off[0] + j0 * 2), p.ax[0],
        <const uint16_t *>(base[1] + off[1] + j0 * 2), p.ax[1],
        <uint16_t *>(base[2] + off[2] + j0 * 2), p.ax[2], p.n, w)


cdef void _half_bwd_gather_row(const HalfJob *job, char **base, const Plan *p, Py_ssize_t r,
                               uint16_t *buf) noexcept nogil:
    """Row r through buf (two rows of n): gather a and b, compute in place
    of b's row (every backward kernel may write over its second operand),
    scatter."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t i, n = p.n
    cdef uint16_t *ra = buf
    cdef uint16_t *rb = buf + n
    cdef const uint16_t *sa
    cdef const uint16_t *sb
    cdef uint16_t *so
    _offsets(p, r, p.nb, off)
    sa = <const uint16_t *>(base[0] + off[0])
    sb = <const uint16_t *>(base[1] + off[1])
    so = <uint16_t *>(base[2] + off[2])
    for i in range(n):
        ra[i] = sa[i * p.ax[0]]
        rb[i] = sb[i * p.ax[1]]
    _BWD_H[<int>ROWS][job.kind][job.op](ra, n, rb, n, rb, n, 1, n)
    for i in range(n):
        so[i * p.ax[2]] = rb[i]


def backward_half(int op, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int k, int kind,
                  int nthreads):
    """Backward product op along axis k of (a, b) into out, all float16
    (kind 0) or all bfloat16 (kind 1), native and aligned, one shape, not
    empty; out is a, b (same strides) or overlaps neither.  One long row
    is not split across threads."""
    cdef HalfJob job
    cdef Plan p
    cdef char *base[MAXA]
    cdef Py_ssize_t rows, it, r, c, nblk
    cdef int nt
    cdef uint16_t *buf = NULL
    cdef int failed = 0
    cdef int *pfailed = &failed
    job.op = op
    job.kind = kind
    job.o32 = False
    _plan(&p, (a, b, out), k, 0, True)
    base[0] = <char *>cnp.PyArray_DATA(a)
    base[1] = <char *>cnp.PyArray_DATA(b)
    base[2] = <char *>cnp.PyArray_DATA(out)
    rows = p.count
    nblk = (p.m + COL_BLOCK - 1) // COL_BLOCK
    if p.mode == ROWS:
        nt = _threads_for(rows * p.n * 2, rows, nthreads)
        if nt == 1:
            with nogil:
                _half_bwd_rows_range(&job, base, &p, 0, rows)
        else:
            for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
                _half_bwd_rows_range(&job, base, &p, rows * c // nt, rows * (c + 1) // nt)
    elif p.mode == COLS:
        nt = _threads_for(rows * p.n * p.m * 2, rows * nblk, nthreads)
        if nt == 1:
            with nogil:
                for it in range(rows * nblk):
                    _half_bwd_cols_item(&job, base, &p, it, nblk)
        else:
            for it in prange(rows * nblk, nogil=True, schedule='static', num_threads=nt):
                _half_bwd_cols_item(&job, base, &p, it, nblk)
    else:
        nt = _threads_for(rows * p.n * 2, rows, nthreads)
        with nogil, parallel(num_threads=nt):
            buf = <uint16_t *> malloc(4 * p.n + 16)
            if buf == NULL:
                pfailed[0] = 1
            else:
                for r in prange(rows, schedule='static'):
                    _half_bwd_gather_row(&job, base, &p, r, buf)
                free(buf)
        if failed:
            raise MemoryError(f"softmax_c: could not allocate row buffers of {p.n} elements")


cdef void _half_contiguous(int op, int kind, const uint16_t *x, uint16_t *y, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t ldy, int nt) noexcept:
    """The hot path's forward op (_fast.pxi) on C-contiguous half-width rows
    into y (the input's dtype; logsumexp: ldy 1), rows split among nt
    threads."""
    cdef Py_ssize_t c, r0, r1
    if nt == 1:
        with nogil:
            _half_call(op, False, kind, False, x, n, <char *>y, ldy, rows, n)
        return
    for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
        r0 = rows * c // nt
        r1 = rows * (c + 1) // nt
        _half_call(op, False, kind, False, x + r0 * n, n, <char *>(y + r0 * ldy), ldy, r1 - r0,
                   n)


cdef void _half_bwd_contiguous(int op, int kind, const uint16_t *a, const uint16_t *b,
                               uint16_t *out, Py_ssize_t rows, Py_ssize_t n, int nt) noexcept:
    """The hot path's backward product op on C-contiguous half-width rows,
    rows split among nt threads."""
    cdef Py_ssize_t c, r0, r1
    cdef bwd_h f = _BWD_H[<int>ROWS][kind][op]
    if nt == 1:
        with nogil:
            f(a, n, b, n, out, n, rows, n)
        return
    for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
        r0 = rows * c // nt
        r1 = rows * (c + 1) // nt
        f(a + r0 * n, n, b + r0 * n, n, out + r0 * n, n, r1 - r0, n)
