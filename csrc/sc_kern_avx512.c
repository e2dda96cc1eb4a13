/*
 * sc_kern_avx512.c - every kernel family (sc_kern_unit.h) on the AVX-512F
 * vector layer, with the float32 16-row forms (family/rows16.h) that only
 * this layer has.
 */
#define SC_ISA avx512f
#define SC_ISA_TARGET "avx512f,avx2,fma"
#define SC_ISA_VEC "sc_vec_avx512.h"
#include "sc_kern_unit.h"
