# The block steps of softmax_c.dask (textually part of _kernels.pyx): a
# block's per-row states and its normalization against the rows' merged
# states, straight from the pieces' kernels (family/pieces.h), with no
# temporary of the block's size: the state is a max sweep (from memory)
# and an exp-sum sweep (from cache, rows up to L2's size); the softmax an
# exp sweep stored to the output and a scale sweep.

from libc.math cimport exp


cdef void _state_row(const floating *x, Py_ssize_t n, double *st, double *sums) noexcept nogil:
    """st[0], st[1] = the row's max (0 where not finite) and the log of
    sum(exp(x - max)): softmax_c.dask's state; a row whose max is not finite
    takes the logsumexp rules (NaN, +inf, -inf) with the shift 0."""
    cdef floating mx, r
    if n == 0:
        st[0] = 0.0
        st[1] = -INFINITY_
        return
    mx = sck.piece_max(x, n)
    if not (mx > -INFINITY_ and mx < INFINITY_):
        _serial_row(SC_OP_LOGSUMEXP, x, &r, n)
        st[0] = 0.0
        st[1] = r
        return
    sck.piece_expsum(x, NULL, n, mx, sums)
    st[0] = mx
    st[1] = log(sck.piece_total(sums, (n + sck.piece_chunk(x[0]) - 1) // sck.piece_chunk(x[0])))


cdef void _softmax_row(const floating *x, floating *y, Py_ssize_t n, const double *t,
                       double *sums) noexcept nogil:
    """y = exp(x - A) * exp(-B), (A, B) = t the row's merged state; NaN for
    a row whose B is not finite (a NaN, a +inf, nothing but -inf)."""
    cdef Py_ssize_t i
    if not (t[1] > -INFINITY_ and t[1] < INFINITY_):
        for i in range(n):
            y[i] = <floating>(INFINITY_ - INFINITY_)
        return
    sck.piece_expsum(x, y, n, <floating>t[0], sums)
    sck.piece_scale(y, n, <floating>exp(-t[1]))


cdef int _block_rows(bint states, const floating *x, floating *y, double *st, Py_ssize_t rows,
                     Py_ssize_t n, int nthreads) except -1:
    cdef Py_ssize_t K = (n + <Py_ssize_t>sck.piece_chunk(x[0]) - 1) // sck.piece_chunk(x[0])
    cdef Py_ssize_t r
    cdef double *sums = NULL
    cdef int failed = 0
    cdef int *pfailed = &failed
    cdef int nt = _threads_for(rows * n * <Py_ssize_t>sizeof(floating), rows, nthreads)
    with nogil, parallel(num_threads=nt):
        sums = <double *>malloc((K + 1) * sizeof(double))
        if sums == NULL:
            pfailed[0] = 1
        else:
            for r in prange(rows, schedule='static'):
                if states:
                    _state_row(x + r * n, n, st + 2 * r, sums)
                else:
                    _softmax_row(x + r * n, y + r * n, n, st + 2 * r, sums)
            free(sums)
    if failed:
        raise MemoryError("softmax_c: could not allocate a row's sums")
    return 0


def block_states(cnp.ndarray x, cnp.ndarray st, int nthreads):
    """softmax_c.dask's state of each row of x (C-contiguous, rows x n,
    float32 or float64) into st (C-contiguous float64, rows x 2)."""
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1]
    if rows == 0:
        return
    if x.dtype.itemsize == 4:
        _block_rows[float](True, <float *>cnp.PyArray_DATA(x), NULL,
                           <double *>cnp.PyArray_DATA(st), rows, n, nthreads)
    else:
        _block_rows[double](True, <double *>cnp.PyArray_DATA(x), NULL,
                            <double *>cnp.PyArray_DATA(st), rows, n, nthreads)


def block_softmax(cnp.ndarray x, cnp.ndarray y, cnp.ndarray t, int nthreads):
    """softmax of the rows of x (C-contiguous, rows x n, float32 or
    float64) into y (the same) against their rows' merged states t
    (C-contiguous float64, rows x 2)."""
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1]
    if rows == 0 or n == 0:
        return
    if x.dtype.itemsize == 4:
        _block_rows[float](False, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(y),
                           <double *>cnp.PyArray_DATA(t), rows, n, nthreads)
    else:
        _block_rows[double](False, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(y),
                            <double *>cnp.PyArray_DATA(t), rows, n, nthreads)
