# softmax_c/kernels.pxd -- softmax_c's C-level API for Cython extensions.
#
#     from softmax_c cimport kernels as sck
#
#     with nogil:
#         for i in prange(x.shape[0]):
#             sck.softmax_row_f32(&x[i, 0], &y[i, 0], x.shape[1])
#
# Build the extension with include_dirs=[softmax_c.get_include()] (the
# declarations below come from softmax_c.h).  Cimporting this module imports
# softmax_c.kernels when your module is imported; the functions are then
# plain C calls into softmax_c's kernels, with its run-time choice of
# AVX-512F, AVX2 or portable code.  All are `noexcept nogil`: call them from
# any thread, inside your own prange, without the GIL.  None allocates,
# locks or touches floating-point control state.
#
# Functions, each for float32 (_f32), float64 (_f64), and fused over
# cython.floating (no suffix):
#   softmax_row(x, y, n)                 one contiguous row; y may be x
#   log_softmax_row(x, y, n)
#   logsumexp_row(x, n) -> value
#   softmax_jvp_row(y, v, out, n)        y * (v - sum(y v)); also the VJP
#   log_softmax_jvp_row(lp, v, out, n)   v - sum(exp(lp) v)
#   log_softmax_vjp_row(lp, g, out, n)   g - exp(lp) sum(g)
#   xent_row(z, target, g, n, params) -> loss    cross-entropy of one row of
#                                        logits and a class index; g (may be
#                                        z, or NULL for the loss alone) gets
#                                        params.scale * d loss / d z
#   piece_max, piece_chunk, piece_expsum, piece_total, piece_scale,
#   piece_log_softmax, piece_bwd_chunk, piece_bwd_sums, piece_bwd_out,
#   piece_xent_max_bytes, piece_xent_ud, piece_xent_finish, piece_xent_scale,
#   piece_xent_sweep_max, piece_xent_sweep_sums, piece_xent_sweep_finish,
#   piece_xent_sweep_grad
#                                        pieces for one row split across
#                                        threads, bitwise equal to the row
#                                        kernels (fused only; softmax_c.h)
#   softmax_rows_work(y, ldy, rows, n), softmax_rows_ws(x, ldx, y, ldy, rows,
#   n, work, work_len)                   softmax_rows with caller's scratch
#                                        (softmax_c.h)
#   xent_rows_work_f32/_f64(g, ldg, rows, n), xent_rows_ws_f32/_f64(...,
#   work, work_len)                      xent_rows with caller's scratch
#                                        (softmax_c.h)
#   softmax_rows(x, ldx, y, ldy, rows, n) ... the batch forms: `rows` rows of
#   n contiguous elements, row r at x + r*ldx (strides in elements), and the
#   _cols forms over the columns of an n-by-m panel -- exactly the functions
#   of softmax_c.h without the sc_ prefix; see there for each layout.
#
# Errors are signalled the scipy.special.cython_special way: never an
# exception, never a read out of bounds for valid lengths, but NaN in the
# result.  A slice holding NaN or +inf, or only -inf, gives NaN (logsumexp:
# NaN -> NaN, +inf -> +inf, only -inf or n == 0 -> -inf); a class index >= n
# gives a NaN loss and a NaN gradient row; a negative index is an ignored
# row (loss 0, gradient 0).  Accuracy, as softmax_c.h states: relative error
# <= 1e-6 (float32) / 1e-14 (float64) for softmax outputs above the smallest
# normal, absolute <= that * max(1, |result|) for log_softmax and logsumexp.
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "softmax_c.h" nogil:
    ctypedef struct sc_xent_params:
        const void *weight       # n per-class weights of the logits' dtype, or NULL (all 1)
        double label_smoothing   # in [0, 1]
        double scale             # gradient factor (1 / denominator for a mean)
        double weight_sum        # sum of the weights; n without weights

    ctypedef struct sc_api:
        unsigned int version
        unsigned int size
        void (*softmax_rows_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_rows_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_rows_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_rows_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*logsumexp_rows_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*logsumexp_rows_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_cols_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_cols_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_cols_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_cols_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*logsumexp_cols_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*logsumexp_cols_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_jvp_rows_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_jvp_rows_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_jvp_rows_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_jvp_rows_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_vjp_rows_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_vjp_rows_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_jvp_cols_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_jvp_cols_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_jvp_cols_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_jvp_cols_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_vjp_cols_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*log_softmax_vjp_cols_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*xent_rows_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *, ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *) noexcept nogil
        void (*xent_rows_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *, ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *) noexcept nogil
        int (*simd_level)() noexcept nogil
        const char *(*simd_name)(int) noexcept nogil
        int (*simd_supported)() noexcept nogil
        int (*simd_compiled)() noexcept nogil
        float (*piece_max_f32)(const float *, size_t) noexcept nogil
        double (*piece_max_f64)(const double *, size_t) noexcept nogil
        size_t (*piece_chunk_f32)() noexcept nogil
        size_t (*piece_chunk_f64)() noexcept nogil
        void (*piece_expsum_f32)(const float *, float *, size_t, float, double *) noexcept nogil
        void (*piece_expsum_f64)(const double *, double *, size_t, double, double *) noexcept nogil
        double (*piece_total)(const double *, size_t) noexcept nogil
        void (*piece_scale_f32)(float *, size_t, float) noexcept nogil
        void (*piece_scale_f64)(double *, size_t, double) noexcept nogil
        void (*piece_log_softmax_f32)(const float *, float *, size_t, float, float) noexcept nogil
        void (*piece_log_softmax_f64)(const double *, double *, size_t, double, double) noexcept nogil
        size_t (*piece_bwd_chunk_f32)() noexcept nogil
        size_t (*piece_bwd_chunk_f64)() noexcept nogil
        void (*piece_bwd_sums_f32)(int, const float *, const float *, size_t, double *) noexcept nogil
        void (*piece_bwd_sums_f64)(int, const double *, const double *, size_t, double *) noexcept nogil
        void (*piece_bwd_out_f32)(int, const float *, const float *, float *, size_t, float) noexcept nogil
        void (*piece_bwd_out_f64)(int, const double *, const double *, double *, size_t, double) noexcept nogil
        void (*xent_cols_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *, ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *) noexcept nogil
        void (*xent_cols_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *, ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *) noexcept nogil
        size_t (*piece_xent_max_bytes_f32)() noexcept nogil
        size_t (*piece_xent_max_bytes_f64)() noexcept nogil
        void (*piece_xent_ud_f32)(const float *, const float *, size_t, size_t, size_t, float, const sc_xent_params *, double *, double *) noexcept nogil
        void (*piece_xent_ud_f64)(const double *, const double *, size_t, size_t, size_t, double, const sc_xent_params *, double *, double *) noexcept nogil
        double (*piece_xent_finish_f32)(const float *, int64_t, double, const float *, size_t, float, double, double, double, const sc_xent_params *, double *) noexcept nogil
        double (*piece_xent_finish_f64)(const double *, int64_t, double, const double *, size_t, double, double, double, double, const sc_xent_params *, double *) noexcept nogil
        void (*piece_xent_scale_f32)(float *, const float *, int64_t, size_t, size_t, size_t, const sc_xent_params *, const double *) noexcept nogil
        void (*piece_xent_scale_f64)(double *, const double *, int64_t, size_t, size_t, size_t, const sc_xent_params *, const double *) noexcept nogil
        size_t (*softmax_rows_work_f32)(const float *, ptrdiff_t, size_t, size_t) noexcept nogil
        size_t (*softmax_rows_work_f64)(const double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*softmax_rows_ws_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t, float *, size_t) noexcept nogil
        void (*softmax_rows_ws_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, double *, size_t) noexcept nogil
        void (*piece_xent_sweep_max_f32)(const float *, size_t, size_t, double *) noexcept nogil
        void (*piece_xent_sweep_max_f64)(const double *, size_t, size_t, double *) noexcept nogil
        void (*piece_xent_sweep_sums_f32)(const float *, const float *, size_t, size_t, size_t, const sc_xent_params *, double *) noexcept nogil
        void (*piece_xent_sweep_sums_f64)(const double *, const double *, size_t, size_t, size_t, const sc_xent_params *, double *) noexcept nogil
        int (*piece_xent_sweep_finish_f32)(const float *, const float *, int64_t, size_t, const sc_xent_params *, const double *, int, double *, double *) noexcept nogil
        int (*piece_xent_sweep_finish_f64)(const double *, const double *, int64_t, size_t, const sc_xent_params *, const double *, int, double *, double *) noexcept nogil
        void (*piece_xent_sweep_grad_f32)(const float *, const float *, int64_t, float *, size_t, size_t, size_t, const sc_xent_params *, const double *) noexcept nogil
        void (*piece_xent_sweep_grad_f64)(const double *, const double *, int64_t, double *, size_t, size_t, size_t, const sc_xent_params *, const double *) noexcept nogil
        size_t (*xent_rows_work_f32)(const float *, ptrdiff_t, size_t, size_t) noexcept nogil
        size_t (*xent_rows_work_f64)(const double *, ptrdiff_t, size_t, size_t) noexcept nogil
        void (*xent_rows_ws_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *, ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *, float *, size_t) noexcept nogil
        void (*xent_rows_ws_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *, ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, const sc_xent_params *, double *, size_t) noexcept nogil

    enum sc_bwd_op:
        SC_SOFTMAX_JVP
        SC_LOG_SOFTMAX_JVP
        SC_LOG_SOFTMAX_VJP

