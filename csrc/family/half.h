/*
 * family/half.h - the forward kernels of the half-width storage dtypes
 * (softmax, log_softmax, logsumexp; rows and cols, each with a half-width
 * or a float32 output): float16 or bfloat16 read as they are, converted to
 * float32 in registers by the vector layer's storage loads (sc_load_H,
 * sc_loadt_H), computed in float32 with the float32 family's exponential
 * (exp_steps.h, sc_exp_neg_f32) and the same compensated sums, and rounded
 * once, to nearest even, by the storage stores (sc_store_H, sc_storet_H)
 * into the output.  No float32 copy of the input is made.
 *
 * Instantiated by sc_kern_unit.h after the float32 families, once per
 * storage dtype:
 *   SC_H  f16 or bf16 (token)
 * It includes family/half_out.h twice: the kernels with an output of the
 * input's dtype (sc_<name>_<H>) and with a float32 output
 * (sc_<name>_to32_<H>).
 *
 * Special values as the float32 kernels (softmax_c.h): a NaN or +inf in a
 * slice, or a slice of only -inf, makes a softmax / log_softmax slice NaN;
 * logsumexp: NaN -> NaN, else +inf -> +inf, all -inf or empty -> -inf.
 *
 * The backward products (softmax_jvp, log_softmax_jvp, log_softmax_vjp)
 * of this storage dtype come from family/backward.h, included at the end
 * with half-width loads and stores.
 *
 * Accuracy: the float32 kernels' error (about 1e-6 relative) plus the one
 * rounding into the output: within one unit in the last place of a
 * half-width output.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SC_HPASTE_(a, b, c) a##b##c
#define SC_HPASTE(a, b, c) SC_HPASTE_(a, b, c)
#define HF(op) sc_##op##_f32                        /* float32 vector op */
#define HX(op) SC_HPASTE(sc_, op##_, SC_H)           /* storage: sc_load_f16 */
#define HV(op) SC_HPASTE(sc_h_, op##_, SC_H)         /* this file's helpers */
#define HK(name) SC_KFN3(name, SC_H, SC_ISA)        /* a kernel */
#define HS2F SC_HPASTE(sc_, SC_H, _to_f32)          /* one element: sc_f16_to_f32 */
#define HVEC sc_vec_f32
#define HN SC_VN_f32
#define HCHUNK (32 * HN)

/* A softmax row of up to this many elements keeps its exponentials in a
 * float32 stack buffer (32 KiB, in L1/L2) between the sum and the scaled
 * write, so every element's exp is evaluated once; longer rows evaluate it
 * again in the write pass (the half-width output cannot hold them unrounded). */
#ifndef SC_HALF_BUF
#define SC_HALF_BUF 8192
#endif

/* Rows of at least this many output bytes, in outputs of SC_STREAM_MIN_BYTES
 * or more, are written through streaming stores. */
#ifndef SC_HALF_STREAM_MIN_ROW_BYTES
#define SC_HALF_STREAM_MIN_ROW_BYTES SC_STREAM_MIN_ROW_BYTES
#endif

/* k lanes (k <= HN) at p, the others `fill`. */
SC_ALWAYS_INLINE static inline HVEC HV(ldk)(const uint16_t *p, size_t k, float fill)
{
    return k == HN ? HX(load)(p) : HX(loadt)(p, k, fill);
}

/* The k (< HN) lanes at p, the others `fill`, as sc_loadt_H, from one
 * whole load ending at p + k (the HN - k elements before p must be the
 * row's): sc_loadt_H goes through a stack copy, whose whole-vector reload
 * waits for the narrow stores before it.  The same lanes, the same bits. */
SC_ALWAYS_INLINE static inline HVEC HV(ldt_back)(const uint16_t *p, size_t k, float fill)
{
    return HF(blend_lanes)(HF(rotate)(HX(load)(p + k - HN), HN - k), HF(set1)(fill), k);
}

/* k (< HN) lanes at p; `back`: the HN - k elements before p are the row's. */
SC_ALWAYS_INLINE static inline HVEC HV(ldt)(const uint16_t *p, size_t k, float fill, int back)
{
    return back ? HV(ldt_back)(p, k, fill) : HX(loadt)(p, k, fill);
}

