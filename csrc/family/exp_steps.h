/*
 * family/exp_steps.h - the exponential and the three steps of a row, on
 * which every other family is built.
 *
 * A softmax row is three named steps (as in XNNPACK's raddstoreexpminusmax):
 *   1. mx = max(x)
 *   2. e_i = exp(x_i - mx) stored to y while summing s = sum(e_i)
 *   3. y_i = e_i * (1/s)
 * log_softmax replaces 2 and 3 by a sum without store, then
 * y_i = (x_i - mx) - log(s); logsumexp returns mx + log(s).
 *
 * Accuracy.  The terms e_i are summed in SC_CHUNK-element chunks: inside a
 * chunk in four vector accumulators (8 additions per lane), each chunk's
 * lanes reduced in double and added to a compensated (two-sum) double
 * total.  The sum's relative error is then about 10 u whatever the row
 * length (rows of 2^20 and more), instead of growing with n.  The panel
 * (cols) kernels do the same per lane with 8-row chunks and a two-sum
 * accumulator in the working precision.
 *
 * Special values need no branch in the hot loop: a NaN or +inf anywhere,
 * or a row of -inf only, makes s NaN, so the whole row comes out NaN.
 * logsumexp alone treats +inf / all -inf rows apart (SciPy semantics).
 */

/* ---- exp on (-inf, 0] -------------------------------------------------
 * exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in
 * [-ln2/2, ln2/2] (Cody-Waite: ln 2 = LN2_HI + LN2_LO, LN2_HI with enough
 * trailing zeros that n * LN2_HI is exact).  n comes from the magic add
 * t = x log2(e) + (1.5 * 2^p + bias): the low mantissa bits of t then hold
 * n + bias, and shifting them into the exponent field gives 2^n directly.
 * exp(r) is a minimax polynomial (sc_expcoef.h) evaluated by Horner.
 *
 * Valid for x <= 0 (what softmax feeds it: x - max).  Max error about
 * 1 ulp for results >= the smallest normal; results below it (x < CUTOFF)
 * are flushed to +0, as is exp(-inf).  exp(NaN) = NaN. */
#include "sc_expcoef.h"

#if SC_IS_F64
#define C_(name) SC_PASTE(SC_EXP64_, name)
#else
#define C_(name) SC_PASTE(SC_EXP32_, name)
#endif

/* The steps with a given multiply-add: the vector layer's (exp_neg), or
 * one fused everywhere (family/sample.h, whose bits must not depend on the
 * level).  Always inlined with a constant fma_, so it costs no call. */
SC_ALWAYS_INLINE static inline VEC V(exp_neg_with)(VEC x, VEC (*fma_)(VEC, VEC, VEC))
{
    const VEC magic = V(set1)(C_(MAGIC));
    VEC t = fma_(x, V(set1)(C_(LOG2E)), magic);
    VEC s = V(pow2i)(t);                              /* 2^n */
    VEC n = V(sub)(t, magic);
    VEC r = fma_(n, V(set1)(-C_(LN2_HI)), x);
    r = fma_(n, V(set1)(-C_(LN2_LO)), r);
    VEC p = V(set1)(C_(CTOP));
#if SC_IS_F64
    p = fma_(p, r, V(set1)(C_(C10)));
    p = fma_(p, r, V(set1)(C_(C9)));
    p = fma_(p, r, V(set1)(C_(C8)));
    p = fma_(p, r, V(set1)(C_(C7)));
    p = fma_(p, r, V(set1)(C_(C6)));
#endif
    p = fma_(p, r, V(set1)(C_(C5)));
    p = fma_(p, r, V(set1)(C_(C4)));
    p = fma_(p, r, V(set1)(C_(C3)));
    p = fma_(p, r, V(set1)(C_(C2)));
    p = fma_(p, r, V(set1)(C_(C1)));
    p = fma_(p, r, V(set1)((SC_T)1));
    return V(select_lt)(x, V(set1)(C_(CUTOFF)), V(set1)((SC_T)0), V(mul)(p, s));
}

