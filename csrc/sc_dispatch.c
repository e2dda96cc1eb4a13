/*
 * sc_dispatch.c - run-time choice of the kernel set, and the public entry
 * points of softmax_c.h.
 *
 * The level is chosen once (NumPy's npy_cpu_features.c does the same):
 * cpuid says what the CPU has, XGETBV says whether the OS saves the wider
 * registers on a context switch; SOFTMAX_C_SIMD may cap the result.  The
 * table pointer is published with a release store and read with an acquire
 * load, so concurrent first calls are safe: each computes the same table.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sc_internal.h"

#if SC_X86
#include <cpuid.h>
#endif

typedef struct {
#define SC_FIELD(name)                                                         \
    void (*name##_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t); \
    void (*name##_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t);
    SC_UNARY_KERNELS(SC_FIELD)
#undef SC_FIELD
#define SC_FIELDB(name)                                                        \
    void (*name##_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t); \
    void (*name##_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t);
    SC_BINARY_KERNELS(SC_FIELDB)
#undef SC_FIELDB
    sc_xent_f32_fn *xent_rows_f32;
    sc_xent_f64_fn *xent_rows_f64;
    sc_xent_f32_fn *xent_cols_f32;
    sc_xent_f64_fn *xent_cols_f64;
#define SC_PIECE_FIELDS(s, T)                                                  \
    T (*piece_max_##s)(const T *, size_t);                                           \
    size_t (*piece_chunk_##s)(void);                                             \
    void (*piece_expsum_##s)(const T *, T *, size_t, T, double *);            \
    void (*piece_scale_##s)(T *, size_t, T);                                         \
    void (*piece_log_softmax_##s)(const T *, T *, size_t, T, T);              \
    size_t (*piece_bwd_chunk_##s)(void);                                       \
    void (*piece_bwd_sums_##s)(int, const T *, const T *, size_t, double *);    \
    void (*piece_bwd_out_##s)(int, const T *, const T *, T *, size_t, T);      \
    size_t (*piece_xent_max_bytes_##s)(void);                                  \
    void (*piece_xent_ud_##s)(const T *, const T *, size_t, size_t, size_t, T, \
                              const sc_xent_params *, double *, double *);     \
    double (*piece_xent_finish_##s)(const T *, int64_t, double, const T *, size_t, T, double, \
                                    double, double, const sc_xent_params *, double *); \
    void (*piece_xent_scale_##s)(T *, const T *, int64_t, size_t, size_t, size_t, \
                                 const sc_xent_params *, const double *);      \
    void (*piece_xent_sweep_max_##s)(const T *, size_t, size_t, double *);        \
    void (*piece_xent_sweep_sums_##s)(const T *, const T *, size_t, size_t, size_t, \
                                      const sc_xent_params *, double *);        \
    int (*piece_xent_sweep_finish_##s)(const T *, const T *, int64_t, size_t,       \
                                       const sc_xent_params *, const double *, int, double *, \
                                       double *);                               \
    void (*piece_xent_sweep_grad_##s)(const T *, const T *, int64_t, T *, size_t, size_t, \
                                      size_t, const sc_xent_params *, const double *);
    SC_PIECE_FIELDS(f32, float)
    SC_PIECE_FIELDS(f64, double)
#undef SC_PIECE_FIELDS
    void (*softmax_rows_ws_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t, float *,
                                size_t);
    void (*softmax_rows_ws_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                                double *, size_t);
    void (*xent_rows_ws_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *,
                             ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                             const sc_xent_params *, float *, size_t);
    void (*xent_rows_ws_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *,
                             ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                             const sc_xent_params *, double *, size_t);
    int level;
} sc_table;

#define SC_TABLE(isa, lvl)                                                     \
    static const sc_table sc_table_##isa = {                                   \
        SC_UNARY_KERNELS(SC_ENTRY_##isa) SC_BINARY_KERNELS(SC_ENTRY_##isa)     \
        SC_ENTRY_(xent_rows, isa) SC_ENTRY_(xent_cols, isa) SC_PIECES_(f32, isa) SC_PIECES_(f64, isa) \
        SC_ENTRY_(softmax_rows_ws, isa) SC_ENTRY_(xent_rows_ws, isa) lvl                                    \
    };
#define SC_PIECES_(s, isa)                                                     \
    sc_piece_max_##s##__##isa, sc_piece_chunk_##s##__##isa, sc_piece_expsum_##s##__##isa, \
    sc_piece_scale_##s##__##isa, sc_piece_log_softmax_##s##__##isa,          \
    sc_piece_bwd_chunk_##s##__##isa, sc_piece_bwd_sums_##s##__##isa, sc_piece_bwd_out_##s##__##isa, \
    sc_piece_xent_max_bytes_##s##__##isa, sc_piece_xent_ud_##s##__##isa,       \
    sc_piece_xent_finish_##s##__##isa, sc_piece_xent_scale_##s##__##isa,       \
    sc_piece_xent_sweep_max_##s##__##isa, sc_piece_xent_sweep_sums_##s##__##isa, \
    sc_piece_xent_sweep_finish_##s##__##isa, sc_piece_xent_sweep_grad_##s##__##isa,
#define SC_ENTRY_(name, isa) sc_##name##_f32__##isa, sc_##name##_f64__##isa,
#define SC_ENTRY_scalar(name) SC_ENTRY_(name, scalar)
#define SC_ENTRY_avx2(name) SC_ENTRY_(name, avx2)
#define SC_ENTRY_avx512f(name) SC_ENTRY_(name, avx512f)

SC_TABLE(scalar, SC_SIMD_SCALAR)
#if SC_X86
SC_TABLE(avx2, SC_SIMD_AVX2)
SC_TABLE(avx512f, SC_SIMD_AVX512F)
#endif

static const char *const sc_level_names[] = {"scalar", "avx2", "avx512f"};

const char *sc_simd_name(int level)
{
    if (level < SC_SIMD_SCALAR || level > SC_SIMD_AVX512F)
        return "unknown";
    return sc_level_names[level];
}

int sc_simd_compiled(void)
{
#if SC_X86
    return (1 << SC_SIMD_SCALAR) | (1 << SC_SIMD_AVX2) | (1 << SC_SIMD_AVX512F);
#else
    return 1 << SC_SIMD_SCALAR;
#endif
}

#if SC_X86
static unsigned long long sc_xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

int sc_simd_supported(void)
{
#if SC_X86
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return SC_SIMD_SCALAR;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!(osxsave && avx && fma))
        return SC_SIMD_SCALAR;
    const unsigned long long xcr0 = sc_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return SC_SIMD_SCALAR;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return SC_SIMD_SCALAR;
    const int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
    if (!avx2)
        return SC_SIMD_SCALAR;
    if (avx512f && (xcr0 & 0xe6) == 0xe6) /* + opmask, ZMM_Hi256, Hi16_ZMM */
        return SC_SIMD_AVX512F;
    return SC_SIMD_AVX2;
