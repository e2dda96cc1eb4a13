# Sampling (textually part of _kernels.pyx): one token per row of a
# C-contiguous batch of rows, by family/sample.h's kernels: rows shared among
# threads, each thread with its own work area; or, with fewer rows than
# threads, each long row split across them (sample_split's steps, one work
# area for the row), with the tokens of one thread.

from libc.stdint cimport uint64_t
from libc.math cimport INFINITY


cdef inline size_t _sample_work_bytes(Py_ssize_t n, size_t itemsize) noexcept nogil:
    # family/sample.h's need: three rows of values, one of indices, one of
    # buckets, two of chunk sums, a histogram per segment and the step state;
    # a bound on it, with room for alignment
    return <size_t>n * (3 * itemsize + sizeof(size_t) + 2) + <size_t>n // 2 + 65536


cdef inline int _sample_split_threads(Py_ssize_t rows, Py_ssize_t n, size_t isz,
                                      int requested) noexcept nogil:
    """Pieces to cut each row into (one per thread), or 1: as the forward
    functions split (_split_threads), at most family/sample.h's
    SC_SMP_MAXP."""
    cdef int t = _split_threads(SC_OP_SOFTMAX, rows, n, <Py_ssize_t>isz, requested)
    return t if t <= 64 else 64


cdef inline bint _sample_topp_alone(const double *p) noexcept nogil:
    # top-p without top-k: its whole-row middle step (the boundary bucket's
    # gather and sort) stays on one thread, and a split measured slower
    # (docs/performance.md, "sample"); such rows take one thread
    return p[1] == 0.0 and p[2] < 1.0 and p[0] != 0.0


cdef int64_t _sample_split_row(const char *x, Py_ssize_t n, bint f32, const double *p,
                               uint64_t key, Py_ssize_t r, double *lp, void *work, size_t wlen,
                               int nt) noexcept nogil:
    """Row r on nt threads: each step's pieces in a parallel loop, then the
    whole row's part; the kernel's return (token, -1 or -2)."""
    cdef int step = 0, piece
    cdef int64_t res
    while True:
        for piece in prange(nt, schedule='static', num_threads=nt):
            if f32:
                sc_sample_split_f32(<const float *>x, n, p, key, r, lp, work, wlen, step, piece,
                                    nt)
            else:
                sc_sample_split_f64(<const double *>x, n, p, key, r, lp, work, wlen, step, piece,
                                    nt)
        if f32:
            res = sc_sample_split_f32(<const float *>x, n, p, key, r, lp, work, wlen, step, -1, nt)
        else:
            res = sc_sample_split_f64(<const double *>x, n, p, key, r, lp, work, wlen, step, -1,
                                      nt)
        if res != -3:
            return res
        step += 1


cdef tuple _sample_run(cnp.ndarray x, const double *p, size_t pstep, uint64_t key,
                       bint want_logp, int nthreads, int split=0):
    """The kernel over the rows of x (2-d, C-contiguous, float32 or float64,
    not empty); row r's parameters at p + pstep * r; nthreads 0 for the
    default.  split > 0 cuts each row into that many pieces whatever the
    row count and length (for tests: the tokens do not depend on it).
    Returns (tokens, logprobs or None, bad): bad is -1, or the first row
    with a NaN, +inf or only -inf."""
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), n = cnp.PyArray_DIM(x, 1)
    cdef cnp.npy_intp dims[1]
    dims[0] = rows
    cdef cnp.ndarray tok = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0)
    cdef cnp.ndarray lp = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT64, 0) if want_logp else None
    cdef int64_t *t = <int64_t *>cnp.PyArray_DATA(tok)
    cdef double *l = <double *>cnp.PyArray_DATA(lp) if want_logp else NULL
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef size_t isz = 4 if f32 else 8
    cdef const char *base = <const char *>cnp.PyArray_DATA(x)
    cdef size_t wlen = _sample_work_bytes(n, isz)
    cdef int req = nthreads if nthreads > 0 else _threads_default()
    # (a forked child starts no thread team: the pieces would not change the
    # tokens anyway)
    cdef int ns = (split if split > 0 and not _serial_after_fork
                   else _sample_split_threads(rows, n, isz, req))
    cdef int nt = 1 if ns > 1 else _threads_for(rows * n * <Py_ssize_t>isz, rows, req)
    cdef Py_ssize_t r
    cdef int failed[1]
    cdef void *work = NULL
    failed[0] = 0
    if nt == 1:
        # one thread (or one row at a time on ns): no parallel region to enter
        work = malloc(wlen)
        if work == NULL:
            raise MemoryError("softmax_c.sample: no memory for the work area")
        with nogil:
            for r in range(rows):
                if ns > 1 and (split > 0 or not _sample_topp_alone(p + pstep * r)):
                    t[r] = _sample_split_row(base + r * n * isz, n, f32, p + pstep * r, key, r,
                                             (l + r) if l != NULL else NULL, work, wlen, ns)
                elif f32:
                    t[r] = sc_sample_row_f32(<const float *>(base + r * n * 4), n, p + pstep * r,
                                             key, r, (l + r) if l != NULL else NULL, work, wlen)
                else:
                    t[r] = sc_sample_row_f64(<const double *>(base + r * n * 8), n,
                                             p + pstep * r, key, r,
                                             (l + r) if l != NULL else NULL, work, wlen)
        free(work)
    else:
        with nogil, parallel(num_threads=nt):
            work = malloc(wlen)
            # every thread meets the prange (a work-sharing loop); one without
            # work marks its rows failed
            for r in prange(rows, schedule="static"):
                if work == NULL:
                    failed[0] = 1
                elif f32:
                    t[r] = sc_sample_row_f32(<const float *>(base + r * n * 4), n, p + pstep * r,
                                             key, r, (l + r) if l != NULL else NULL, work, wlen)
                else:
                    t[r] = sc_sample_row_f64(<const double *>(base + r * n * 8), n,
                                             p + pstep * r, key, r,
                                             (l + r) if l != NULL else NULL, work, wlen)
            free(work)
    if failed[0]:
        raise MemoryError("softmax_c.sample: no memory for the work area")
    for r in range(rows):
        if t[r] < 0:
            if t[r] == -2:
                raise RuntimeError("softmax_c.sample: work area too small")
            return tok, lp, r
    return tok, lp, -1