# The function table (softmax_c.h's struct sc_api), from softmax_c.kernels.
cdef const sc_api *get_api() noexcept nogil

# ---- batch kernels: softmax_c.h's functions, without the sc_ prefix -------

cdef inline void softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    get_api().softmax_rows_f32(x, ldx, y, ldy, rows, n)
cdef inline void softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    get_api().softmax_rows_f64(x, ldx, y, ldy, rows, n)
cdef inline size_t softmax_rows_work_f32(const float *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    return get_api().softmax_rows_work_f32(y, ldy, rows, n)
cdef inline size_t softmax_rows_work_f64(const double *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    return get_api().softmax_rows_work_f64(y, ldy, rows, n)
cdef inline void softmax_rows_ws_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n, float *work, size_t work_len) noexcept nogil:
    get_api().softmax_rows_ws_f32(x, ldx, y, ldy, rows, n, work, work_len)
cdef inline void softmax_rows_ws_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n, double *work, size_t work_len) noexcept nogil:
    get_api().softmax_rows_ws_f64(x, ldx, y, ldy, rows, n, work, work_len)
cdef inline void log_softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_rows_f32(x, ldx, y, ldy, rows, n)
cdef inline void log_softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_rows_f64(x, ldx, y, ldy, rows, n)
cdef inline void logsumexp_rows_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().logsumexp_rows_f32(x, ldx, out, ldo, rows, n)
cdef inline void logsumexp_rows_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().logsumexp_rows_f64(x, ldx, out, ldo, rows, n)

