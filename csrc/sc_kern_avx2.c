/*
 * sc_kern_avx2.c - sc_body.h on the AVX2+FMA vector layer.
 *
 * Only this unit is compiled for AVX2+FMA, through the target pragma (the
 * build's flags stay baseline); the dispatcher calls it only after cpuid
 * and XGETBV said the CPU and OS support it.
 */
#include "sc_internal.h"

#if SC_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "sc_vec_avx2.h"

#define SC_ISA avx2

#define SC_S f32
#define SC_T float
#define SC_IS_F64 0
#include "sc_body.h"
#undef SC_S
#undef SC_T
#undef SC_IS_F64

#define SC_S f64
#define SC_T double
#define SC_IS_F64 1
#include "sc_body.h"

#pragma GCC pop_options
#else
typedef int sc_kern_avx2_unused; /* ISO C: no empty translation unit */
#endif