def sample_rows(cnp.ndarray x, cnp.ndarray prm, uint64_t key, bint want_logp, int nthreads,
                int split=0):
    """Tokens of the rows of x (2-d, C-contiguous, float32 or float64, not
    empty), prm a C-contiguous (rows, 4) float64 array of each row's
    [T, top_k, top_p, min_p]; split > 0: each row cut into that many pieces
    (at most 64), whatever its length (the tests' way to split short rows).  Returns (tokens, logprobs or None, bad): bad
    is -1, or the first row with a NaN, +inf or only -inf."""
    if not 0 <= split <= 64:
        raise ValueError(f"`split` must be in [0, 64], got {split}")
    return _sample_run(x, <const double *>cnp.PyArray_DATA(prm), 4, key, want_logp, nthreads,
                       split)


cdef inline bint _real(v) noexcept:
    return type(v) is float or type(v) is int


def sample_fast(x, temperature, top_k, top_p, min_p, seed, axis, bint want_logp,
                int nthreads):
    """sample's hot path, for the common call: x an exact ndarray, 1-d or
    2-d, C-contiguous, aligned, native float32 or float64, with rows and a
    vocabulary; axis the last; every parameter a Python float or int (or
    None) in range; seed an int or None; nthreads >= 0 (as the other hot
    paths).  Returns None when any of that fails or a row is bad: the
    general path then checks again and owns every error.  Otherwise the
    tokens (0-d for a 1-d x), with the log-probabilities when asked."""
    cdef int typenum = _fast_input(x, False)
    if typenum < 0 or nthreads < 0 or type(axis) is not int:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd > 2 or (axis != -1 and axis != nd - 1):
        return None
    cdef Py_ssize_t n = cnp.PyArray_DIM(a, nd - 1)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(a, 0) if nd == 2 else 1
    if n == 0 or rows == 0:
        return None
    cdef double prm[4]
    if temperature is None:
        prm[0] = 1.0
    elif _real(temperature):
        prm[0] = temperature
        if not (prm[0] >= 0.0 and prm[0] < INFINITY):
            return None
    else:
        return None
    if top_k is None:
        prm[1] = 0.0
    elif type(top_k) is int and top_k >= 0:
        prm[1] = top_k
    else:
        return None
    if top_p is None:
        prm[2] = 1.0
    elif _real(top_p):
        prm[2] = top_p
        if not (prm[2] > 0.0 and prm[2] <= 1.0):
            return None
    else:
        return None
    if min_p is None:
        prm[3] = 0.0
    elif _real(min_p):
        prm[3] = min_p
        if not (prm[3] >= 0.0 and prm[3] <= 1.0):
            return None
    else:
        return None
    cdef uint64_t key
    if type(seed) is int:
        key = seed % 18446744073709551616
    elif seed is None:
        key = int.from_bytes(os.urandom(8), "little")
    else:
        return None
    cdef cnp.ndarray z = a if nd == 2 else a.reshape(1, n)
    tok, lp, bad = _sample_run(z, prm, 0, key, want_logp, nthreads)
    if bad >= 0:
        return None
    if nd == 1:
        tok = tok.reshape(())
        lp = lp.reshape(()) if want_logp else None
    return (tok, lp) if want_logp else tok
