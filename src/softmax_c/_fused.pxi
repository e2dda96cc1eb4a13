# The fused inference options (textually part of _kernels.pyx): softmax,
# log_softmax and logsumexp with scale, softcap, bias, causal and sink, by
# family/fused.h's kernel.  _api.py hands over the problem as blocks of Q
# rows of N contiguous elements (the query axis and the reduced axis), one
# block per batch index, each operand's block at its own element offset;
# chunks of rows of the blocks are shared among threads (static,
# round-robin: causal rows differ in length), with the GIL released.

cdef struct _fz_job:
    char *x
    char *y
    char *b
    char *s
    char *k
    const int64_t *bshape   # nb batch dims
    const int64_t *bst      # (nb, 5) element strides of the five operands
    int nb
    Py_ssize_t Q, N, qb, cpb
    ptrdiff_t ldx, ldy
    bint f32
    sck.sc_fused_params p


cdef inline void _fz_chunk(const _fz_job *j, Py_ssize_t c, void *work) noexcept nogil:
    cdef Py_ssize_t b = c // j.cpb, q0 = (c % j.cpb) * j.qb
    cdef Py_ssize_t rows = j.Q - q0, idx
    cdef int64_t o[5]
    cdef int d, e
    cdef size_t isz = 4 if j.f32 else 8
    if rows > j.qb:
        rows = j.qb
    for e in range(5):
        o[e] = 0
    for d in range(j.nb - 1, -1, -1):  # the block's index, C order
        idx = b % j.bshape[d]
        b = b // j.bshape[d]
        for e in range(5):
            o[e] += idx * j.bst[5 * d + e]
    cdef char *xb = j.x + (o[0] + q0 * j.ldx) * <Py_ssize_t>isz
    cdef char *yb = j.y + (o[1] + q0 * j.ldy) * <Py_ssize_t>isz
    cdef char *bb = j.b + (o[2] + q0 * j.p.ld_bias) * <Py_ssize_t>isz if j.b != NULL else NULL
    cdef char *sb = j.s + (o[3] + q0 * j.p.ld_scale) * <Py_ssize_t>isz if j.s != NULL else NULL
    cdef char *kb = j.k + (o[4] + q0 * j.p.ld_sink) * <Py_ssize_t>isz if j.k != NULL else NULL
    if j.f32:
        sc_fused_rows_f32(<const float *>xb, j.ldx, <float *>yb, j.ldy, rows, j.N,
                          <const float *>bb, <const float *>sb, <const float *>kb, q0, &j.p,
                          <float *>work)
    else:
        sc_fused_rows_f64(<const double *>xb, j.ldx, <double *>yb, j.ldy, rows, j.N,
                          <const double *>bb, <const double *>sb, <const double *>kb, q0, &j.p,
                          <double *>work)


cdef inline char *_fz_data(a):
    if a is None:
        return NULL
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


