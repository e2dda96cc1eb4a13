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


cdef int _fz_run(_fz_job *j, int op, Py_ssize_t B, size_t ybytes, int nthreads) except -1:
    """Run the job (x .. k, f32, nb, bshape, bst, Q, N, ldx, ldy and p's
    option fields filled; B the product of bshape): p.op and p.stream
    set here, the rows' chunks shared among threads."""
    cdef Py_ssize_t R = B * j.Q, N = j.N, nchunks, c, Q = j.Q
    cdef int nt, failed = 0
    cdef void *work = NULL
    j.p.op = (sck.SC_FUSED_SOFTMAX if op == SC_OP_SOFTMAX else
              sck.SC_FUSED_LOG_SOFTMAX if op == SC_OP_LOG_SOFTMAX else sck.SC_FUSED_LOGSUMEXP)
    cdef size_t isz = 4 if j.f32 else 8
    j.p.stream = op != SC_OP_LOGSUMEXP and ybytes >= 4 * 1024 * 1024 and N * isz >= 1024
    if R == 0 or N == 0:
        return 0
    # work: logsumexp with softcap (z, a row); a large output's rows, made
    # in it before they are streamed out (family/fused.h: two rows of
    # whole lines and a line to align them, as sc_pipe_work)
    cdef size_t lw = 64 // isz
    cdef size_t wlen = 0
    if j.p.stream:
        wlen = (2 * ((<size_t>N + lw - 1) // lw * lw) + lw) * isz
    elif op == SC_OP_LOGSUMEXP and j.p.softcap > 0:
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
                _fz_chunk(j, c, work)
        free(work)
    else:
        with nogil, parallel(num_threads=nt):
            work = malloc(wlen) if wlen else NULL
            for c in prange(nchunks, schedule="static", chunksize=1):
                if wlen and work == NULL:
                    failed = 1
                else:
                    _fz_chunk(j, c, work)
            free(work)
        if failed:
            raise MemoryError("softmax_c: no memory for a work row")
    return 0


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
    cdef Py_ssize_t B = 1
    cdef int d
    j.nb = <int>cnp.PyArray_DIM(bshape, 0)
    j.bshape = <const int64_t *>cnp.PyArray_DATA(bshape)
    j.bst = <const int64_t *>cnp.PyArray_DATA(bst)
    for d in range(j.nb):
        B *= j.bshape[d]
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
    _fz_run(&j, op, B, <size_t>cnp.PyArray_NBYTES(y), nthreads)


# ---- the hot path of the fused options ---------------------------------
# _api.py calls fast_fused first, with the call's own arguments, and takes
# the general path (_fused_api.py, which owns every error message) on None.
# It takes calls along the last axis (the int -1) of an exact, C-contiguous,
# aligned, native float32 / float64 ndarray of one or more elements, with
#   scale, softcap, sink: None or a Python float (NumPy's float64 too) or
#     int (not a bool) that the general path accepts (softcap > 0 and
#     finite, scale finite, sink not NaN nor +inf); scale and sink also an
#     exact, C-contiguous, aligned ndarray of x's dtype and shape without
#     the last axis (one value a row), every value so;
#   bias: None or an exact, C-contiguous, aligned ndarray of x's dtype whose
#     shape is x's last bias.ndim dims (bias.ndim >= 1);
#   causal: None, a bool or an int (not on a 1-d x);
#   out: as _fast.pxi's rules, and overlapping no bias nor per-row array;
# where=, keepdims= and logsumexp's b= / return_sign= are not arguments.

cdef inline bint _fz_number(v, double *out, int kind) noexcept:
    """v is a Python float (or a subclass: NumPy's float64) or int (not a
    bool) in the range of kind (0: finite, 1: > 0 and finite, 2: not NaN
    nor +inf); its value to out."""
    cdef double d
    if isinstance(v, float):
        d = <double>v
    elif type(v) is int:
        try:
            d = <double>v
        except OverflowError:
            return False
    else:
        return False
    out[0] = d
    if kind == 0:
        return -INFINITY_ < d < INFINITY_
    if kind == 1:
        return 0.0 < d < INFINITY_
    return d == d and d != INFINITY_


cdef char *_fz_rows(v, cnp.ndarray a, int typenum, int kind):
    """The data of v when it is a per-row array the hot path takes (see
    above; kind as _fz_number's, 0 or 2), else NULL."""
    if not cnp.PyArray_CheckExact(v):
        return NULL
    cdef cnp.ndarray r = <cnp.ndarray>v
    cdef int nd = cnp.PyArray_NDIM(a), d
    if nd < 2 or cnp.PyArray_NDIM(r) != nd - 1 or not _plain(r, typenum):
        return NULL
    for d in range(nd - 1):
        if cnp.PyArray_DIM(r, d) != cnp.PyArray_DIM(a, d):
            return NULL
    cdef Py_ssize_t i, m = cnp.PyArray_SIZE(r)
    cdef double e
    for i in range(m):
        e = ((<float *>cnp.PyArray_DATA(r))[i] if typenum == cnp.NPY_FLOAT32
             else (<double *>cnp.PyArray_DATA(r))[i])
        if kind == 0 and not (-INFINITY_ < e < INFINITY_):
            return NULL
        if kind == 2 and (e != e or e == INFINITY_):
            return NULL
    return <char *>cnp.PyArray_DATA(r)


def fast_fused(int op, x, axis, out, int nthreads, dict options):
    """op with the fused options in `options` (fused_options' dict) by the
    hot path, into `out` or a new array; None where the rules above do not
    hold."""
    if not _fast_call(axis, nthreads):
        return None
    cdef int typenum = _fast_input(x, False)
    if typenum < 0:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray y, bm
    cdef _fz_job j
    cdef double v
    cdef int nd = cnp.PyArray_NDIM(a), bnd = 0, d
    cdef Py_ssize_t N = cnp.PyArray_DIM(a, nd - 1), size = cnp.PyArray_SIZE(a)
    cdef Py_ssize_t Q, B, Bb = 1
    cdef int64_t bshape[2]
    cdef int64_t bst[10]
    if N == 0 or size == 0:
        return None
    scale, softcap, bias = options["scale"], options["softcap"], options["bias"]
    causal, sink = options["causal"], options["sink"]
    j.p.scale = 1.0
    j.p.softcap = 0.0
    j.p.has_sink = 0
    j.p.sink = 0.0
    j.p.causal = 0
    j.p.causal_k = 0
    j.s = NULL
    j.k = NULL
    if scale is not None and not _fz_number(scale, &j.p.scale, 0):
        j.s = _fz_rows(scale, a, typenum, 0)
        if j.s == NULL:
            return None
    if softcap is not None and not _fz_number(softcap, &j.p.softcap, 1):
        return None
    if sink is not None:
        if not _fz_number(sink, &j.p.sink, 2):
            j.k = _fz_rows(sink, a, typenum, 2)
            if j.k == NULL:
                return None
        j.p.has_sink = 1
    if causal is not None and causal is not False:
        if nd < 2:
            return None
        if causal is True:
            j.p.causal_k = N - cnp.PyArray_DIM(a, nd - 2)
        elif type(causal) is int and -N <= causal <= N:
            j.p.causal_k = causal
        else:
            return None
        # a causal mask that keeps every key of the first query keeps all
        j.p.causal = j.p.causal_k < N - 1
    j.b = NULL
    j.p.ld_bias = 0
    j.p.inc_bias = 1
    if bias is not None:
        if not cnp.PyArray_CheckExact(bias):
            return None
        bm = <cnp.ndarray>bias
        bnd = cnp.PyArray_NDIM(bm)
        if bnd < 1 or bnd > nd or not _plain(bm, typenum):
            return None
        for d in range(1, bnd + 1):
            if cnp.PyArray_DIM(bm, bnd - d) != cnp.PyArray_DIM(a, nd - d):
                return None
        j.b = <char *>cnp.PyArray_DATA(bm)
    if out is None:
        y = _new_out(nd - 1 if op == SC_OP_LOGSUMEXP else nd, cnp.PyArray_DIMS(a), typenum)
    elif op == SC_OP_LOGSUMEXP or not _fast_out(out, a, a):
        return None
    else:
        y = <cnp.ndarray>out
        if ((j.b != NULL and not _disjoint(bm, y))
                or (j.s != NULL and not _disjoint(<cnp.ndarray>scale, y))
                or (j.k != NULL and not _disjoint(<cnp.ndarray>sink, y))):
            return None
    # rows: blocks of Q rows when a causal mask or a bias of 2 or more dims
    # needs the query index, else one block of every row
    Q = size // N
    j.nb = 0
    if j.p.causal or bnd >= 2:
        Q = cnp.PyArray_DIM(a, nd - 2)
        B = size // (Q * N)
        if bnd >= 2:
            Bb = cnp.PyArray_SIZE(bm) // (Q * N)  # the bias's own blocks, innermost
            j.p.ld_bias = N
        # (outer, inner) block dims: x, y, bias, scale, sink strides
        j.nb = 2
        bshape[0] = B // Bb
        bshape[1] = Bb
        for d in range(10):
            bst[d] = 0
        bst[0] = Bb * Q * N
        bst[1] = Bb * Q * (1 if op == SC_OP_LOGSUMEXP else N)
        bst[3] = bst[4] = Bb * Q  # per-row scale and sink: one value a row
        bst[5] = Q * N
        bst[6] = Q * (1 if op == SC_OP_LOGSUMEXP else N)
        bst[7] = Q * N if Bb > 1 else 0
        bst[8] = bst[9] = Q
    elif bnd == 1:
        j.p.ld_bias = 0
    if j.nb == 0:
        B = 1
        bshape[0] = 1
        for d in range(5):
            bst[d] = 0
        j.nb = 1
    j.bshape = bshape
    j.bst = bst
    j.x = <char *>cnp.PyArray_DATA(a)
    j.y = <char *>cnp.PyArray_DATA(y)
    j.p.ld_scale = 1 if j.s != NULL else 0
    j.p.ld_sink = 1 if j.k != NULL else 0
    j.Q = Q
    j.N = N
    j.ldx = N
    j.ldy = 1 if op == SC_OP_LOGSUMEXP else N
    j.f32 = typenum == cnp.NPY_FLOAT32
    _fz_run(&j, op, B, <size_t>cnp.PyArray_NBYTES(y),
            nthreads if nthreads > 0 else _threads_default())
    return y


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
