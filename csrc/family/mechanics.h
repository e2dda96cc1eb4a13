/*
 * family/mechanics.h - what every kernel family shares: the name macros
 * (V, VEC, VN, KFN), the chunk size, where a row's aligned stores start,
 * NaN and non-finite logsumexp handling, the next-row prefetch choice,
 * masked panel loads and stores, and the lane-wise two-sum.
 *
 * First in family/list.h; the list undefines the macros after the last
 * family, so a unit can instantiate the families again for the other dtype.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SC_PASTE_(a, b) a##b
#define SC_PASTE(a, b) SC_PASTE_(a, b)
#define SC_VOP_(op, s) sc_##op##_##s
#define SC_VOP(op, s) SC_VOP_(op, s)
#define SC_KFN_(name, s, isa) sc_##name##_##s##__##isa
#define SC_KFN3(name, s, isa) SC_KFN_(name, s, isa)

#define V(op) SC_VOP(op, SC_S)            /* V(load) -> sc_load_f32 */
#define VEC SC_VOP(vec, SC_S)             /* sc_vec_f32 */
#define VN SC_PASTE(SC_VN_, SC_S)         /* SC_VN_f32 */
#define KFN(name) SC_KFN3(name, SC_S, SC_ISA)
#define SC_CHUNK (32 * VN)

/* The 16-row forms' entries (family/list.h, V(rows16)). */
#ifndef SC_ROWS16_FORMS
#define SC_ROWS16_FORMS
enum { SC_R16_SOFTMAX, SC_R16_LOG_SOFTMAX, SC_R16_LOG_SOFTMAX_4V, SC_R16_LOGSUMEXP };
#endif

/* The elements of y before its first vector-aligned one (at most n; 0 when
 * y is not element-aligned): a row's element-wise pass writes them first,
 * then aligned vectors, as a store that straddles two lines costs more
 * than a load that does. */
SC_ALWAYS_INLINE static inline size_t V(head)(const SC_T *y, size_t n)
{
    size_t mis = ((size_t)y / sizeof(SC_T)) % VN, h;
    if (VN == 1 || (size_t)y % sizeof(SC_T) != 0 || mis == 0)
        return 0;
    h = VN - mis;
    return h < n ? h : n;
}

static int V(has_nan)(const SC_T *x, ptrdiff_t stride, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[(ptrdiff_t)i * stride] != x[(ptrdiff_t)i * stride])
            return 1;
    return 0;
}

/* logsumexp of a slice whose max is not finite: +inf -> +inf, all -inf ->
 * -inf, unless a NaN is present (x86 max may have skipped it). */
static SC_T V(lse_nonfinite)(const SC_T *x, ptrdiff_t stride, size_t n, SC_T mx)
{
    if (mx != mx || V(has_nan)(x, stride, n))
        return (SC_T)NAN;
    return mx;
}

static inline const SC_T *V(prefetch_row)(const SC_T *xr, ptrdiff_t ldx, size_t r, size_t rows,
                                          size_t n)
{
    return (r + 1 < rows && n * sizeof(SC_T) <= SC_PREFETCH_MAX_BYTES) ? xr + ldx : NULL;
}

/* hi + lo += a, lane by lane, error-free (two-sum). */
SC_ALWAYS_INLINE static inline void V(two_sum)(VEC *hi, VEC *lo, VEC a)
{
    VEC t = V(add)(*hi, a);
    VEC bp = V(sub)(t, *hi);
    *lo = V(add)(*lo, V(add)(V(sub)(*hi, V(sub)(t, bp)), V(sub)(a, bp)));
    *hi = t;
}

SC_ALWAYS_INLINE static inline VEC V(ldk)(const SC_T *p, size_t k, SC_T fill)
{
    return k == VN ? V(load)(p) : V(loadt)(p, k, fill);
}

SC_ALWAYS_INLINE static inline void V(stk)(SC_T *p, VEC v, size_t k)
{
    if (k == VN)
        V(store)(p, v);
    else
        V(storet)(p, v, k);
}
