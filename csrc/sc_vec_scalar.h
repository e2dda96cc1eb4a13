/*
 * sc_vec_scalar.h - the portable vector layer: one lane, plain C99.
 *
 * The fallback for CPUs without AVX2+FMA and for non-x86 builds.  Same names
 * and contracts as sc_vec_avx512.h; with one lane the generic kernels never
 * take their tail path, so sc_loadt/sc_storet only have to be correct for
 * k == 0.  fma is written as a*b + c: a software fma() would be far slower
 * on CPUs without the instruction, and the kernels' error bounds hold
 * without the fused rounding (see family/exp_steps.h).
 */
#ifndef SC_VEC_SCALAR_H
#define SC_VEC_SCALAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "sc_half.h"

/* ---- float32 ---------------------------------------------------------- */
typedef float sc_vec_f32;
enum { SC_VN_f32 = 1 };

static inline float sc_load_f32(const float *p) { return *p; }
static inline void sc_store_f32(float *p, float v) { *p = v; }
static inline float sc_loadt_f32(const float *p, size_t k, float fill) { return k ? *p : fill; }
static inline void sc_storet_f32(float *p, float v, size_t k) { if (k) *p = v; }
static inline void sc_stream_f32(float *p, float v) { *p = v; }
static inline float sc_set1_f32(float a) { return a; }
static inline float sc_add_f32(float a, float b) { return a + b; }
static inline float sc_sub_f32(float a, float b) { return a - b; }
static inline float sc_mul_f32(float a, float b) { return a * b; }
static inline float sc_div_f32(float a, float b) { return a / b; }
#define SC_RCP_BITS_f32 0 /* no approximate reciprocal: family/fused.h divides */
static inline float sc_fma_f32(float a, float b, float c) { return a * b + c; }
/* Like x86 max: returns b when either is NaN (the kernels do not rely on it). */
static inline float sc_max_f32(float a, float b) { return a > b ? a : b; }
static inline float sc_select_lt_f32(float a, float b, float x, float y) { return a < b ? x : y; }
static inline int sc_all_lt_f32(float a, float b) { return a < b; }
static inline float sc_pow2i_f32(float t)
{
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u <<= 23;
    memcpy(&t, &u, sizeof t);
    return t;
}
static inline float sc_setlane_f32(float v, size_t j, float a) { (void)v; (void)j; return a; }
static inline float sc_hmax_f32(float v) { return v; }
static inline double sc_hsum_f32(float v) { return (double)v; }

/* ---- float64 ---------------------------------------------------------- */
typedef double sc_vec_f64;
enum { SC_VN_f64 = 1 };

static inline double sc_load_f64(const double *p) { return *p; }
static inline void sc_store_f64(double *p, double v) { *p = v; }
static inline double sc_loadt_f64(const double *p, size_t k, double fill) { return k ? *p : fill; }
static inline void sc_storet_f64(double *p, double v, size_t k) { if (k) *p = v; }
static inline void sc_stream_f64(double *p, double v) { *p = v; }
static inline double sc_set1_f64(double a) { return a; }
static inline double sc_add_f64(double a, double b) { return a + b; }
static inline double sc_sub_f64(double a, double b) { return a - b; }
static inline double sc_mul_f64(double a, double b) { return a * b; }
static inline double sc_div_f64(double a, double b) { return a / b; }
#define SC_RCP_BITS_f64 0
static inline double sc_fma_f64(double a, double b, double c) { return a * b + c; }
static inline double sc_max_f64(double a, double b) { return a > b ? a : b; }
static inline double sc_select_lt_f64(double a, double b, double x, double y) { return a < b ? x : y; }
static inline int sc_all_lt_f64(double a, double b) { return a < b; }
static inline double sc_pow2i_f64(double t)
{
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    u <<= 52;
    memcpy(&t, &u, sizeof t);
    return t;
}
static inline double sc_setlane_f64(double v, size_t j, double a) { (void)v; (void)j; return a; }
static inline double sc_hmax_f64(double v) { return v; }
static inline double sc_hsum_f64(double v) { return v; }
/* one lane: k is always 0 */
static inline float sc_loadt_from_f32(const float *p, size_t k) { return k ? 0.0f : *p; }
static inline double sc_loadt_from_f64(const double *p, size_t k) { return k ? 0.0 : *p; }
static inline float sc_blend_lanes_f32(float x, float y, size_t k) { return k ? x : y; }
static inline double sc_blend_lanes_f64(double x, double y, size_t k) { return k ? x : y; }
static inline float sc_rotate_f32(float v, size_t k) { (void)k; return v; }
static inline float sc_join_f32(float t, float h, size_t k) { return k ? t : h; }
static inline double sc_join_f64(double t, double h, size_t k) { return k ? t : h; }
static inline double sc_rotate_f64(double v, size_t k) { (void)k; return v; }

/* ---- log in double (see sc_vec_avx512.h): libm's, one lane ------------ */
enum { SC_LOGD_N = 1 };

static inline void sc_logd_n(double *x) { x[0] = log(x[0]); }
static inline double sc_logd_1(double x) { return log(x); }

/* ---- half-width storage (sc_half.h), computed in float32 --------------
 * sc_load/_loadt_H convert to float32 on load, sc_store/_storet_H round to
 * nearest even on store, H = f16 or bf16: the storage of the half-width
 * kernels (family/half.h). */
static inline float sc_load_f16(const uint16_t *p) { return sc_f16_to_f32(*p); }
static inline float sc_loadt_f16(const uint16_t *p, size_t k, float fill)
{
    return k ? sc_f16_to_f32(*p) : fill;
}
static inline void sc_store_f16(uint16_t *p, float v) { *p = sc_f32_to_f16(v); }
static inline void sc_storet_f16(uint16_t *p, float v, size_t k)
{
    if (k)
        *p = sc_f32_to_f16(v);
}
static inline void sc_stream_f16(uint16_t *p, float v) { *p = sc_f32_to_f16(v); }
static inline void sc_stream_bf16(uint16_t *p, float v) { *p = sc_f32_to_bf16(v); }
static inline float sc_load_bf16(const uint16_t *p) { return sc_bf16_to_f32(*p); }
static inline float sc_loadt_bf16(const uint16_t *p, size_t k, float fill)
{
    return k ? sc_bf16_to_f32(*p) : fill;
}
static inline void sc_store_bf16(uint16_t *p, float v) { *p = sc_f32_to_bf16(v); }
static inline void sc_storet_bf16(uint16_t *p, float v, size_t k)
{
    if (k)
        *p = sc_f32_to_bf16(v);
}

static inline void sc_sfence(void) {}

#endif /* SC_VEC_SCALAR_H */
