/*
 * sc_logd.h - the constants of the vector layers' log in double
 * (sc_logd_v in sc_vec_avx512.h and sc_vec_avx2.h).
 *
 * x = 2^k z with z in [sqrt(1/2), sqrt(2)): the exponent field is read
 * after adding OFF, which carries z >= sqrt(2) into the next exponent.
 * With f = z - 1 (exact) and s = f / (2 + f),
 *   log(1 + f) = 2 atanh(s) = 2s + s R(s^2),  R = sum_j 2 s^2j / (2j + 1)
 * and since 2s = f - s f,  log(1 + f) = f - s (f - R).  |s| <= 0.1716, so
 * s^2 <= 0.0295 and the series' terms past j = 10 are below 1e-18 of the
 * result; the large part f is exact and the rounding of s reaches the
 * result through s (f - R) ~ f^2 / 2 only: about 1 ulp in all.  Then
 * log x = k LN2_HI + (log(1 + f) + k LN2_LO), k LN2_HI exact (LN2_HI has
 * 20 trailing zero bits).  Zero, negative, subnormal, infinite and NaN
 * inputs go to libm's log, lane by lane.
 */
#ifndef SC_LOGD_H
#define SC_LOGD_H

#define SC_LOGD_OFF 0x95f619980c433LL     /* bits(1.0) - bits(sqrt(1/2)) */
#define SC_LOGD_TWO52_BITS 0x4330000000000000LL /* bits(2^52) */
#define SC_LOGD_K_BIAS (0x1p52 + 1023.0)
#define SC_LOGD_LN2_HI 0x1.62e42fee00000p-1
#define SC_LOGD_LN2_LO 0x1.a39ef35793c76p-33
#define SC_LOGD_MIN 0x1p-1022               /* the smallest normal */
#define SC_LOGD_MAX 0x1.fffffffffffffp+1023
#define SC_LOGD_DEG 10

/* 2 / (2j + 3), j = 0 .. DEG - 1: R = s^2 (C[0] + s^2 (C[1] + ...)) */
static const double SC_LOGD_C[SC_LOGD_DEG] = {
    2.0 / 3.0,  2.0 / 5.0,  2.0 / 7.0,  2.0 / 9.0,  2.0 / 11.0,
    2.0 / 13.0, 2.0 / 15.0, 2.0 / 17.0, 2.0 / 19.0, 2.0 / 21.0,
};

#endif /* SC_LOGD_H */
