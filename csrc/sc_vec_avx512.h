/*
 * sc_vec_avx512.h - the vector layer for AVX-512F (16 x float, 8 x double).
 *
 * Included only by sc_kern_avx512.c, after `#pragma GCC target` has enabled
 * AVX-512F and FMA for the rest of that translation unit.  Every helper is
 * `static inline`, so the same names in the other ISA layers never clash.
 *
 * The generic kernels in csrc/family/ use only what is defined here:
 *   sc_vec_S, SC_VN_S                         vector type and lane count
 *   sc_load/_store_S (unaligned), sc_stream_S (aligned, non-temporal) and
 *   sc_sfence, sc_loadt_S/sc_storet_S (first k < VN lanes,
 *   the other lanes of a load filled with `fill`), sc_set1, add, sub, mul,
 *   div, fma (a*b + c), max, select_lt (a < b ? x : y, false on NaN),
 *   all_lt (a < b in every lane, false on NaN), rcp (1 / b to SC_RCP_BITS_S
 *   bits, where SC_RCP_BITS_S > 0),
 *   sc_pow2i_S (2^n from the magic-biased value of family/exp_steps.h's exp),
 *   sc_setlane_S (lane j < VN replaced),
 *   sc_hmax_S (horizontal max), sc_hsum_S (horizontal sum, in double),
 *   sc_loadt_from_S (lanes k.. of the vector at p, the first k lanes 0 and
 *   not read), sc_blend_lanes_S (lanes < k of x, the others of y),
 *   sc_rotate_S (lane l of the result is lane (l + k) % VN of v),
 *   sc_join_S (lanes < k of t, then the first VN - k lanes of h).
 */
#ifndef SC_VEC_AVX512_H
#define SC_VEC_AVX512_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "sc_logd.h"
#include "sc_half.h"

/* ---- float32 ---------------------------------------------------------- */
typedef __m512 sc_vec_f32;
enum { SC_VN_f32 = 16 };

static inline __mmask16 sc_mask16(size_t k) { return (__mmask16)((1u << k) - 1u); }

