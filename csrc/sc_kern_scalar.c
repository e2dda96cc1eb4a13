/*
 * sc_kern_scalar.c - the portable kernels: sc_body.h on the one-lane
 * vector layer, built with the baseline flags of the platform.
 */
#include "sc_internal.h"
#include "sc_vec_scalar.h"

#define SC_ISA scalar

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