#else
    return SC_SIMD_SCALAR;
#endif
}

/* SOFTMAX_C_SIMD caps the level; an unknown value is ignored (the Python
 * layer reports it). */
static int sc_env_cap(void)
{
    const char *s = getenv("SOFTMAX_C_SIMD");
    if (s == NULL || *s == '\0')
        return SC_SIMD_AVX512F;
    for (int l = SC_SIMD_SCALAR; l <= SC_SIMD_AVX512F; l++)
        if (strcmp(s, sc_level_names[l]) == 0)
            return l;
    if (strcmp(s, "avx512") == 0)
        return SC_SIMD_AVX512F;
    return SC_SIMD_AVX512F;
}

static const sc_table *sc_active = NULL;

static const sc_table *sc_select(void)
{
    int level = sc_simd_supported();
    int cap = sc_env_cap();
    if (cap < level)
        level = cap;
#if SC_X86
    if (level == SC_SIMD_AVX512F)
        return &sc_table_avx512f;
    if (level == SC_SIMD_AVX2)
        return &sc_table_avx2;
#endif
    return &sc_table_scalar;
}

static inline const sc_table *sc_table_get(void)
{
    const sc_table *t = __atomic_load_n(&sc_active, __ATOMIC_ACQUIRE);
    if (t == NULL) {
        t = sc_select();
        __atomic_store_n(&sc_active, t, __ATOMIC_RELEASE);
    }
    return t;
}

