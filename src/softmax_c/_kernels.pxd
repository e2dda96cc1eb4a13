# The C kernels of csrc/softmax_c.h, through the public C-level API of
# softmax_c.kernels (the module that holds them), under their C names.
from softmax_c.kernels cimport (
    sc_xent_params,
    softmax_rows_f32 as sc_softmax_rows_f32,
    softmax_rows_f64 as sc_softmax_rows_f64,
    softmax_rows_work_f32 as sc_softmax_rows_work_f32,
    softmax_rows_work_f64 as sc_softmax_rows_work_f64,
    softmax_rows_ws_f32 as sc_softmax_rows_ws_f32,
    softmax_rows_ws_f64 as sc_softmax_rows_ws_f64,
    log_softmax_rows_f32 as sc_log_softmax_rows_f32,
    log_softmax_rows_f64 as sc_log_softmax_rows_f64,
    logsumexp_rows_f32 as sc_logsumexp_rows_f32,
    logsumexp_rows_f64 as sc_logsumexp_rows_f64,
    softmax_cols_f32 as sc_softmax_cols_f32,
    softmax_cols_f64 as sc_softmax_cols_f64,
    log_softmax_cols_f32 as sc_log_softmax_cols_f32,
    log_softmax_cols_f64 as sc_log_softmax_cols_f64,
    logsumexp_cols_f32 as sc_logsumexp_cols_f32,
    logsumexp_cols_f64 as sc_logsumexp_cols_f64,
    softmax_jvp_rows_f32 as sc_softmax_jvp_rows_f32,
    softmax_jvp_rows_f64 as sc_softmax_jvp_rows_f64,
    log_softmax_jvp_rows_f32 as sc_log_softmax_jvp_rows_f32,
    log_softmax_jvp_rows_f64 as sc_log_softmax_jvp_rows_f64,
    log_softmax_vjp_rows_f32 as sc_log_softmax_vjp_rows_f32,
    log_softmax_vjp_rows_f64 as sc_log_softmax_vjp_rows_f64,
    softmax_jvp_cols_f32 as sc_softmax_jvp_cols_f32,
    softmax_jvp_cols_f64 as sc_softmax_jvp_cols_f64,
    log_softmax_jvp_cols_f32 as sc_log_softmax_jvp_cols_f32,
    log_softmax_jvp_cols_f64 as sc_log_softmax_jvp_cols_f64,
    log_softmax_vjp_cols_f32 as sc_log_softmax_vjp_cols_f32,
    log_softmax_vjp_cols_f64 as sc_log_softmax_vjp_cols_f64,
    xent_rows_f32 as sc_xent_rows_f32,
    xent_rows_f64 as sc_xent_rows_f64,
    xent_cols_f32 as sc_xent_cols_f32,
    xent_cols_f64 as sc_xent_cols_f64,
    simd_level as sc_simd_level,
    simd_name as sc_simd_name,
    simd_supported as sc_simd_supported,
    simd_compiled as sc_simd_compiled,
)

cdef extern from "_omp.h" nogil:
    int omp_get_max_threads()
    int SC_HAVE_OPENMP
    const char *SC_CFLAGS
