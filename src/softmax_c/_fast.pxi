# The hot paths (textually part of _kernels.pyx): softmax, log_softmax,
# logsumexp and the backward products of C-contiguous arrays along the last
# axis, straight to the row kernels.  Their rules are written here once:
# _api.py calls fast / fast_backward first, with the call's own arguments,
# and takes the general path on None (which also owns every error message).
# A call takes a hot path when
#   - axis is the int -1 and nthreads >= 0 (0: the default count; _api.py
#     passes -1 for a num_threads the general path must check); where= and
#     keepdims= are not arguments of the hot paths: _api.py calls them only
#     without;
#   - every input is an exact ndarray (no subclass), C-contiguous, aligned,
#     native-order float32, float64, float16 or bfloat16 (once the general
#     path has seen bfloat16 and noted its dtype number: note_bfloat16),
#     not 0-d; the backward products' two inputs are of one dtype and
#     shape, and not empty;
#   - `out` is None, or such an array of the inputs' dtype and shape,
#     writeable, that is one of the inputs or overlaps none of them
#     (logsumexp: None only).

# ml_dtypes' bfloat16 has a dtype number of its own, given at its
# registration: -1 until the general path has recognised one (by name).
cdef int _BF16_NUM = -1


def note_bfloat16(int num):
    """Record bfloat16's dtype number, so that the hot paths take it."""
    global _BF16_NUM
    _BF16_NUM = num


cdef inline int _half_kind_of(int typenum) noexcept:
    """0 for float16, 1 for bfloat16, -1 for every other dtype number."""
    if typenum == cnp.NPY_FLOAT16:
        return 0
    if typenum == _BF16_NUM:
        return 1
    return -1


cdef inline bint _plain(cnp.ndarray a, int typenum) noexcept:
    """a is C-contiguous, aligned, native-order, of dtype typenum."""
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


cdef inline bint _fast_call(axis, int nthreads):
    """The call's own arguments allow a hot path."""
    return nthreads >= 0 and type(axis) is int and axis == -1


cdef inline int _fast_input(x, bint halves) noexcept:
    """x's dtype number if x may be an input of a hot path, else -1;
    float16/bfloat16 only for a caller whose kernels take them (`halves`)."""
    if not cnp.PyArray_CheckExact(x):
        return -1
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(a)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64
             and (not halves or _half_kind_of(typenum) < 0))
            or cnp.PyArray_NDIM(a) == 0 or not _plain(a, typenum)):
        return -1
    return typenum


cdef inline bint _disjoint(cnp.ndarray a, cnp.ndarray b) noexcept:
    """The byte ranges of two C-contiguous arrays do not overlap."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return not (pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a))


cdef inline bint _fast_out(out, cnp.ndarray x, cnp.ndarray v) noexcept:
    """`out` (not None) may take a hot path's result for the inputs x and v
    (v is x for the forward operations): the result's dtype is x's."""
    if not cnp.PyArray_CheckExact(out):
        return False
    cdef cnp.ndarray y = <cnp.ndarray>out
    return (_plain(y, cnp.PyArray_TYPE(x)) and cnp.PyArray_ISWRITEABLE(y)
            and cnp.PyArray_SAMESHAPE(x, y)
            and (cnp.PyArray_DATA(y) == cnp.PyArray_DATA(x) or _disjoint(x, y))
            and (cnp.PyArray_DATA(y) == cnp.PyArray_DATA(v) or _disjoint(v, y)))


def fast(int op, x, axis, out, int nthreads):
    """Forward op along the last axis of x by the hot path, into `out` or a
    new array (for logsumexp, of x's shape without the last axis); None
    where the rules above do not hold."""
    if not _fast_call(axis, nthreads):
        return None
    cdef int typenum = _fast_input(x, True)
    if typenum < 0:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray y
    cdef int nd = cnp.PyArray_NDIM(a)
    if out is None:
        y = _new_out(nd - 1 if op == SC_OP_LOGSUMEXP else nd, cnp.PyArray_DIMS(a), typenum)
    elif op == SC_OP_LOGSUMEXP or not _fast_out(out, a, a):
        return None
    else:
        y = <cnp.ndarray>out
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, nd - 1)
    if n == 0 or cnp.PyArray_SIZE(a) == 0:
        if op == SC_OP_LOGSUMEXP and cnp.PyArray_SIZE(y):
            y.fill(-float("inf"))
        return y
    cdef Py_ssize_t rows = cnp.PyArray_SIZE(a) // n
    cdef Py_ssize_t ldy = 1 if op == SC_OP_LOGSUMEXP else n
    cdef int req = nthreads if nthreads > 0 else _threads_default()
    cdef int kind = _half_kind_of(typenum)
    cdef int nt
    if kind >= 0:
        _half_contiguous(op, kind, <const uint16_t *>cnp.PyArray_DATA(a),
                         <uint16_t *>cnp.PyArray_DATA(y), rows, n, ldy,
                         _threads_for(rows * n * 2, rows, req))
        return y
    nt = _split_threads(op, rows, n, cnp.PyArray_ITEMSIZE(a), req)
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


def fast_backward(int op, a, b, axis, out, int nthreads):
    """Backward product op along the last axis of (a, b) by the hot path,
    into `out` or a new array; None where the rules above do not hold."""
    if not _fast_call(axis, nthreads):
        return None
    cdef int typenum = _fast_input(a, True)
    if typenum < 0 or _fast_input(b, True) != typenum:
        return None
    cdef cnp.ndarray x = <cnp.ndarray>a
    cdef cnp.ndarray v = <cnp.ndarray>b
    cdef cnp.ndarray y
    if cnp.PyArray_SIZE(x) == 0 or not cnp.PyArray_SAMESHAPE(x, v):
        return None
    if out is None:
        y = _new_out(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), typenum)
    elif not _fast_out(out, x, v):
        return None
    else:
        y = <cnp.ndarray>out
    cdef int kind = _half_kind_of(typenum)
    cdef Py_ssize_t n, rows
    cdef Job job
    if kind >= 0:
        n = cnp.PyArray_DIM(x, cnp.PyArray_NDIM(x) - 1)
        rows = cnp.PyArray_SIZE(x) // n
        _half_bwd_contiguous(op, kind, <const uint16_t *>cnp.PyArray_DATA(x),
                             <const uint16_t *>cnp.PyArray_DATA(v),
                             <uint16_t *>cnp.PyArray_DATA(y), rows, n,
                             _threads_for(rows * n * 2, rows,
                                          nthreads if nthreads > 0 else _threads_default()))
        return y
    job.op = op
    _run(&job, (x, v, y), cnp.PyArray_NDIM(x) - 1, 0,
         nthreads if nthreads > 0 else _threads_default())
    return y


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