static inline __m512 sc_load_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline void sc_store_f32(float *p, __m512 v) { _mm512_storeu_ps(p, v); }
static inline __m512 sc_loadt_f32(const float *p, size_t k, float fill)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), sc_mask16(k), p);
}
static inline void sc_storet_f32(float *p, __m512 v, size_t k)
{
    _mm512_mask_storeu_ps(p, sc_mask16(k), v);
}
/* p must be 64-byte aligned; bypasses the caches (no read for ownership). */
static inline void sc_stream_f32(float *p, __m512 v) { _mm512_stream_ps(p, v); }
static inline __m512 sc_set1_f32(float a) { return _mm512_set1_ps(a); }
static inline __m512 sc_add_f32(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
static inline __m512 sc_sub_f32(__m512 a, __m512 b) { return _mm512_sub_ps(a, b); }
static inline __m512 sc_mul_f32(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
static inline __m512 sc_div_f32(__m512 a, __m512 b) { return _mm512_div_ps(a, b); }
/* 1 / b within 2^-14 (relative), for family/fused.h's Newton quotient */
#define SC_RCP_BITS_f32 14
static inline __m512 sc_rcp_f32(__m512 b) { return _mm512_rcp14_ps(b); }
static inline __m512 sc_fma_f32(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline __m512 sc_max_f32(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
static inline __m512 sc_select_lt_f32(__m512 a, __m512 b, __m512 x, __m512 y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
}
static inline int sc_all_lt_f32(__m512 a, __m512 b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ) == 0xFFFF;
}
static inline __m512 sc_pow2i_f32(__m512 t)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
}
/* v with lane j (< 16) set to a */
static inline __m512 sc_setlane_f32(__m512 v, size_t j, float a)
{
    return _mm512_mask_mov_ps(v, (__mmask16)(1u << j), _mm512_set1_ps(a));
}
static inline float sc_hmax_f32(__m512 v) { return _mm512_reduce_max_ps(v); }
static inline __m512 sc_loadt_from_f32(const float *p, size_t k)
{
    return _mm512_maskz_loadu_ps((__mmask16)~sc_mask16(k), p);
}
static inline __m512 sc_blend_lanes_f32(__m512 x, __m512 y, size_t k)
{
    return _mm512_mask_blend_ps((__mmask16)~sc_mask16(k), x, y);
}
static inline __m512 sc_rotate_f32(__m512 v, size_t k)
{
    const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_permutexvar_ps(_mm512_and_si512(_mm512_add_epi32(l, _mm512_set1_epi32((int)k)),
                                                  _mm512_set1_epi32(15)), v);
}
static inline __m512 sc_join_f32(__m512 t, __m512 h, size_t k)
{
    const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* lane l < k: t[l] (index l); else h[l - k] (index 16 + l - k) */
    const __m512i idx = _mm512_mask_add_epi32(l, (__mmask16)~sc_mask16(k), l,
                                              _mm512_set1_epi32(16 - (int)k));
    return _mm512_permutex2var_ps(t, idx, h);
}
static inline double sc_hsum_f32(__m512 v)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

/* ---- float64 ---------------------------------------------------------- */
typedef __m512d sc_vec_f64;
enum { SC_VN_f64 = 8 };

static inline __mmask8 sc_mask8(size_t k) { return (__mmask8)((1u << k) - 1u); }

static inline __m512d sc_load_f64(const double *p) { return _mm512_loadu_pd(p); }
static inline void sc_store_f64(double *p, __m512d v) { _mm512_storeu_pd(p, v); }
static inline __m512d sc_loadt_f64(const double *p, size_t k, double fill)
{
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), sc_mask8(k), p);
}
static inline void sc_storet_f64(double *p, __m512d v, size_t k)
{
    _mm512_mask_storeu_pd(p, sc_mask8(k), v);
}
static inline void sc_stream_f64(double *p, __m512d v) { _mm512_stream_pd(p, v); }
static inline __m512d sc_set1_f64(double a) { return _mm512_set1_pd(a); }
static inline __m512d sc_add_f64(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
static inline __m512d sc_sub_f64(__m512d a, __m512d b) { return _mm512_sub_pd(a, b); }
static inline __m512d sc_mul_f64(__m512d a, __m512d b) { return _mm512_mul_pd(a, b); }
static inline __m512d sc_div_f64(__m512d a, __m512d b) { return _mm512_div_pd(a, b); }
#define SC_RCP_BITS_f64 14
static inline __m512d sc_rcp_f64(__m512d b) { return _mm512_rcp14_pd(b); }
static inline __m512d sc_fma_f64(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
static inline __m512d sc_max_f64(__m512d a, __m512d b) { return _mm512_max_pd(a, b); }
static inline __m512d sc_select_lt_f64(__m512d a, __m512d b, __m512d x, __m512d y)
{
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_LT_OQ), y, x);
}
static inline int sc_all_lt_f64(__m512d a, __m512d b)
{
    return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ) == 0xFF;
}
static inline __m512d sc_pow2i_f64(__m512d t)
{
    return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(t), 52));
}
static inline __m512d sc_setlane_f64(__m512d v, size_t j, double a)
{
    return _mm512_mask_mov_pd(v, (__mmask8)(1u << j), _mm512_set1_pd(a));
}
static inline double sc_hmax_f64(__m512d v) { return _mm512_reduce_max_pd(v); }
static inline double sc_hsum_f64(__m512d v) { return _mm512_reduce_add_pd(v); }
static inline __m512d sc_loadt_from_f64(const double *p, size_t k)
{
    return _mm512_maskz_loadu_pd((__mmask8)~sc_mask8(k), p);
}
static inline __m512d sc_blend_lanes_f64(__m512d x, __m512d y, size_t k)
{
    return _mm512_mask_blend_pd((__mmask8)~sc_mask8(k), x, y);
}
static inline __m512d sc_join_f64(__m512d t, __m512d h, size_t k)
{
    const __m512i l = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i idx = _mm512_mask_add_epi64(l, (__mmask8)~sc_mask8(k), l,
                                              _mm512_set1_epi64(8 - (long long)k));
    return _mm512_permutex2var_pd(t, idx, h);
}
static inline __m512d sc_rotate_f64(__m512d v, size_t k)
{
    const __m512i l = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm512_permutexvar_pd(_mm512_and_si512(_mm512_add_epi64(l, _mm512_set1_epi64((long long)k)),
                                                  _mm512_set1_epi64(7)), v);
}

/* ---- log in double, SC_LOGD_N lanes at a time -------------------------
 * The cross-entropy's log(s) per row, evaluated for a group of rows at
 * once (family/xent_rows.h; the short rows' logs too).  sc_logd_n works in place on
 * SC_LOGD_N doubles; sc_logd_1 is the same lanes' arithmetic on one value,
 * so a row's loss has the same bits whichever of the two computed it. */
enum { SC_LOGD_N = 8 };

