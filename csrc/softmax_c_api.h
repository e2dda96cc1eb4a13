/*
 * softmax_c_api.h - softmax_c's kernels for Python C extensions.
 *
 * The kernels are compiled into the extension module softmax_c.kernels;
 * other extensions reach them through the function table of softmax_c.h
 * (struct sc_api), which that module publishes as a capsule.  Include this
 * header after Python.h, fetch the table once with the GIL held (in the
 * module's init function), then call through it from any thread, with or
 * without the GIL:
 *
 *     #include <Python.h>
 *     #include "softmax_c_api.h"        // -I softmax_c.get_include()
 *
 *     static const sc_api *sc;
 *
 *     PyMODINIT_FUNC PyInit_mymod(void) {
 *         sc = softmax_c_import();
 *         if (sc == NULL) return NULL;    // ImportError is set
 *         ...
 *     }
 *     ...
 *     sc->softmax_rows_f32(x, n, y, n, rows, n);
 *
 * Every entry has the contract of the function of the same name in
 * softmax_c.h (sc->softmax_rows_f32 is sc_softmax_rows_f32), including the
 * run-time choice of AVX-512F, AVX2 or portable kernels; nothing needs to be
 * linked.  Errors are not signalled through Python: out-of-domain values give
 * NaN results, as softmax_c.h documents for each function.
 */
#ifndef SOFTMAX_C_API_H
#define SOFTMAX_C_API_H

#ifndef Py_PYTHON_H
#error "include Python.h before softmax_c_api.h"
#endif

#include "softmax_c.h"

#define SOFTMAX_C_CAPSULE "softmax_c.kernels._C_API"

/* The table, or NULL with ImportError (or the import's own error) set.
 * Call with the GIL held. */
static inline const sc_api *softmax_c_import(void)
{
    const sc_api *api = (const sc_api *)PyCapsule_Import(SOFTMAX_C_CAPSULE, 0);
    if (api == NULL)
        return NULL;
    if (api->version != SC_API_VERSION || api->size < sizeof(sc_api)) {
        PyErr_Format(PyExc_ImportError,
                     "softmax_c C API version %u (table of %u bytes) does not match this "
                     "header's version %d (%u bytes): rebuild against the installed softmax_c",
                     api->version, api->size, SC_API_VERSION, (unsigned int)sizeof(sc_api));
        return NULL;
    }
    return api;
}

#endif /* SOFTMAX_C_API_H */
