# The hot paths (textually part of _kernels.pyx).

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