int sc_simd_level(void) { return sc_table_get()->level; }

#define SC_WRAPPER(name)                                                       \
    void sc_##name##_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t a, size_t b) \
    {                                                                          \
        sc_table_get()->name##_f32(x, ldx, y, ldy, a, b);                      \
    }                                                                          \
    void sc_##name##_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t a, size_t b) \
    {                                                                          \
        sc_table_get()->name##_f64(x, ldx, y, ldy, a, b);                      \
    }
SC_UNARY_KERNELS(SC_WRAPPER)

#define SC_WRAPPER_B(name)                                                     \
    void sc_##name##_f32(const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *out, \
                         ptrdiff_t ldo, size_t p, size_t q)                    \
    {                                                                          \
        sc_table_get()->name##_f32(a, lda, b, ldb, out, ldo, p, q);            \
    }                                                                          \
    void sc_##name##_f64(const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb, double *out, \
                         ptrdiff_t ldo, size_t p, size_t q)                    \
    {                                                                          \
        sc_table_get()->name##_f64(a, lda, b, ldb, out, ldo, p, q);            \
    }
SC_BINARY_KERNELS(SC_WRAPPER_B)

#define SC_XENT_WRAPPERS(name)                                                 \
    void sc_##name##_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, \
                         const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, \
                         ptrdiff_t ldl, size_t a, size_t b, const sc_xent_params *p) \
    {                                                                          \
        sc_table_get()->name##_f32(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, a, b, p); \
    }                                                                          \
    void sc_##name##_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, \
                         const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, \
                         ptrdiff_t ldl, size_t a, size_t b, const sc_xent_params *p) \
    {                                                                          \
        sc_table_get()->name##_f64(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, a, b, p); \
    }
SC_XENT_WRAPPERS(xent_rows)
SC_XENT_WRAPPERS(xent_cols)