cdef inline void softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m) noexcept nogil:
    get_api().softmax_cols_f32(x, ldx, y, ldy, n, m)
cdef inline void softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m) noexcept nogil:
    get_api().softmax_cols_f64(x, ldx, y, ldy, n, m)
cdef inline void log_softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_cols_f32(x, ldx, y, ldy, n, m)
cdef inline void log_softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_cols_f64(x, ldx, y, ldy, n, m)
cdef inline void logsumexp_cols_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().logsumexp_cols_f32(x, ldx, out, ldo, n, m)
cdef inline void logsumexp_cols_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().logsumexp_cols_f64(x, ldx, out, ldo, n, m)

cdef inline void softmax_jvp_rows_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().softmax_jvp_rows_f32(y, ldy, v, ldv, out, ldo, rows, n)
cdef inline void softmax_jvp_rows_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().softmax_jvp_rows_f64(y, ldy, v, ldv, out, ldo, rows, n)
cdef inline void log_softmax_jvp_rows_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_jvp_rows_f32(lp, ldl, v, ldv, out, ldo, rows, n)
cdef inline void log_softmax_jvp_rows_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_jvp_rows_f64(lp, ldl, v, ldv, out, ldo, rows, n)
cdef inline void log_softmax_vjp_rows_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_vjp_rows_f32(lp, ldl, g, ldg, out, ldo, rows, n)
cdef inline void log_softmax_vjp_rows_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    get_api().log_softmax_vjp_rows_f64(lp, ldl, g, ldg, out, ldo, rows, n)

