# The C kernels of csrc/softmax_c.h, as _kernels.pyx calls them.
from libc.stdint cimport int64_t

# (The public C-level API for other Cython packages is kernels.pxd.)

cdef extern from "softmax_c.h" nogil:
    void sc_softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n)
    void sc_softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n)
    void sc_log_softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n)
    void sc_log_softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n)
    void sc_logsumexp_rows_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_logsumexp_rows_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m)
    void sc_softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m)
    void sc_log_softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m)
    void sc_log_softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m)
    void sc_logsumexp_cols_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_logsumexp_cols_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t n, size_t m)

    void sc_softmax_jvp_rows_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_softmax_jvp_rows_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_log_softmax_jvp_rows_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_log_softmax_jvp_rows_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_log_softmax_vjp_rows_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_log_softmax_vjp_rows_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t rows, size_t n)
    void sc_softmax_jvp_cols_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_softmax_jvp_cols_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_log_softmax_jvp_cols_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_log_softmax_jvp_cols_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_log_softmax_vjp_cols_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t n, size_t m)
    void sc_log_softmax_vjp_cols_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t n, size_t m)

    ctypedef struct sc_xent_params:
        const void *weight
        double label_smoothing
        double scale
        double weight_sum
    void sc_xent_rows_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p)
    void sc_xent_rows_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p)

    int sc_simd_level()
    const char *sc_simd_name(int level)
    int sc_simd_supported()
    int sc_simd_compiled()

cdef extern from "_omp.h" nogil:
    int omp_get_max_threads()
    int SC_HAVE_OPENMP
    const char *SC_CFLAGS
