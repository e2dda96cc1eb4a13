# Sampling (textually part of _kernels.pyx): one token per row of a
# C-contiguous batch of rows, by family/sample.h's kernel, rows shared among
# threads, each thread with its own work area.

from libc.stdint cimport uint64_t


cdef inline size_t _sample_work_bytes(Py_ssize_t n, size_t itemsize) noexcept nogil:
    # family/sample.h's need: two rows of values, one of indices, chunk
    # sums and a histogram; a bound on it, with room for alignment
    return <size_t>n * (2 * itemsize + sizeof(size_t)) + <size_t>n // 2 + 32768


def sample_rows(cnp.ndarray x, cnp.ndarray prm, uint64_t key, bint want_logp, int nthreads):
    """Tokens of the rows of x (2-d, C-contiguous, float32 or float64, not
    empty), prm a C-contiguous (rows, 4) float64 array of each row's
    [T, top_k, top_p, log(min_p)].  Returns (tokens, logprobs or None,
    bad): bad is -1, or the first row with a NaN, +inf or only -inf."""
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), n = cnp.PyArray_DIM(x, 1)
    cdef cnp.npy_intp dims[1]
    dims[0] = rows
    cdef cnp.ndarray tok = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0)
    cdef cnp.ndarray lp = cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT64, 0) if want_logp else None
    cdef int64_t *t = <int64_t *>cnp.PyArray_DATA(tok)
    cdef double *l = <double *>cnp.PyArray_DATA(lp) if want_logp else NULL
    cdef const double *p = <const double *>cnp.PyArray_DATA(prm)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef size_t isz = 4 if f32 else 8
    cdef const char *base = <const char *>cnp.PyArray_DATA(x)
    cdef size_t wlen = _sample_work_bytes(n, isz)
    cdef int nt = _threads_for(rows * n * <Py_ssize_t>isz, rows, nthreads)
    cdef Py_ssize_t r
    cdef int failed[1]
    cdef void *work = NULL
    failed[0] = 0
    with nogil, parallel(num_threads=nt):
        work = malloc(wlen)
        # every thread meets the prange (a work-sharing loop); one without
        # work marks its rows failed
        for r in prange(rows, schedule="static"):
            if work == NULL:
                failed[0] = 1
            elif f32:
                t[r] = sc_sample_row_f32(<const float *>(base + r * n * 4), n, p + 4 * r,
                                         key, r, (l + r) if l != NULL else NULL, work, wlen)
            else:
                t[r] = sc_sample_row_f64(<const double *>(base + r * n * 8), n, p + 4 * r,
                                         key, r, (l + r) if l != NULL else NULL, work, wlen)
        free(work)
    if failed[0]:
        raise MemoryError("softmax_c.sample: no memory for the work area")
    for r in range(rows):
        if t[r] < 0:
            if t[r] == -2:
                raise RuntimeError("softmax_c.sample: work area too small")
            return tok, lp, r
    return tok, lp, -1