static inline __m512d sc_logd_v(__m512d x)
{
    const __m512i ix = _mm512_castpd_si512(x);
    const __m512i e = _mm512_srli_epi64(_mm512_add_epi64(ix, _mm512_set1_epi64(SC_LOGD_OFF)), 52);
    const __m512d z = _mm512_castsi512_pd(
        _mm512_sub_epi64(ix, _mm512_slli_epi64(_mm512_sub_epi64(e, _mm512_set1_epi64(1023)), 52)));
    const __m512d k = _mm512_sub_pd(
        _mm512_castsi512_pd(_mm512_or_si512(e, _mm512_set1_epi64(SC_LOGD_TWO52_BITS))),
        _mm512_set1_pd(SC_LOGD_K_BIAS));
    const __m512d f = _mm512_sub_pd(z, _mm512_set1_pd(1.0));
    const __m512d s = _mm512_div_pd(f, _mm512_add_pd(f, _mm512_set1_pd(2.0)));
    const __m512d ss = _mm512_mul_pd(s, s);
    __m512d r = _mm512_set1_pd(SC_LOGD_C[SC_LOGD_DEG - 1]);
    for (int j = SC_LOGD_DEG - 2; j >= 0; j--)
        r = _mm512_fmadd_pd(r, ss, _mm512_set1_pd(SC_LOGD_C[j]));
    r = _mm512_mul_pd(r, ss);
    const __m512d l = _mm512_fnmadd_pd(s, _mm512_sub_pd(f, r), f);
    const __m512d y = _mm512_fmadd_pd(k, _mm512_set1_pd(SC_LOGD_LN2_HI),
                                      _mm512_fmadd_pd(k, _mm512_set1_pd(SC_LOGD_LN2_LO), l));
    const __mmask8 ok = _mm512_cmp_pd_mask(x, _mm512_set1_pd(SC_LOGD_MIN), _CMP_GE_OQ) &
                        _mm512_cmp_pd_mask(x, _mm512_set1_pd(SC_LOGD_MAX), _CMP_LE_OQ);
    if (ok == 0xff)
        return y;
    double xs[8], ys[8];
    _mm512_storeu_pd(xs, x);
    _mm512_storeu_pd(ys, y);
    for (int j = 0; j < 8; j++)
        if (!((ok >> j) & 1))
            ys[j] = log(xs[j]);
    return _mm512_loadu_pd(ys);
}
static inline void sc_logd_n(double *x) { _mm512_storeu_pd(x, sc_logd_v(_mm512_loadu_pd(x))); }
static inline double sc_logd_1(double x) { return _mm512_cvtsd_f64(sc_logd_v(_mm512_set1_pd(x))); }

/* ---- float32 rows 16 at a time (family/rows16.h) -----------------------
 * sc_transpose16_f32: lane i of r[j] becomes lane j of r[i];
 * sc_lane_f32: lane k of v in every lane;
 * sc_lo_pd_f32 / sc_hi_pd_f32: lanes 0-7 / 8-15 in double;
 * sc_from_pd_f32: lo, hi rounded to float32 as lanes 0-7, 8-15. */
#define SC_HAVE_ROWS16 1
static inline void sc_transpose16_f32(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}
static inline __m512 sc_lane_f32(__m512 v, size_t k)
{
    return _mm512_permutexvar_ps(_mm512_set1_epi32((int)k), v);
}
static inline __m512d sc_lo_pd_f32(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d sc_hi_pd_f32(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
static inline __m512 sc_from_pd_f32(__m512d lo, __m512d hi)
{
    const __m512 l = _mm512_castps256_ps512(_mm512_cvtpd_ps(lo));
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(l), _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

/* ---- half-width storage (sc_half.h), computed in float32 --------------
 * sc_load/_loadt_H convert to float32 on load, sc_store/_storet_H round to
 * nearest even on store, H = f16 or bf16 (family/half.h).  Whole vectors:
 * float16 through VCVTPH2PS / VCVTPS2PH (AVX-512F), bfloat16 by a 16-bit
 * shift on load and an integer round to nearest even on store (NaN kept
 * NaN), narrowed by VPMOVDW.  Partial vectors go through a stack copy of k
 * elements: 16-bit masked loads and stores need AVX-512BW, which this
 * level does not require; no element past k is read or written. */
static inline __m512 sc_load_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline void sc_store_f16(uint16_t *p, __m512 v)
{
    _mm256_storeu_si256((__m256i *)p,
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline __m512 sc_load_bf16(const uint16_t *p)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline __m256i sc_bf16_pack(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v), hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                             _mm512_and_si512(hi, _mm512_set1_epi32(1)))), 16);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), hi,
                             _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}
static inline void sc_store_bf16(uint16_t *p, __m512 v)
{
    _mm256_storeu_si256((__m256i *)p, sc_bf16_pack(v));
}
/* p 32-byte aligned: the converted vector through a streaming store */
static inline void sc_stream_f16(uint16_t *p, __m512 v)
{
    _mm256_stream_si256((__m256i *)p,
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline void sc_stream_bf16(uint16_t *p, __m512 v)
{
    _mm256_stream_si256((__m256i *)p, sc_bf16_pack(v));
}
SC_HALF_TAILS(f16, sc_f32_to_f16, __m512, 16)
SC_HALF_TAILS(bf16, sc_f32_to_bf16, __m512, 16)

/* Orders streaming stores before whatever the caller does next. */
static inline void sc_sfence(void) { _mm_sfence(); }

#endif /* SC_VEC_AVX512_H */