/* Step 1: the row maximum, four accumulators. */
static inline float HV(row_max)(const uint16_t *x, size_t n)
{
    HVEC m0 = HF(set1)(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 4 * HN <= n; i += 4 * HN) {
        m0 = HF(max)(m0, HX(load)(x + i));
        m1 = HF(max)(m1, HX(load)(x + i + HN));
        m2 = HF(max)(m2, HX(load)(x + i + 2 * HN));
        m3 = HF(max)(m3, HX(load)(x + i + 3 * HN));
    }
    for (; i + HN <= n; i += HN)
        m0 = HF(max)(m0, HX(load)(x + i));
    if (i < n)
        m1 = HF(max)(m1, HV(ldt)(x + i, n - i, -INFINITY, n >= HN));
    return HF(hmax)(HF(max)(HF(max)(m0, m1), HF(max)(m2, m3)));
}

/* Step 2 on a chunk of at most HCHUNK elements: lane sums of exp(x - mx),
 * each term stored to e (float32) unless e is NULL. */
SC_ALWAYS_INLINE static inline HVEC HV(expsum_chunk)(const uint16_t *x, float *e, size_t n,
                                                     HVEC vm)
{
    HVEC a0 = HF(set1)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 4 * HN <= n; i += 4 * HN) {
        HVEC e0 = sc_exp_neg_f32(HF(sub)(HX(load)(x + i), vm));
        HVEC e1 = sc_exp_neg_f32(HF(sub)(HX(load)(x + i + HN), vm));
        HVEC e2 = sc_exp_neg_f32(HF(sub)(HX(load)(x + i + 2 * HN), vm));
        HVEC e3 = sc_exp_neg_f32(HF(sub)(HX(load)(x + i + 3 * HN), vm));
        if (e) {
            HF(store)(e + i, e0);
            HF(store)(e + i + HN, e1);
            HF(store)(e + i + 2 * HN, e2);
            HF(store)(e + i + 3 * HN, e3);
        }
        a0 = HF(add)(a0, e0);
        a1 = HF(add)(a1, e1);
        a2 = HF(add)(a2, e2);
        a3 = HF(add)(a3, e3);
    }
    for (; i + HN <= n; i += HN) {
        HVEC t = sc_exp_neg_f32(HF(sub)(HX(load)(x + i), vm));
        if (e)
            HF(store)(e + i, t);
        a0 = HF(add)(a0, t);
    }
    if (i < n) {
        HVEC t = sc_exp_neg_f32(HF(sub)(HV(ldt)(x + i, n - i, -INFINITY, n >= HN), vm));
        if (e)
            HF(storet)(e + i, t, n - i);
        a1 = HF(add)(a1, t);
    }
    return HF(add)(HF(add)(a0, a1), HF(add)(a2, a3));
}

/* Step 2 on a row: chunk sums in a compensated double total; pf (or NULL)
 * is the next row, prefetched meanwhile. */
static inline double HV(expsum)(const uint16_t *x, float *e, size_t n, float mx,
                                const uint16_t *pf)
{
    const HVEC vm = HF(set1)(mx);
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i += HCHUNK) {
        size_t len = n - i < HCHUNK ? n - i : HCHUNK;
        if (pf) {
            for (size_t k = 0; k < len; k += SC_LINE / sizeof(uint16_t))
                SC_PREFETCH(pf + i + k);
        }
        sc_two_sum_add(&s, &c, HF(hsum)(HV(expsum_chunk)(x + i, e ? e + i : NULL, len, vm)));
    }
    return s + c;
}

static inline const uint16_t *HV(prefetch_row)(const uint16_t *xr, ptrdiff_t ldx, size_t r,
                                               size_t rows, size_t n)
{
    return (r + 1 < rows && n * sizeof(uint16_t) <= SC_PREFETCH_MAX_BYTES) ? xr + ldx : NULL;
}

/* logsumexp of a slice whose max is not finite (as family/mechanics.h). */
static float HV(lse_nonfinite)(const uint16_t *x, ptrdiff_t stride, size_t n, float mx)
{
    if (mx != mx)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        const float v = HS2F(x[(ptrdiff_t)i * stride]);
        if (v != v)
            return NAN;
    }
    return mx;
}

