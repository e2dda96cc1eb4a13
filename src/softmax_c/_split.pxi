# One row across threads (textually part of _kernels.pyx): when a call has
# fewer rows than threads, each long row is cut into pieces at multiples of
# the kernels' chunk, by softmax_c.h's recipes, bitwise the one-thread
# result.

cdef double INFINITY_ = float("inf")

# One row is split across two threads from this many elements (each thread
# then has at least half): below it the three short parallel regions of a
# split cost more than they save (docs/performance.md, MIN_SPLIT_ELEMENTS).
cdef Py_ssize_t MIN_SPLIT_ELEMENTS_F32 = 40000
cdef Py_ssize_t MIN_SPLIT_ELEMENTS_F64 = 14000
# The same for the backward products, whose elements cost less (no exp),
# so a split pays only on longer rows (docs/performance.md,
# MIN_SPLIT_BWD_ELEMENTS).
cdef Py_ssize_t MIN_SPLIT_BWD_ELEMENTS_F32 = 56000
cdef Py_ssize_t MIN_SPLIT_BWD_ELEMENTS_F64 = 36000


cdef inline int _split_threads(int op, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t isz,
                               int requested) noexcept nogil:
    """Threads to split each row across, or 1 for row-parallel/serial work:
    rows fewer than the threads asked for, and at least half of the
    MIN_SPLIT_* elements of the row per thread (the cross-entropy, a
    forward pass with a cheap last sweep, takes the forward's)."""
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
    # MAXA: _xent_kernel's type admits the options' lse operand, never
    # set on a split row
    cdef char *ptr[MAXA]
    cdef Py_ssize_t ld[MAXA]
    ptr[5] = NULL
    ld[5] = 0
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