cdef inline void softmax_jvp_cols_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().softmax_jvp_cols_f32(y, ldy, v, ldv, out, ldo, n, m)
cdef inline void softmax_jvp_cols_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().softmax_jvp_cols_f64(y, ldy, v, ldv, out, ldo, n, m)
cdef inline void log_softmax_jvp_cols_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_jvp_cols_f32(lp, ldl, v, ldv, out, ldo, n, m)
cdef inline void log_softmax_jvp_cols_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_jvp_cols_f64(lp, ldl, v, ldv, out, ldo, n, m)
cdef inline void log_softmax_vjp_cols_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_vjp_cols_f32(lp, ldl, g, ldg, out, ldo, n, m)
cdef inline void log_softmax_vjp_cols_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t n, size_t m) noexcept nogil:
    get_api().log_softmax_vjp_cols_f64(lp, ldl, g, ldg, out, ldo, n, m)

cdef inline void xent_rows_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p) noexcept nogil:
    get_api().xent_rows_f32(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p)
cdef inline void xent_rows_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p) noexcept nogil:
    get_api().xent_rows_f64(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p)
cdef inline size_t xent_rows_work_f32(const float *g, ptrdiff_t ldg, size_t rows, size_t n) noexcept nogil:
    return get_api().xent_rows_work_f32(g, ldg, rows, n)
cdef inline size_t xent_rows_work_f64(const double *g, ptrdiff_t ldg, size_t rows, size_t n) noexcept nogil:
    return get_api().xent_rows_work_f64(g, ldg, rows, n)
cdef inline void xent_rows_ws_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p, float *work, size_t work_len) noexcept nogil:
    get_api().xent_rows_ws_f32(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p, work, work_len)
cdef inline void xent_rows_ws_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p, double *work, size_t work_len) noexcept nogil:
    get_api().xent_rows_ws_f64(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p, work, work_len)
cdef inline void xent_cols_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t n, size_t m, const sc_xent_params *p) noexcept nogil:
    get_api().xent_cols_f32(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, p)
cdef inline void xent_cols_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t n, size_t m, const sc_xent_params *p) noexcept nogil:
    get_api().xent_cols_f64(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, p)

cdef inline int simd_level() noexcept nogil:
    return get_api().simd_level()
cdef inline const char *simd_name(int level) noexcept nogil:
    return get_api().simd_name(level)
cdef inline int simd_supported() noexcept nogil:
    return get_api().simd_supported()
cdef inline int simd_compiled() noexcept nogil:
    return get_api().simd_compiled()

# ---- one row across threads: the pieces (see softmax_c.h for the recipe) ----

cdef inline floating piece_max(const floating *x, size_t n) noexcept nogil:
    if floating is float:
        return get_api().piece_max_f32(x, n)
    else:
        return get_api().piece_max_f64(x, n)
