"""softmax_c.kernels: the module that holds softmax_c's compiled C kernels
(csrc/) and hands them to other extensions.

Python code has nothing to call here (use the functions of ``softmax_c``).
Cython code cimports it (see kernels.pxd); C extensions fetch the same
function table with ``softmax_c_import()`` from ``softmax_c_api.h``, found
in ``softmax_c.get_include()``.
"""
from cpython.pycapsule cimport PyCapsule_New

cdef extern from "softmax_c.h" nogil:
    const sc_api *sc_get_api()

cdef const sc_api *get_api() noexcept nogil:
    return sc_get_api()

# The table for C extensions: softmax_c_api.h's softmax_c_import() reads it.
_C_API = PyCapsule_New(<void *>sc_get_api(), b"softmax_c.kernels._C_API", NULL)
