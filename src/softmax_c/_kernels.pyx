"""The Cython layer of softmax_c: loops over rows, threads, no policy.

Design, so that a newcomer knows where a change goes:

a. csrc/ holds the numerics: C99 kernels on pointers, strides and lengths
   (a batch of contiguous rows, or one panel whose reduction axis is
   strided), per dtype, dispatched at run time to AVX-512F, AVX2+FMA or
   portable C.  No Python, no allocation.
b. This module calls them on typed memoryviews with the GIL released:
   2-D views (rows, n) for the "rows" layout, 3-D views (outer, n, m) with m
   contiguous for the "cols" layout.  Threads split the batch (rows, or
   outer x column-blocks) with a static schedule; work below
   MIN_WORK_PER_THREAD elements per thread runs serially, so small calls pay
   no thread start-up.  Rows whose axis is not contiguous are gathered into
   a per-thread buffer of one row, computed there, and scattered back.
c. _api.py does all validation and policy (dtypes, axes, out=, where=,
   aliasing) and builds the views; everything here trusts its caller: the
   views are non-empty, x and y have the shapes the layout needs, strides
   are multiples of the item size, and y does not partially overlap x.
d. reference.py is the NumPy oracle the tests compare against.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free

# Operation codes shared with _api.py.
SOFTMAX = 0
LOG_SOFTMAX = 1
LOGSUMEXP = 2

# Below this many elements per thread a call runs on fewer threads (on one
# thread below twice this).
cdef Py_ssize_t MIN_WORK_PER_THREAD = 1 << 15
# Columns per work item in the cols layout (a multiple of every lane count).
cdef Py_ssize_t COL_BLOCK = 64


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t parts, int requested) noexcept nogil:
    cdef Py_ssize_t t = work // MIN_WORK_PER_THREAD
    if t > requested:
        t = requested
    if t > parts:
        t = parts
    return <int>t if t >= 1 else 1


cdef inline void _rows_kernel(int op, const floating *x, Py_ssize_t ldx, floating *y,
                              Py_ssize_t ldy, Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    if floating is float:
        if op == 0:
            sc_softmax_rows_f32(x, ldx, y, ldy, rows, n)
        elif op == 1:
            sc_log_softmax_rows_f32(x, ldx, y, ldy, rows, n)
        else:
            sc_logsumexp_rows_f32(x, ldx, y, ldy, rows, n)
    else:
        if op == 0:
            sc_softmax_rows_f64(x, ldx, y, ldy, rows, n)
        elif op == 1:
            sc_log_softmax_rows_f64(x, ldx, y, ldy, rows, n)
        else:
            sc_logsumexp_rows_f64(x, ldx, y, ldy, rows, n)


cdef inline void _cols_kernel(int op, const floating *x, Py_ssize_t ldx, floating *y,
                              Py_ssize_t ldy, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    if floating is float:
        if op == 0:
            sc_softmax_cols_f32(x, ldx, y, ldy, n, m)
        elif op == 1:
            sc_log_softmax_cols_f32(x, ldx, y, ldy, n, m)
        else:
            sc_logsumexp_cols_f32(x, ldx, y, ldy, n, m)
    else:
        if op == 0:
            sc_softmax_cols_f64(x, ldx, y, ldy, n, m)
        elif op == 1:
            sc_log_softmax_cols_f64(x, ldx, y, ldy, n, m)
        else:
            sc_logsumexp_cols_f64(x, ldx, y, ldy, n, m)


cdef int _rows(int op, const floating[:, :] x, floating[:, :] y, int nthreads) except -1:
    """y[r] = op(x[r]) for each row r (for logsumexp, y has one column)."""
    cdef Py_ssize_t R = x.shape[0], n = x.shape[1], isz = sizeof(floating)
    cdef Py_ssize_t ldx = x.strides[0] // isz, ldy = y.strides[0] // isz
    cdef Py_ssize_t sx = x.strides[1] // isz, sy = y.strides[1] // isz
    cdef int nt = _threads_for(R * n, R, nthreads)
    cdef Py_ssize_t c, r0, r1
    if (sx == 1 or n == 1) and (op == 2 or sy == 1 or n == 1):
        if nt == 1:
            with nogil:
                _rows_kernel(op, &x[0, 0], ldx, &y[0, 0], ldy, R, n)
        else:
            for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
                r0 = R * c // nt
                r1 = R * (c + 1) // nt
                if r1 > r0:
                    _rows_kernel(op, &x[r0, 0], ldx, &y[r0, 0], ldy, r1 - r0, n)
        return 0
    return _rows_gather(op, x, y, nt)


cdef int _rows_gather(int op, const floating[:, :] x, floating[:, :] y, int nt) except -1:
    """Rows whose axis is strided: gather each into a one-row buffer per
    thread, compute in place there, scatter to y."""
    cdef Py_ssize_t R = x.shape[0], n = x.shape[1], isz = sizeof(floating)
    cdef Py_ssize_t sx = x.strides[1] // isz, sy = y.strides[1] // isz
    cdef Py_ssize_t r, i
    cdef floating *buf = NULL
    cdef const floating *xr
    cdef floating *yr
    cdef int failed = 0
    cdef int *pfailed = &failed
    with nogil, parallel(num_threads=nt):
        buf = <floating *> malloc(n * isz)
        if buf == NULL:
            pfailed[0] = 1
        else:
            for r in prange(R, schedule='static'):
                xr = &x[r, 0]
                for i in range(n):
                    buf[i] = xr[i * sx]
                if op == 2:
                    _rows_kernel(op, buf, n, &y[r, 0], 1, 1, n)
                else:
                    _rows_kernel(op, buf, n, buf, n, 1, n)
                    yr = &y[r, 0]
                    for i in range(n):
                        yr[i * sy] = buf[i]
            free(buf)
    if failed:
        raise MemoryError("softmax_c: could not allocate a row buffer of %d elements" % n)
    return 0


cdef int _cols(int op, const floating[:, :, :] x, floating[:, :, :] y, int nthreads) except -1:
    """Panels x[o] of n rows by m contiguous columns; each column is a slice.
    For logsumexp y is (outer, 1, m) and its column stride is used."""
    cdef Py_ssize_t O = x.shape[0], n = x.shape[1], m = x.shape[2], isz = sizeof(floating)
    cdef Py_ssize_t ldx = x.strides[1] // isz
    cdef Py_ssize_t ldy = (y.strides[2] if op == 2 else y.strides[1]) // isz
    cdef Py_ssize_t nb = (m + COL_BLOCK - 1) // COL_BLOCK
    cdef Py_ssize_t items = O * nb, it, o, j0, w
    cdef int nt = _threads_for(O * n * m, items, nthreads)
    if nt == 1:
        with nogil:
            for o in range(O):
                _cols_kernel(op, &x[o, 0, 0], ldx, &y[o, 0, 0], ldy, n, m)
        return 0
    for it in prange(items, nogil=True, schedule='static', num_threads=nt):
        o = it // nb
        j0 = (it % nb) * COL_BLOCK
        w = m - j0
        if w > COL_BLOCK:
            w = COL_BLOCK
        _cols_kernel(op, &x[o, 0, j0], ldx, &y[o, 0, j0], ldy, n, w)
    return 0


def forward_rows(int op, x, y, int nthreads):
    """op over the last axis of the 2-D views x, y (float32 or float64)."""
    if x.itemsize == 4:
        _rows[float](op, x, y, nthreads)
    else:
        _rows[double](op, x, y, nthreads)


def forward_cols(int op, x, y, int nthreads):
    """op over axis 1 of the 3-D views x, y, whose axis 2 is contiguous."""
    if x.itemsize == 4:
        _cols[float](op, x, y, nthreads)
    else:
        _cols[double](op, x, y, nthreads)


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