SC_ALWAYS_INLINE static inline VEC V(exp_neg)(VEC x) { return V(exp_neg_with)(x, V(fma)); }

/* exp for any x: exp_neg, with +inf above C_(XMAX) (about 88 for float32,
 * 709 for float64, where 2^n would leave the exponent range; the exact
 * result there is within a factor 2 of overflow).  The backward kernels
 * use it on log-probabilities, which are <= 0 when valid. */
SC_ALWAYS_INLINE static inline VEC V(exp_sat)(VEC x)
{
    const VEC hi = V(set1)(C_(XMAX));
    return V(select_lt)(hi, x, V(set1)((SC_T)INFINITY), V(exp_neg)(x));
}

/* ---- row steps ---------------------------------------------------------- */

/* Step 1: the row maximum, four independent accumulators. */
static inline SC_T V(row_max)(const SC_T *x, size_t n)
{
    VEC m0 = V(set1)((SC_T)-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 4 * VN <= n; i += 4 * VN) {
        m0 = V(max)(m0, V(load)(x + i));
        m1 = V(max)(m1, V(load)(x + i + VN));
        m2 = V(max)(m2, V(load)(x + i + 2 * VN));
        m3 = V(max)(m3, V(load)(x + i + 3 * VN));
    }
    for (; i + VN <= n; i += VN)
        m0 = V(max)(m0, V(load)(x + i));
    if (i < n)
        m1 = V(max)(m1, V(loadt)(x + i, n - i, (SC_T)-INFINITY));
    return V(hmax)(V(max)(V(max)(m0, m1), V(max)(m2, m3)));
}

/* Step 2 on one chunk of at most SC_CHUNK elements: the lane sums of
 * exp(x_i - mx), each term also stored to y unless y is NULL.  Lanes past
 * the end load -inf, so they add exp(-inf) = 0.  `scaled` (a constant):
 * exp((x_i - mx) vs) instead, the fused options' scale (> 0) folded into
 * the argument (family/fused.h); the plain steps pass 0 and keep their
 * operations. */
SC_ALWAYS_INLINE static inline VEC V(expsum_chunk_s)(const SC_T *x, SC_T *y, size_t n, VEC vm,
                                                     VEC vs, int scaled)
{
#define SC_EARG(v) (scaled ? V(mul)(V(sub)((v), vm), vs) : V(sub)((v), vm))
    VEC a0 = V(set1)((SC_T)0), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 4 * VN <= n; i += 4 * VN) {
        VEC e0 = V(exp_neg)(SC_EARG(V(load)(x + i)));
        VEC e1 = V(exp_neg)(SC_EARG(V(load)(x + i + VN)));
        VEC e2 = V(exp_neg)(SC_EARG(V(load)(x + i + 2 * VN)));
        VEC e3 = V(exp_neg)(SC_EARG(V(load)(x + i + 3 * VN)));
        if (y) {
            V(store)(y + i, e0);
            V(store)(y + i + VN, e1);
            V(store)(y + i + 2 * VN, e2);
            V(store)(y + i + 3 * VN, e3);
        }
        a0 = V(add)(a0, e0);
        a1 = V(add)(a1, e1);
        a2 = V(add)(a2, e2);
        a3 = V(add)(a3, e3);
    }
    for (; i + VN <= n; i += VN) {
        VEC e = V(exp_neg)(SC_EARG(V(load)(x + i)));
        if (y)
            V(store)(y + i, e);
        a0 = V(add)(a0, e);
    }
    if (i < n) {
        VEC e = V(exp_neg)(SC_EARG(V(loadt)(x + i, n - i, (SC_T)-INFINITY)));
        if (y)
            V(storet)(y + i, e, n - i);
        a1 = V(add)(a1, e);
    }
#undef SC_EARG
    return V(add)(V(add)(a0, a1), V(add)(a2, a3));
}