#define SC_PIECE_WRAPPERS(s, T)                                                \
    T sc_piece_max_##s(const T *x, size_t n) { return sc_table_get()->piece_max_##s(x, n); } \
    size_t sc_piece_chunk_##s(void) { return sc_table_get()->piece_chunk_##s(); }   \
    void sc_piece_expsum_##s(const T *x, T *y, size_t n, T mx, double *sums)  \
    {                                                                          \
        sc_table_get()->piece_expsum_##s(x, y, n, mx, sums);                  \
    }                                                                          \
    void sc_piece_scale_##s(T *y, size_t n, T a) { sc_table_get()->piece_scale_##s(y, n, a); } \
    void sc_piece_log_softmax_##s(const T *x, T *y, size_t n, T mx, T c)        \
    {                                                                          \
        sc_table_get()->piece_log_softmax_##s(x, y, n, mx, c);                  \
    }                                                                          \
    size_t sc_piece_bwd_chunk_##s(void) { return sc_table_get()->piece_bwd_chunk_##s(); } \
    void sc_piece_bwd_sums_##s(int op, const T *a, const T *b, size_t n, double *sums) \
    {                                                                          \
        sc_table_get()->piece_bwd_sums_##s(op, a, b, n, sums);                 \
    }                                                                          \
    void sc_piece_bwd_out_##s(int op, const T *a, const T *b, T *out, size_t n, T d) \
    {                                                                          \
        sc_table_get()->piece_bwd_out_##s(op, a, b, out, n, d);                \
    }                                                                          \
    size_t sc_piece_xent_max_bytes_##s(void)                                   \
    {                                                                          \
        return sc_table_get()->piece_xent_max_bytes_##s();                     \
    }                                                                          \
    void sc_piece_xent_ud_##s(const T *z, const T *q, size_t lo, size_t len, size_t n, T mx, \
                              const sc_xent_params *p, double *usums, double *dsums) \
    {                                                                          \
        sc_table_get()->piece_xent_ud_##s(z, q, lo, len, n, mx, p, usums, dsums); \
    }                                                                          \
    double sc_piece_xent_finish_##s(const T *q, int64_t t, double zt, const T *g, size_t n, T mx, \
                                    double s, double U, double D, const sc_xent_params *p, \
                                    double *factors)                           \
    {                                                                          \
        return sc_table_get()->piece_xent_finish_##s(q, t, zt, g, n, mx, s, U, D, p, factors); \
    }                                                                          \
    void sc_piece_xent_scale_##s(T *g, const T *q, int64_t t, size_t lo, size_t len, size_t n, \
                                 const sc_xent_params *p, const double *factors) \
    {                                                                          \
        sc_table_get()->piece_xent_scale_##s(g, q, t, lo, len, n, p, factors); \
    }                                                                          \
    void sc_piece_xent_sweep_max_##s(const T *z, size_t lo, size_t len, double *ws) \
    {                                                                          \
        sc_table_get()->piece_xent_sweep_max_##s(z, lo, len, ws);              \
    }                                                                          \
    void sc_piece_xent_sweep_sums_##s(const T *z, const T *q, size_t lo, size_t len, size_t n, \
                                      const sc_xent_params *p, double *ws)      \
    {                                                                          \
        sc_table_get()->piece_xent_sweep_sums_##s(z, q, lo, len, n, p, ws);    \
    }                                                                          \
    int sc_piece_xent_sweep_finish_##s(const T *z, const T *q, int64_t t, size_t n, \
                                       const sc_xent_params *p, const double *ws, int want_g, \
                                       double *loss, double *factors)           \
    {                                                                          \
        return sc_table_get()->piece_xent_sweep_finish_##s(z, q, t, n, p, ws, want_g, loss, \
                                                           factors);            \
    }                                                                          \
    void sc_piece_xent_sweep_grad_##s(const T *z, const T *q, int64_t t, T *g, size_t lo, \
                                      size_t len, size_t n, const sc_xent_params *p, \
                                      const double *factors)                    \
    {                                                                          \
        sc_table_get()->piece_xent_sweep_grad_##s(z, q, t, g, lo, len, n, p, factors); \
    }
SC_PIECE_WRAPPERS(f32, float)
SC_PIECE_WRAPPERS(f64, double)

/* The same order and the same compensation as the row kernels' sums
 * (and, as the backward kernels, the total alone once it is not finite). */
double sc_piece_total(const double *sums, size_t k)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < k; i++)
        sc_two_sum_add(&s, &c, sums[i]);
    return isfinite(s) ? s + c : s;
}

#define SC_WS_WRAPPERS(s, T)                                                   \
    void sc_softmax_rows_ws_##s(const T *x, ptrdiff_t ldx, T *y, ptrdiff_t ldy, size_t rows, \
                                size_t n, T *work, size_t work_len)            \
    {                                                                          \
        sc_table_get()->softmax_rows_ws_##s(x, ldx, y, ldy, rows, n, work, work_len); \
    }                                                                          \
    size_t sc_softmax_rows_work_##s(const T *y, ptrdiff_t ldy, size_t rows, size_t n) \
    {                                                                          \
        if (sc_table_get()->level == SC_SIMD_SCALAR || !sc_pipe_rows(sizeof(T), y, ldy, rows, n, 0)) \
            return 0;                                                          \
        return sc_pipe_work(sizeof(T), n);                                     \
    }                                                                          \
    void sc_xent_rows_ws_##s(const T *z, ptrdiff_t ldz, const T *q, ptrdiff_t ldq,       \
                             const int64_t *t, ptrdiff_t ldt, T *g, ptrdiff_t ldg,       \
                             double *loss, ptrdiff_t ldl, size_t rows, size_t n,         \
                             const sc_xent_params *p, T *work, size_t work_len)          \
    {                                                                          \
        sc_table_get()->xent_rows_ws_##s(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p, \
                                         work, work_len);                      \
    }                                                                          \
    size_t sc_xent_rows_work_##s(const T *g, ptrdiff_t ldg, size_t rows, size_t n)      \
    {                                                                          \
        if (sc_table_get()->level == SC_SIMD_SCALAR || g == NULL ||           \
            !sc_xent_pipe_rows(sizeof(T), g, ldg, rows, n))                    \
            return 0;                                                          \
        return sc_pipe_work(sizeof(T), n);                                     \
    }
