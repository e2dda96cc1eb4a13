/*
 * sc_kern_avx512.c - sc_body.h on the AVX-512F vector layer.
 *
 * Only this unit is compiled for AVX-512F, through the target pragma (the
 * build's flags stay baseline); the dispatcher calls it only after cpuid
 * and XGETBV said the CPU and OS support it.
 */
#include "sc_internal.h"

#if SC_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#include "sc_vec_avx512.h"

#define SC_ISA avx512f

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
typedef int sc_kern_avx512_unused; /* ISO C: no empty translation unit */
#endif
