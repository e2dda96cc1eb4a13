/*
 * sc_kern_avx2.c - every kernel family (sc_kern_unit.h) on the AVX2+FMA
 * vector layer; F16C converts float16 (the dispatcher requires it here).
 */
#define SC_ISA avx2
#define SC_ISA_TARGET "avx2,fma,f16c"
#define SC_ISA_VEC "sc_vec_avx2.h"
#include "sc_kern_unit.h"