cdef inline size_t piece_chunk(floating dtype_only) noexcept nogil:
    if floating is float:
        return get_api().piece_chunk_f32()
    else:
        return get_api().piece_chunk_f64()
cdef inline void piece_expsum(const floating *x, floating *y, size_t n, floating mx, double *sums) noexcept nogil:
    if floating is float:
        get_api().piece_expsum_f32(x, y, n, mx, sums)
    else:
        get_api().piece_expsum_f64(x, y, n, mx, sums)
cdef inline double piece_total(const double *sums, size_t k) noexcept nogil:
    return get_api().piece_total(sums, k)
cdef inline void piece_scale(floating *y, size_t n, floating a) noexcept nogil:
    if floating is float:
        get_api().piece_scale_f32(y, n, a)
    else:
        get_api().piece_scale_f64(y, n, a)
cdef inline void piece_log_softmax(const floating *x, floating *y, size_t n, floating mx, floating c) noexcept nogil:
    if floating is float:
        get_api().piece_log_softmax_f32(x, y, n, mx, c)
    else:
        get_api().piece_log_softmax_f64(x, y, n, mx, c)

cdef inline size_t piece_bwd_chunk(floating dtype_only) noexcept nogil:
    if floating is float:
        return get_api().piece_bwd_chunk_f32()
    else:
        return get_api().piece_bwd_chunk_f64()
cdef inline void piece_bwd_sums(int op, const floating *a, const floating *b, size_t n, double *sums) noexcept nogil:
    if floating is float:
        get_api().piece_bwd_sums_f32(op, a, b, n, sums)
    else:
        get_api().piece_bwd_sums_f64(op, a, b, n, sums)
cdef inline void piece_bwd_out(int op, const floating *a, const floating *b, floating *out, size_t n, floating d) noexcept nogil:
    if floating is float:
        get_api().piece_bwd_out_f32(op, a, b, out, n, d)
    else:
        get_api().piece_bwd_out_f64(op, a, b, out, n, d)

cdef inline size_t piece_xent_max_bytes(floating dtype_only) noexcept nogil:
    if floating is float:
        return get_api().piece_xent_max_bytes_f32()
    else:
        return get_api().piece_xent_max_bytes_f64()

cdef inline void piece_xent_ud(const floating *z, const floating *q, size_t lo, size_t length, size_t n, floating mx, const sc_xent_params *p, double *usums, double *dsums) noexcept nogil:
    if floating is float:
        get_api().piece_xent_ud_f32(z, q, lo, length, n, mx, p, usums, dsums)
    else:
        get_api().piece_xent_ud_f64(z, q, lo, length, n, mx, p, usums, dsums)

cdef inline double piece_xent_finish(const floating *q, int64_t t, double zt, const floating *g, size_t n, floating mx, double s, double U, double D, const sc_xent_params *p, double *factors) noexcept nogil:
    if floating is float:
        return get_api().piece_xent_finish_f32(q, t, zt, g, n, mx, s, U, D, p, factors)
    else:
        return get_api().piece_xent_finish_f64(q, t, zt, g, n, mx, s, U, D, p, factors)

cdef inline void piece_xent_scale(floating *g, const floating *q, int64_t t, size_t lo, size_t length, size_t n, const sc_xent_params *p, const double *factors) noexcept nogil:
    if floating is float:
        get_api().piece_xent_scale_f32(g, q, t, lo, length, n, p, factors)
    else:
        get_api().piece_xent_scale_f64(g, q, t, lo, length, n, p, factors)

cdef inline void piece_xent_sweep_max(const floating *z, size_t lo, size_t length, double *ws) noexcept nogil:
    if floating is float:
        get_api().piece_xent_sweep_max_f32(z, lo, length, ws)
    else:
        get_api().piece_xent_sweep_max_f64(z, lo, length, ws)

