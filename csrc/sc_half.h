/*
 * sc_half.h - the half-width storage dtypes, element by element, in exact
 * portable C: float16 (IEEE binary16) and bfloat16 (the top 16 bits of a
 * float32), each to float32 and back.
 *
 * Storage is uint16_t (the bits); compute is float32.  To float32 is exact
 * (every half-width value is a float32).  From float32 rounds once, to
 * nearest even:
 *   float16: overflow (|v| >= 65520) to +-inf, results below 2^-14 to
 *            subnormals or +-0, NaN to a quiet NaN of the same sign and top
 *            payload bits (as the F16C instruction VCVTPS2PH does);
 *   bfloat16: overflow to +-inf by the same carry, NaN to a quiet NaN of
 *            the same sign and top payload bits.
 * The vector layers (sc_vec_*.h) use these for the lanes of a partial
 * vector and the scalar level for every element; their whole-vector
 * conversions give the same bits.
 */
#ifndef SC_HALF_H
#define SC_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t sc_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float sc_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float sc_f16_to_f32(uint16_t h)
{
    const uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) /* inf, NaN (quieted) */
        return sc_bits_f32(s | 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0u));
    if (e != 0)
        return sc_bits_f32(s | ((e + 112u) << 23) | (m << 13));
    /* zero or subnormal: m * 2^-24, exact in float32 */
    return sc_bits_f32(s | sc_f32_bits((float)m * 0x1p-24f));
}

static inline uint16_t sc_f32_to_f16(float f)
{
    const uint32_t x = sc_f32_bits(f), u = x & 0x7fffffffu;
    const uint16_t s = (uint16_t)((x >> 16) & 0x8000u);
    if (u > 0x7f800000u) /* NaN: quiet, top payload bits */
        return (uint16_t)(s | 0x7e00u | ((u >> 13) & 0x3ffu));
    if (u >= 0x477ff000u) /* >= 65520 (and inf): inf */
        return (uint16_t)(s | 0x7c00u);
    if (u >= 0x38800000u) { /* >= 2^-14: normal; the carry may reach the exponent */
        const uint32_t r = u + 0xfffu + ((u >> 13) & 1u) - 0x38000000u;
        return (uint16_t)(s | (r >> 13));
    }
    /* below 2^-14: a multiple of 2^-24 (0 to 2^-14 itself), rounded to
     * nearest even by the float32 addition (its ulp at 0.5 is 2^-24) */
    {
        const float a = sc_bits_f32(u) + 0.5f;
        return (uint16_t)(s | (sc_f32_bits(a) - 0x3f000000u));
    }
}

static inline float sc_bf16_to_f32(uint16_t h) { return sc_bits_f32((uint32_t)h << 16); }

static inline uint16_t sc_f32_to_bf16(float f)
{
    const uint32_t u = sc_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The partial loads and stores of a vector layer's half-width vectors
 * (VT of NL float32 lanes): through a stack copy of exactly k elements,
 * since 16-bit masked loads need AVX-512BW, which no level requires. */
#define SC_HALF_TAILS(H, FILLCONV, VT, NL)                                     \
    static inline VT sc_loadt_##H(const uint16_t *p, size_t k, float fill)     \
    {                                                                          \
        uint16_t t[NL];                                                        \
        const uint16_t f = FILLCONV(fill);                                     \
        for (size_t l = 0; l < NL; l++)                                        \
            t[l] = f;                                                          \
        memcpy(t, p, k * sizeof(uint16_t));                                    \
        return sc_load_##H(t);                                                 \
    }                                                                          \
    static inline void sc_storet_##H(uint16_t *p, VT v, size_t k)              \
    {                                                                          \
        uint16_t t[NL];                                                        \
        sc_store_##H(t, v);                                                    \
        memcpy(p, t, k * sizeof(uint16_t));                                    \
    }

#endif /* SC_HALF_H */
