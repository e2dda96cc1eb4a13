/*
 * sc_vec_avx2.h - the vector layer for AVX2 + FMA (8 x float, 4 x double).
 *
 * Included only by sc_kern_avx2.c, after `#pragma GCC target` has enabled
 * AVX2 and FMA.  Same names and contracts as sc_vec_avx512.h (see there).
 * Partial loads and stores use vmaskmov with a lane mask built by comparing
 * the lane index with k; masked-off lanes are never touched in memory.
 */
#ifndef SC_VEC_AVX2_H
#define SC_VEC_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "sc_logd.h"
#include "sc_half.h"

/* ---- float32 ---------------------------------------------------------- */
typedef __m256 sc_vec_f32;
enum { SC_VN_f32 = 8 };

static inline __m256i sc_mask_f32(size_t k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256 sc_load_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline void sc_store_f32(float *p, __m256 v) { _mm256_storeu_ps(p, v); }
static inline __m256 sc_loadt_f32(const float *p, size_t k, float fill)
{
    __m256i m = sc_mask_f32(k);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline void sc_storet_f32(float *p, __m256 v, size_t k)
{
    _mm256_maskstore_ps(p, sc_mask_f32(k), v);
}
static inline void sc_stream_f32(float *p, __m256 v) { _mm256_stream_ps(p, v); }
static inline __m256 sc_set1_f32(float a) { return _mm256_set1_ps(a); }
static inline __m256 sc_add_f32(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
static inline __m256 sc_sub_f32(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
static inline __m256 sc_mul_f32(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
static inline __m256 sc_div_f32(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
/* 1 / b within 1.5 2^-12 (relative), for family/fused.h's Newton quotient;
 * float64 has none (0 bits: the quotient is a division) */
#define SC_RCP_BITS_f32 11
static inline __m256 sc_rcp_f32(__m256 b) { return _mm256_rcp_ps(b); }
static inline __m256 sc_fma_f32(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
static inline __m256 sc_max_f32(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
static inline __m256 sc_select_lt_f32(__m256 a, __m256 b, __m256 x, __m256 y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline int sc_all_lt_f32(__m256 a, __m256 b)
{
    return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ)) == 0xFF;
}
static inline __m256 sc_pow2i_f32(__m256 t)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
}
static inline __m256 sc_setlane_f32(__m256 v, size_t j, float a)
{
    __m256i m = _mm256_cmpeq_epi32(_mm256_set1_epi32((int)j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_blendv_ps(v, _mm256_set1_ps(a), _mm256_castsi256_ps(m));
}
static inline float sc_hmax_f32(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline double sc_hsum_f32(__m256 v)
{
    __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* ---- float64 ---------------------------------------------------------- */
typedef __m256d sc_vec_f64;
enum { SC_VN_f64 = 4 };

static inline __m256i sc_mask_f64(size_t k)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)k), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline __m256d sc_load_f64(const double *p) { return _mm256_loadu_pd(p); }
static inline void sc_store_f64(double *p, __m256d v) { _mm256_storeu_pd(p, v); }
static inline __m256d sc_loadt_f64(const double *p, size_t k, double fill)
{
    __m256i m = sc_mask_f64(k);
    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
static inline void sc_storet_f64(double *p, __m256d v, size_t k)
{
    _mm256_maskstore_pd(p, sc_mask_f64(k), v);
}
static inline void sc_stream_f64(double *p, __m256d v) { _mm256_stream_pd(p, v); }
static inline __m256d sc_set1_f64(double a) { return _mm256_set1_pd(a); }
static inline __m256d sc_add_f64(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
static inline __m256d sc_sub_f64(__m256d a, __m256d b) { return _mm256_sub_pd(a, b); }
static inline __m256d sc_mul_f64(__m256d a, __m256d b) { return _mm256_mul_pd(a, b); }
static inline __m256d sc_div_f64(__m256d a, __m256d b) { return _mm256_div_pd(a, b); }
#define SC_RCP_BITS_f64 0
static inline __m256d sc_fma_f64(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
static inline __m256d sc_max_f64(__m256d a, __m256d b) { return _mm256_max_pd(a, b); }
static inline __m256d sc_select_lt_f64(__m256d a, __m256d b, __m256d x, __m256d y)
{
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_LT_OQ));
}
static inline int sc_all_lt_f64(__m256d a, __m256d b)
{
    return _mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_LT_OQ)) == 0xF;
}
static inline __m256d sc_pow2i_f64(__m256d t)
{
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
}
static inline __m256d sc_setlane_f64(__m256d v, size_t j, double a)
{
    __m256i m = _mm256_cmpeq_epi64(_mm256_set1_epi64x((long long)j), _mm256_setr_epi64x(0, 1, 2, 3));
    return _mm256_blendv_pd(v, _mm256_set1_pd(a), _mm256_castsi256_pd(m));
}
static inline double sc_hmax_f64(__m256d v)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
    return _mm_cvtsd_f64(m);
}
static inline __m256 sc_loadt_from_f32(const float *p, size_t k)
{
    return _mm256_maskload_ps(p, _mm256_xor_si256(sc_mask_f32(k), _mm256_set1_epi32(-1)));
}
static inline __m256 sc_blend_lanes_f32(__m256 x, __m256 y, size_t k)
{
    return _mm256_blendv_ps(y, x, _mm256_castsi256_ps(sc_mask_f32(k)));
}
static inline __m256 sc_rotate_f32(__m256 v, size_t k)
{
    const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_permutevar8x32_ps(v, _mm256_add_epi32(l, _mm256_set1_epi32((int)k))); /* mod 8 */
}
static inline __m256 sc_join_f32(__m256 t, __m256 h, size_t k)
{
    const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 hs = _mm256_permutevar8x32_ps(h, _mm256_sub_epi32(l, _mm256_set1_epi32((int)k))); /* mod 8 */
    return _mm256_blendv_ps(hs, t, _mm256_castsi256_ps(sc_mask_f32(k)));
}
/* The float64 forms: the float32 ones on the same 8 float lanes, a double
 * lane l being float lanes 2l and 2l + 1. */
static inline __m256d sc_join_f64(__m256d t, __m256d h, size_t k)
{
    return _mm256_castps_pd(sc_join_f32(_mm256_castpd_ps(t), _mm256_castpd_ps(h), 2 * k));
}
static inline __m256d sc_loadt_from_f64(const double *p, size_t k)
{
    return _mm256_castps_pd(sc_loadt_from_f32((const float *)p, 2 * k));
}
static inline __m256d sc_blend_lanes_f64(__m256d x, __m256d y, size_t k)
{
    return _mm256_castps_pd(sc_blend_lanes_f32(_mm256_castpd_ps(x), _mm256_castpd_ps(y), 2 * k));
}
static inline __m256d sc_rotate_f64(__m256d v, size_t k)
{
    return _mm256_castps_pd(sc_rotate_f32(_mm256_castpd_ps(v), 2 * k));
}
static inline double sc_hsum_f64(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* ---- log in double, SC_LOGD_N lanes at a time (see sc_vec_avx512.h) -- */
enum { SC_LOGD_N = 4 };

static inline __m256d sc_logd_v(__m256d x)
{
    const __m256i ix = _mm256_castpd_si256(x);
    const __m256i e = _mm256_srli_epi64(_mm256_add_epi64(ix, _mm256_set1_epi64x(SC_LOGD_OFF)), 52);
    const __m256d z = _mm256_castsi256_pd(
        _mm256_sub_epi64(ix, _mm256_slli_epi64(_mm256_sub_epi64(e, _mm256_set1_epi64x(1023)), 52)));
    const __m256d k = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_or_si256(e, _mm256_set1_epi64x(SC_LOGD_TWO52_BITS))),
        _mm256_set1_pd(SC_LOGD_K_BIAS));
    const __m256d f = _mm256_sub_pd(z, _mm256_set1_pd(1.0));
    const __m256d s = _mm256_div_pd(f, _mm256_add_pd(f, _mm256_set1_pd(2.0)));
    const __m256d ss = _mm256_mul_pd(s, s);
    __m256d r = _mm256_set1_pd(SC_LOGD_C[SC_LOGD_DEG - 1]);
    for (int j = SC_LOGD_DEG - 2; j >= 0; j--)
        r = _mm256_fmadd_pd(r, ss, _mm256_set1_pd(SC_LOGD_C[j]));
    r = _mm256_mul_pd(r, ss);
    const __m256d l = _mm256_fnmadd_pd(s, _mm256_sub_pd(f, r), f);
    const __m256d y = _mm256_fmadd_pd(k, _mm256_set1_pd(SC_LOGD_LN2_HI),
                                      _mm256_fmadd_pd(k, _mm256_set1_pd(SC_LOGD_LN2_LO), l));
    const int ok = _mm256_movemask_pd(
        _mm256_and_pd(_mm256_cmp_pd(x, _mm256_set1_pd(SC_LOGD_MIN), _CMP_GE_OQ),
                      _mm256_cmp_pd(x, _mm256_set1_pd(SC_LOGD_MAX), _CMP_LE_OQ)));
    if (ok == 0xf)
        return y;
    double xs[4], ys[4];
    _mm256_storeu_pd(xs, x);
    _mm256_storeu_pd(ys, y);
    for (int j = 0; j < 4; j++)
        if (!((ok >> j) & 1))
            ys[j] = log(xs[j]);
    return _mm256_loadu_pd(ys);
}
static inline void sc_logd_n(double *x) { _mm256_storeu_pd(x, sc_logd_v(_mm256_loadu_pd(x))); }
static inline double sc_logd_1(double x) { return _mm256_cvtsd_f64(sc_logd_v(_mm256_set1_pd(x))); }

/* ---- half-width storage (sc_half.h), computed in float32 --------------
 * sc_load/_loadt_H convert to float32 on load, sc_store/_storet_H round to
 * nearest even on store, H = f16 or bf16 (family/half.h).  Whole vectors:
 * float16 through F16C (VCVTPH2PS / VCVTPS2PH), bfloat16 by a 16-bit shift
 * on load and an integer round to nearest even on store (NaN kept NaN).
 * Partial vectors go through a stack copy of k elements: AVX2 has no
 * 16-bit masked load or store; no element past k is read or written. */
static inline __m256 sc_load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline void sc_store_f16(uint16_t *p, __m256 v)
{
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline __m256 sc_load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline __m128i sc_bf16_pack(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v), hi = _mm256_srli_epi32(u, 16);
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                             _mm256_and_si256(hi, _mm256_set1_epi32(1)))), 16);
    const __m256i q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256i w =
        _mm256_blendv_epi8(r, q, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(w, w), 0x08);
    return _mm256_castsi256_si128(pk);
}
static inline void sc_store_bf16(uint16_t *p, __m256 v) { _mm_storeu_si128((__m128i *)p, sc_bf16_pack(v)); }
/* p 16-byte aligned: the converted vector through a streaming store */
static inline void sc_stream_f16(uint16_t *p, __m256 v)
{
    _mm_stream_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline void sc_stream_bf16(uint16_t *p, __m256 v) { _mm_stream_si128((__m128i *)p, sc_bf16_pack(v)); }
SC_HALF_TAILS(f16, sc_f32_to_f16, __m256, 8)
SC_HALF_TAILS(bf16, sc_f32_to_bf16, __m256, 8)

static inline void sc_sfence(void) { _mm_sfence(); }

#endif /* SC_VEC_AVX2_H */
