# The kernels by operation (textually part of _kernels.pyx): tables of the
# forward and backward kernels by layout, operation and dtype, the
# cross-entropy's kernels, and _rows_kernel / _cols_kernel, which pick one
# for a Job.

cdef inline void _xent_kernel(const Job *job, char **p, const Py_ssize_t *ld, Py_ssize_t a,
                              Py_ssize_t b, bint panel, floating dummy) noexcept nogil:
    """sc_xent_rows (a rows of b classes) or, for a panel, sc_xent_cols (a
    classes by b columns): operands logits, q, grad, target, loss."""
    cdef const floating *q = <floating *>p[1] if job.has_q else NULL
    cdef floating *g = <floating *>p[2] if job.has_g else NULL
    cdef size_t w = 0
    cdef void *work = NULL
    if job.opts:
        # the capped row's scratch (sc_xent_opt_rows); without memory its
        # outputs are NaN (n elements per call: as a gathered row's buffer)
        w = b if job.opt.softcap > 0.0 else 0
        work = malloc(w * sizeof(floating)) if w else NULL
        if floating is float:
            sc_xent_opt_rows_f32(<float *>p[0], ld[0], q, ld[1], <int64_t *>p[3], ld[3], g, ld[2],
                                 <double *>p[4], ld[4], <double *>p[5], ld[5], a, b, &job.prm,
                                 &job.opt, <float *>work, w if work != NULL else 0)
        else:
            sc_xent_opt_rows_f64(<double *>p[0], ld[0], q, ld[1], <int64_t *>p[3], ld[3], g, ld[2],
                                 <double *>p[4], ld[4], <double *>p[5], ld[5], a, b, &job.prm,
                                 &job.opt, <double *>work, w if work != NULL else 0)
        free(work)
        return
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
    elif op == SC_OP_LOGSUMEXP_W:
        # operands x, b, out, sign; b's element stride 0 (one weight per
        # row) or 1 (contiguous, or gathered)
        if floating is float:
            sc_logsumexp_w_rows_f32(<float *>p[0], ld[0], <float *>p[1], ld[1],
                                    0 if job.bconst else 1, <float *>p[2], ld[2],
                                    <float *>p[3] if job.has_sign else NULL, ld[3], rows, n)
        else:
            sc_logsumexp_w_rows_f64(<double *>p[0], ld[0], <double *>p[1], ld[1],
                                    0 if job.bconst else 1, <double *>p[2], ld[2],
                                    <double *>p[3] if job.has_sign else NULL, ld[3], rows, n)
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