def fused(int op, cnp.ndarray x, cnp.ndarray y, bias, scale, sink, cnp.ndarray bshape,
          cnp.ndarray bst, Py_ssize_t Q, Py_ssize_t N, tuple lds, double scale_v, double softcap,
          Py_ssize_t inc_bias, bint causal, Py_ssize_t causal_k, bint has_sink, double sink_v,
          int nthreads):
    """op (SOFTMAX, LOG_SOFTMAX, LOGSUMEXP) with the fused options over
    blocks of Q rows of N elements, one per index of the batch shape
    `bshape` (a C-contiguous int64 array of nb dims; bst a C-contiguous
    int64 (nb, 5) array: each dim's stride in elements in x, y, bias,
    scale, sink); lds = the row strides in elements (same order).
    x, y, bias, scale and sink (arrays or None) of one dtype, float32 or
    float64, aligned, N > 0; y is x or overlaps no input.  logsumexp writes
    y[offset + row * ldy]."""
    cdef _fz_job j
    cdef Py_ssize_t B = 1, R, nchunks, c
    cdef int d
    j.nb = <int>cnp.PyArray_DIM(bshape, 0)
    j.bshape = <const int64_t *>cnp.PyArray_DATA(bshape)
    j.bst = <const int64_t *>cnp.PyArray_DATA(bst)
    for d in range(j.nb):
        B *= j.bshape[d]
    R = B * Q
    cdef int nt, failed = 0
    cdef void *work = NULL
    j.x = _fz_data(x)
    j.y = _fz_data(y)
    j.b = _fz_data(bias)
    j.s = _fz_data(scale)
    j.k = _fz_data(sink)
    j.Q = Q
    j.N = N
    j.ldx = lds[0]
    j.ldy = lds[1]
    j.f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    j.p.op = (sck.SC_FUSED_SOFTMAX if op == SC_OP_SOFTMAX else
              sck.SC_FUSED_LOG_SOFTMAX if op == SC_OP_LOG_SOFTMAX else sck.SC_FUSED_LOGSUMEXP)
    j.p.causal = causal
    j.p.causal_k = causal_k
    j.p.has_sink = has_sink
    j.p.sink = sink_v
    j.p.ld_sink = lds[4]
    j.p.scale = scale_v
    j.p.ld_scale = lds[3]
    j.p.softcap = softcap
    j.p.ld_bias = lds[2]
    j.p.inc_bias = inc_bias
    j.p.stream = (op != SC_OP_LOGSUMEXP and cnp.PyArray_NBYTES(y) >= 4 * 1024 * 1024
                  and N * (4 if j.f32 else 8) >= 1024)
    if R == 0 or N == 0:
        return
    cdef size_t isz = 4 if j.f32 else 8
    # work: logsumexp with softcap (z, a row); a large output's rows, made
    # in it before they are streamed out (family/fused.h: two rows of
    # whole lines and a line to align them, as sc_pipe_work)
    cdef size_t lw = 64 // isz
    cdef size_t wlen = 0
    if j.p.stream:
        wlen = (2 * ((<size_t>N + lw - 1) // lw * lw) + lw) * isz
    elif op == SC_OP_LOGSUMEXP and softcap > 0:
        wlen = <size_t>N * isz + 64
    nt = _threads_for(R * N * <Py_ssize_t>isz, R, nthreads)
    # chunks of rows: a few per thread, whole blocks when the blocks are many
    j.qb = Q
    if nt > 1 and B < 8 * nt:
        j.qb = (Q * B + 8 * nt - 1) // (8 * nt)
        if j.qb < 1:
            j.qb = 1
    j.cpb = (Q + j.qb - 1) // j.qb
    nchunks = B * j.cpb
    if nt > nchunks:
        nt = <int>nchunks
    if nt <= 1:
        if wlen:
            work = malloc(wlen)
            if work == NULL:
                raise MemoryError("softmax_c: no memory for a work row")
        with nogil:
            for c in range(nchunks):
                _fz_chunk(&j, c, work)
        free(work)
    else:
        with nogil, parallel(num_threads=nt):
            work = malloc(wlen) if wlen else NULL
            for c in prange(nchunks, schedule="static", chunksize=1):
                if wlen and work == NULL:
                    failed = 1
                else:
                    _fz_chunk(&j, c, work)
            free(work)
        if failed:
            raise MemoryError("softmax_c: no memory for a work row")


def tanh_rows(cnp.ndarray x, cnp.ndarray y):
    """y = the kernels' vector tanh of x (1-d, C-contiguous, same dtype
    float32 or float64): for the tests."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        sc_tanh_rows_f32(<const float *>cnp.PyArray_DATA(x), 0, <float *>cnp.PyArray_DATA(y), 0,
                         1, n)
    else:
        sc_tanh_rows_f64(<const double *>cnp.PyArray_DATA(x), 0, <double *>cnp.PyArray_DATA(y),
                         0, 1, n)
