"""The Cython layer of softmax_c: loops over rows, threads, no policy.

Design, so that a newcomer knows where a change goes:

a. csrc/ holds the numerics: C99 kernels on pointers, strides and lengths
   (a batch of contiguous rows, or one panel whose reduction axis is
   strided), per dtype, dispatched at run time to AVX-512F, AVX2+FMA or
   portable C.  No Python, no allocation.
b. This module maps one problem -- an operation along axis k of N-d arrays
   of any strides -- onto those kernels (``_plan``, in _plan.pxi): the
   other dims are sorted by stride and merged where every operand allows,
   then
     - "rows": the axis is contiguous: batches of rows go to the row
       kernels, one call per run of equally spaced rows;
     - "cols": the axis is strided but another dim is contiguous in every
       operand (a non-last axis of a C-contiguous array): panels of that
       dim go to the column kernels, no transposed copy;
     - "gather": anything else: each row is gathered into a per-thread
       buffer of one row, computed there and scattered back.
   Threads split the rows (or panels x column blocks) with a static
   schedule, with the GIL released; below MIN_BYTES_PER_THREAD bytes per
   thread a call uses fewer threads, down to a serial call that pays no
   thread start-up (_threads.pxi); fewer rows than threads split each
   long row across them, bitwise the one-thread result (_split.pxi).
   Entry points take ndarrays and read their data pointers and strides
   directly: acquiring a typed memoryview per array would cost a large part
   of a short call (docs/performance.md, "Entry points").
c. _api.py does all validation and policy (dtypes, axes, out=, where=,
   aliasing); everything here trusts its caller: the arrays are aligned,
   float32 or float64 alike, shaped as the operation needs, and an output
   is either one of the inputs (same strides) or overlaps none.  The one
   exception, the hot paths (_fast.pxi), state and check which calls are
   theirs and return None for the rest.
d. reference.py is the NumPy oracle the tests compare against; the package
   never imports it (the loss reduction both use is in _losses.py).

The module is one extension built from this file and the include files
it names (textual includes: one module, no call crosses a module), by
concern:
  _threads.pxi   thread counts, the default count, forked children
  _plan.pxi      planning and execution: _plan, the rows / cols / gather
                 loops, the general path's entry points (forward,
                 backward, cross_entropy)
  _table.pxi     which kernel: tables by layout, operation (csrc/sc_ops.h,
                 through _ops.pxd) and dtype, filled at import
  _split.pxi     one row across threads
  _outputs.pxi   fresh outputs from the output blocks (_outbuf.h), their
                 cache's limit and statistics
  _fast.pxi      the hot paths for C-contiguous arrays along the last axis
  _sample.pxi    sampling a token per row (family/sample.h)
  _dask.pxi      softmax_c.dask's block steps: row states, normalization
  _half.pxi      float16 / bfloat16 inputs (family/half.h), computed in
                 float32 without a float32 copy
This file keeps the operation codes given to Python and the small helpers
_api.py calls for the cross-entropy's targets, aliasing and build facts.
"""
import os

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.math cimport log
cimport softmax_c.kernels as sck
from softmax_c._ops cimport *

cnp.import_array()

# Operation codes for _api.py: csrc/sc_ops.h's (the one list of them).
SOFTMAX = SC_OP_SOFTMAX
LOG_SOFTMAX = SC_OP_LOG_SOFTMAX
LOGSUMEXP = SC_OP_LOGSUMEXP
SOFTMAX_JVP = SC_OP_SOFTMAX_JVP
LOG_SOFTMAX_JVP = SC_OP_LOG_SOFTMAX_JVP
LOG_SOFTMAX_VJP = SC_OP_LOG_SOFTMAX_VJP

include "_threads.pxi"
include "_plan.pxi"
include "_table.pxi"
include "_split.pxi"
include "_outputs.pxi"
include "_fast.pxi"
include "_sample.pxi"
include "_dask.pxi"
include "_half.pxi"
include "_fused.pxi"


def xent_targets(cnp.ndarray t, Py_ssize_t n, long long ignore_index, weight):
    """Class index targets for the kernel, checked, in one pass.

    `t`: a C-contiguous int64 array; `weight`: None or a C-contiguous
    float64 array of n entries.  Returns ``(tk, kept, wsum, bad)``: tk an
    int64 copy of t with -1 where t is ignore_index, the number of kept
    targets, the sum of their weights (their number without weights), and
    None, or the first index (in C order) that is out of range and not
    ignore_index, in which case tk is not complete."""
    cdef Py_ssize_t i, size = cnp.PyArray_SIZE(t), kept = 0
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(t), cnp.PyArray_DIMS(t),
                                             cnp.NPY_INT64, 0)
    cdef const int64_t *src = <const int64_t *>cnp.PyArray_DATA(t)
    cdef int64_t *dst = <int64_t *>cnp.PyArray_DATA(out)
    cdef const double *w = NULL
    cdef double wsum = 0.0
    cdef int64_t v
    if weight is not None:
        w = <const double *>cnp.PyArray_DATA(<cnp.ndarray>weight)
    for i in range(size):
        v = src[i]
        if v == ignore_index:
            dst[i] = -1
        elif 0 <= v < n:
            dst[i] = v
            kept += 1
            if w != NULL:
                wsum += w[v]
        else:
            return out, kept, wsum, v
    return out, kept, (wsum if w != NULL else <double>kept), None


def same_view(cnp.ndarray a, cnp.ndarray b):
    """Whether a and b are views of the same elements in the same layout
    (data pointer, shape and strides equal): an output that may be
    written in place over an input."""
    cdef int d, nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_DATA(a) != cnp.PyArray_DATA(b) or cnp.PyArray_NDIM(b) != nd:
        return False
    for d in range(nd):
        if (cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d)
                or (cnp.PyArray_DIM(a, d) > 1
                    and cnp.PyArray_STRIDE(a, d) != cnp.PyArray_STRIDE(b, d))):
            return False
    return True


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