SC_WS_WRAPPERS(f32, float)
SC_WS_WRAPPERS(f64, double)

static const sc_api sc_api_table = {
    SC_API_VERSION,
    (unsigned int)sizeof(sc_api),
    sc_softmax_rows_f32, sc_softmax_rows_f64,
    sc_log_softmax_rows_f32, sc_log_softmax_rows_f64,
    sc_logsumexp_rows_f32, sc_logsumexp_rows_f64,
    sc_softmax_cols_f32, sc_softmax_cols_f64,
    sc_log_softmax_cols_f32, sc_log_softmax_cols_f64,
    sc_logsumexp_cols_f32, sc_logsumexp_cols_f64,
    sc_softmax_jvp_rows_f32, sc_softmax_jvp_rows_f64,
    sc_log_softmax_jvp_rows_f32, sc_log_softmax_jvp_rows_f64,
    sc_log_softmax_vjp_rows_f32, sc_log_softmax_vjp_rows_f64,
    sc_softmax_jvp_cols_f32, sc_softmax_jvp_cols_f64,
    sc_log_softmax_jvp_cols_f32, sc_log_softmax_jvp_cols_f64,
    sc_log_softmax_vjp_cols_f32, sc_log_softmax_vjp_cols_f64,
    sc_xent_rows_f32, sc_xent_rows_f64,
    sc_simd_level, sc_simd_name, sc_simd_supported, sc_simd_compiled,
    sc_piece_max_f32, sc_piece_max_f64, sc_piece_chunk_f32, sc_piece_chunk_f64,
    sc_piece_expsum_f32, sc_piece_expsum_f64, sc_piece_total,
    sc_piece_scale_f32, sc_piece_scale_f64, sc_piece_log_softmax_f32, sc_piece_log_softmax_f64,
    sc_piece_bwd_chunk_f32, sc_piece_bwd_chunk_f64, sc_piece_bwd_sums_f32, sc_piece_bwd_sums_f64,
    sc_piece_bwd_out_f32, sc_piece_bwd_out_f64,
    sc_xent_cols_f32, sc_xent_cols_f64,
    sc_piece_xent_max_bytes_f32, sc_piece_xent_max_bytes_f64,
    sc_piece_xent_ud_f32, sc_piece_xent_ud_f64,
    sc_piece_xent_finish_f32, sc_piece_xent_finish_f64,
    sc_piece_xent_scale_f32, sc_piece_xent_scale_f64,
    sc_softmax_rows_work_f32, sc_softmax_rows_work_f64,
    sc_softmax_rows_ws_f32, sc_softmax_rows_ws_f64,
    sc_piece_xent_sweep_max_f32, sc_piece_xent_sweep_max_f64,
    sc_piece_xent_sweep_sums_f32, sc_piece_xent_sweep_sums_f64,
    sc_piece_xent_sweep_finish_f32, sc_piece_xent_sweep_finish_f64,
    sc_piece_xent_sweep_grad_f32, sc_piece_xent_sweep_grad_f64,
    sc_xent_rows_work_f32, sc_xent_rows_work_f64,
    sc_xent_rows_ws_f32, sc_xent_rows_ws_f64,
};

const sc_api *sc_get_api(void) { return &sc_api_table; }