cdef inline void piece_xent_sweep_sums(const floating *z, const floating *q, size_t lo, size_t length, size_t n, const sc_xent_params *p, double *ws) noexcept nogil:
    if floating is float:
        get_api().piece_xent_sweep_sums_f32(z, q, lo, length, n, p, ws)
    else:
        get_api().piece_xent_sweep_sums_f64(z, q, lo, length, n, p, ws)

cdef inline int piece_xent_sweep_finish(const floating *z, const floating *q, int64_t t, size_t n, const sc_xent_params *p, const double *ws, int want_g, double *loss, double *factors) noexcept nogil:
    if floating is float:
        return get_api().piece_xent_sweep_finish_f32(z, q, t, n, p, ws, want_g, loss, factors)
    else:
        return get_api().piece_xent_sweep_finish_f64(z, q, t, n, p, ws, want_g, loss, factors)

cdef inline void piece_xent_sweep_grad(const floating *z, const floating *q, int64_t t, floating *g, size_t lo, size_t length, size_t n, const sc_xent_params *p, const double *factors) noexcept nogil:
    if floating is float:
        get_api().piece_xent_sweep_grad_f32(z, q, t, g, lo, length, n, p, factors)
    else:
        get_api().piece_xent_sweep_grad_f64(z, q, t, g, lo, length, n, p, factors)

# ---- one contiguous row --------------------------------------------------

cdef inline void softmax_row_f32(const float *x, float *y, size_t n) noexcept nogil:
    get_api().softmax_rows_f32(x, 0, y, 0, 1, n)
cdef inline void softmax_row_f64(const double *x, double *y, size_t n) noexcept nogil:
    get_api().softmax_rows_f64(x, 0, y, 0, 1, n)
cdef inline void log_softmax_row_f32(const float *x, float *y, size_t n) noexcept nogil:
    get_api().log_softmax_rows_f32(x, 0, y, 0, 1, n)
cdef inline void log_softmax_row_f64(const double *x, double *y, size_t n) noexcept nogil:
    get_api().log_softmax_rows_f64(x, 0, y, 0, 1, n)
cdef inline float logsumexp_row_f32(const float *x, size_t n) noexcept nogil:
    cdef float r
    get_api().logsumexp_rows_f32(x, 0, &r, 0, 1, n)
    return r
cdef inline double logsumexp_row_f64(const double *x, size_t n) noexcept nogil:
    cdef double r
    get_api().logsumexp_rows_f64(x, 0, &r, 0, 1, n)
    return r
cdef inline void softmax_jvp_row_f32(const float *y, const float *v, float *out, size_t n) noexcept nogil:
    get_api().softmax_jvp_rows_f32(y, 0, v, 0, out, 0, 1, n)
cdef inline void softmax_jvp_row_f64(const double *y, const double *v, double *out, size_t n) noexcept nogil:
    get_api().softmax_jvp_rows_f64(y, 0, v, 0, out, 0, 1, n)
cdef inline void log_softmax_jvp_row_f32(const float *lp, const float *v, float *out, size_t n) noexcept nogil:
    get_api().log_softmax_jvp_rows_f32(lp, 0, v, 0, out, 0, 1, n)
cdef inline void log_softmax_jvp_row_f64(const double *lp, const double *v, double *out, size_t n) noexcept nogil:
    get_api().log_softmax_jvp_rows_f64(lp, 0, v, 0, out, 0, 1, n)
cdef inline void log_softmax_vjp_row_f32(const float *lp, const float *g, float *out, size_t n) noexcept nogil:
    get_api().log_softmax_vjp_rows_f32(lp, 0, g, 0, out, 0, 1, n)
cdef inline void log_softmax_vjp_row_f64(const double *lp, const double *g, double *out, size_t n) noexcept nogil:
    get_api().log_softmax_vjp_rows_f64(lp, 0, g, 0, out, 0, 1, n)
cdef inline double xent_row_f32(const float *z, int64_t target, float *g, size_t n, const sc_xent_params *p) noexcept nogil:
    cdef double loss
    get_api().xent_rows_f32(z, 0, NULL, 0, &target, 0, g, 0, &loss, 0, 1, n, p)
    return loss