SC_ALWAYS_INLINE static inline VEC V(expsum_chunk)(const SC_T *x, SC_T *y, size_t n, VEC vm)
{
    return V(expsum_chunk_s)(x, y, n, vm, vm, 0);
}

/* Step 2 on a whole row: chunk sums added with two-sum compensation.
 * `pf`, when not NULL, is the next row: it is prefetched while this row's
 * exponentials are computed, so the next max sweep reads from cache.
 * expsum_s: with the scale sc folded in, as expsum_chunk_s. */
SC_ALWAYS_INLINE static inline double V(expsum_s)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                  const SC_T *pf, SC_T sc, int scaled)
{
    const VEC vm = V(set1)(mx), vs = V(set1)(sc);
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i += SC_CHUNK) {
        size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
        if (pf) {
            for (size_t k = 0; k < len; k += SC_LINE / sizeof(SC_T))
                SC_PREFETCH(pf + i + k);
        }
        sc_two_sum_add(&s, &c,
                       V(hsum)(V(expsum_chunk_s)(x + i, y ? y + i : NULL, len, vm, vs, scaled)));
    }
    return s + c;
}

SC_ALWAYS_INLINE static inline double V(expsum)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                const SC_T *pf)
{
    return V(expsum_s)(x, y, n, mx, pf, (SC_T)1, 0);
}

/* Step 3 of softmax: y *= a; vector-aligned on rows of 2 KiB or more.
 * Shorter rows are still in the store buffer from step 2, whose stores
 * sit where the row starts: aligned loads, which straddle two of them,
 * cannot take their data from it. */
static inline void V(scale)(SC_T *y, size_t n, SC_T a)
{
    const V(wr_src) s = {.a = y, .c0 = V(set1)(a)};
    V(write)(&s, SC_WR_MUL, y, 0, n, n * sizeof(SC_T) >= 2048 ? V(head)(y, n) : 0, 4, 0, NULL, 1);
}

/* The final, write-only pass of log_softmax over a row: y = (x - mx) - c
 * (subtracting mx first keeps the result exact to rounding even when |mx|
 * is huge).  With `stream`, the aligned body of the row goes through
 * streaming stores (the caller fences). */
SC_ALWAYS_INLINE static inline VEC V(final_op)(VEC xv, VEC vm, VEC vc)
{
    return V(sub)(V(sub)(xv, vm), vc);
}

/* final_pass_s: y = (x - mx) sc - c with `scaled` (the fused options'
 * scale folded in, family/fused.h), else final_pass's operation. */
SC_ALWAYS_INLINE static inline void V(final_pass_s)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                    SC_T c, int stream, SC_T sc, int scaled)
{
    const V(wr_src) s = {.a = x, .c0 = V(set1)(mx), .c1 = V(set1)(c), .c2 = V(set1)(sc)};
    const int op = scaled ? SC_WR_LOG_S : SC_WR_LOG;
    if (stream && VN > 1) {
        /* head: up to the first line-aligned element of y, plain stores; a
         * line written partly by streaming stores and partly by plain ones
         * (a row's first line shares with the row before) is very slow */
        const size_t lw = SC_LINE / sizeof(SC_T), mis = ((size_t)y / sizeof(SC_T)) % lw;
        const size_t head = mis ? lw - mis : 0;
        if ((size_t)y % sizeof(SC_T) == 0 && head < n)
            V(write)(&s, op, y, 0, n, head, 2, SC_WR_STREAM | SC_WR_LINE, NULL, 1);
        else
            V(write)(&s, op, y, 0, n, 0, 1, 0, NULL, 1);
    } else {
        V(write)(&s, op, y, 0, n, V(head)(y, n), 2, 0, NULL, 1);
    }
}

SC_ALWAYS_INLINE static inline void V(final_pass)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                  SC_T c, int stream)
{
    V(final_pass_s)(x, y, n, mx, c, stream, (SC_T)1, 0);
}
