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

/* A level's kernels: one pointer per K row of sc_kernels.def. */
#define SC_TABLE_MEMBER(family, name, dt, sig) SC_MEMBER(name##_##dt, SC_SIG(sig, dt))
typedef struct {
    SC_MANIFEST(SC_TABLE_MEMBER, SC_NOTHING3, SC_NOTHING2)
    int level;
} sc_table;

#define SC_TABLE_scalar(family, name, dt, sig) SC_LEVEL_FN(name, dt, scalar),
#define SC_TABLE_avx2(family, name, dt, sig) SC_LEVEL_FN(name, dt, avx2),
#define SC_TABLE_avx512f(family, name, dt, sig) SC_LEVEL_FN(name, dt, avx512f),
#define SC_TABLE(isa, lvl)                                                     \
    static const sc_table sc_table_##isa = {                                   \
        SC_MANIFEST(SC_TABLE_##isa, SC_NOTHING3, SC_NOTHING2) lvl              \
    };

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
    /* F16C: the float16 conversions of both vector levels (every AVX2 CPU
     * has it; one without it takes the scalar level) */
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1,
              f16c = (c >> 29) & 1;
    if (!(osxsave && avx && fma && f16c))
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

/* The public function of every K row: the level's kernel, through the table. */
#define SC_PUBLIC(family, name, dt, sig)                                       \
    SC_FORWARD(sc_##name##_##dt, sc_table_get()->name##_##dt, SC_SIG(sig, dt))
SC_MANIFEST(SC_PUBLIC, SC_NOTHING3, SC_NOTHING2)

/* The same order and the same compensation as the row kernels' sums
 * (and, as the backward kernels, the total alone once it is not finite). */
double sc_piece_total(const double *sums, size_t k)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < k; i++)
        sc_two_sum_add(&s, &c, sums[i]);
    return isfinite(s) ? s + c : s;
}

/* The scratch each pipelined form takes (softmax_c.h), 0 where the level
 * in use would not pipeline the call. */
#define SC_WORK_FNS(s, T)                                                      \
    size_t sc_softmax_rows_work_##s(const T *y, ptrdiff_t ldy, size_t rows, size_t n) \
    {                                                                          \
        if (sc_table_get()->level == SC_SIMD_SCALAR || !sc_pipe_rows(sizeof(T), y, ldy, rows, n, 0)) \
            return 0;                                                          \
        return sc_pipe_work(sizeof(T), n);                                     \
    }                                                                          \
    size_t sc_xent_rows_work_##s(const T *g, ptrdiff_t ldg, size_t rows, size_t n)      \
    {                                                                          \
        if (sc_table_get()->level == SC_SIMD_SCALAR || g == NULL ||           \
            !sc_xent_pipe_rows(sizeof(T), g, ldg, rows, n))                    \
            return 0;                                                          \
        return sc_pipe_work(sizeof(T), n);                                     \
    }
SC_WORK_FNS(f32, float)
SC_WORK_FNS(f64, double)

#define SC_FILL_K(family, name, dt, sig) sc_##name##_##dt,
#define SC_FILL_P(name, dt, sig) sc_##name##_##dt,
#define SC_FILL_P0(name, sig) sc_##name,
static const sc_api sc_api_table = {
    SC_API_VERSION,
    (unsigned int)sizeof(sc_api),
    SC_MANIFEST(SC_FILL_K, SC_FILL_P, SC_FILL_P0)
};

const sc_api *sc_get_api(void) { return &sc_api_table; }
