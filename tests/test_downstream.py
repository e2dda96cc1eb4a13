"""Other extensions building on softmax_c, as a downstream user does it.

Each test writes a tiny third-party extension into a temporary directory,
builds it with setuptools against the *installed* softmax_c (kernels.pxd
found on sys.path, headers in softmax_c.get_include()), imports it in a
fresh interpreter and checks its results against softmax_c.reference:

- a Cython extension that cimports softmax_c.kernels and calls the row and
  batch kernels inside its own prange, without the GIL;
- a plain C extension that includes softmax_c_api.h and calls the kernels
  through the function table it fetches at import.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import softmax_c as sc

pytest.importorskip("Cython")

CYTHON_MOD = r'''
# cython: language_level=3, boundscheck=False, wraparound=False
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.math cimport log
cimport softmax_c.kernels as sck
import numpy as np


def rows_f32(const float[:, ::1] x):
    """softmax, log_softmax and logsumexp of each row: the row forms."""
    cdef Py_ssize_t i, n = x.shape[1]
    y = np.empty_like(np.asarray(x)); lp = np.empty_like(y)
    lse = np.empty(x.shape[0], np.float32)
    cdef float[:, ::1] yv = y, lv = lp
    cdef float[::1] sv = lse
    for i in prange(x.shape[0], nogil=True):
        sck.softmax_row_f32(&x[i, 0], &yv[i, 0], n)
        sck.log_softmax_row_f32(&x[i, 0], &lv[i, 0], n)
        sv[i] = sck.logsumexp_row_f32(&x[i, 0], n)
    return y, lp, lse


def batch(floating[:, ::1] x):
    """softmax of all rows with one batch call (fused over the dtype)."""
    y = np.empty_like(np.asarray(x))
    cdef floating[:, ::1] yv = y
    with nogil:
        sck.softmax_rows(&x[0, 0], x.shape[1], &yv[0, 0], x.shape[1], x.shape[0], x.shape[1])
    return y


def batch_ws(floating[:, ::1] x, Py_ssize_t ldy):
    """softmax of all rows into rows ldy apart, with the scratch the library
    asks for (none if it asks for none); returns the result and how many
    elements it asked for."""
    out = np.zeros((x.shape[0], ldy), np.asarray(x).dtype)
    cdef floating[:, ::1] yv = out
    cdef size_t w = sck.softmax_rows_work(&yv[0, 0], ldy, x.shape[0], x.shape[1])
    work = np.full(max(w, 1), np.nan, np.asarray(x).dtype)
    cdef floating[::1] wv = work
    with nogil:
        sck.softmax_rows_ws(&x[0, 0], x.shape[1], &yv[0, 0], ldy, x.shape[0], x.shape[1],
                            &wv[0] if w else NULL, w)
    return out[:, :x.shape[1]], w


def cols_f64(const double[:, ::1] x):
    """log_softmax down each column of a C-contiguous panel (axis 0)."""
    y = np.empty_like(np.asarray(x))
    cdef double[:, ::1] yv = y
    with nogil:
        sck.log_softmax_cols_f64(&x[0, 0], x.shape[1], &yv[0, 0], x.shape[1], x.shape[0], x.shape[1])
    return y


def vjp(floating[:, ::1] y, floating[:, ::1] g):
    """softmax_vjp, log_softmax_vjp row by row (fused row forms)."""
    cdef Py_ssize_t i, n = y.shape[1]
    a = np.empty_like(np.asarray(y)); b = np.empty_like(a)
    cdef floating[:, ::1] av = a, bv = b
    for i in prange(y.shape[0], nogil=True):
        sck.softmax_jvp_row(&y[i, 0], &g[i, 0], &av[i, 0], n)
        sck.log_softmax_vjp_row(&y[i, 0], &g[i, 0], &bv[i, 0], n)
    return a, b


def xent(floating[:, ::1] z, const int64_t[::1] t):
    """Per-row cross-entropy loss and gradient (no options)."""
    cdef Py_ssize_t i, n = z.shape[1]
    cdef sck.sc_xent_params p
    p.weight = NULL
    p.label_smoothing = 0.0
    p.scale = 1.0
    p.weight_sum = n
    g = np.empty_like(np.asarray(z))
    loss = np.empty(z.shape[0])
    cdef floating[:, ::1] gv = g
    cdef double[::1] lv = loss
    for i in prange(z.shape[0], nogil=True):
        lv[i] = sck.xent_row(&z[i, 0], t[i], &gv[i, 0], n, &p)
    return loss, g


def softmax_in_pieces(floating[::1] x, Py_ssize_t pieces):
    """softmax and logsumexp of one row computed in `pieces` pieces, by the
    recipe of softmax_c.h ("one row across threads"), serially here."""
    cdef Py_ssize_t n = x.shape[0], ch = sck.piece_chunk(x[0]), K = (n + ch - 1) // ch, p, lo, hi
    cdef const floating *px = &x[0]
    y = np.empty_like(np.asarray(x))
    sums = np.empty(K)
    cdef floating[::1] yv = y
    cdef double[::1] sv = sums
    cdef floating mx = -np.inf, m
    cdef double s
    for p in range(pieces):
        lo = (K * p // pieces) * ch
        hi = min((K * (p + 1) // pieces) * ch, n)
        m = sck.piece_max(px + lo, hi - lo)
        if m > mx:
            mx = m
    for p in range(pieces):
        lo = (K * p // pieces) * ch
        hi = min((K * (p + 1) // pieces) * ch, n)
        sck.piece_expsum(px + lo, &yv[0] + lo, hi - lo, mx, &sv[0] + K * p // pieces)
    s = sck.piece_total(&sv[0], K)
    for p in range(pieces):
        lo = (K * p // pieces) * ch
        hi = min((K * (p + 1) // pieces) * ch, n)
        sck.piece_scale(&yv[0] + lo, hi - lo, <floating>(1.0 / s))
    return y, <floating>(<double>mx + log(s))


def simd():
    return sck.simd_name(sck.simd_level()).decode()
'''

C_MOD = r'''
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "softmax_c_api.h"

static const sc_api *sc;

/* a C-contiguous input buffer and a writable C-contiguous output buffer */
static int get_pair(PyObject *src, PyObject *dst, Py_buffer *a, Py_buffer *b)
{
    if (PyObject_GetBuffer(src, a, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (PyObject_GetBuffer(dst, b, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(a);
        return -1;
    }
    return 0;
}

/* softmax(src, dst, rows, n) over C-contiguous float32 buffers, GIL released. */
static PyObject *softmax_f32(PyObject *self, PyObject *args)
{
    PyObject *src, *dst;
    Py_ssize_t rows, n;
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "OOnn", &src, &dst, &rows, &n))
        return NULL;
    if (get_pair(src, dst, &a, &b) < 0)
        return NULL;
    if (a.len < (Py_ssize_t)(rows * n * sizeof(float)) || b.len < a.len) {
        PyBuffer_Release(&a);
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "buffers too small");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    sc->softmax_rows_f32((const float *)a.buf, n, (float *)b.buf, n, (size_t)rows, (size_t)n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* (loss, grad) of one float64 row against class `t`, through sc->xent_rows_f64. */
static PyObject *xent_row_f64(PyObject *self, PyObject *args)
{
    PyObject *src, *dst;
    long long t;
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "OOL", &src, &dst, &t))
        return NULL;
    if (get_pair(src, dst, &a, &b) < 0)
        return NULL;
    size_t n = (size_t)a.len / sizeof(double);
    int64_t tt = (int64_t)t;
    double loss;
    sc_xent_params p = {NULL, 0.0, 1.0, (double)n};
    sc->xent_rows_f64((const double *)a.buf, 0, NULL, 0, &tt, 0, (double *)b.buf, 0, &loss, 0, 1, n, &p);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return PyFloat_FromDouble(loss);
}

static PyObject *simd(PyObject *self, PyObject *noargs)
{
    return PyUnicode_FromString(sc->simd_name(sc->simd_level()));
}

static PyMethodDef methods[] = {
    {"softmax_f32", softmax_f32, METH_VARARGS, NULL},
    {"xent_row_f64", xent_row_f64, METH_VARARGS, NULL},
    {"simd", simd, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "cmod", NULL, -1, methods};

PyMODINIT_FUNC PyInit_cmod(void)
{
    sc = softmax_c_import();
    if (sc == NULL)
        return NULL;
    return PyModule_Create(&moddef);
}
'''

SETUP = r'''
from setuptools import Extension, setup
from Cython.Build import cythonize
import softmax_c

inc = [softmax_c.get_include()]
setup(
    name="downstream",
    ext_modules=cythonize([Extension("cymod", ["cymod.pyx"], include_dirs=inc)],
                          language_level=3)
    + [Extension("cmod", ["cmod.c"], include_dirs=inc)],
)
'''

CHECK = r'''
import sys
import numpy as np
import softmax_c as sc
from softmax_c import reference as ref
import cymod, cmod

rng = np.random.default_rng(0)
# every tail length around the widest vector (16 float32 lanes) and a long row
for n in list(range(1, 40)) + [1000, 4099]:
    x = (rng.standard_normal((5, n)) * 10).astype(np.float32)
    y, lp, lse = cymod.rows_f32(x)
    np.testing.assert_allclose(y, ref.softmax(x), rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(lp, ref.log_softmax(x), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(lse, ref.logsumexp(x, axis=-1), rtol=2e-6, atol=2e-6)
    for dt in (np.float32, np.float64):
        xd = x.astype(dt)
        np.testing.assert_array_equal(cymod.batch(xd), sc.softmax(xd, num_threads=1))
    xd = x.astype(np.float64)
    np.testing.assert_allclose(cymod.cols_f64(xd), ref.log_softmax(xd, axis=0), rtol=1e-13, atol=1e-13)
    yd = ref.softmax(xd)
    g = rng.standard_normal((5, n))
    a, b = cymod.vjp(yd, g)
    np.testing.assert_allclose(a, ref.softmax_vjp(yd, g), rtol=1e-12, atol=1e-14)
    lpd = ref.log_softmax(xd)
    a, b = cymod.vjp(lpd, g)
    np.testing.assert_allclose(b, ref.log_softmax_vjp(lpd, g), rtol=1e-12, atol=1e-13)
    t = rng.integers(0, n, 5).astype(np.int64)
    loss, grad = cymod.xent(xd, t)
    want_l, want_g = ref.cross_entropy_grad(xd, t, reduction="none")
    np.testing.assert_allclose(loss, want_l, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(grad, want_g, rtol=1e-12, atol=1e-14)

    out = np.full_like(x, -1.0)
    cmod.softmax_f32(x, out, 5, n)
    np.testing.assert_array_equal(out, sc.softmax(x, num_threads=1))
    z = xd[0].copy()
    gz = np.empty_like(z)
    l = cmod.xent_row_f64(z, gz, int(t[0]))
    np.testing.assert_allclose(l, want_l[0], rtol=1e-13)
    np.testing.assert_allclose(gz, want_g[0], rtol=1e-12, atol=1e-14)

# the documented error signal: a class index out of range gives NaN, not a read
z = np.array([1.0, 2.0, 3.0])
gz = np.zeros(3)
assert np.isnan(cmod.xent_row_f64(z, gz, 3)) and np.isnan(gz).all()
loss, grad = cymod.xent(np.ones((2, 3)), np.array([7, -1], np.int64))
assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
assert loss[1] == 0.0 and (grad[1] == 0.0).all()   # negative: an ignored row
# special values as softmax_c.h states them
y, lp, lse = cymod.rows_f32(np.array([[0.0, np.nan], [-np.inf, -np.inf]], np.float32))
assert np.isnan(y).all() and np.isnan(lse[0]) and lse[1] == -np.inf

# softmax_rows_ws: scratch asked for only where it helps (large outputs),
# and the same bits as softmax_rows with and without it
for dt in (np.float32, np.float64):
    for shape, ldy in (((5, 1000), 1000), ((300, 4099), 4099), ((300, 4099), 4111), ((2100, 300), 300)):
        xw = (rng.standard_normal(shape) * 10).astype(dt)
        got, w = cymod.batch_ws(xw, ldy)
        big = xw.nbytes >= 4 << 20 and sc.build_info()["simd"] != "scalar"
        assert (w > 0) == big, (shape, dt, w)
        np.testing.assert_array_equal(got, cymod.batch(xw))
        np.testing.assert_array_equal(got, sc.softmax(xw, num_threads=1))

# a row in pieces, by the published recipe: bitwise the row kernels' result
for dt, n in ((np.float32, 300007), (np.float64, 40001), (np.float32, 1000)):
    x = (rng.standard_normal(n) * 30).astype(dt)
    for pieces in (1, 2, 3, 7):
        y, lse = cymod.softmax_in_pieces(x, pieces)
        np.testing.assert_array_equal(y, sc.softmax(x, num_threads=1))
        assert lse == sc.logsumexp(x, num_threads=1), (lse, sc.logsumexp(x))

print(cymod.simd(), cmod.simd(), sc.build_info()["simd"])
'''


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("downstream")
    (d / "cymod.pyx").write_text(CYTHON_MOD)
    (d / "cmod.c").write_text(C_MOD)
    (d / "setup.py").write_text(SETUP)
    (d / "check.py").write_text(CHECK)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=d,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d


def _run_check(d, simd=None):
    env = dict(os.environ)
    env.pop("SOFTMAX_C_SIMD", None)
    if simd:
        env["SOFTMAX_C_SIMD"] = simd
    proc = subprocess.run([sys.executable, "check.py"], cwd=d, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.split()


def test_downstream_extensions_match_reference(built):
    levels = _run_check(built)
    # both extensions run the kernels the package itself chose
    assert levels[0] == levels[1] == levels[2]


@pytest.mark.parametrize("level", ["scalar", "avx2"])
def test_downstream_dispatch_follows_the_cap(built, level):
    if level not in sc.build_info()["simd_compiled"]:
        pytest.skip(f"{level} kernels not compiled")
    assert _run_check(built, level) == [level] * 3


def test_installed_files():
    inc = sc.get_include()
    for h in ("softmax_c.h", "softmax_c_api.h"):
        assert os.path.isfile(os.path.join(inc, h)), h
    pkg = os.path.dirname(sc.__file__)
    assert os.path.isfile(os.path.join(pkg, "kernels.pxd"))