/* Per-lane max and compensated sum of exp(x - max) over the n rows of nv
 * (<= 4) column vectors side by side, the last of kl lanes (a panel:
 * family/cols.h).  The vectors share each row's lines, so the panel is
 * swept once per step for all of them; each lane's arithmetic is the same
 * whatever nv. */
SC_ALWAYS_INLINE static inline void HV(col_stats)(const uint16_t *x, ptrdiff_t ldx, size_t n,
                                                  size_t nv, size_t kl, HVEC *mx_out,
                                                  HVEC *sum_out)
{
    HVEC mx[4], hi[4], lo[4], a[4];
    for (size_t v = 0; v < nv; v++)
        mx[v] = HF(set1)(-INFINITY);
    for (size_t i = 0; i < n; i++)
        for (size_t v = 0; v < nv; v++)
            mx[v] = HF(max)(mx[v], HV(ldk)(x + (ptrdiff_t)i * ldx + v * HN, v + 1 == nv ? kl : HN,
                                           -INFINITY));
    for (size_t v = 0; v < nv; v++)
        hi[v] = lo[v] = HF(set1)(0.0f);
    for (size_t i0 = 0; i0 < n; i0 += 8) {
        size_t i1 = n - i0 < 8 ? n : i0 + 8;
        for (size_t v = 0; v < nv; v++)
            a[v] = HF(set1)(0.0f);
        for (size_t i = i0; i < i1; i++)
            for (size_t v = 0; v < nv; v++)
                a[v] = HF(add)(a[v], sc_exp_neg_f32(HF(sub)(
                                         HV(ldk)(x + (ptrdiff_t)i * ldx + v * HN,
                                                 v + 1 == nv ? kl : HN, -INFINITY),
                                         mx[v])));
        for (size_t v = 0; v < nv; v++)
            sc_two_sum_f32(&hi[v], &lo[v], a[v]);
    }
    for (size_t v = 0; v < nv; v++) {
        mx_out[v] = mx[v];
        sum_out[v] = HF(add)(hi[v], lo[v]);
    }
}

/* The kernels, per output dtype. */
#define SC_HO SC_H
#define SC_HOT uint16_t
#define HOK(name) HK(name)
#define SC_HO_WS 1
#include "family/half_out.h"
#undef SC_HO
#undef SC_HOT
#undef HOK
#undef SC_HO_WS
#define SC_HO_WS 0

#define SC_HO f32
#define SC_HOT float
#define HOK(name) HK(name##_to32)
#include "family/half_out.h"
#undef SC_HO
#undef SC_HOT
#undef HOK
#undef SC_HO_WS

/* ---- the backward products on half-width storage ----------------------
 * family/backward.h's kernels (softmax_jvp, log_softmax_jvp,
 * log_softmax_vjp; rows and panels) with operands and result of this
 * storage dtype: loaded into float32 vectors, computed as the float32
 * kernels compute, rounded once by the store. */
SC_ALWAYS_INLINE static inline HVEC HX(ldk)(const uint16_t *p, size_t k, float fill)
{
    return HV(ldk)(p, k, fill);
}

SC_ALWAYS_INLINE static inline void HX(stk)(uint16_t *p, HVEC v, size_t k)
{
    if (k == HN)
        HX(store)(p, v);
    else
        HX(storet)(p, v, k);
}

#define SC_T float
#define V(op) sc_##op##_f32
#define VEC sc_vec_f32
#define VN SC_VN_f32
#define SC_CHUNK (32 * VN)
#define SC_BWD_STORAGE
#define SC_BWD_SAME 0
#define BS uint16_t
#define BL(op) HX(op)
#define BV(op) SC_HPASTE(sc_hb_, op##_, SC_H)
#define BK(name) HK(name)
#include "family/backward.h"
#undef SC_T
#undef V
#undef VEC
#undef VN
#undef SC_CHUNK
#undef SC_BWD_CHUNK
#undef SC_BWD_STORAGE
#undef SC_BWD_SAME
#undef BS
#undef BL
#undef BV
#undef BK

#undef HF
#undef HX
#undef HV
#undef HK
#undef HVEC
#undef HS2F
#undef HN
#undef HCHUNK
