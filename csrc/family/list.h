/*
 * family/list.h - every kernel family, in the order they build on each
 * other, instantiated once for the dtype and ISA a unit has defined:
 *   SC_S    f32 or f64 (token)       SC_T    float or double
 *   SC_IS_F64 0 or 1                 SC_ISA  avx512f, avx2 or scalar (token)
 * It defines the kernels of sc_internal.h's lists as
 * `sc_<name>_<SC_S>__<SC_ISA>` and undefines its own macros at the end, so
 * a unit includes it once per dtype (sc_kern_unit.h does).
 */

#include "family/mechanics.h"
#include "family/writer.h"
#include "family/exp_steps.h"
#include "family/pipe.h"

/* The float32 16-row forms exist on the AVX-512 vector layer only; the
 * generic kernels call them through V(rows16), which elsewhere takes no
 * rows and folds away. */
#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
#include "family/rows16.h"
#else
SC_ALWAYS_INLINE static inline int V(rows16)(int form, const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                             ptrdiff_t ldy, size_t rows, size_t n)
{
    (void)form, (void)x, (void)ldx, (void)y, (void)ldy, (void)rows, (void)n;
    return 0;
}
#endif

#include "family/short_rows.h"
#include "family/rows.h"
#include "family/lse_w.h"
#include "family/cols.h"
#include "family/backward.h"
#include "family/tanh.h"
#include "family/xent_rows.h"
#include "family/xent_cols.h"
#include "family/xent_opts.h"
#include "family/pieces.h"
#include "family/sample.h"
#include "family/fused.h"

#undef C_
#undef V
#undef VEC
#undef VN
#undef KFN
#undef SC_CHUNK
#undef SC_BWD_CHUNK
#undef SC_SHORT_KINDS
