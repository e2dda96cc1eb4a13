/*
 * sc_kern_unit.h - the body of a per-ISA kernel unit (sc_kern_*.c): the
 * vector layer, then every kernel family (family/list.h) for float32 and
 * for float64, and the half-width kernels (family/half.h) for float16 and
 * bfloat16.
 *
 * The unit defines, before including it:
 *   SC_ISA         avx512f, avx2 or scalar (token)
 *   SC_ISA_VEC     its vector layer's header, "sc_vec_<isa>.h"
 *   SC_ISA_TARGET  x86 units only: the target string, e.g. "avx2,fma,f16c"
 * An x86 unit is compiled for its ISA through the target pragma (the
 * build's flags stay baseline); the dispatcher calls it only after cpuid
 * and XGETBV said the CPU and OS support it.  Off x86 it compiles to
 * nothing.
 */
#include "sc_internal.h"

#if defined(SC_ISA_TARGET) && !SC_X86
typedef int sc_kern_unit_unused; /* ISO C: no empty translation unit */
#else

#ifdef SC_ISA_TARGET
#define SC_PRAGMA_(x) _Pragma(#x)
#define SC_PRAGMA(x) SC_PRAGMA_(x)
#pragma GCC push_options
SC_PRAGMA(GCC target(SC_ISA_TARGET))
#endif

#include SC_ISA_VEC

#define SC_S f32
#define SC_T float
#define SC_IS_F64 0
#include "family/list.h"
#undef SC_S
#undef SC_T
#undef SC_IS_F64

#define SC_S f64
#define SC_T double
#define SC_IS_F64 1
#include "family/list.h"
#undef SC_S
#undef SC_T
#undef SC_IS_F64

/* The half-width storage dtypes, on the float32 vector layer and the
 * float32 family's exponential (family/half.h). */
#define SC_H f16
#include "family/half.h"
#undef SC_H
#define SC_H bf16
#include "family/half.h"
#undef SC_H

#ifdef SC_ISA_TARGET
#pragma GCC pop_options
#endif

#endif
