# Output blocks (textually part of _kernels.pyx): fresh large outputs come
# from _outbuf.h's memory handler, which keeps freed blocks for reuse.

cdef extern from "_outbuf.h":
    int SC_OB_ENABLED
    size_t SC_OB_MIN
    void sc_ob_init(size_t limit)
    void sc_ob_set_limit(size_t limit)
    void sc_ob_stats(size_t *v)
    object sc_ob_capsule()

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

# The memory handler of large fresh outputs (_outbuf.h), or None.
cdef object _OB_HANDLER = sc_ob_capsule() if SC_OB_ENABLED else None
sc_ob_init(0)


def set_output_cache_limit(size_t nbytes):
    """Keep at most nbytes of freed large outputs for reuse (0: none);
    kept blocks beyond it go back to the system now."""
    sc_ob_set_limit(nbytes)


def output_cache_stats():
    """The output blocks' state: limit, bytes kept, blocks kept, reuses,
    new mappings (all 0 where they are not used)."""
    cdef size_t v[5]
    sc_ob_stats(v)
    return {"enabled": bool(SC_OB_ENABLED), "limit": v[0], "kept_bytes": v[1],
            "kept_blocks": v[2], "reused": v[3], "mapped": v[4]}


cdef cnp.ndarray _new_out(int nd, cnp.npy_intp *dims, int typenum):
    """cnp.PyArray_EMPTY(nd, dims, typenum, 0), from the output blocks if it
    is large."""
    cdef size_t nbytes = (4 if typenum == cnp.NPY_FLOAT32 else
                          8 if typenum == cnp.NPY_FLOAT64 else 2)
    cdef int i
    for i in range(nd):
        nbytes *= <size_t>dims[i]
    if _OB_HANDLER is None or nbytes < SC_OB_MIN:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    old = PyDataMem_SetHandler(_OB_HANDLER)
    try:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(old)


def empty_like(cnp.ndarray a):
    """np.empty_like(a), from the output blocks if it is large."""
    if _OB_HANDLER is None or <size_t>cnp.PyArray_NBYTES(a) < SC_OB_MIN:
        return np.empty_like(a)
    old = PyDataMem_SetHandler(_OB_HANDLER)
    try:
        return np.empty_like(a)
    finally:
        PyDataMem_SetHandler(old)
