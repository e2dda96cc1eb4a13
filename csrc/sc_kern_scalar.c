/*
 * sc_kern_scalar.c - the portable kernels: every kernel family
 * (sc_kern_unit.h) on the one-lane vector layer, built with the baseline
 * flags of the platform.
 */
#define SC_ISA scalar
#define SC_ISA_VEC "sc_vec_scalar.h"
#include "sc_kern_unit.h"