cdef inline double xent_row_f64(const double *z, int64_t target, double *g, size_t n, const sc_xent_params *p) noexcept nogil:
    cdef double loss
    get_api().xent_rows_f64(z, 0, NULL, 0, &target, 0, g, 0, &loss, 0, 1, n, p)
    return loss

# ---- fused over float and double -------------------------------------------

cdef inline void softmax_row(const floating *x, floating *y, size_t n) noexcept nogil:
    if floating is float:
        softmax_row_f32(x, y, n)
    else:
        softmax_row_f64(x, y, n)
cdef inline void log_softmax_row(const floating *x, floating *y, size_t n) noexcept nogil:
    if floating is float:
        log_softmax_row_f32(x, y, n)
    else:
        log_softmax_row_f64(x, y, n)
cdef inline floating logsumexp_row(const floating *x, size_t n) noexcept nogil:
    if floating is float:
        return logsumexp_row_f32(x, n)
    else:
        return logsumexp_row_f64(x, n)
cdef inline void softmax_jvp_row(const floating *y, const floating *v, floating *out, size_t n) noexcept nogil:
    if floating is float:
        softmax_jvp_row_f32(y, v, out, n)
    else:
        softmax_jvp_row_f64(y, v, out, n)
cdef inline void log_softmax_jvp_row(const floating *lp, const floating *v, floating *out, size_t n) noexcept nogil:
    if floating is float:
        log_softmax_jvp_row_f32(lp, v, out, n)
    else:
        log_softmax_jvp_row_f64(lp, v, out, n)
cdef inline void log_softmax_vjp_row(const floating *lp, const floating *g, floating *out, size_t n) noexcept nogil:
    if floating is float:
        log_softmax_vjp_row_f32(lp, g, out, n)
    else:
        log_softmax_vjp_row_f64(lp, g, out, n)
cdef inline double xent_row(const floating *z, int64_t target, floating *g, size_t n, const sc_xent_params *p) noexcept nogil:
    if floating is float:
        return xent_row_f32(z, target, g, n, p)
    else:
        return xent_row_f64(z, target, g, n, p)

cdef inline void softmax_rows(const floating *x, ptrdiff_t ldx, floating *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    if floating is float:
        softmax_rows_f32(x, ldx, y, ldy, rows, n)
    else:
        softmax_rows_f64(x, ldx, y, ldy, rows, n)
cdef inline size_t softmax_rows_work(const floating *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    if floating is float:
        return get_api().softmax_rows_work_f32(y, ldy, rows, n)
    else:
        return get_api().softmax_rows_work_f64(y, ldy, rows, n)
cdef inline void softmax_rows_ws(const floating *x, ptrdiff_t ldx, floating *y, ptrdiff_t ldy, size_t rows, size_t n, floating *work, size_t work_len) noexcept nogil:
    if floating is float:
        get_api().softmax_rows_ws_f32(x, ldx, y, ldy, rows, n, work, work_len)
    else:
        get_api().softmax_rows_ws_f64(x, ldx, y, ldy, rows, n, work, work_len)
cdef inline void log_softmax_rows(const floating *x, ptrdiff_t ldx, floating *y, ptrdiff_t ldy, size_t rows, size_t n) noexcept nogil:
    if floating is float:
        log_softmax_rows_f32(x, ldx, y, ldy, rows, n)
    else:
        log_softmax_rows_f64(x, ldx, y, ldy, rows, n)
cdef inline void logsumexp_rows(const floating *x, ptrdiff_t ldx, floating *out, ptrdiff_t ldo, size_t rows, size_t n) noexcept nogil:
    if floating is float:
        logsumexp_rows_f32(x, ldx, out, ldo, rows, n)
    else:
        logsumexp_rows_f64(x, ldx, out, ldo, rows, n)
