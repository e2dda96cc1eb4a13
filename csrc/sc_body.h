/*
 * sc_body.h - the generic forward kernels, written once against the vector
 * layer (sc_vec_*.h) and instantiated per ISA and dtype.
 *
 * Include it with these macros defined (sc_kern_*.c do this):
 *   SC_S    f32 or f64 (token)       SC_T    float or double
 *   SC_ISA  avx512f, avx2 or scalar (token)
 * It defines the kernels of sc_internal.h's SC_UNARY_KERNELS list as
 * `sc_<name>_<SC_S>__<SC_ISA>` and undefines its own macros at the end, so
 * the same translation unit can include it again for the other dtype.
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

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SC_PASTE_(a, b) a##b
#define SC_PASTE(a, b) SC_PASTE_(a, b)
#define SC_VOP_(op, s) sc_##op##_##s
#define SC_VOP(op, s) SC_VOP_(op, s)
#define SC_KFN_(name, s, isa) sc_##name##_##s##__##isa
#define SC_KFN3(name, s, isa) SC_KFN_(name, s, isa)

#define V(op) SC_VOP(op, SC_S)            /* V(load) -> sc_load_f32 */
#define VEC SC_VOP(vec, SC_S)             /* sc_vec_f32 */
#define VN SC_PASTE(SC_VN_, SC_S)         /* SC_VN_f32 */
#define KFN(name) SC_KFN3(name, SC_S, SC_ISA)
#define SC_CHUNK (32 * VN)

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

SC_ALWAYS_INLINE static inline VEC V(exp_neg)(VEC x)
{
    const VEC magic = V(set1)(C_(MAGIC));
    VEC t = V(fma)(x, V(set1)(C_(LOG2E)), magic);
    VEC s = V(pow2i)(t);                              /* 2^n */
    VEC n = V(sub)(t, magic);
    VEC r = V(fma)(n, V(set1)(-C_(LN2_HI)), x);
    r = V(fma)(n, V(set1)(-C_(LN2_LO)), r);
    VEC p = V(set1)(C_(CTOP));
#if SC_IS_F64
    p = V(fma)(p, r, V(set1)(C_(C10)));
    p = V(fma)(p, r, V(set1)(C_(C9)));
    p = V(fma)(p, r, V(set1)(C_(C8)));
    p = V(fma)(p, r, V(set1)(C_(C7)));
    p = V(fma)(p, r, V(set1)(C_(C6)));
#endif
    p = V(fma)(p, r, V(set1)(C_(C5)));
    p = V(fma)(p, r, V(set1)(C_(C4)));
    p = V(fma)(p, r, V(set1)(C_(C3)));
    p = V(fma)(p, r, V(set1)(C_(C2)));
    p = V(fma)(p, r, V(set1)(C_(C1)));
    p = V(fma)(p, r, V(set1)((SC_T)1));
    return V(select_lt)(x, V(set1)(C_(CUTOFF)), V(set1)((SC_T)0), V(mul)(p, s));
}

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
 * the end load -inf, so they add exp(-inf) = 0. */
SC_ALWAYS_INLINE static inline VEC V(expsum_chunk)(const SC_T *x, SC_T *y, size_t n, VEC vm)
{
    VEC a0 = V(set1)((SC_T)0), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 4 * VN <= n; i += 4 * VN) {
        VEC e0 = V(exp_neg)(V(sub)(V(load)(x + i), vm));
        VEC e1 = V(exp_neg)(V(sub)(V(load)(x + i + VN), vm));
        VEC e2 = V(exp_neg)(V(sub)(V(load)(x + i + 2 * VN), vm));
        VEC e3 = V(exp_neg)(V(sub)(V(load)(x + i + 3 * VN), vm));
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
        VEC e = V(exp_neg)(V(sub)(V(load)(x + i), vm));
        if (y)
            V(store)(y + i, e);
        a0 = V(add)(a0, e);
    }
    if (i < n) {
        VEC e = V(exp_neg)(V(sub)(V(loadt)(x + i, n - i, (SC_T)-INFINITY), vm));
        if (y)
            V(storet)(y + i, e, n - i);
        a1 = V(add)(a1, e);
    }
    return V(add)(V(add)(a0, a1), V(add)(a2, a3));
}

/* Step 2 on a whole row: chunk sums added with two-sum compensation.
 * `pf`, when not NULL, is the next row: it is prefetched while this row's
 * exponentials are computed, so the next max sweep reads from cache. */
SC_ALWAYS_INLINE static inline double V(expsum)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                const SC_T *pf)
{
    const VEC vm = V(set1)(mx);
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i += SC_CHUNK) {
        size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
        if (pf) {
            for (size_t k = 0; k < len; k += SC_LINE / sizeof(SC_T))
                SC_PREFETCH(pf + i + k);
        }
        sc_two_sum_add(&s, &c, V(hsum)(V(expsum_chunk)(x + i, y ? y + i : NULL, len, vm)));
    }
    return s + c;
}

/* The elements of y before its first vector-aligned one (at most n; 0 when
 * y is not element-aligned): a row's element-wise pass writes them first,
 * then aligned vectors, as a store that straddles two lines costs more
 * than a load that does. */
SC_ALWAYS_INLINE static inline size_t V(head)(const SC_T *y, size_t n)
{
    size_t mis = ((size_t)y / sizeof(SC_T)) % VN, h;
    if (VN == 1 || (size_t)y % sizeof(SC_T) != 0 || mis == 0)
        return 0;
    h = VN - mis;
    return h < n ? h : n;
}

/* Step 3 of softmax: y *= a; vector-aligned on rows of 2 KiB or more.
 * Shorter rows are still in the store buffer from step 2, whose stores
 * sit where the row starts: aligned loads, which straddle two of them,
 * cannot take their data from it (128 float32 elements 16 bytes past a
 * line: 1.05-1.10x the time; rows of 1000 float32 0.96x, 32000 float32
 * 0.97-0.98x). */
static inline void V(scale)(SC_T *y, size_t n, SC_T a)
{
    const VEC va = V(set1)(a);
    size_t i = n * sizeof(SC_T) >= 2048 ? V(head)(y, n) : 0;
    if (i)
        V(storet)(y, V(mul)(V(loadt)(y, i, (SC_T)0), va), i);
    for (; i + 4 * VN <= n; i += 4 * VN) {
        V(store)(y + i, V(mul)(V(load)(y + i), va));
        V(store)(y + i + VN, V(mul)(V(load)(y + i + VN), va));
        V(store)(y + i + 2 * VN, V(mul)(V(load)(y + i + 2 * VN), va));
        V(store)(y + i + 3 * VN, V(mul)(V(load)(y + i + 3 * VN), va));
    }
    for (; i + VN <= n; i += VN)
        V(store)(y + i, V(mul)(V(load)(y + i), va));
    if (i < n)
        V(storet)(y + i, V(mul)(V(loadt)(y + i, n - i, (SC_T)0), va), n - i);
}

/* The final, write-only pass of log_softmax over a row: y = (x - mx) - c
 * (subtracting mx first keeps the result exact to rounding even when |mx|
 * is huge).  With `stream`, the aligned body of the row goes through
 * streaming stores (the caller fences). */
SC_ALWAYS_INLINE static inline VEC V(final_op)(VEC xv, VEC vm, VEC vc)
{
    return V(sub)(V(sub)(xv, vm), vc);
}

SC_ALWAYS_INLINE static inline void V(final_pass)(const SC_T *x, SC_T *y, size_t n, SC_T mx,
                                                  SC_T c, int stream)
{
    const VEC vm = V(set1)(mx), vc = V(set1)(c);
    size_t i = 0;
    if (stream && VN > 1) {
        /* head: up to the first line-aligned element of y, plain stores; a
         * line written partly by streaming stores and partly by plain ones
         * (a row's first line shares with the row before) cost up to 7x
         * with AVX2 (32768x128 float32 log_softmax at NumPy's 16-byte
         * offset, vector-aligned streaming: 9.8 ms, plain 2.1) */
        const size_t lw = SC_LINE / sizeof(SC_T), mis = ((size_t)y / sizeof(SC_T)) % lw;
        const size_t head = mis ? lw - mis : 0;
        if ((size_t)y % sizeof(SC_T) == 0 && head < n) {
            for (; i + VN <= head; i += VN)
                V(store)(y + i, V(final_op)(V(load)(x + i), vm, vc));
            if (i < head)
                V(storet)(y + i, V(final_op)(V(loadt)(x + i, head - i, (SC_T)0), vm, vc), head - i);
            for (i = head; i + 2 * VN <= n; i += 2 * VN) {
                V(stream)(y + i, V(final_op)(V(load)(x + i), vm, vc));
                V(stream)(y + i + VN, V(final_op)(V(load)(x + i + VN), vm, vc));
            }
        }
    } else {
        i = V(head)(y, n);
        if (i)
            V(storet)(y, V(final_op)(V(loadt)(x, i, (SC_T)0), vm, vc), i);
        for (; i + 2 * VN <= n; i += 2 * VN) {
            V(store)(y + i, V(final_op)(V(load)(x + i), vm, vc));
            V(store)(y + i + VN, V(final_op)(V(load)(x + i + VN), vm, vc));
        }
    }
    for (; i + VN <= n; i += VN)
        V(store)(y + i, V(final_op)(V(load)(x + i), vm, vc));
    if (i < n)
        V(storet)(y + i, V(final_op)(V(loadt)(x + i, n - i, (SC_T)0), vm, vc), n - i);
}

static int V(has_nan)(const SC_T *x, ptrdiff_t stride, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[(ptrdiff_t)i * stride] != x[(ptrdiff_t)i * stride])
            return 1;
    return 0;
}

/* logsumexp of a slice whose max is not finite: +inf -> +inf, all -inf ->
 * -inf, unless a NaN is present (x86 max may have skipped it). */
static SC_T V(lse_nonfinite)(const SC_T *x, ptrdiff_t stride, size_t n, SC_T mx)
{
    if (mx != mx || V(has_nan)(x, stride, n))
        return (SC_T)NAN;
    return mx;
}

static inline const SC_T *V(prefetch_row)(const SC_T *xr, ptrdiff_t ldx, size_t r, size_t rows,
                                          size_t n)
{
    return (r + 1 < rows && n * sizeof(SC_T) <= SC_PREFETCH_MAX_BYTES) ? xr + ldx : NULL;
}

/* ---- row kernels -------------------------------------------------------- */

/* Softmax rows: the three steps, exp stored while summing and scaled in
 * place, the next row prefetched during the exp sweep.  (A variant for
 * large float32 outputs that summed without storing and recomputed exp in
 * a write-only streaming pass, to spare the read for ownership of each
 * output line, measured 1.74-1.84x np.copyto on 4096x4096 and 256x32000
 * against 1.42-1.54x for the three steps, and no better on rows larger
 * than L2: this machine's exp costs more than that read.) */
/* One output vector of a pipelined row: softmax y = e p0 (e the stored
 * exponential, p0 = 1/s), log_softmax y = (x - p0) - p1 (p0 the max,
 * p1 = log s); the scalar form gives the same bits. */
SC_ALWAYS_INLINE static inline VEC V(pipe_op)(VEC v, VEC p0, VEC p1, int lg)
{
    return lg ? V(sub)(V(sub)(v, p0), p1) : V(mul)(v, p0);
}

SC_ALWAYS_INLINE static inline SC_T V(pipe_op1)(SC_T v, SC_T p0, SC_T p1, int lg)
{
    return lg ? (v - p0) - p1 : v * p0;
}

/* Elements [j0, j1) of an output row from src (pipe_op), through streaming
 * stores from `head` on (y + head is vector-aligned), plain stores before
 * it and in a last partial vector.  With `carry` (output rows that follow
 * each other), the line a row shares with the next is written whole: the
 * row's last partial vector is kept in carry[0, *ncarry) and written with
 * the next row's head. */
SC_ALWAYS_INLINE static inline void V(pipe_piece)(const SC_T *src, SC_T *y, size_t j0, size_t j1,
                                                  size_t head, SC_T p0, SC_T p1, int lg,
                                                  SC_T *carry, size_t *ncarry, int last)
{
    const VEC v0 = V(set1)(p0), v1 = V(set1)(p1);
    size_t j = j0;
    if (j < head) {
        size_t e = head < j1 ? head : j1;
        if (carry && *ncarry + e == VN) {
            SC_T line[VN];
            for (size_t q = 0; q < *ncarry; q++)
                line[q] = carry[q];
            for (size_t q = 0; q < e; q++)
                line[*ncarry + q] = V(pipe_op1)(src[q], p0, p1, lg);
            V(stream)(y - *ncarry, V(load)(line));
            *ncarry = 0;
        } else {
            V(storet)(y + j, V(pipe_op)(V(loadt)(src + j, e - j, (SC_T)0), v0, v1, lg), e - j);
        }
        j = e;
    }
    if (carry && *ncarry) { /* not reached when the rows follow each other */
        for (size_t q = 0; q < *ncarry; q++)
            y[(ptrdiff_t)q - (ptrdiff_t)*ncarry] = carry[q];
        *ncarry = 0;
    }
    for (; j + VN <= j1; j += VN)
        V(stream)(y + j, V(pipe_op)(V(load)(src + j), v0, v1, lg));
    if (j < j1) {
        VEC t = V(pipe_op)(V(loadt)(src + j, j1 - j, (SC_T)0), v0, v1, lg);
        if (carry && !last) {
            V(storet)(carry, t, j1 - j);
            *ncarry = j1 - j;
        } else {
            V(storet)(y + j, t, j1 - j);
        }
    }
}

/* Chunk [i, i + SC_CHUNK) of a pipelined row's exp sweep: the same lines
 * of the next row (pf, if any) prefetched, e stored to dst (if any), the
 * chunk's sum added in as expsum adds it. */
SC_ALWAYS_INLINE static inline void V(pipe_expsum)(const SC_T *x, SC_T *dst, const SC_T *pf,
                                                   size_t i, size_t n, VEC vm, double *s,
                                                   double *c)
{
    const size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
    if (pf) {
        for (size_t q = 0; q < len; q += SC_LINE / sizeof(SC_T))
            SC_PREFETCH(pf + i + q);
    }
    sc_two_sum_add(s, c, V(hsum)(V(expsum_chunk)(x + i, dst ? dst + i : NULL, len, vm)));
}

/* The span [*j0, *j1) of the previous row written beside chunk k of a
 * pipelined row (its head, up to the first aligned vector, goes with chunk
 * 0); 0 when it is empty. */
SC_ALWAYS_INLINE static inline int V(pipe_span)(size_t head, size_t k, size_t n, size_t *j0,
                                                size_t *j1)
{
    *j0 = k ? head + k * SC_CHUNK : 0;
    *j1 = head + (k + 1) * SC_CHUNK;
    if (*j1 > n)
        *j1 = n;
    return *j0 < *j1;
}

/* Softmax (lg = 0) and log_softmax (lg = 1) rows of a large output,
 * pipelined over rows: while a row's exponentials are summed, chunk by
 * chunk, the previous row is written out with streaming stores, from a
 * scratch row holding its exponentials (softmax) or from its x, still in
 * L2 (log_softmax).  The output's lines are then never read (no read for
 * ownership), and its writes drain while exp computes.  The same bits as
 * the row kernels' sweeps.  The lines an output row shares with its
 * neighbours are written whole when the rows follow each other (ldy = n),
 * else with plain stores, prefetched for writing a row ahead (4096x4096
 * float32 softmax into NumPy's 16-byte-offset buffers: 1.24x -> 1.16x
 * np.copyto).  softmax's two scratch rows are in `work`
 * (sc_pipe_work elements). */
SC_ALWAYS_INLINE static inline void V(rows_pipe)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                 ptrdiff_t ldy, size_t rows, size_t n, int lg,
                                                 SC_T *work)
{
    const size_t lw = SC_LINE / sizeof(SC_T), np = (n + lw - 1) / lw * lw;
    SC_T *cur = NULL, *prev = NULL;
    if (!lg) {
        cur = work + (lw - ((uintptr_t)work / sizeof(SC_T)) % lw) % lw;
        prev = cur + np;
    }
    SC_T *py = NULL, p0 = 0, p1 = 0, carry_buf[VN], *carry = ldy == (ptrdiff_t)n ? carry_buf : NULL;
    const SC_T *psrc = NULL;
    size_t phead = 0, ncarry = 0;
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        const SC_T *pf = r + 1 < rows ? xr + ldx : NULL;
        const SC_T mx = V(row_max)(xr, n);
        const VEC vm = V(set1)(mx);
        double s = 0.0, c = 0.0;
        for (size_t i = 0, k = 0; i < n; i += SC_CHUNK, k++) {
            V(pipe_expsum)(xr, lg ? NULL : cur, pf, i, n, vm, &s, &c);
            size_t j0, j1;
            if (py && V(pipe_span)(phead, k, n, &j0, &j1))
                V(pipe_piece)(psrc, py, j0, j1, phead, p0, p1, lg, carry, &ncarry, 0);
        }
        if (lg) {
            psrc = xr;
            p0 = mx;
            p1 = (SC_T)log(s + c);
        } else {
            SC_T *t = prev;
            prev = cur;
            cur = t;
            psrc = prev;
            p0 = (SC_T)(1.0 / (s + c));
        }
        py = y + (ptrdiff_t)r * ldy;
        phead = (VN - ((size_t)py / sizeof(SC_T)) % VN) % VN;
        if (r + 1 < rows && !carry) {
            SC_PREFETCH_W(py + ldy);
            SC_PREFETCH_W(py + ldy + n - 1);
        }
    }
    V(pipe_piece)(psrc, py, 0, n, phead, p0, p1, lg, carry, &ncarry, 1);
    sc_sfence();
}

#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
static void V(softmax_short)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                             size_t n);
#endif

void KFN(softmax_rows_ws)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                          size_t n, SC_T *work, size_t work_len)
{
    if (n == 0)
        return;
#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
    if (n <= 2 * VN) {
        V(softmax_short)(x, ldx, y, ldy, rows, n);
        return;
    }
#endif
    if (VN > 1 && work != NULL && work_len >= sc_pipe_work(sizeof(SC_T), n) &&
        sc_pipe_rows(sizeof(SC_T), y, ldy, rows, n, 0)) {
        V(rows_pipe)(x, ldx, y, ldy, rows, n, 0, work);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        SC_T mx = V(row_max)(xr, n);
        double s = V(expsum)(xr, yr, n, mx, V(prefetch_row)(xr, ldx, r, rows, n));
        V(scale)(yr, n, (SC_T)(1.0 / s));
    }
}

void KFN(softmax_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows, size_t n)
{
    KFN(softmax_rows_ws)(x, ldx, y, ldy, rows, n, NULL, 0);
}

/* log_softmax of rows of at most two vectors: the row steps' arithmetic
 * (row_max, expsum, final_pass, each collapsed to its one or two vectors)
 * without their per-row loop setup, for groups of SC_LOGD_N rows: first
 * the rows' maxima and sums (two rows interleaved), then log(s) for the
 * whole group in the vector layer's log (sc_logd_n; lane by lane, so a row
 * has the same bits in any group, and alone), then the outputs from the
 * inputs again (in L1).  The length's case is resolved once per call, not
 * per row.  Plain stores: a row is at most two lines.
 * 262144x16 float32, one thread, out=: 4.6 -> 3.3 ms (PyTorch 3.1);
 * 131072x32 2.7 -> 2.1 ms (PyTorch 2.45): the libm log per row, a call
 * the rows' work could not overlap, was a quarter of the time.
 * kind: 0 n < VN, 1 n == VN, 2 VN < n < 2 VN, 3 n == 2 VN, 4 three
 * vectors, 5 four; t lanes in the last vector. */
SC_ALWAYS_INLINE static inline void V(lss_stats)(const SC_T *xr, size_t n, size_t t, int kind,
                                                 SC_T *mxo, double *so)
{
    const VEC ninf = V(set1)((SC_T)-INFINITY), z = V(set1)((SC_T)0);
    VEC x0, x1 = ninf, x2, x3, m0, m1, a0, a1;
    if (kind == 0) {
        x0 = V(loadt)(xr, n, (SC_T)-INFINITY);
        m0 = ninf, m1 = V(max)(ninf, x0);
    } else if (kind == 1) {
        x0 = V(load)(xr);
        m0 = V(max)(ninf, x0), m1 = ninf;
    } else if (kind == 2) {
        x0 = V(load)(xr), x1 = V(loadt)(xr + VN, t, (SC_T)-INFINITY);
        m0 = V(max)(ninf, x0), m1 = V(max)(ninf, x1);
    } else if (kind == 3) {
        x0 = V(load)(xr), x1 = V(load)(xr + VN);
        m0 = V(max)(V(max)(ninf, x0), x1), m1 = ninf;
    } else {
        /* kind 4, 5: three or four vectors (the last of t lanes), as
         * row_max's four accumulators and expsum_chunk's */
        x0 = V(load)(xr), x1 = V(load)(xr + VN);
        const SC_T *xl = xr + (kind == 4 ? 2 : 3) * VN; /* the last vector */
        const VEC xt = t == VN ? V(load)(xl) : V(loadt)(xl, t, (SC_T)-INFINITY);
        x2 = kind == 4 ? xt : V(load)(xr + 2 * VN);
        x3 = kind == 4 ? ninf : xt;
        const SC_T mx = V(hmax)(V(max)(V(max)(V(max)(ninf, x0), V(max)(ninf, x1)),
                                       V(max)(V(max)(ninf, x2), V(max)(ninf, x3))));
        const VEC vm = V(set1)(mx);
        const VEC e0 = V(exp_neg)(V(sub)(x0, vm)), e1 = V(exp_neg)(V(sub)(x1, vm));
        const VEC e2 = V(exp_neg)(V(sub)(x2, vm));
        a0 = kind == 4 ? V(add)(z, e2) : V(add)(V(add)(z, e2), V(exp_neg)(V(sub)(x3, vm)));
        double s = 0.0, c = 0.0;
        sc_two_sum_add(&s, &c, V(hsum)(V(add)(V(add)(V(add)(z, e0), V(add)(z, e1)),
                                              V(add)(a0, z))));
        *mxo = mx;
        *so = s + c;
        return;
    }
    const SC_T mx = V(hmax)(V(max)(V(max)(m0, m1), V(max)(ninf, ninf)));
    const VEC vm = V(set1)(mx);
    if (kind == 0) {
        a0 = z, a1 = V(add)(z, V(exp_neg)(V(sub)(x0, vm)));
    } else if (kind == 1) {
        a0 = V(add)(z, V(exp_neg)(V(sub)(x0, vm))), a1 = z;
    } else if (kind == 2) {
        a0 = V(add)(z, V(exp_neg)(V(sub)(x0, vm))), a1 = V(add)(z, V(exp_neg)(V(sub)(x1, vm)));
    } else {
        a0 = V(add)(V(add)(z, V(exp_neg)(V(sub)(x0, vm))), V(exp_neg)(V(sub)(x1, vm)));
        a1 = z;
    }
    double s = 0.0, c = 0.0;
    sc_two_sum_add(&s, &c, V(hsum)(V(add)(V(add)(a0, a1), V(add)(z, z))));
    *mxo = mx;
    *so = s + c;
}

/* The maxima and log-sums of a group of g <= SC_LOGD_N rows (two rows
 * interleaved, then the group's logs at once; lanes past g take log(1)). */
SC_ALWAYS_INLINE static inline void V(lss_group)(const SC_T *xg, ptrdiff_t ldx, size_t g,
                                                 size_t n, size_t t, int kind, SC_T *mxs,
                                                 double *ls)
{
    size_t j = 0;
    for (; j + 2 <= g; j += 2) {
        V(lss_stats)(xg + (ptrdiff_t)j * ldx, n, t, kind, &mxs[j], &ls[j]);
        V(lss_stats)(xg + (ptrdiff_t)(j + 1) * ldx, n, t, kind, &mxs[j + 1], &ls[j + 1]);
    }
    if (j < g)
        V(lss_stats)(xg + (ptrdiff_t)j * ldx, n, t, kind, &mxs[j], &ls[j]);
    for (j = g; j < SC_LOGD_N; j++)
        ls[j] = 1.0;
    sc_logd_n(ls);
}

SC_ALWAYS_INLINE static inline void V(lss_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                ptrdiff_t ldy, size_t rows, size_t n, int kind)
{
    const size_t t = n - (n - 1) / VN * VN; /* lanes of the last vector */
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t g = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        SC_T *yg = y + (ptrdiff_t)r0 * ldy;
        SC_T mxs[SC_LOGD_N];
        double ls[SC_LOGD_N];
        V(lss_group)(xg, ldx, g, n, t, kind, mxs, ls);
        for (size_t j = 0; j < g; j++) {
            const SC_T *xr = xg + (ptrdiff_t)j * ldx;
            SC_T *yr = yg + (ptrdiff_t)j * ldy;
            const VEC vm = V(set1)(mxs[j]), vc = V(set1)((SC_T)ls[j]);
            if (kind == 0) {
                V(storet)(yr, V(final_op)(V(loadt)(xr, n, (SC_T)-INFINITY), vm, vc), n);
            } else if (kind <= 3) {
                V(store)(yr, V(final_op)(V(load)(xr), vm, vc));
                if (kind == 3)
                    V(store)(yr + VN, V(final_op)(V(load)(xr + VN), vm, vc));
                else if (kind == 2)
                    V(storet)(yr + VN, V(final_op)(V(loadt)(xr + VN, t, (SC_T)0), vm, vc), t);
            } else {
                const size_t l = kind == 4 ? 2 * VN : 3 * VN; /* the last vector */
                V(store)(yr, V(final_op)(V(load)(xr), vm, vc));
                V(store)(yr + VN, V(final_op)(V(load)(xr + VN), vm, vc));
                if (kind == 5)
                    V(store)(yr + 2 * VN, V(final_op)(V(load)(xr + 2 * VN), vm, vc));
                if (t == VN) /* whole: a masked store is slow on some cores */
                    V(store)(yr + l, V(final_op)(V(load)(xr + l), vm, vc));
                else
                    V(storet)(yr + l, V(final_op)(V(loadt)(xr + l, t, (SC_T)0), vm, vc), t);
            }
        }
    }
}

#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
/* Block b (k lanes) of the group's 16 rows (g real ones; zeros after),
 * transposed: c[j] lane i is element b VN + j of row i. */
SC_ALWAYS_INLINE static inline void V(rows16_cols)(const SC_T *xg, ptrdiff_t ldx, size_t g,
                                                   size_t b, size_t k, VEC c[16])
{
    for (size_t i = 0; i < 16; i++) {
        const SC_T *xi = xg + (ptrdiff_t)i * ldx + b * VN;
        c[i] = i >= g ? V(set1)((SC_T)0) : k == VN ? V(load)(xi) : V(loadt)(xi, k, (SC_T)0);
    }
    sc_transpose16_f32(c);
}

/* The lane sums of exp(c[j] - mx), j < k, in double: lanes 0-7 to lo,
 * 8-15 to hi, even and odd j apart. */
SC_ALWAYS_INLINE static inline void V(rows16_expsum)(const VEC c[16], size_t k, VEC mx,
                                                     __m512d s[4])
{
    for (size_t j = 0; j < VN; j += 2) {
        if (j < k) {
            const VEC e = V(exp_neg)(V(sub)(c[j], mx));
            s[0] = _mm512_add_pd(s[0], sc_lo_pd_f32(e));
            s[1] = _mm512_add_pd(s[1], sc_hi_pd_f32(e));
        }
        if (j + 1 < k) {
            const VEC e = V(exp_neg)(V(sub)(c[j + 1], mx));
            s[2] = _mm512_add_pd(s[2], sc_lo_pd_f32(e));
            s[3] = _mm512_add_pd(s[3], sc_hi_pd_f32(e));
        }
    }
}

/* The lane sums of c[j], j < k, in double, as rows16_expsum. */
SC_ALWAYS_INLINE static inline void V(rows16_sum)(const VEC c[16], size_t k, const int full,
                                                  __m512d s[4])
{
    for (size_t j = 0; j < VN; j += 2) {
        if (full || j < k) {
            s[0] = _mm512_add_pd(s[0], sc_lo_pd_f32(c[j]));
            s[1] = _mm512_add_pd(s[1], sc_hi_pd_f32(c[j]));
        }
        if (full || j + 1 < k) {
            s[2] = _mm512_add_pd(s[2], sc_lo_pd_f32(c[j + 1]));
            s[3] = _mm512_add_pd(s[3], sc_hi_pd_f32(c[j + 1]));
        }
    }
}

/* softmax of float32 rows of at most one vector, 16 rows at a time, as
 * rows16_blocks (whose helpers it shares): the exponentials kept as
 * columns, scaled by their row's (float)(1 / s) (s summed in double),
 * transposed back and stored.  A group of fewer than 16 rows is copied
 * into 16 rows of zeros first.  One thread, out=, against the row kernel:
 * 1048576x4 15.4 -> 5.5 ms, 524288x8 8.7 -> 4.7 (PyTorch 54), 262144x16
 * 3.4 -> 1.8-2.0 (PyTorch 3.8).  (Rows of two vectors: rows16_blocks.)
 * sm16_group: 16 rows of xg, t lanes (all when `full`); the first g
 * written to yg. */
SC_ALWAYS_INLINE static inline void V(sm16_group)(const SC_T *xg, ptrdiff_t ldx, SC_T *yg,
                                                  ptrdiff_t ldy, size_t g, size_t t,
                                                  const int full)
{
    VEC c[16];
    VEC mx = V(set1)((SC_T)-INFINITY);
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
    V(rows16_cols)(xg, ldx, 16, 0, full ? VN : t, c);
    for (size_t j = 0; j < VN; j++)
        if (full || j < t)
            mx = V(max)(mx, c[j]);
    for (size_t j = 0; j < VN; j++)
        if (full || j < t)
            c[j] = V(exp_neg)(V(sub)(c[j], mx));
    V(rows16_sum)(c, t, full, s);
    const VEC rc = sc_from_pd_f32(_mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s[0], s[2])),
                                  _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s[1], s[3])));
    for (size_t j = 0; j < VN; j++)
        c[j] = V(mul)(c[j], rc);
    sc_transpose16_f32(c);
    for (size_t i = 0; i < 16; i++) {
        if (i >= g)
            break;
        SC_T *yr = yg + (ptrdiff_t)i * ldy;
        if (full)
            V(store)(yr, c[i]);
        else
            V(storet)(yr, c[i], t);
    }
}

SC_ALWAYS_INLINE static inline void V(softmax_rows16)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                   ptrdiff_t ldy, size_t rows, size_t n,
                                                   const int full)
{
    size_t r0 = 0;
    for (; r0 + 16 <= rows; r0 += 16)
        V(sm16_group)(x + (ptrdiff_t)r0 * ldx, ldx, y + (ptrdiff_t)r0 * ldy, ldy, 16, n, full);
    if (r0 < rows) {
        SC_T buf[16 * VN] __attribute__((aligned(64)));
        const size_t g = rows - r0;
        memset(buf, 0, sizeof buf);
        for (size_t i = 0; i < g; i++)
            memcpy(buf + i * VN, x + (ptrdiff_t)(r0 + i) * ldx, n * sizeof(SC_T));
        V(sm16_group)(buf, (ptrdiff_t)VN, y + (ptrdiff_t)r0 * ldy, ldy, g, n, full);
    }
}

/* Contiguous rows of n = 1, 2, 4 or 8 elements (m = 16 / n rows to a
 * vector), 16 m rows at a time: the group's 16 vectors loaded whole and
 * transposed, so that column r n + e holds element e of rows r, m + r,
 * 2 m + r, ... in its lanes; softmax (log_softmax when lg) of each of the m
 * sets of n columns with the rows16 kernels' arithmetic in their order (so
 * the same bits as there), transposed back and stored whole.  Spares the
 * rows16 kernels' masked loads and stores of partial rows and their second
 * read of the input. */
SC_ALWAYS_INLINE static inline void V(rowsk_group)(const SC_T *x, SC_T *y, const size_t n,
                                                   const int lg)
{
    const size_t m = VN / n;
    VEC c[16];
    for (size_t i = 0; i < 16; i++)
        c[i] = V(load)(x + i * VN);
    sc_transpose16_f32(c);
    for (size_t r = 0; r < m; r++) {
        VEC *cr = c + r * n;
        VEC mx = V(set1)((SC_T)-INFINITY);
        for (size_t e = 0; e < n; e++)
            mx = V(max)(mx, cr[e]);
        __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t e = 0; e < n; e++) {
            const VEC ev = V(exp_neg)(V(sub)(cr[e], mx));
            if (e % 2 == 0) {
                s0 = _mm512_add_pd(s0, sc_lo_pd_f32(ev));
                s1 = _mm512_add_pd(s1, sc_hi_pd_f32(ev));
            } else {
                s2 = _mm512_add_pd(s2, sc_lo_pd_f32(ev));
                s3 = _mm512_add_pd(s3, sc_hi_pd_f32(ev));
            }
            if (!lg)
                cr[e] = ev;
        }
        if (lg) {
            const VEC lc = sc_from_pd_f32(sc_logd_v(_mm512_add_pd(s0, s2)),
                                          sc_logd_v(_mm512_add_pd(s1, s3)));
            for (size_t e = 0; e < n; e++)
                cr[e] = V(final_op)(cr[e], mx, lc);
        } else {
            const VEC rc =
                sc_from_pd_f32(_mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s0, s2)),
                               _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s1, s3)));
            for (size_t e = 0; e < n; e++)
                cr[e] = V(mul)(cr[e], rc);
        }
    }
    sc_transpose16_f32(c);
    for (size_t i = 0; i < 16; i++)
        V(store)(y + i * VN, c[i]);
}

/* The rows of whole groups of rowsk_group, when the rows are contiguous
 * and n is 1, 2, 4 or 8; how many were done. */
static size_t V(rowsk)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                       size_t n, int lg)
{
    if (ldx != (ptrdiff_t)n || ldy != (ptrdiff_t)n || (n != 1 && n != 2 && n != 4 && n != 8))
        return 0;
    const size_t per = 16 * (VN / n), done = rows / per * per;
    for (size_t r0 = 0; r0 < done; r0 += per) {
        const SC_T *xg = x + r0 * n;
        SC_T *yg = y + r0 * n;
        if (n == 8)
            lg ? V(rowsk_group)(xg, yg, 8, 1) : V(rowsk_group)(xg, yg, 8, 0);
        else if (n == 4)
            lg ? V(rowsk_group)(xg, yg, 4, 1) : V(rowsk_group)(xg, yg, 4, 0);
        else if (n == 2)
            lg ? V(rowsk_group)(xg, yg, 2, 1) : V(rowsk_group)(xg, yg, 2, 0);
        else
            lg ? V(rowsk_group)(xg, yg, 1, 1) : V(rowsk_group)(xg, yg, 1, 0);
    }
    return done;
}

/* The maxima (lane = row) of a group of 16 rows of nb blocks (1-3, a
 * constant; t lanes in the last), and the lane sums of their exponentials
 * as rows16_expsum: the first blocks' max, then the last block's, kept for
 * its exponentials, then the first blocks' again. */
SC_ALWAYS_INLINE static inline void V(rows16_stats)(const SC_T *xg, ptrdiff_t ldx, size_t g,
                                                    const int nb, size_t t, VEC *pmx,
                                                    __m512d s[4])
{
    VEC c[16];
    VEC mx = V(set1)((SC_T)-INFINITY);
    s[0] = s[1] = s[2] = s[3] = _mm512_setzero_pd();
    if (nb >= 2) {
        V(rows16_cols)(xg, ldx, g, 0, VN, c);
        for (size_t j = 0; j < VN; j++)
            mx = V(max)(mx, c[j]);
    }
    if (nb == 3) {
        V(rows16_cols)(xg, ldx, g, 1, VN, c);
        for (size_t j = 0; j < VN; j++)
            mx = V(max)(mx, c[j]);
    }
    V(rows16_cols)(xg, ldx, g, (size_t)nb - 1, t, c);
    for (size_t j = 0; j < VN; j++)
        if (j < t)
            mx = V(max)(mx, c[j]);
    V(rows16_expsum)(c, t, mx, s);
    if (nb >= 2) {
        V(rows16_cols)(xg, ldx, g, 0, VN, c);
        V(rows16_expsum)(c, VN, mx, s);
    }
    if (nb == 3) {
        V(rows16_cols)(xg, ldx, g, 1, VN, c);
        V(rows16_expsum)(c, VN, mx, s);
    }
    *pmx = mx;
}

/* log_softmax (lg 1) of float32 rows of up to 40 elements, 16 rows at a
 * time, lane = row: each block of 16 rows is transposed in registers, so that
 * the maxima, the exponentials and their sums (in double, two accumulators
 * per half) are vertical operations, and the logs of the 16 sums one pair
 * of vector logs; then each row's output from its input again, with its
 * maximum and log taken from their lanes.  Per row, this takes none of the
 * horizontal max and sum of the row-at-a-time form (lss_rows), whose
 * latency bound it to about 50 cycles a row of 16 elements.  A group of
 * fewer than 16 rows is padded with rows of zeros: every lane is its own
 * row's arithmetic, so a row has the same bits in any group and alone.
 * One thread, out=, against lss_rows: 262144x16 3.3 -> 1.8-2.0 ms
 * (PyTorch 3.1), 174762x24 3.0 -> 1.8 (3.3), 131072x32 2.1 -> 1.55
 * (2.45), 524288x8 9.3 -> 5.0-5.8 (43).
 * softmax (lg 0) of rows of 17-32 elements the same way, with the sums'
 * reciprocals, then each row's exponentials again from its input (in L1),
 * scaled: an exp more per element than the row kernel, none of its
 * latency-bound per-row reductions.  One thread, out=, 4 Mi
 * elements, row kernel -> this (PyTorch 2.13): n = 17 4.0 -> 2.3 ms (7.0),
 * 24 2.7 -> 1.9, 32 1.8 -> 1.5.  (Keeping the two blocks' exponentials in
 * registers for the scaling, as sm16_group does with one, spilled: no
 * faster than the row kernel.  The lss_rows form, with the exponentials
 * again, was slower than the row kernel at 17-64 elements.) */
SC_ALWAYS_INLINE static inline VEC V(rows16_out)(VEC xv, VEC vm, VEC vc, const int lg)
{
    return lg ? V(final_op)(xv, vm, vc) : V(mul)(V(exp_neg)(V(sub)(xv, vm)), vc);
}

SC_ALWAYS_INLINE static inline void V(rows16_blocks)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                     ptrdiff_t ldy, size_t rows, size_t n,
                                                     const int nb, const size_t tc, const int lg)
{
    /* lanes in the last block: tc when not 0 (a constant: as lse_rows16) */
    const size_t t = tc ? tc : n - (size_t)(nb - 1) * VN;
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        const size_t g = rows - r0 < 16 ? rows - r0 : 16;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        SC_T *yg = y + (ptrdiff_t)r0 * ldy;
        VEC mx;
        __m512d s[4];
        V(rows16_stats)(xg, ldx, g, nb, t, &mx, s);
        const __m512d s0 = _mm512_add_pd(s[0], s[2]), s1 = _mm512_add_pd(s[1], s[3]);
        const __m512d one = _mm512_set1_pd(1.0);
        /* log(s) for log_softmax, 1 / s for softmax */
        const VEC lc = lg ? sc_from_pd_f32(sc_logd_v(s0), sc_logd_v(s1))
                          : sc_from_pd_f32(_mm512_div_pd(one, s0), _mm512_div_pd(one, s1));
        for (size_t i = 0; i < g; i++) {
            const SC_T *xr = xg + (ptrdiff_t)i * ldx;
            SC_T *yr = yg + (ptrdiff_t)i * ldy;
            const VEC vm = sc_lane_f32(mx, i), vc = sc_lane_f32(lc, i);
            if (nb >= 2)
                V(store)(yr, V(rows16_out)(V(load)(xr), vm, vc, lg));
            if (nb == 3)
                V(store)(yr + VN, V(rows16_out)(V(load)(xr + VN), vm, vc, lg));
            if (t == VN)
                V(store)(yr + (nb - 1) * VN,
                         V(rows16_out)(V(load)(xr + (nb - 1) * VN), vm, vc, lg));
            else
                V(storet)(yr + (nb - 1) * VN,
                          V(rows16_out)(V(loadt)(xr + (nb - 1) * VN, t, (SC_T)0), vm, vc, lg),
                          t);
        }
    }
}

static void V(softmax_short)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                             size_t n)
{
    if (n > VN) {
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 2, 0, 0);
        return;
    }
    const size_t done = V(rowsk)(x, ldx, y, ldy, rows, n, 0);
    x += (ptrdiff_t)done * ldx, y += (ptrdiff_t)done * ldy, rows -= done;
    if (n < VN)
        V(softmax_rows16)(x, ldx, y, ldy, rows, n, 0);
    else
        V(softmax_rows16)(x, ldx, y, ldy, rows, n, 1);
}

#endif

/* Not inlined: inlined, it slowed the long-row loop of float64 rows of
 * 24-64 elements by 1.6x (code layout). */
static void V(log_softmax_short)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                 ptrdiff_t ldy, size_t rows, size_t n)
{
#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
    const size_t done = V(rowsk)(x, ldx, y, ldy, rows, n, 1);
    x += (ptrdiff_t)done * ldx, y += (ptrdiff_t)done * ldy, rows -= done;
    if (n == VN)
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 1, VN, 1);
    else if (n < VN)
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 1, 0, 1);
    else
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 2, 0, 1);
#else
    if (n < VN)
        V(lss_rows)(x, ldx, y, ldy, rows, n, 0);
    else if (n == VN)
        V(lss_rows)(x, ldx, y, ldy, rows, n, 1);
    else if (n < 2 * VN)
        V(lss_rows)(x, ldx, y, ldy, rows, n, 2);
    else
        V(lss_rows)(x, ldx, y, ldy, rows, n, 3);
#endif
}

/* Rows of three or four vectors (float32 33-64 elements with AVX-512),
 * the same way.  One thread, out=, 4 Mi elements, the row-at-a-time form
 * (its libm log per row and loop setup) -> this, PyTorch 2.13: AVX-512
 * float32 n = 33 3.70 -> 2.49 ms (3.16), 48 2.45 -> 1.71 (2.10), 64 2.17
 * -> 1.53 (1.98); float64 n = 24 5.2 -> 3.6 (14.8).  AVX-512 float32 rows
 * of 33-40 elements then went 16 rows at a time (rows16_blocks, three
 * blocks: five transposes per 16 rows): n = 33 2.32 -> 1.82-2.01 ms, 36
 * 2.11 -> 1.87-1.98, 38 2.03 -> 1.85, 40 1.91 -> 1.81-1.94; from 42 to 48
 * that lost up to 10%, and four blocks lost 3-16% at 56-64: those stay
 * here.  Not inlined, as log_softmax_short. */
static void V(log_softmax_4v)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                              size_t n)
{
#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
    if (n <= 2 * VN + 8) {
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 3, 0, 1);
        return;
    }
#endif
    if (n <= 3 * VN)
        V(lss_rows)(x, ldx, y, ldy, rows, n, 4);
    else
        V(lss_rows)(x, ldx, y, ldy, rows, n, 5);
}

/* Rows of more than four vectors but under SC_STREAM_MIN_ROW_BYTES (float32
 * 65-255 elements with AVX-512): the row steps, the logs of SC_LOGD_N
 * rows' sums at once (sc_logd_n, lane by lane: a row's bits do not depend
 * on its group) instead of a libm log per row, each group's final passes
 * reading its rows again from L1.  One thread, out=, 4 Mi elements, before
 * -> after: float32 n = 65 2.03 -> 1.80 ms, 96 1.38 -> 1.22, 128 1.18 ->
 * 1.06, 200 1.05 -> 0.96, 255 1.10 -> 1.01; float64 n = 33 4.4 -> 4.0, 64
 * 2.78 -> 2.64, 96-127 +-3%.  With AVX2, 3-6% slower at float32 96-128:
 * AVX-512 only.  Not inlined, as log_softmax_short. */
static void V(log_softmax_grouped)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy,
                                   size_t rows, size_t n)
{
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t g = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        SC_T mxs[SC_LOGD_N];
        double ls[SC_LOGD_N];
        for (size_t j = 0; j < g; j++) {
            const SC_T *xr = x + (ptrdiff_t)(r0 + j) * ldx;
            mxs[j] = V(row_max)(xr, n);
            ls[j] = V(expsum)(xr, NULL, n, mxs[j], V(prefetch_row)(xr, ldx, r0 + j, rows, n));
        }
        for (size_t j = g; j < SC_LOGD_N; j++)
            ls[j] = 1.0;
        sc_logd_n(ls);
        for (size_t j = 0; j < g; j++)
            V(final_pass)(x + (ptrdiff_t)(r0 + j) * ldx, y + (ptrdiff_t)(r0 + j) * ldy, n, mxs[j],
                          (SC_T)ls[j], 0);
    }
}

void KFN(log_softmax_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                           size_t n)
{
    if (n == 0)
        return;
    if (VN > 1 && n <= 2 * VN) {
        V(log_softmax_short)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN > 1 && n <= 4 * VN) {
        V(log_softmax_4v)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN * sizeof(SC_T) == 64 && n * sizeof(SC_T) < SC_STREAM_MIN_ROW_BYTES) {
        V(log_softmax_grouped)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN > 1 && sc_pipe_rows(sizeof(SC_T), y, ldy, rows, n, 1)) {
        V(rows_pipe)(x, ldx, y, ldy, rows, n, 1, NULL);
        return;
    }
    const int stream = rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES &&
                       n * sizeof(SC_T) >= SC_STREAM_MIN_ROW_BYTES;
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T mx = V(row_max)(xr, n);
        double s = V(expsum)(xr, NULL, n, mx, V(prefetch_row)(xr, ldx, r, rows, n));
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        if (stream)
            V(final_pass)(xr, yr, n, mx, (SC_T)log(s), 1);
        else
            V(final_pass)(xr, yr, n, mx, (SC_T)log(s), 0);
    }
    if (stream)
        sc_sfence();
}

/* logsumexp of rows of at most four vectors: lss_rows' maxima and sums,
 * a group's logs at once, mx + log(s) in double; a row whose maximum is
 * not finite as below.  One thread, 4 Mi elements, the row-at-a-time
 * form (a libm log per row) -> this, PyTorch 2.13 beside: float64 n = 8
 * 9.1 -> 5.5 ms (26), 32 3.35 -> 2.56 (22); AVX2 float32 n = 8 8.1 ->
 * 5.9 (10.1); AVX-512 float32 n = 33 2.94 -> 2.17 (4.9), 64 1.47 -> 1.22
 * (4.6).  The kind's case resolved once per call; not inlined, as
 * log_softmax_short. */
SC_ALWAYS_INLINE static inline void V(lse_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *out,
                                                ptrdiff_t ldo, size_t rows, size_t n, int kind)
{
    const size_t t = n - (n - 1) / VN * VN; /* lanes of the last vector */
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t g = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        SC_T mxs[SC_LOGD_N];
        double ls[SC_LOGD_N];
        V(lss_group)(xg, ldx, g, n, t, kind, mxs, ls);
        for (size_t j = 0; j < g; j++) {
            const SC_T mx = mxs[j];
            out[(ptrdiff_t)(r0 + j) * ldo] =
                mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY
                    ? (SC_T)((double)mx + ls[j])
                    : V(lse_nonfinite)(xg + (ptrdiff_t)j * ldx, 1, n, mx);
        }
    }
}

#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
/* logsumexp of float32 rows of at most two vectors with AVX-512, 16 rows at
 * a time as rows16_blocks (lane = row; rows past the last are zeros,
 * not read): mx + log(s) for the 16 rows in double, two vector logs;
 * lanes whose maximum is not finite as in the row kernel.  One thread, 4
 * Mi elements, the row-at-a-time form -> this (PyTorch 2.13): n = 1 56.5
 * -> 11 ms (20), 4 18.6 -> 4.8 (12.9), 8 9.3 -> 4.1 (10.0), 16 4.5 -> 1.3
 * (8.7), 24 3.5 -> 1.6-1.8 (9.1), 32 2.5 -> 1.2-2.2 (4.8). */
SC_ALWAYS_INLINE static inline void V(lse_rows16)(const SC_T *x, ptrdiff_t ldx, SC_T *out,
                                                 ptrdiff_t ldo, size_t rows, size_t n,
                                                 const int nb, const size_t tc)
{
    /* lanes in the last block: tc when not 0 (a constant, whose loops
     * unroll: with a run-time count the column loop stayed a loop, and
     * rows of 16 took longer than rows of 20) */
    const size_t t = tc ? tc : n - (size_t)(nb - 1) * VN;
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        const size_t g = rows - r0 < 16 ? rows - r0 : 16;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        VEC mx;
        __m512d s[4];
        V(rows16_stats)(xg, ldx, g, nb, t, &mx, s);
        const VEC res = sc_from_pd_f32(
            _mm512_add_pd(sc_lo_pd_f32(mx), sc_logd_v(_mm512_add_pd(s[0], s[2]))),
            _mm512_add_pd(sc_hi_pd_f32(mx), sc_logd_v(_mm512_add_pd(s[1], s[3]))));
        const __mmask16 fin = _mm512_cmp_ps_mask(mx, V(set1)((SC_T)-INFINITY), _CMP_GT_OQ) &
                              _mm512_cmp_ps_mask(mx, V(set1)((SC_T)INFINITY), _CMP_LT_OQ);
        if (ldo == 1 && g == 16 && fin == 0xffff) {
            _mm512_storeu_ps(out + r0, res);
            continue;
        }
        SC_T mxs[16], rs[16];
        V(store)(mxs, mx);
        V(store)(rs, res);
        for (size_t i = 0; i < g; i++)
            out[(ptrdiff_t)(r0 + i) * ldo] =
                (fin >> i) & 1 ? rs[i] : V(lse_nonfinite)(xg + (ptrdiff_t)i * ldx, 1, n, mxs[i]);
    }
}
#endif

static void V(logsumexp_short)(const SC_T *x, ptrdiff_t ldx, SC_T *out, ptrdiff_t ldo,
                               size_t rows, size_t n)
{
#if !SC_IS_F64 && defined(SC_HAVE_ROWS16)
    if (n <= 2 * VN) {
        const int nb = n <= VN ? 1 : 2;
        const size_t t = n - (size_t)(nb - 1) * VN;
        if (nb == 1 && t == 16)
            V(lse_rows16)(x, ldx, out, ldo, rows, n, 1, 16);
        else if (nb == 1 && t == 8)
            V(lse_rows16)(x, ldx, out, ldo, rows, n, 1, 8);
        else if (nb == 1 && t == 4)
            V(lse_rows16)(x, ldx, out, ldo, rows, n, 1, 4);
        else if (nb == 1)
            V(lse_rows16)(x, ldx, out, ldo, rows, n, 1, 0);
        else
            V(lse_rows16)(x, ldx, out, ldo, rows, n, 2, 0);
        return;
    }
#endif
    if (n < VN)
        V(lse_rows)(x, ldx, out, ldo, rows, n, 0);
    else if (n == VN)
        V(lse_rows)(x, ldx, out, ldo, rows, n, 1);
    else if (n < 2 * VN)
        V(lse_rows)(x, ldx, out, ldo, rows, n, 2);
    else if (n == 2 * VN)
        V(lse_rows)(x, ldx, out, ldo, rows, n, 3);
    else if (n <= 3 * VN)
        V(lse_rows)(x, ldx, out, ldo, rows, n, 4);
    else
        V(lse_rows)(x, ldx, out, ldo, rows, n, 5);
}

void KFN(logsumexp_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *out, ptrdiff_t ldo, size_t rows,
                         size_t n)
{
    if (VN > 1 && n >= 1 && n <= 4 * VN) {
        V(logsumexp_short)(x, ldx, out, ldo, rows, n);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T mx = V(row_max)(xr, n), res;
        if (n == 0)
            res = (SC_T)-INFINITY;
        else if (!(mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY))
            res = V(lse_nonfinite)(xr, 1, n, mx);
        else
            res = (SC_T)((double)mx + log(V(expsum)(xr, NULL, n, mx,
                                                     V(prefetch_row)(xr, ldx, r, rows, n))));
        out[(ptrdiff_t)r * ldo] = res;
    }
}

/* ---- pieces of one row, for splitting it across threads -----------------
 * Cut at multiples of SC_CHUNK, a row's pieces give the chunk sums the row
 * kernels form (expsum), and sc_piece_total adds them in the same order: a
 * row computed in pieces has bitwise the one-thread results. */
SC_T KFN(piece_max)(const SC_T *x, size_t n) { return V(row_max)(x, n); }

size_t KFN(piece_chunk)(void) { return SC_CHUNK; }

void KFN(piece_expsum)(const SC_T *x, SC_T *y, size_t n, SC_T mx, double *sums)
{
    const VEC vm = V(set1)(mx);
    for (size_t i = 0, k = 0; i < n; i += SC_CHUNK, k++) {
        size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
        sums[k] = V(hsum)(V(expsum_chunk)(x + i, y ? y + i : NULL, len, vm));
    }
}

void KFN(piece_scale)(SC_T *y, size_t n, SC_T a) { V(scale)(y, n, a); }

void KFN(piece_log_softmax)(const SC_T *x, SC_T *y, size_t n, SC_T mx, SC_T c)
{
    V(final_pass)(x, y, n, mx, c, 0);
}

/* ---- panel (cols) kernels -------------------------------------------------
 * A panel is n rows (the reduction axis, stride ldx) by m contiguous
 * columns; every column is normalized on its own.  This is the layout of a
 * non-last axis of a C-contiguous array: the reduction runs over the
 * strided axis while the vectors run along the contiguous inner axis, with
 * no transposed copy.  One vector of columns (k <= VN lanes) per sweep. */

SC_ALWAYS_INLINE static inline VEC V(ldk)(const SC_T *p, size_t k, SC_T fill)
{
    return k == VN ? V(load)(p) : V(loadt)(p, k, fill);
}

SC_ALWAYS_INLINE static inline void V(stk)(SC_T *p, VEC v, size_t k)
{
    if (k == VN)
        V(store)(p, v);
    else
        V(storet)(p, v, k);
}

/* hi + lo += a, lane by lane, error-free (two-sum). */
SC_ALWAYS_INLINE static inline void V(two_sum)(VEC *hi, VEC *lo, VEC a)
{
    VEC t = V(add)(*hi, a);
    VEC bp = V(sub)(t, *hi);
    *lo = V(add)(*lo, V(add)(V(sub)(*hi, V(sub)(t, bp)), V(sub)(a, bp)));
    *hi = t;
}

/* Per-lane max and compensated sum of exp(x - max) over the n rows of a
 * column vector; the terms are stored to y unless y is NULL. */
SC_ALWAYS_INLINE static inline void V(col_stats)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                 ptrdiff_t ldy, size_t n, size_t k, VEC *mx_out,
                                                 VEC *sum_out)
{
    VEC mx = V(set1)((SC_T)-INFINITY);
    for (size_t i = 0; i < n; i++)
        mx = V(max)(mx, V(ldk)(x + (ptrdiff_t)i * ldx, k, (SC_T)-INFINITY));
    VEC hi = V(set1)((SC_T)0), lo = hi;
    for (size_t i0 = 0; i0 < n; i0 += 8) {
        size_t i1 = n - i0 < 8 ? n : i0 + 8;
        VEC a = V(set1)((SC_T)0);
        for (size_t i = i0; i < i1; i++) {
            VEC e = V(exp_neg)(V(sub)(V(ldk)(x + (ptrdiff_t)i * ldx, k, (SC_T)-INFINITY), mx));
            if (y)
                V(stk)(y + (ptrdiff_t)i * ldy, e, k);
            a = V(add)(a, e);
        }
        V(two_sum)(&hi, &lo, a);
    }
    *mx_out = mx;
    *sum_out = V(add)(hi, lo);
}

/* softmax (log_softmax when `log`) of a block of nv column vectors (the
 * last of kl lanes), every row taken whole in each of the three sweeps:
 * max; exp (stored for softmax) summed per lane as col_stats does; scale,
 * or x - max - log(s).  With nv a constant (1-4 below) the accumulators
 * stay in registers.  Per lane the arithmetic is col_stats', in the same
 * order, so the same bits as sweeping the rows once per vector, which took
 * 740 us on 64x1000x32 float32 along axis 1 (one thread) against 446 us
 * for the same data laid out as rows; this takes 477 us. */
#define SC_FWD_COLS_MAX 64

/* The panel step shared by the forward and cross-entropy panels: per lane
 * hi + lo = sum over the n rows of exp(x - mx), in 8-row chunks added with
 * two-sum; the terms stored to y unless y is NULL.  pfn, if not NULL, is a
 * panel of the same layout prefetched row by row alongside. */
SC_ALWAYS_INLINE static inline void V(cols_expsum)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                   ptrdiff_t ldy, size_t n, size_t nv, size_t kl,
                                                   const VEC *mx, VEC *hi, VEC *lo,
                                                   const SC_T *pfn)
{
    VEC acc[SC_FWD_COLS_MAX / VN];
    for (size_t v = 0; v < nv; v++)
        hi[v] = lo[v] = V(set1)((SC_T)0);
    for (size_t i0 = 0; i0 < n; i0 += 8) {
        size_t i1 = n - i0 < 8 ? n : i0 + 8;
        for (size_t v = 0; v < nv; v++)
            acc[v] = V(set1)((SC_T)0);
        for (size_t i = i0; i < i1; i++) {
            const SC_T *xi = x + (ptrdiff_t)i * ldx;
            if (pfn)
                for (size_t v = 0; v < nv; v++)
                    SC_PREFETCH(pfn + (ptrdiff_t)i * ldx + v * VN);
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                VEC e = V(exp_neg)(V(sub)(V(ldk)(xi + v * VN, k, (SC_T)-INFINITY), mx[v]));
                if (y)
                    V(stk)(y + (ptrdiff_t)i * ldy + v * VN, e, k);
                acc[v] = V(add)(acc[v], e);
            }
        }
        for (size_t v = 0; v < nv; v++)
            V(two_sum)(&hi[v], &lo[v], acc[v]);
    }
}

SC_ALWAYS_INLINE static inline void V(fwd_cols_nv)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                   ptrdiff_t ldy, size_t n, size_t nv, size_t kl,
                                                   int log_form)
{
    enum { NV = SC_FWD_COLS_MAX / VN };
    VEC mx[NV], hi[NV], lo[NV], acc[NV];
    for (size_t v = 0; v < nv; v++)
        mx[v] = V(set1)((SC_T)-INFINITY);
    for (size_t i = 0; i < n; i++) {
        const SC_T *xi = x + (ptrdiff_t)i * ldx;
        for (size_t v = 0; v < nv; v++)
            mx[v] = V(max)(mx[v], V(ldk)(xi + v * VN, v + 1 < nv ? VN : kl, (SC_T)-INFINITY));
    }
    /* log_softmax: where the panel's rows are whole rows (see below), the
     * exp sweep, which reads x from cache, prefetches the next panel (in
     * its last sweep, as softmax's, it cost float64 up to 7%): on
     * an Intel Xeon, 64x1000x32 along axis 1, alternated, one thread:
     * float32 968-985 -> 815-831 us, float64 2208-2259 -> 1791-1883 us; two
     * threads 0.84x. */
    const int next_x = log_form && ldx == (ptrdiff_t)((nv - 1) * VN + kl);
    V(cols_expsum)(x, ldx, log_form ? NULL : y, ldy, n, nv, kl, mx, hi, lo,
                   next_x ? x + (ptrdiff_t)n * ldx : NULL);
    if (log_form) {
        SC_T buf[SC_FWD_COLS_MAX];
        for (size_t v = 0; v < nv; v++)
            V(store)(buf + v * VN, V(add)(hi[v], lo[v]));
        for (size_t l = 0; l < nv * VN; l++)
            buf[l] = (SC_T)log((double)buf[l]);
        for (size_t v = 0; v < nv; v++)
            acc[v] = V(load)(buf + v * VN);
        for (size_t i = 0; i < n; i++) {
            const SC_T *xi = x + (ptrdiff_t)i * ldx;
            SC_T *yi = y + (ptrdiff_t)i * ldy;
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                V(stk)(yi + v * VN, V(sub)(V(sub)(V(ldk)(xi + v * VN, k, (SC_T)0), mx[v]), acc[v]),
                       k);
            }
        }
    } else {
        /* Where the panel's rows are whole rows (ldx = the block's width, a
         * C-contiguous (N, C, d) along C), the next panel follows: the
         * scaling sweep, which reads y from cache, prefetches it (on an
         * Intel Xeon, 64x1000x32 one thread, four runs each: float32
         * 756-807 -> 732-761 us, float64 1716-1754 -> 1561-1702 us).
         * log_softmax's last sweep reads x: there the prefetch cost
         * float64 up to 7%. */
        const int next = ldx == (ptrdiff_t)((nv - 1) * VN + kl);
        const SC_T *xn = x + (ptrdiff_t)n * ldx;
        for (size_t v = 0; v < nv; v++)
            acc[v] = V(div)(V(set1)((SC_T)1), V(add)(hi[v], lo[v]));
        for (size_t i = 0; i < n; i++) {
            SC_T *yi = y + (ptrdiff_t)i * ldy;
            if (next)
                for (size_t v = 0; v < nv; v++)
                    SC_PREFETCH(xn + (ptrdiff_t)i * ldx + v * VN);
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                V(stk)(yi + v * VN, V(mul)(V(ldk)(yi + v * VN, k, (SC_T)0), acc[v]), k);
            }
        }
    }
}

SC_ALWAYS_INLINE static inline void V(fwd_cols)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                ptrdiff_t ldy, size_t n, size_t m, int log_form)
{
    for (size_t j = 0; j < m; j += SC_FWD_COLS_MAX) {
        const size_t w = m - j < SC_FWD_COLS_MAX ? m - j : SC_FWD_COLS_MAX;
        const size_t nv = (w + VN - 1) / VN, kl = w - (nv - 1) * VN;
        switch (nv) {
        case 1: V(fwd_cols_nv)(x + j, ldx, y + j, ldy, n, 1, kl, log_form); break;
        case 2: V(fwd_cols_nv)(x + j, ldx, y + j, ldy, n, 2, kl, log_form); break;
        case 3: V(fwd_cols_nv)(x + j, ldx, y + j, ldy, n, 3, kl, log_form); break;
        case 4: V(fwd_cols_nv)(x + j, ldx, y + j, ldy, n, 4, kl, log_form); break;
        default: V(fwd_cols_nv)(x + j, ldx, y + j, ldy, n, nv, kl, log_form); break;
        }
    }
}

void KFN(softmax_cols)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t n, size_t m)
{
    V(fwd_cols)(x, ldx, y, ldy, n, m, 0);
}

void KFN(log_softmax_cols)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t n,
                           size_t m)
{
    V(fwd_cols)(x, ldx, y, ldy, n, m, 1);
}

void KFN(logsumexp_cols)(const SC_T *x, ptrdiff_t ldx, SC_T *out, ptrdiff_t ldo, size_t n,
                         size_t m)
{
    SC_T bm[VN], bs[VN];
    for (size_t j = 0; j < m; j += VN) {
        size_t k = m - j < VN ? m - j : VN;
        VEC mx, s;
        V(col_stats)(x + j, ldx, NULL, 0, n, k, &mx, &s);
        V(store)(bm, mx);
        V(store)(bs, s);
        for (size_t l = 0; l < k; l++) {
            SC_T res;
            if (n == 0)
                res = (SC_T)-INFINITY;
            else if (!(bm[l] > (SC_T)-INFINITY && bm[l] < (SC_T)INFINITY))
                res = V(lse_nonfinite)(x + j + l, ldx, n, bm[l]);
            else
                res = (SC_T)((double)bm[l] + log((double)bs[l]));
            out[(ptrdiff_t)(j + l) * ldo] = res;
        }
    }
}

/* ---- backward kernels ------------------------------------------------------
 * Each reads its operands at most twice and writes once: a compensated
 * reduction over the row (as the forward sum: chunked lane sums, each
 * chunk reduced in double into a two-sum total), then one fused
 * element-wise pass.
 *   softmax_jvp       d = sum(y v)          out = y (v - d)
 *   log_softmax_jvp   d = sum(exp(lp) v)    out = v - d
 *   log_softmax_vjp   d = sum(g)            out = g - exp(lp) d
 * (a, b) below are (y, v), (lp, v) and (lp, g). */
/* (SC_SOFTMAX_JVP, SC_LOG_SOFTMAX_JVP, SC_LOG_SOFTMAX_VJP: softmax_c.h) */

/* The term summed by `op`; lanes past the end are loaded as a = -inf
 * (exp -> 0) for the exp form and a = b = 0 otherwise, so they add 0. */
SC_ALWAYS_INLINE static inline VEC V(bwd_term)(VEC a, VEC b, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(mul)(a, b);
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(mul)(V(exp_sat)(a), b);
    return b;
}

SC_ALWAYS_INLINE static inline VEC V(bwd_out)(VEC a, VEC b, VEC d, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(mul)(a, V(sub)(b, d));
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(sub)(b, d);
    return V(sub)(b, V(mul)(V(exp_sat)(a), d));
}

SC_ALWAYS_INLINE static inline SC_T V(bwd_fill)(int op)
{
    return op == SC_LOG_SOFTMAX_JVP ? (SC_T)-INFINITY : (SC_T)0;
}

/* s + the term of `op` at (a, b): one FMA for the products. */
SC_ALWAYS_INLINE static inline VEC V(bwd_acc)(VEC s, VEC a, VEC b, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(fma)(a, b, s);
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(fma)(V(exp_sat)(a), b, s);
    return V(add)(s, b);
}

/* The lane sums of one chunk of at most SC_BWD_CHUNK elements: eight
 * accumulators, so that each lane still adds at most 8 terms (as the
 * forward's 4 accumulators over SC_CHUNK), over chunks twice as long: the
 * chunk's horizontal sum and two-sum step cost 20% of a 32000-element
 * float32 row at SC_CHUNK. */
#define SC_BWD_CHUNK (2 * SC_CHUNK)
/* bwd_chunk over operands that sit k elements past a line boundary reads
 * a from line-aligned loads, and b at the same logical places (from
 * line-aligned loads too when b sits at the same k; one stream of loads
 * that straddle lines instead of two when both sit off a line by different
 * amounts: one row of 32000 float64 in L2 at 16, 48 and 0 bytes past a
 * line, reduction 4.3 -> 3.5 us).  Aligned vector J (at a - k + J*VN)
 * holds the first VN - k lanes of logical vector J in its lanes >= k
 * and the last k lanes of logical vector J - 1 in its lanes < k, each lane
 * k places along.  Summed whole into t[J % 8] (the chunk's first and last
 * aligned vectors masked to the chunk), the upper lanes of t[u] are the
 * logical accumulator s[u] and its lower lanes are s[u - 1], every lane
 * with the same terms in the same order as the plain loads give: blending
 * and rotating back by k lanes afterwards gives the same bits.  Loads that
 * straddle two lines took 1.4x the time streaming from memory (the
 * reduction of softmax_vjp 4096x1024 float32 at NumPy's 16-byte offset:
 * 0.57-0.61 ms, 0.43-0.45 this way, 0.39-0.42 line-aligned; one thread). */
#define SC_BWD_AL(t, u)                                                        \
    t = V(bwd_acc)(t, V(load)(pa + i + (u) * VN), V(load)(pb + i + (u) * VN), op)
SC_ALWAYS_INLINE static inline VEC V(bwd_chunk)(const SC_T *a, const SC_T *b, size_t n, int op)
{
    VEC s0 = V(set1)((SC_T)0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    size_t i = 0;
    const size_t k = ((size_t)a / sizeof(SC_T)) % VN, kb = ((size_t)b / sizeof(SC_T)) % VN;
    if (VN > 1 && k && kb && 8 * VN <= n && (size_t)a % sizeof(SC_T) == 0 &&
        (size_t)b % sizeof(SC_T) == 0) {
        /* a's line start, and b as far before b (as integers, not pointer
         * arithmetic) */
        const SC_T *pa = (const SC_T *)((size_t)a - k * sizeof(SC_T));
        const SC_T *pb = (const SC_T *)((size_t)b - k * sizeof(SC_T));
        /* aligned vector 0: the lanes before a are 0, not read (adding 0
         * changes no accumulator: none is ever -0) */
        s0 = V(bwd_acc)(s0, V(loadt_from)(pa, k), V(loadt_from)(pb, k), op);
        for (; i + 8 * VN <= n; i += 8 * VN) {
            SC_BWD_AL(s1, 1);
            SC_BWD_AL(s2, 2);
            SC_BWD_AL(s3, 3);
            SC_BWD_AL(s4, 4);
            SC_BWD_AL(s5, 5);
            SC_BWD_AL(s6, 6);
            SC_BWD_AL(s7, 7);
            if (i + 16 * VN <= n)
                SC_BWD_AL(s0, 8);
            else /* the block's last: its lanes past the blocks are 0, not read */
                s0 = V(bwd_acc)(s0, V(loadt)(pa + i + 8 * VN, k, V(bwd_fill)(op)),
                                V(loadt)(pb + i + 8 * VN, k, (SC_T)0), op);
        }
        const VEC t0 = s0, t1 = s1, t2 = s2, t3 = s3, t4 = s4, t5 = s5, t6 = s6, t7 = s7;
        s0 = V(rotate)(V(blend_lanes)(t1, t0, k), k);
        s1 = V(rotate)(V(blend_lanes)(t2, t1, k), k);
        s2 = V(rotate)(V(blend_lanes)(t3, t2, k), k);
        s3 = V(rotate)(V(blend_lanes)(t4, t3, k), k);
        s4 = V(rotate)(V(blend_lanes)(t5, t4, k), k);
        s5 = V(rotate)(V(blend_lanes)(t6, t5, k), k);
        s6 = V(rotate)(V(blend_lanes)(t7, t6, k), k);
        s7 = V(rotate)(V(blend_lanes)(t0, t7, k), k);
    }
    for (; i + 8 * VN <= n; i += 8 * VN) {
        s0 = V(bwd_acc)(s0, V(load)(a + i), V(load)(b + i), op);
        s1 = V(bwd_acc)(s1, V(load)(a + i + VN), V(load)(b + i + VN), op);
        s2 = V(bwd_acc)(s2, V(load)(a + i + 2 * VN), V(load)(b + i + 2 * VN), op);
        s3 = V(bwd_acc)(s3, V(load)(a + i + 3 * VN), V(load)(b + i + 3 * VN), op);
        s4 = V(bwd_acc)(s4, V(load)(a + i + 4 * VN), V(load)(b + i + 4 * VN), op);
        s5 = V(bwd_acc)(s5, V(load)(a + i + 5 * VN), V(load)(b + i + 5 * VN), op);
        s6 = V(bwd_acc)(s6, V(load)(a + i + 6 * VN), V(load)(b + i + 6 * VN), op);
        s7 = V(bwd_acc)(s7, V(load)(a + i + 7 * VN), V(load)(b + i + 7 * VN), op);
    }
    for (; i + VN <= n; i += VN)
        s0 = V(bwd_acc)(s0, V(load)(a + i), V(load)(b + i), op);
    if (i < n)
        s1 = V(bwd_acc)(s1, V(loadt)(a + i, n - i, V(bwd_fill)(op)), V(loadt)(b + i, n - i, (SC_T)0),
                        op);
    return V(add)(V(add)(V(add)(s0, s1), V(add)(s2, s3)), V(add)(V(add)(s4, s5), V(add)(s6, s7)));
}
#undef SC_BWD_AL

/* The fused element-wise pass with the row's reduction d, element by
 * element, so that it may write over b (out = g).  Last to first on long
 * rows (SC_REVERSE_MIN_BYTES).  (pa, pb), when not NULL, are the next
 * row's operands, prefetched while streaming this row's output.  Stores
 * are vector-aligned (a partial head first), streamed or not: a store
 * that straddles two lines costs more than a load that does (one row of
 * 32000 float64 in L2, operands and output 16 bytes past a line, one
 * thread: 9.9 -> 8.6 us, the time with all three on line boundaries;
 * rows of 1000 float32 1.1-1.2x faster). */
/* The last partial vector of a streamed output row, kept to be written
 * with the next row's head as one whole line (rows that follow each other). */
typedef struct {
    VEC v; /* lanes [0, k) */
    size_t k;
} V(carry_t);

SC_ALWAYS_INLINE static inline void V(bwd_apply)(const SC_T *a, const SC_T *b, SC_T *out, size_t n,
                                                 SC_T dd, int op, int stream,
                                                 const SC_T *pa, const SC_T *pb, V(carry_t) *cy,
                                                 int last)
{
    const VEC d = V(set1)(dd);
    const int rev = n * sizeof(SC_T) >= SC_REVERSE_MIN_BYTES;
    /* [lo, hi) whole vectors, with a partial head [0, lo) (aligned
     * stores) and a partial tail [hi, n) */
    size_t lo = 0, hi;
    if (VN > 1 && (size_t)out % sizeof(SC_T) == 0) {
        size_t mis = ((size_t)out / sizeof(SC_T)) % VN;
        lo = mis ? VN - mis : 0;
        if (lo >= n)
            lo = 0, stream = 0;
    } else {
        stream = 0;
    }
    hi = lo + (n - lo) / VN * VN;
    if (lo) {
        VEC h = V(bwd_out)(V(loadt)(a, lo, (SC_T)0), V(loadt)(b, lo, (SC_T)0), d, op);
        if (cy && cy->k + lo == VN) {
            /* joined in registers: a line built on the stack and read
             * back whole waits for the stores before it (4096x1024 float32,
             * all at NumPy's 16-byte offset: 1.28-1.32 -> 1.23-1.24 ms) */
            V(stream)(out - cy->k, V(join)(cy->v, h, cy->k));
            cy->k = 0;
        } else {
            V(storet)(out, h, lo);
        }
    }
    if (cy && cy->k) { /* not reached while the rows stream */
        V(storet)(out - cy->k, cy->v, cy->k);
        cy->k = 0;
    }
    if (hi < n) {
        VEC t = V(bwd_out)(V(loadt)(a + hi, n - hi, (SC_T)0), V(loadt)(b + hi, n - hi, (SC_T)0), d, op);
        if (cy && !last) {
            cy->v = t;
            cy->k = n - hi;
        } else {
            V(storet)(out + hi, t, n - hi);
        }
    }
#define SC_BWD_AT(STORE, i) STORE(out + (i), V(bwd_out)(V(load)(a + (i)), V(load)(b + (i)), d, op))
    if (stream && rev) {
        for (size_t i = hi; i > lo; i -= VN)
            SC_BWD_AT(V(stream), i - VN);
    } else if (stream && pa) {
        for (size_t i = lo; i < hi; i += VN) {
            if ((i * sizeof(SC_T)) % SC_LINE < VN * sizeof(SC_T)) {
                SC_PREFETCH(pa + i);
                SC_PREFETCH(pb + i);
            }
            SC_BWD_AT(V(stream), i);
        }
    } else if (stream) {
        for (size_t i = lo; i < hi; i += VN)
            SC_BWD_AT(V(stream), i);
    } else if (rev) {
        for (size_t i = hi; i > lo; i -= VN)
            SC_BWD_AT(V(store), i - VN);
    } else {
        size_t i = lo;
        for (; i + 2 * VN <= hi; i += 2 * VN) {
            SC_BWD_AT(V(store), i);
            SC_BWD_AT(V(store), i + VN);
        }
        if (i < hi)
            SC_BWD_AT(V(store), i);
    }
#undef SC_BWD_AT
}

SC_ALWAYS_INLINE static inline void V(bwd_row)(const SC_T *a, const SC_T *b, SC_T *out, size_t n,
                                               int op, int stream, const SC_T *pa, const SC_T *pb,
                                               V(carry_t) *cy, int last)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i += SC_BWD_CHUNK) {
        size_t len = n - i < SC_BWD_CHUNK ? n - i : SC_BWD_CHUNK;
        sc_two_sum_add(&s, &c, V(hsum)(V(bwd_chunk)(a + i, b + i, len, op)));
    }
    /* c is NaN (inf - inf) once s overflows or holds an infinity */
    V(bwd_apply)(a, b, out, n, (SC_T)(isfinite(s) ? s + c : s), op, stream, pa, pb, cy, last);
}

/* Rows of at most two vectors: bwd_row's arithmetic without its per-row
 * setup (chunks, eight accumulators, the compensated total, the store
 * plan).  Same bits: below 8 VN elements bwd_chunk sums the whole vectors
 * into s0 in turn and the partial one into s1, the other accumulators stay
 * 0 (adding 0 changes none: none is ever -0), and the total of one chunk
 * is its own sum.  Plain stores: a row is at most two lines.
 * softmax_vjp 262144x16 float32, one thread: 3.0 -> 0.95 ms; 131072x32
 * 1.8 -> 0.9 ms (PyTorch 1.0-1.3 ms on both). */
SC_ALWAYS_INLINE static inline void V(bwd_short_rows)(const SC_T *a, ptrdiff_t lda, const SC_T *b,
                                                      ptrdiff_t ldb, SC_T *out, ptrdiff_t ldo,
                                                      size_t rows, size_t n, int op)
{
    const VEC z = V(set1)((SC_T)0);
    if (n < VN) {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x = V(loadt)(a, n, V(bwd_fill)(op)), y = V(loadt)(b, n, (SC_T)0);
            VEC d = V(set1)((SC_T)V(hsum)(V(bwd_acc)(z, x, y, op)));
            V(storet)(out, V(bwd_out)(x, y, d, op), n);
        }
    } else if (n == VN) {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x = V(load)(a), y = V(load)(b);
            VEC d = V(set1)((SC_T)V(hsum)(V(bwd_acc)(z, x, y, op)));
            V(store)(out, V(bwd_out)(x, y, d, op));
        }
    } else if (n < 2 * VN) {
        const size_t t = n - VN;
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x0 = V(load)(a), y0 = V(load)(b);
            VEC x1 = V(loadt)(a + VN, t, V(bwd_fill)(op)), y1 = V(loadt)(b + VN, t, (SC_T)0);
            VEC d = V(set1)((SC_T)V(hsum)(V(add)(V(bwd_acc)(z, x0, y0, op), V(bwd_acc)(z, x1, y1, op))));
            V(store)(out, V(bwd_out)(x0, y0, d, op));
            V(storet)(out + VN, V(bwd_out)(x1, y1, d, op), t);
        }
    } else {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x0 = V(load)(a), y0 = V(load)(b), x1 = V(load)(a + VN), y1 = V(load)(b + VN);
            VEC d = V(set1)((SC_T)V(hsum)(V(bwd_acc)(V(bwd_acc)(z, x0, y0, op), x1, y1, op)));
            V(store)(out, V(bwd_out)(x0, y0, d, op));
            V(store)(out + VN, V(bwd_out)(x1, y1, d, op));
        }
    }
}

SC_ALWAYS_INLINE static inline void V(bwd_rows)(const SC_T *a, ptrdiff_t lda, const SC_T *b,
                                                ptrdiff_t ldb, SC_T *out, ptrdiff_t ldo,
                                                size_t rows, size_t n, int op)
{
    if (VN > 1 && n <= 2 * VN) {
        V(bwd_short_rows)(a, lda, b, ldb, out, ldo, rows, n, op);
        return;
    }
    if (rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES) {
        const int pf = n * sizeof(SC_T) >= SC_BWD_PREFETCH_MIN_BYTES &&
                       n * sizeof(SC_T) <= SC_PREFETCH_MAX_BYTES;
        /* output rows that follow each other share lines: each is written
         * whole (32768x128 float32 into a 16-byte-offset buffer, one thread:
         * 1.0 -> 0.75 ms, the time into a line-aligned one).  Except rows of
         * exactly 4 KiB whose operands sit at the output's offset in a line
         * (NumPy arrays alike): there the joined line slowed them to 1.3-1.4x
         * the plain stores' time (4096x1024 float32, 2048x512 float64), while
         * it helps the same rows when only the output is off the line
         * (0.75x), and rows of 2, 8, 12 or 20 KiB either way. */
        const int rows_4k = n * sizeof(SC_T) == 4096 && lda == ldo && ldb == ldo &&
                            ((size_t)a - (size_t)out) % SC_LINE == 0 &&
                            ((size_t)b - (size_t)out) % SC_LINE == 0;
        const int join = ldo == (ptrdiff_t)n && !rows_4k;
        V(carry_t) cy;
        cy.k = 0;
        for (size_t r = 0; r < rows; r++)
            V(bwd_row)(a + (ptrdiff_t)r * lda, b + (ptrdiff_t)r * ldb, out + (ptrdiff_t)r * ldo, n, op, 1,
                       pf && r + 1 < rows ? a + (ptrdiff_t)(r + 1) * lda : NULL,
                       pf && r + 1 < rows ? b + (ptrdiff_t)(r + 1) * ldb : NULL,
                       join ? &cy : NULL, r + 1 == rows);
        sc_sfence();
    } else {
        for (size_t r = 0; r < rows; r++)
            V(bwd_row)(a + (ptrdiff_t)r * lda, b + (ptrdiff_t)r * ldb, out + (ptrdiff_t)r * ldo, n, op, 0,
                       NULL, NULL, NULL, 1);
    }
}

/* Column panels (m <= SC_COLS_MAX columns): the reduction per lane over n
 * rows, 8-row chunks into a two-sum accumulator per column vector, then the
 * element-wise pass.  Every row is taken whole (all its column vectors) before
 * the next, so each cache line is read once per pass: sweeping the rows once
 * per column vector cost 4x the time at 32 columns and 6x at 64. */
#define SC_COLS_MAX 64

/* One block of nv column vectors (the last of kl lanes).  Inlined with a
 * constant nv (1-4 below), the loops over v unroll and the accumulators
 * stay in registers (with a run-time nv they went through the stack); two
 * accumulators per vector (even and odd rows) halve the add chain.
 * softmax_vjp 64x1000x32 float32 along axis 1, one thread: 2.2x -> 1.9x
 * the time of np.add on the same arrays.  The reduction pass also
 * prefetches the output's lines for writing, so that the write pass does
 * not wait for them: 1.9x -> 1.45x, 2 threads 0.4 -> 0.2 ms.  Where the
 * panel's rows are whole rows of a C-contiguous array (lda = ldb = m, a
 * panel of (N, C, d) along C), the next panel follows it in memory: the
 * write pass prefetches it row by row, so that the next reduction reads
 * it from cache (on an Intel Xeon, where the panels come from memory:
 * 64x1000x32 float32 one thread 1085 -> 870 us, 1.29x -> 1.04x np.add,
 * two threads 556 -> 450 us; float64 2170 -> 1820 us; on Zen 4, where
 * they sat in L3, an earlier measurement found no gain).  (Measured slower: streaming
 * stores for the write pass when the call's whole output passes 4 MiB, by
 * a flat sweep over contiguous panels, at one and two threads in float32;
 * and a panel alone cannot know the call's size.) */
SC_ALWAYS_INLINE static inline void V(bwd_cols_nv)(const SC_T *a, ptrdiff_t lda, const SC_T *b,
                                                   ptrdiff_t ldb, SC_T *out, ptrdiff_t ldo,
                                                   size_t n, size_t nv, size_t kl, int op)
{
    enum { NV = SC_COLS_MAX / VN };
    VEC hi[NV], lo[NV], acc[NV], acc2[NV];
    for (size_t v = 0; v < nv; v++)
        hi[v] = lo[v] = V(set1)((SC_T)0);
    for (size_t i0 = 0; i0 < n; i0 += 8) {
        size_t i1 = n - i0 < 8 ? n : i0 + 8, i = i0;
        for (size_t v = 0; v < nv; v++)
            acc[v] = acc2[v] = V(set1)((SC_T)0);
        for (; i + 2 <= i1; i += 2) {
            const SC_T *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
            for (size_t v = 0; v < nv; v++) {
                SC_PREFETCH_W(out + (ptrdiff_t)i * ldo + v * VN);
                SC_PREFETCH_W(out + (ptrdiff_t)(i + 1) * ldo + v * VN);
            }
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                acc[v] = V(add)(acc[v], V(bwd_term)(V(ldk)(ai + v * VN, k, V(bwd_fill)(op)),
                                                    V(ldk)(bi + v * VN, k, (SC_T)0), op));
                acc2[v] = V(add)(acc2[v], V(bwd_term)(V(ldk)(ai + lda + v * VN, k, V(bwd_fill)(op)),
                                                      V(ldk)(bi + ldb + v * VN, k, (SC_T)0), op));
            }
        }
        if (i < i1) {
            const SC_T *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                acc[v] = V(add)(acc[v], V(bwd_term)(V(ldk)(ai + v * VN, k, V(bwd_fill)(op)),
                                                    V(ldk)(bi + v * VN, k, (SC_T)0), op));
            }
        }
        for (size_t v = 0; v < nv; v++)
            V(two_sum)(&hi[v], &lo[v], V(add)(acc[v], acc2[v]));
    }
    for (size_t v = 0; v < nv; v++)
        /* d of each column vector; lo is NaN once hi is not finite */
        acc[v] = V(select_lt)(V(sub)(hi[v], hi[v]), V(set1)((SC_T)1), V(add)(hi[v], lo[v]), hi[v]);
    const ptrdiff_t m = (ptrdiff_t)((nv - 1) * VN + kl);
    const int next = lda == m && ldb == m; /* the next panel follows this one */
    for (size_t i = 0; i < n; i++) {
        const SC_T *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
        SC_T *oi = out + (ptrdiff_t)i * ldo;
        if (next) {
            for (size_t v = 0; v < nv; v++) {
                SC_PREFETCH(ai + (ptrdiff_t)n * lda + v * VN);
                SC_PREFETCH(bi + (ptrdiff_t)n * ldb + v * VN);
            }
        }
        for (size_t v = 0; v < nv; v++) {
            size_t k = v + 1 < nv ? VN : kl;
            V(stk)(oi + v * VN, V(bwd_out)(V(ldk)(ai + v * VN, k, (SC_T)0),
                                           V(ldk)(bi + v * VN, k, (SC_T)0), acc[v], op), k);
        }
    }
}

SC_ALWAYS_INLINE static inline void V(bwd_cols_block)(const SC_T *a, ptrdiff_t lda,
                                                      const SC_T *b, ptrdiff_t ldb, SC_T *out,
                                                      ptrdiff_t ldo, size_t n, size_t m, int op)
{
    if (m == 0)
        return;
    const size_t nv = (m + VN - 1) / VN, kl = m - (nv - 1) * VN; /* lanes of the last */
    switch (nv) {
    case 1: V(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 1, kl, op); break;
    case 2: V(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 2, kl, op); break;
    case 3: V(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 3, kl, op); break;
    case 4: V(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 4, kl, op); break;
    default: V(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, nv, kl, op); break;
    }
}

/* Any m: blocks of SC_COLS_MAX columns. */
SC_ALWAYS_INLINE static inline void V(bwd_cols)(const SC_T *a, ptrdiff_t lda, const SC_T *b,
                                                ptrdiff_t ldb, SC_T *out, ptrdiff_t ldo,
                                                size_t n, size_t m, int op)
{
    for (size_t j = 0; j < m; j += SC_COLS_MAX)
        V(bwd_cols_block)(a + j, lda, b + j, ldb, out + j, ldo, n,
                          m - j < SC_COLS_MAX ? m - j : SC_COLS_MAX, op);
}

#define SC_BWD_KERNELS(name, OP)                                                              \
    void KFN(name##_rows)(const SC_T *a, ptrdiff_t lda, const SC_T *b, ptrdiff_t ldb, SC_T *out, \
                          ptrdiff_t ldo, size_t rows, size_t n)                                 \
    {                                                                                         \
        V(bwd_rows)(a, lda, b, ldb, out, ldo, rows, n, OP);                                   \
    }                                                                                         \
    void KFN(name##_cols)(const SC_T *a, ptrdiff_t lda, const SC_T *b, ptrdiff_t ldb, SC_T *out, \
                          ptrdiff_t ldo, size_t n, size_t m)                                    \
    {                                                                                         \
        V(bwd_cols)(a, lda, b, ldb, out, ldo, n, m, OP);                                      \
    }

SC_BWD_KERNELS(softmax_jvp, SC_SOFTMAX_JVP)
SC_BWD_KERNELS(log_softmax_jvp, SC_LOG_SOFTMAX_JVP)
SC_BWD_KERNELS(log_softmax_vjp, SC_LOG_SOFTMAX_VJP)
#undef SC_BWD_KERNELS

/* ---- backward pieces of one row, for splitting it across threads -------
 * As the forward pieces: cut at multiples of SC_BWD_CHUNK, the chunk sums
 * added by sc_piece_total give bitwise the row kernels' reduction. */
size_t KFN(piece_bwd_chunk)(void) { return SC_BWD_CHUNK; }

void KFN(piece_bwd_sums)(int op, const SC_T *a, const SC_T *b, size_t n, double *sums)
{
    for (size_t i = 0, k = 0; i < n; i += SC_BWD_CHUNK, k++) {
        size_t len = n - i < SC_BWD_CHUNK ? n - i : SC_BWD_CHUNK;
        if (op == SC_SOFTMAX_JVP)
            sums[k] = V(hsum)(V(bwd_chunk)(a + i, b + i, len, SC_SOFTMAX_JVP));
        else if (op == SC_LOG_SOFTMAX_JVP)
            sums[k] = V(hsum)(V(bwd_chunk)(a + i, b + i, len, SC_LOG_SOFTMAX_JVP));
        else
            sums[k] = V(hsum)(V(bwd_chunk)(a + i, b + i, len, SC_LOG_SOFTMAX_VJP));
    }
}

void KFN(piece_bwd_out)(int op, const SC_T *a, const SC_T *b, SC_T *out, size_t n, SC_T d)
{
    if (op == SC_SOFTMAX_JVP)
        V(bwd_apply)(a, b, out, n, d, SC_SOFTMAX_JVP, 0, NULL, NULL, NULL, 1);
    else if (op == SC_LOG_SOFTMAX_JVP)
        V(bwd_apply)(a, b, out, n, d, SC_LOG_SOFTMAX_JVP, 0, NULL, NULL, NULL, 1);
    else
        V(bwd_apply)(a, b, out, n, d, SC_LOG_SOFTMAX_VJP, 0, NULL, NULL, NULL, 1);
}

/* ---- fused cross-entropy ---------------------------------------------------
 * One row of logits z (n classes) against a class index t or a row of
 * class probabilities q, with PyTorch's options (sc_xent_params in
 * softmax_c.h).  With u_c the per-class term weights
 *   index targets:        u_c = w_c               (1 without weights)
 *   probability targets:  u_c = (q_c (1-ls) + ls/n) w_c
 * and lse = m + log(s) (m the max, s = sum exp(z - m)):
 *   index:  loss = (1-ls) w_t (lse - z_t) + (ls/n) sum_c w_c (lse - z_c)
 *           grad = scale (p (1-ls) w_t + (ls/n) (p W - w)) - scale (1-ls) w_t e_t
 *   prob:   loss = sum_c u_c (lse - z_c),  grad = scale (p U - u)
 * with p = softmax(z), W = sum w, U = sum u.  sum_c u_c (lse - z_c) is
 * accumulated as U log(s) + sum_c u_c (m - z_c): every term is >= 0, so
 * nothing cancels even for logits of large magnitude.
 *
 * Pass 1 reads the row once from memory: per L1-sized chunk, the chunk's
 * max, then its exponentials against the running max (the running sum is
 * rescaled when the max grows, as in online softmax).  Pass 2 writes the
 * gradient once.  The loss alone needs pass 1 only. */

#ifndef SC_XENT_KINDS
#define SC_XENT_KINDS
enum { SC_XENT_PLAIN, SC_XENT_INDEX_SMOOTH, SC_XENT_PROB };

/* A row's loss is a log(s) + b: the log is left to the caller, which
 * takes it for a group of rows at once (sc_logd_n).  Rows whose loss is
 * already known have s = 1, a = 0 (log 1 = 0 exactly). */
typedef struct {
    double s, a, b;
} sc_xent_loss_t;

static inline void sc_xent_loss_known(sc_xent_loss_t *l, double loss)
{
    l->s = 1.0;
    l->a = 0.0;
    l->b = loss;
}

/* The online sweep's running state: max m, exp sum s + c (two-sum),
 * U and D against m. */
typedef struct {
    double m, s, c, U, D;
} sc_xent_sweep_t;

/* At a chunk whose max is cm: a larger max rescales the sums to it. */
static inline void sc_xent_sweep_max(sc_xent_sweep_t *st, double cm)
{
    if (cm > st->m) {
        double f = st->m == -INFINITY ? 0.0 : exp(st->m - cm);
        st->s *= f;
        st->c *= f;
        if (st->U != 0.0)
            st->D += st->U * (cm - st->m);
        st->m = cm;
    }
}

/* Then the chunk's sums (xent_sweep_chunk) are added in.  A chunk of -inf
 * only adds nothing, unless a NaN hides in it. */
static inline void sc_xent_sweep_add(sc_xent_sweep_t *st, double cm, double es, double cu,
                                     double cd, int kind)
{
    if (cm == -INFINITY) {
        if (isnan(es))
            st->s = NAN;
        if (kind == SC_XENT_PLAIN)
            return;
    }
    if (!(st->m == -INFINITY))
        sc_two_sum_add(&st->s, &st->c, es);
    if (kind != SC_XENT_PLAIN) {
        st->U += cu;
        st->D += cd;
    }
}

/* a log(s) + b.  With probability targets near 1e307, a log(s) alone can
 * overflow where the loss does not (U = -3.5e307, log s = 5.4, D =
 * 1.16e308: the loss is -7.5e307): then it is taken again on a and b
 * scaled by 2^-64 (the same roundings) and scaled back. */
static inline double sc_xent_loss_value(double a, double ln_s, double b)
{
    double loss = a * ln_s + b;
    if (!isfinite(loss) && isfinite(a) && isfinite(b) && isfinite(ln_s))
        loss = ((a * 0x1p-64) * ln_s + b * 0x1p-64) * 0x1p64;
    return loss;
}
#endif

SC_ALWAYS_INLINE static inline VEC V(xent_u)(const SC_T *q, const SC_T *w, size_t i, size_t k,
                                             VEC a, VEC b, int kind)
{
    VEC u;
    if (kind == SC_XENT_PROB)
        u = V(fma)(V(ldk)(q + i, k, (SC_T)0), a, b);
    else
        u = V(set1)((SC_T)1);
    if (w)
        u = V(mul)(u, V(ldk)(w + i, k, (SC_T)0));
    return u;
}

/* One chunk (len <= SC_CHUNK) of U and D (the cached path's step 2): the lane sums of u and of
 * u (m - z), each reduced in double.  Lanes past the end count 0 (u is
 * masked: there it would be ls/n or w's fill). */
static const SC_T V(ones)[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

SC_ALWAYS_INLINE static inline void V(xent_ud_chunk)(const SC_T *z, const SC_T *q, const SC_T *w,
                                                     size_t len, VEC vref, SC_T m, VEC a, VEC b,
                                                     int kind, double *cu, double *cd)
{
    VEC su = V(set1)((SC_T)0), sd = su;
    size_t j = 0;
    for (; j + VN <= len; j += VN) {
        VEC u = V(xent_u)(q, w, j, VN, a, b, kind);
        su = V(add)(su, u);
        sd = V(fma)(u, V(sub)(vref, V(load)(z + j)), sd);
    }
    if (j < len) {
        VEC u = V(mul)(V(xent_u)(q, w, j, len - j, a, b, kind), V(loadt)(V(ones), len - j, (SC_T)0));
        su = V(add)(su, u);
        sd = V(fma)(u, V(sub)(vref, V(loadt)(z + j, len - j, m)), sd);
    }
    *cu = V(hsum)(su);
    *cd = V(hsum)(sd);
}

/* The online sweep's sums on one chunk whose max is cm, against the
 * running max m: es = sum exp(z - m) (0 while m is -inf; NaN for a chunk
 * of -inf and NaN, whose max is -inf), and for kinds other than PLAIN the
 * chunk's U and D terms against m (0 while m is -inf: any finite reference
 * gives the same u * (+inf) terms). */
SC_ALWAYS_INLINE static inline void V(xent_sweep_chunk)(const SC_T *z, const SC_T *q, const SC_T *w,
                                                        size_t len, double m, SC_T cm, VEC a,
                                                        VEC b, int kind, double *es, double *cu,
                                                        double *cd)
{
    *es = *cu = *cd = 0.0;
    if (cm == (SC_T)-INFINITY) {
        if (V(has_nan)(z, 1, len))
            *es = NAN;
        if (kind == SC_XENT_PLAIN)
            return;
    }
    if (!(m == -INFINITY) && !isnan(*es))
        *es = V(hsum)(V(expsum_chunk)(z, NULL, len, V(set1)((SC_T)m)));
    if (kind != SC_XENT_PLAIN) {
        const SC_T ref = m == -INFINITY ? (SC_T)0 : (SC_T)m;
        V(xent_ud_chunk)(z, q, w, len, V(set1)(ref), ref, a, b, kind, cu, cd);
    }
}

/* Pass 1: m, s = sum exp(z - m), and for kinds other than PLAIN
 * U = sum u and D = sum u (m - z), chunk by chunk: the chunk's max
 * (sc_xent_sweep_max), its sums against the running max
 * (xent_sweep_chunk), added in (sc_xent_sweep_add).  A row split across
 * threads takes the same three steps per chunk (the pieces below). */
SC_ALWAYS_INLINE static inline void V(xent_stats)(const SC_T *z, const SC_T *q, const SC_T *w,
                                                  size_t n, double ls, int kind, double *pm,
                                                  double *ps, double *pu, double *pd)
{
    sc_xent_sweep_t st = {-INFINITY, 0.0, 0.0, 0.0, 0.0};
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)(n ? ls / (double)n : 0.0));
    double es, cu, cd;
    for (size_t i = 0; i < n; i += SC_CHUNK) {
        size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
        SC_T cm = V(row_max)(z + i, len);
        sc_xent_sweep_max(&st, (double)cm);
        V(xent_sweep_chunk)(z + i, q ? q + i : NULL, w ? w + i : NULL, len, st.m, cm, a, b, kind,
                            &es, &cu, &cd);
        sc_xent_sweep_add(&st, (double)cm, es, cu, cd, kind);
    }
    *pm = st.m;
    *ps = st.s + st.c;
    *pu = st.U;
    *pd = st.D;
}

/* Pass 2: g = A exp(z - m) - B u, streaming when asked. */
SC_ALWAYS_INLINE static inline VEC V(xent_g)(const SC_T *z, const SC_T *q, const SC_T *w, size_t i,
                                             size_t k, VEC vm, VEC va, VEC vb, VEC a, VEC b,
                                             int kind)
{
    VEC e = V(exp_neg)(V(sub)(V(ldk)(z + i, k, (SC_T)0), vm));
    if (kind == SC_XENT_PLAIN)
        return V(mul)(e, va);
    VEC u = V(xent_u)(q, w, i, k, a, b, kind);
    return V(sub)(V(mul)(e, va), V(mul)(vb, u));
}

/* The gradient of the vector at i (k lanes), with element t (the target
 * class; (size_t)-1 for none) replaced by gt. */
SC_ALWAYS_INLINE static inline VEC V(xent_gt)(const SC_T *z, const SC_T *q, const SC_T *w, size_t i,
                                              size_t k, VEC vm, VEC va, VEC vb, VEC a, VEC b,
                                              int kind, size_t t, SC_T gt)
{
    VEC v = V(xent_g)(z, q, w, i, k, vm, va, vb, a, b, kind);
    return t - i < k ? V(setlane)(v, t - i, gt) : v;
}

/* Pass 2.  The target's element goes into its vector before the store: a
 * separate scalar store after the streaming stores would read the line
 * back from memory (a miss per row: 3x the time of 128-class rows).
 * Vector-aligned stores after a partial head, streamed or not, as
 * bwd_apply's (1x32000 float32 0.97x, 1x4000 0.93x, one thread). */
SC_ALWAYS_INLINE static inline void V(xent_grad)(const SC_T *z, const SC_T *q, const SC_T *w,
                                                 SC_T *g, size_t n, size_t ncls, double m,
                                                 double A, double B, double ls, int kind,
                                                 int stream, size_t t, SC_T gt)
{
    const VEC vm = V(set1)((SC_T)m), va = V(set1)((SC_T)A), vb = V(set1)((SC_T)B);
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)(ncls ? ls / (double)ncls : 0.0));
    size_t i = V(head)(g, n);
    if (i)
        V(storet)(g, V(xent_gt)(z, q, w, 0, i, vm, va, vb, a, b, kind, t, gt), i);
    if (VN > 1 && stream && i < n && (size_t)g % sizeof(SC_T) == 0)
        for (; i + VN <= n; i += VN)
            V(stream)(g + i, V(xent_gt)(z, q, w, i, VN, vm, va, vb, a, b, kind, t, gt));
    for (; i + VN <= n; i += VN)
        V(store)(g + i, V(xent_gt)(z, q, w, i, VN, vm, va, vb, a, b, kind, t, gt));
    if (i < n)
        V(storet)(g + i, V(xent_gt)(z, q, w, i, n - i, vm, va, vb, a, b, kind, t, gt), n - i);
}

static inline void V(fill_row)(SC_T *g, size_t n, SC_T c)
{
    size_t i = 0;
    for (; i + VN <= n; i += VN)
        V(store)(g + i, V(set1)(c));
    if (i < n)
        V(storet)(g + i, V(set1)(c), n - i);
}

/* ---- cache-resident rows with a gradient: one exp per element ----------
 * (1) m = max(z); (2) for the smoothing and probability kinds, U = sum u
 * and D = sum u (m - z); (3) e = exp(z - m) stored to g while summing s;
 * (4) g = A e - B u in place.  Steps 2-4 read the row from cache (up to
 * 1 MiB, the L2 size: 16x262144 float32 measured 1.36 ms this way, 1.60 ms
 * with the online sweep), so this
 * moves the row from memory once, as the online sweep does, but evaluates
 * half the exponentials.  g may be z: z is not read after step 3.  For the
 * loss alone (g NULL), steps 1-3 without the stores. */
#define SC_XENT_CACHED_MAX_BYTES (1024 * 1024)

/* Step 2 of a row: U = sum u and D = sum u (m - z), chunk by chunk in
 * order (the pieces of a split row give the same chunk values). */
SC_ALWAYS_INLINE static inline void V(xent_ud)(const SC_T *z, const SC_T *q, const SC_T *w,
                                               size_t n, double m, double ls, int kind,
                                               double *pu, double *pd)
{
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)(n ? ls / (double)n : 0.0));
    const VEC vref = V(set1)((SC_T)m);
    double U = 0.0, D = 0.0, cu, cd;
    for (size_t i = 0; i < n; i += SC_CHUNK) {
        size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
        V(xent_ud_chunk)(z + i, q ? q + i : NULL, w ? w + i : NULL, len, vref, (SC_T)m, a, b,
                         kind, &cu, &cd);
        U += cu;
        D += cd;
    }
    *pu = U;
    *pd = D;
}

/* U and D again, one term at a time in double: for rows whose vector sums
 * are not finite.  The lanes add in SC_T, where u or m - z (float32 logits
 * 6e38 apart) overflow while the row's sums in double do not. */
static void V(xent_ud_double)(const SC_T *z, const SC_T *q, const SC_T *w, size_t n, double m,
                              double ls, int kind, double *pu, double *pd)
{
    double U = 0.0, D = 0.0;
    for (size_t i = 0; i < n; i++) {
        double u = kind == SC_XENT_PROB ? (double)q[i] * (1.0 - ls) + ls / (double)n : 1.0;
        if (w)
            u *= (double)w[i];
        U += u;
        D += u * (m - (double)z[i]);
    }
    *pu = U;
    *pd = D;
}

SC_ALWAYS_INLINE static inline VEC V(xent_ge)(const SC_T *g, const SC_T *q, const SC_T *w, size_t i,
                                              size_t k, VEC va, VEC vb, VEC a, VEC b, int kind,
                                              size_t t, SC_T gt)
{
    VEC v = V(mul)(V(ldk)(g + i, k, (SC_T)0), va);
    if (kind != SC_XENT_PLAIN)
        v = V(sub)(v, V(mul)(vb, V(xent_u)(q, w, i, k, a, b, kind)));
    return t - i < k ? V(setlane)(v, t - i, gt) : v;
}

/* Step 4 on n elements: g = A g - B u, element t (if < n) set to gt.  eps
 * is ls / (the row's class count). */
SC_ALWAYS_INLINE static inline void V(xent_scale)(SC_T *g, const SC_T *q, const SC_T *w, size_t n,
                                                  double A, double B, double ls, double eps,
                                                  int kind, size_t t, SC_T gt)
{
    const VEC va = V(set1)((SC_T)A), vb = V(set1)((SC_T)B);
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)eps);
    size_t i = n * sizeof(SC_T) >= 2048 ? V(head)(g, n) : 0; /* as scale */
    if (i)
        V(storet)(g, V(xent_ge)(g, q, w, 0, i, va, vb, a, b, kind, t, gt), i);
    for (; i + VN <= n; i += VN)
        V(store)(g + i, V(xent_ge)(g, q, w, i, VN, va, vb, a, b, kind, t, gt));
    if (i < n)
        V(storet)(g + i, V(xent_ge)(g, q, w, i, n - i, va, vb, a, b, kind, t, gt), n - i);
}

/* Steps 1-3; kind as in xent_stats. */
SC_ALWAYS_INLINE static inline void V(xent_cached_stats)(const SC_T *z, const SC_T *q,
                                                         const SC_T *w, SC_T *g, size_t n,
                                                         double ls, int kind, double *pm,
                                                         double *ps, double *pu, double *pd)
{
    const SC_T mx = V(row_max)(z, n);
    *pu = *pd = 0.0;
    if (kind != SC_XENT_PLAIN) {
        V(xent_ud)(z, q, w, n, (double)mx, ls, kind, pu, pd);
        if (!(isfinite(*pu) && isfinite(*pd)))
            V(xent_ud_double)(z, q, w, n, (double)mx, ls, kind, pu, pd);
    }
    *pm = (double)mx;
    if (n <= SC_CHUNK) /* what expsum's two-sum gives for one chunk, sooner */
        *ps = V(hsum)(V(expsum_chunk)(z, g, n, V(set1)(mx)));
    else
        *ps = V(expsum)(z, g, n, mx, NULL);
}

/* The probability-target loss sum_c u_c ((m - z_c) + log s) term by term,
 * in double, the classes at stride ldz in z and ldq in q.  U log(s) + D is
 * the same sum regrouped, but U = sum u or D overflow (or hold inf * 0 =
 * NaN at the max logit) when u is far outside [0, 1] -- q = 1e308 or inf --
 * where the terms themselves do not.  With q past 1e307 a term can itself
 * overflow, and terms of both signs give inf - inf = NaN where the loss is
 * finite (q = [1.7e308, -1.7e308, 1e307], z = 0: log(3) 1e307), and
 * q w overflows with a weight w > 1: then the sum is taken again with q
 * and ls / n scaled by 2^-64 (exact: the same roundings, bar values below
 * 2^-958) and scaled back, so that only a loss that is itself
 * beyond the range overflows (an infinite q_c: that term's infinity, as
 * the loss is).  Where the scaled sum is NaN too, the NaN stays. */
static double V(xent_loss_terms_scaled)(const SC_T *z, ptrdiff_t ldz, const SC_T *q,
                                        ptrdiff_t ldq, const SC_T *w, size_t n, double m,
                                        double log_s, double ls, double scale)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double u = ((double)q[(ptrdiff_t)i * ldq] * scale) * (1.0 - ls) + (ls / (double)n) * scale;
        if (w)
            u *= (double)w[i];
        sum += u * ((m - (double)z[(ptrdiff_t)i * ldz]) + log_s);
    }
    return sum;
}

static double V(xent_loss_terms)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq,
                                 const SC_T *w, size_t n, double m, double log_s, double ls)
{
    double sum = V(xent_loss_terms_scaled)(z, ldz, q, ldq, w, n, m, log_s, ls, 1.0);
    if (!isfinite(sum)) {
        double small = V(xent_loss_terms_scaled)(z, ldz, q, ldq, w, n, m, log_s, ls, 0x1p-64);
        if (!isnan(small))
            sum = small * 0x1p64;
    }
    return sum;
}

/* The loss of a row with class index t (0 <= t < n) from its statistics,
 *   (1-ls) w_t ((m - z_t) + log s) + eps (W log s + D)
 * as a log(s) + b (every term >= 0 for weights >= 0: nothing cancels),
 * and the gradient's factors: g = A e - B u with element t set to *gt.
 * `ge` is the row's stored e (the cached path's g), or NULL. */
SC_ALWAYS_INLINE static inline void V(xent_finish_index)(int64_t t, double zt, const SC_T *ge,
                                                         size_t n, double m, double s, double D,
                                                         const sc_xent_params *p, int want_g,
                                                         sc_xent_loss_t *loss, double *pa,
                                                         double *pb, SC_T *gt)
{
    const double ls = p->label_smoothing, eps = ls / (double)n;
    const double wt = p->weight ? (double)((const SC_T *)p->weight)[t] : 1.0;
    loss->s = s;
    loss->a = (1.0 - ls) * wt + (eps != 0.0 ? eps * p->weight_sum : 0.0);
    loss->b = (1.0 - ls) * wt * (m - zt) + (eps != 0.0 ? eps * D : 0.0);
    const double A = p->scale * ((1.0 - ls) * wt + eps * p->weight_sum) / s;
    const double B = p->scale * eps;
    *pa = A;
    *pb = B;
    *gt = (SC_T)0;
    if (!want_g)
        return;
    /* The target's element in double: e_t A and the one-hot term C cancel
     * when p_t is near 1.  e_t is exactly 1 when z_t is the max; the
     * cached path holds e_t rounded to SC_T in g[t], whose error (u e_t A)
     * stays below u |e_t A - C| while e_t A <= C / 2, as for most rows (an
     * exp call less per row); else exp in double. */
    const double C = p->scale * (1.0 - ls) * wt;
    double et;
    if (zt == m)
        et = 1.0;
    else if (ge && (double)ge[t] * A <= 0.5 * C)
        et = (double)ge[t];
    else
        et = exp(zt - m);
    *gt = (SC_T)(et * A - B * wt - C);
}

SC_ALWAYS_INLINE static inline void V(xent_row)(const SC_T *z, const SC_T *q, int64_t t, SC_T *g,
                                                sc_xent_loss_t *loss, size_t n,
                                                const sc_xent_params *p, int stream)
{
    const SC_T *w = (const SC_T *)p->weight;
    const double ls = p->label_smoothing;
    if (q == NULL && t < 0) { /* ignored */
        sc_xent_loss_known(loss, 0.0);
        if (g)
            V(fill_row)(g, n, (SC_T)0);
        return;
    }
    if (q == NULL && (uint64_t)t >= (uint64_t)n) { /* no such class: NaN, never a read */
        sc_xent_loss_known(loss, NAN);
        if (g)
            V(fill_row)(g, n, (SC_T)NAN);
        return;
    }
    double m, s, U, D;
    /* a row that stays in cache: one exp per element with a gradient; the
     * loss alone takes the same steps, so that it is the same bits */
    int cached = n * sizeof(SC_T) <= SC_XENT_CACHED_MAX_BYTES;
    if (q != NULL) {
        if (cached) {
            /* steps 1-2 first: U and D decide whether step 3 may write g */
            const SC_T mx = V(row_max)(z, n);
            m = (double)mx;
            V(xent_ud)(z, q, w, n, m, ls, SC_XENT_PROB, &U, &D);
            if (!(isfinite(U) && isfinite(D)))
                V(xent_ud_double)(z, q, w, n, m, ls, SC_XENT_PROB, &U, &D);
            if (isfinite(U) && isfinite(D))
                s = V(expsum)(z, g, n, mx, NULL);
            else
                cached = 0;
        }
        if (!cached) {
            V(xent_stats)(z, q, w, n, ls, SC_XENT_PROB, &m, &s, &U, &D);
            if (!(isfinite(U) && isfinite(D)))
                V(xent_ud_double)(z, q, w, n, m, ls, SC_XENT_PROB, &U, &D);
        }
        if (isfinite(U) && isfinite(D)) {
            loss->s = s;
            loss->a = U;
            loss->b = D;
        } else { /* targets far outside [0, 1]: term by term (z is unchanged) */
            sc_xent_loss_known(loss, V(xent_loss_terms)(z, 1, q, 1, w, n, m, sc_logd_1(s), ls));
        }
        if (cached && g)
            V(xent_scale)(g, q, w, n, p->scale * U / s, p->scale, ls, ls / (double)n, SC_XENT_PROB,
                          (size_t)-1, (SC_T)0);
        else if (g)
            V(xent_grad)(z, q, w, g, n, n, m, p->scale * U / s, p->scale, ls, SC_XENT_PROB, stream,
                         (size_t)-1, (SC_T)0);
        return;
    }
    const double eps = ls / (double)n, zt = (double)z[t];
    const int kind = eps != 0.0 ? SC_XENT_INDEX_SMOOTH : SC_XENT_PLAIN;
    if (cached && kind == SC_XENT_PLAIN)
        V(xent_cached_stats)(z, NULL, w, g, n, ls, SC_XENT_PLAIN, &m, &s, &U, &D);
    else if (cached)
        V(xent_cached_stats)(z, NULL, w, g, n, ls, SC_XENT_INDEX_SMOOTH, &m, &s, &U, &D);
    else if (kind == SC_XENT_PLAIN)
        V(xent_stats)(z, NULL, w, n, ls, SC_XENT_PLAIN, &m, &s, &U, &D);
    else
        V(xent_stats)(z, NULL, w, n, ls, SC_XENT_INDEX_SMOOTH, &m, &s, &U, &D);
    if (!cached && kind != SC_XENT_PLAIN && !isfinite(D))
        V(xent_ud_double)(z, NULL, w, n, m, ls, SC_XENT_INDEX_SMOOTH, &U, &D);
    double A, B;
    SC_T gt;
    V(xent_finish_index)(t, zt, cached && g ? g : NULL, n, m, s, D, p, g != NULL, loss, &A, &B,
                         &gt);
    if (g) {
        if (cached && kind == SC_XENT_PLAIN)
            V(xent_scale)(g, NULL, w, n, A, B, ls, eps, SC_XENT_PLAIN, (size_t)t, gt);
        else if (cached)
            V(xent_scale)(g, NULL, w, n, A, B, ls, eps, SC_XENT_INDEX_SMOOTH, (size_t)t, gt);
        else if (kind == SC_XENT_PLAIN)
            V(xent_grad)(z, NULL, w, g, n, n, m, A, B, ls, SC_XENT_PLAIN, stream, (size_t)t, gt);
        else
            V(xent_grad)(z, NULL, w, g, n, n, m, A, B, ls, SC_XENT_INDEX_SMOOTH, stream, (size_t)t, gt);
    }
}

/* The losses of a group of k <= SC_LOGD_N rows from their statistics, the
 * logs taken together (lane by lane: a row's bits do not depend on its
 * group), into loss[j*ldl]. */
static inline void V(xent_group_loss)(const sc_xent_loss_t *lt, size_t k, double *loss,
                                       ptrdiff_t ldl)
{
    double ln[SC_LOGD_N];
    for (size_t j = 0; j < SC_LOGD_N; j++)
        ln[j] = j < k ? lt[j].s : 1.0;
    sc_logd_n(ln);
    for (size_t j = 0; j < k; j++)
        loss[(ptrdiff_t)j * ldl] = sc_xent_loss_value(lt[j].a, ln[j], lt[j].b);
}

/* Elements [j0, j1) of a gradient row from its stored e (step 4, xent_ge),
 * through streaming stores from `head` on (y + head is vector-aligned),
 * plain stores before it and in a last partial vector. */
SC_ALWAYS_INLINE static inline void V(xent_piece)(const SC_T *src, SC_T *y, size_t j0, size_t j1,
                                                  size_t head, const SC_T *w, VEC va, VEC vb,
                                                  VEC a, VEC b, int kind, size_t t, SC_T gt)
{
    size_t j = j0;
    if (j < head) {
        size_t e = head < j1 ? head : j1;
        V(storet)(y + j, V(xent_ge)(src, NULL, w, j, e - j, va, vb, a, b, kind, t, gt), e - j);
        j = e;
    }
    for (; j + VN <= j1; j += VN)
        V(stream)(y + j, V(xent_ge)(src, NULL, w, j, VN, va, vb, a, b, kind, t, gt));
    if (j < j1)
        V(storet)(y + j, V(xent_ge)(src, NULL, w, j, j1 - j, va, vb, a, b, kind, t, gt), j1 - j);
}

/* The gradient row a pipelined call has yet to write (step 4). */
typedef struct {
    const SC_T *src; /* its stored e, in a scratch row */
    SC_T *y;
    size_t head, t;
    SC_T gt;
    VEC va, vb;
} V(xent_pending);

/* Cross-entropy rows with class indices and a gradient, in a large
 * output, pipelined over rows as softmax's rows_pipe: steps 1-3 of a row
 * store e to a scratch row, and while its exponentials are summed, chunk
 * by chunk, the previous row's gradient (step 4) is written from its
 * scratch row with streaming stores.  The gradient's lines are then never
 * read, and its writes drain while exp computes.  The same bits as
 * xent_row's cached path: the same steps on the same values.  `work`
 * holds sc_pipe_work elements. */
static void V(xent_rows_pipe)(const SC_T *z, ptrdiff_t ldz, const int64_t *t, ptrdiff_t ldt,
                              SC_T *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows,
                              size_t n, const sc_xent_params *p, SC_T *work)
{
    const SC_T *w = (const SC_T *)p->weight;
    const double ls = p->label_smoothing, eps = ls / (double)n;
    const int kind = eps != 0.0 ? SC_XENT_INDEX_SMOOTH : SC_XENT_PLAIN;
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)eps);
    const size_t lw = SC_LINE / sizeof(SC_T), np = (n + lw - 1) / lw * lw;
    SC_T *cur = work + (lw - ((uintptr_t)work / sizeof(SC_T)) % lw) % lw, *prev = cur + np;
    V(xent_pending) pd = {0};
    int pending = 0;
    sc_xent_loss_t lt[SC_LOGD_N];
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t k = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        for (size_t j = 0; j < k; j++) {
            const size_t r = r0 + j;
            const SC_T *zr = z + (ptrdiff_t)r * ldz;
            const int64_t tr = t[(ptrdiff_t)r * ldt];
            SC_T *gr = g + (ptrdiff_t)r * ldg;
            if ((uint64_t)tr >= (uint64_t)n) { /* ignored, or no such class: as xent_row */
                if (pending)
                    V(xent_piece)(pd.src, pd.y, 0, n, pd.head, w, pd.va, pd.vb, a, b, kind, pd.t,
                                  pd.gt);
                pending = 0;
                V(xent_row)(zr, NULL, tr, gr, lt + j, n, p, 0);
                continue;
            }
            const SC_T *pf = r + 1 < rows ? zr + ldz : NULL;
            const SC_T mx = V(row_max)(zr, n);
            double U = 0.0, D = 0.0;
            if (kind != SC_XENT_PLAIN) {
                V(xent_ud)(zr, NULL, w, n, (double)mx, ls, kind, &U, &D);
                if (!(isfinite(U) && isfinite(D)))
                    V(xent_ud_double)(zr, NULL, w, n, (double)mx, ls, kind, &U, &D);
            }
            const VEC vm = V(set1)(mx);
            double s = 0.0, c = 0.0;
            for (size_t i = 0, q = 0; i < n; i += SC_CHUNK, q++) {
                V(pipe_expsum)(zr, cur, pf, i, n, vm, &s, &c);
                size_t j0, j1;
                if (pending && V(pipe_span)(pd.head, q, n, &j0, &j1))
                    V(xent_piece)(pd.src, pd.y, j0, j1, pd.head, w, pd.va, pd.vb, a, b, kind,
                                  pd.t, pd.gt);
            }
            double A, B;
            SC_T gt;
            V(xent_finish_index)(tr, (double)zr[tr], cur, n, (double)mx, s + c, D, p, 1, lt + j,
                                 &A, &B, &gt);
            SC_T *tmp = prev;
            prev = cur;
            cur = tmp;
            pd.src = prev;
            pd.y = gr;
            pd.head = (VN - ((size_t)gr / sizeof(SC_T)) % VN) % VN;
            pd.t = (size_t)tr;
            pd.gt = gt;
            pd.va = V(set1)((SC_T)A);
            pd.vb = V(set1)((SC_T)B);
            pending = 1;
            if (r + 1 < rows) {
                SC_PREFETCH_W(gr + ldg);
                SC_PREFETCH_W(gr + ldg + n - 1);
            }
        }
        V(xent_group_loss)(lt, k, loss + (ptrdiff_t)r0 * ldl, ldl);
    }
    if (pending)
        V(xent_piece)(pd.src, pd.y, 0, n, pd.head, w, pd.va, pd.vb, a, b, kind, pd.t, pd.gt);
    sc_sfence();
}

void KFN(xent_rows_ws)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq,
                       const int64_t *t, ptrdiff_t ldt, SC_T *g, ptrdiff_t ldg, double *loss,
                       ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p,
                       SC_T *work, size_t work_len)
{
    /* not in place: the row just read is in cache, where streaming stores
     * over it would only evict it (out=logits, 4096x4096 float32, one
     * thread: 7.8 -> 11.9 ms) */
    if (VN > 1 && q == NULL && g != NULL && (const void *)g != (const void *)z && work != NULL &&
        work_len >= sc_pipe_work(sizeof(SC_T), n) && sc_xent_pipe_rows(sizeof(SC_T), g, ldg, rows, n)) {
        V(xent_rows_pipe)(z, ldz, t, ldt, g, ldg, loss, ldl, rows, n, p, work);
        return;
    }
    const int stream = g != NULL && rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES;
    /* rows in groups of SC_LOGD_N, whose logs are taken together */
    sc_xent_loss_t lt[SC_LOGD_N];
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t k = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        for (size_t j = 0; j < k; j++) {
            const size_t r = r0 + j;
            const SC_T *zr = z + (ptrdiff_t)r * ldz;
            const SC_T *qr = q ? q + (ptrdiff_t)r * ldq : NULL;
            const int64_t tr = q ? 0 : t[(ptrdiff_t)r * ldt];
            SC_T *gr = g ? g + (ptrdiff_t)r * ldg : NULL;
            if (stream)
                V(xent_row)(zr, qr, tr, gr, lt + j, n, p, 1);
            else
                V(xent_row)(zr, qr, tr, gr, lt + j, n, p, 0);
        }
        V(xent_group_loss)(lt, k, loss + (ptrdiff_t)r0 * ldl, ldl);
    }
    if (stream)
        sc_sfence();
}

void KFN(xent_rows)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq, const int64_t *t,
                    ptrdiff_t ldt, SC_T *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl,
                    size_t rows, size_t n, const sc_xent_params *p)
{
    KFN(xent_rows_ws)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p, NULL, 0);
}

/* ---- cross-entropy of one row in pieces (softmax_c.h) ---------------------
 * z, q and g point at the row (n classes); a piece is [lo, lo + len), lo a
 * multiple of SC_CHUNK.  These are the cached path's steps of xent_row, so
 * a row of at most SC_XENT_CACHED_MAX_BYTES split this way gives its bits. */
static inline int V(xent_kind)(const SC_T *q, size_t n, const sc_xent_params *p)
{
    return q ? SC_XENT_PROB : p->label_smoothing / (double)n != 0.0 ? SC_XENT_INDEX_SMOOTH
                                                                    : SC_XENT_PLAIN;
}

size_t KFN(piece_xent_max_bytes)(void) { return SC_XENT_CACHED_MAX_BYTES; }

void KFN(piece_xent_ud)(const SC_T *z, const SC_T *q, size_t lo, size_t len, size_t n, SC_T mx,
                        const sc_xent_params *p, double *usums, double *dsums)
{
    const int kind = V(xent_kind)(q, n, p);
    const SC_T *w = p->weight ? (const SC_T *)p->weight + lo : NULL;
    const double ls = p->label_smoothing;
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)(ls / (double)n));
    const VEC vref = V(set1)(mx);
    z += lo;
    q = q ? q + lo : NULL;
    for (size_t i = 0, k = 0; i < len; i += SC_CHUNK, k++) {
        size_t cl = len - i < SC_CHUNK ? len - i : SC_CHUNK;
        if (kind == SC_XENT_PROB)
            V(xent_ud_chunk)(z + i, q + i, w ? w + i : NULL, cl, vref, mx, a, b, SC_XENT_PROB,
                             usums + k, dsums + k);
        else
            V(xent_ud_chunk)(z + i, NULL, w ? w + i : NULL, cl, vref, mx, a, b,
                             SC_XENT_INDEX_SMOOTH, usums + k, dsums + k);
    }
}

double KFN(piece_xent_finish)(const SC_T *q, int64_t t, double zt, const SC_T *g, size_t n,
                              SC_T mx, double s, double U, double D, const sc_xent_params *p,
                              double *factors)
{
    double A, B;
    sc_xent_loss_t loss;
    SC_T gt = (SC_T)0;
    if (q) {
        loss.s = s;
        loss.a = U;
        loss.b = D;
        A = p->scale * U / s;
        B = p->scale;
    } else {
        V(xent_finish_index)(t, zt, g, n, (double)mx, s, D, p, g != NULL, &loss, &A, &B, &gt);
    }
    factors[0] = A;
    factors[1] = B;
    factors[2] = (double)gt;
    return sc_xent_loss_value(loss.a, sc_logd_1(loss.s), loss.b);
}

void KFN(piece_xent_scale)(SC_T *g, const SC_T *q, int64_t t, size_t lo, size_t len, size_t n,
                           const sc_xent_params *p, const double *factors)
{
    const int kind = V(xent_kind)(q, n, p);
    const SC_T *w = p->weight ? (const SC_T *)p->weight + lo : NULL;
    const double ls = p->label_smoothing, eps = ls / (double)n;
    const size_t tl = q == NULL && t >= 0 && (uint64_t)t >= lo && (uint64_t)t - lo < len
                          ? (size_t)t - lo
                          : (size_t)-1;
    const SC_T gt = (SC_T)factors[2];
    g += lo;
    if (kind == SC_XENT_PROB)
        V(xent_scale)(g, q + lo, w, len, factors[0], factors[1], ls, eps, SC_XENT_PROB, tl, gt);
    else if (kind == SC_XENT_INDEX_SMOOTH)
        V(xent_scale)(g, NULL, w, len, factors[0], factors[1], ls, eps, SC_XENT_INDEX_SMOOTH, tl,
                      gt);
    else
        V(xent_scale)(g, NULL, w, len, factors[0], factors[1], ls, eps, SC_XENT_PLAIN, tl, gt);
}

/* ---- cross-entropy of one long row in pieces: the online sweep ------------
 * Rows past SC_XENT_CACHED_MAX_BYTES take the online sweep (xent_stats,
 * then xent_grad).  Its chunk steps split: the chunks' maxima (any piece
 * order), each chunk's sums against the running max at that chunk (which
 * a piece finds by scanning the maxima before it), then the sweep's scalar
 * steps replayed over the chunks in order, on one thread: the very values
 * and operations of the one-thread sweep.  ws holds 4 K doubles, K the
 * row's chunks: maxima, exp sums, U terms, D terms. */
void KFN(piece_xent_sweep_max)(const SC_T *z, size_t lo, size_t len, double *ws)
{
    z += lo;
    ws += lo / SC_CHUNK;
    for (size_t i = 0, k = 0; i < len; i += SC_CHUNK, k++)
        ws[k] = (double)V(row_max)(z + i, len - i < SC_CHUNK ? len - i : SC_CHUNK);
}

void KFN(piece_xent_sweep_sums)(const SC_T *z, const SC_T *q, size_t lo, size_t len, size_t n,
                                const sc_xent_params *p, double *ws)
{
    const int kind = V(xent_kind)(q, n, p);
    const size_t K = (n + SC_CHUNK - 1) / SC_CHUNK, k0 = lo / SC_CHUNK;
    const SC_T *w = p->weight ? (const SC_T *)p->weight + lo : NULL;
    const double ls = p->label_smoothing;
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)(ls / (double)n));
    double m = -INFINITY;
    for (size_t k = 0; k < k0; k++) /* the running max as sc_xent_sweep_max keeps it */
        if (ws[k] > m)
            m = ws[k];
    z += lo;
    q = q ? q + lo : NULL;
    for (size_t i = 0, k = k0; i < len; i += SC_CHUNK, k++) {
        size_t cl = len - i < SC_CHUNK ? len - i : SC_CHUNK;
        if (ws[k] > m)
            m = ws[k];
        if (kind == SC_XENT_PROB)
            V(xent_sweep_chunk)(z + i, q + i, w ? w + i : NULL, cl, m, (SC_T)ws[k], a, b,
                                SC_XENT_PROB, ws + K + k, ws + 2 * K + k, ws + 3 * K + k);
        else if (kind == SC_XENT_INDEX_SMOOTH)
            V(xent_sweep_chunk)(z + i, NULL, w ? w + i : NULL, cl, m, (SC_T)ws[k], a, b,
                                SC_XENT_INDEX_SMOOTH, ws + K + k, ws + 2 * K + k, ws + 3 * K + k);
        else
            V(xent_sweep_chunk)(z + i, NULL, NULL, cl, m, (SC_T)ws[k], a, b, SC_XENT_PLAIN,
                                ws + K + k, ws + 2 * K + k, ws + 3 * K + k);
    }
}

int KFN(piece_xent_sweep_finish)(const SC_T *z, const SC_T *q, int64_t t, size_t n,
                                 const sc_xent_params *p, const double *ws, int want_g,
                                 double *loss, double *factors)
{
    const int kind = V(xent_kind)(q, n, p);
    const size_t K = (n + SC_CHUNK - 1) / SC_CHUNK;
    sc_xent_sweep_t st = {-INFINITY, 0.0, 0.0, 0.0, 0.0};
    if (n == 0 || (q == NULL && (t < 0 || (uint64_t)t >= (uint64_t)n)))
        return 1;
    for (size_t k = 0; k < K; k++) {
        sc_xent_sweep_max(&st, ws[k]);
        sc_xent_sweep_add(&st, ws[k], ws[K + k], ws[2 * K + k], ws[3 * K + k], kind);
    }
    const double m = st.m, s = st.s + st.c;
    double A, B;
    SC_T gt = (SC_T)0;
    if (q) {
        if (!(isfinite(st.U) && isfinite(st.D)))
            return 1; /* the row kernel's sums in double, or term by term */
        *loss = sc_xent_loss_value(st.U, sc_logd_1(s), st.D);
        A = p->scale * st.U / s;
        B = p->scale;
    } else {
        sc_xent_loss_t l;
        if (kind != SC_XENT_PLAIN && !isfinite(st.D))
            return 1;
        V(xent_finish_index)(t, (double)z[t], NULL, n, m, s, st.D, p, want_g, &l, &A, &B, &gt);
        *loss = sc_xent_loss_value(l.a, sc_logd_1(l.s), l.b);
    }
    factors[0] = A;
    factors[1] = B;
    factors[2] = (double)gt;
    factors[3] = m;
    return 0;
}

void KFN(piece_xent_sweep_grad)(const SC_T *z, const SC_T *q, int64_t t, SC_T *g, size_t lo,
                                size_t len, size_t n, const sc_xent_params *p,
                                const double *factors)
{
    const int kind = V(xent_kind)(q, n, p);
    const SC_T *w = p->weight ? (const SC_T *)p->weight + lo : NULL;
    const double ls = p->label_smoothing, A = factors[0], B = factors[1], m = factors[3];
    const SC_T gt = (SC_T)factors[2];
    const size_t tl = q == NULL && t >= 0 && (uint64_t)t >= lo && (uint64_t)t - lo < len
                          ? (size_t)t - lo
                          : (size_t)-1;
    const int stream = n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES;
    z += lo;
    g += lo;
    q = q ? q + lo : NULL;
    if (kind == SC_XENT_PROB && stream)
        V(xent_grad)(z, q, w, g, len, n, m, A, B, ls, SC_XENT_PROB, 1, tl, gt);
    else if (kind == SC_XENT_PROB)
        V(xent_grad)(z, q, w, g, len, n, m, A, B, ls, SC_XENT_PROB, 0, tl, gt);
    else if (kind == SC_XENT_INDEX_SMOOTH && stream)
        V(xent_grad)(z, NULL, w, g, len, n, m, A, B, ls, SC_XENT_INDEX_SMOOTH, 1, tl, gt);
    else if (kind == SC_XENT_INDEX_SMOOTH)
        V(xent_grad)(z, NULL, w, g, len, n, m, A, B, ls, SC_XENT_INDEX_SMOOTH, 0, tl, gt);
    else if (stream)
        V(xent_grad)(z, NULL, w, g, len, n, m, A, B, ls, SC_XENT_PLAIN, 1, tl, gt);
    else
        V(xent_grad)(z, NULL, w, g, len, n, m, A, B, ls, SC_XENT_PLAIN, 0, tl, gt);
    if (stream)
        sc_sfence();
}

/* ---- cross-entropy panels (cols) -------------------------------------------
 * n classes (stride ldz) by m contiguous columns, a sample per column: its
 * target t[j*ldt] (or probabilities q, a panel like z), its loss
 * loss[j*ldl], its gradient in the panel g (stride ldg; may be z).  This
 * is PyTorch's (N, C, d1, ...) layout along axis 1, with no gathered rows.
 * Blocks of up to SC_COLS_MAX columns, each row taken whole (as the
 * backward panels): per lane
 *   1. the max m over the classes; the target logits z_t, read now
 *      because step 3 may overwrite z;
 *   2. (smoothing, probabilities) U = sum u and D = sum u (m - z), per lane
 *      in 8-row chunks into two-sum accumulators (as the forward panels'
 *      sum); a lane whose sums are not finite is redone in double;
 *   3. s = sum exp(z - m), e stored to g;
 *   4. loss, A and B in double as in xent_row, g = A e - B u, then the
 *      target elements.
 * Where a probability lane's loss has to be taken term by term (targets
 * far outside [0, 1]), the block keeps z: step 3 stores nothing and step 4
 * evaluates e again. */
SC_ALWAYS_INLINE static inline VEC V(xc_u)(const SC_T *qi, size_t k, VEC wi, VEC a, VEC b,
                                           int kind)
{
    if (kind == SC_XENT_PROB)
        return V(mul)(V(fma)(V(ldk)(qi, k, (SC_T)0), a, b), wi);
    return wi;
}

/* nv column vectors, the last of kl lanes; inlined with constant nv (as
 * bwd_cols_nv) */
SC_ALWAYS_INLINE static inline void V(xent_cols_nv)(const SC_T *z, ptrdiff_t ldz, const SC_T *q,
                                                    ptrdiff_t ldq, const int64_t *t, ptrdiff_t ldt,
                                                    SC_T *g, ptrdiff_t ldg, double *loss,
                                                    ptrdiff_t ldl, size_t n, size_t m, size_t nv,
                                                    size_t kl, const sc_xent_params *p)
{
    enum { NV = SC_COLS_MAX / VN };
    const SC_T *w = (const SC_T *)p->weight;
    const double ls = p->label_smoothing, eps = ls / (double)n;
    const int kind = q ? SC_XENT_PROB : eps != 0.0 ? SC_XENT_INDEX_SMOOTH : SC_XENT_PLAIN;
    const VEC a = V(set1)((SC_T)(1.0 - ls)), b = V(set1)((SC_T)eps);
    VEC mx[NV], hu[NV], lu[NV], hd[NV], ld[NV], au[NV], ad[NV];
    SC_T lane_m[SC_COLS_MAX], lane_a[SC_COLS_MAX], lane_b[SC_COLS_MAX], lane_keep[SC_COLS_MAX];
    SC_T lane_gt[SC_COLS_MAX], tmp[SC_COLS_MAX] = {0}, tmp2[SC_COLS_MAX] = {0};
    double lane_s[SC_COLS_MAX], lane_ln[SC_COLS_MAX], lane_u[SC_COLS_MAX], lane_d[SC_COLS_MAX], lane_zt[SC_COLS_MAX];
    int64_t lane_t[SC_COLS_MAX];
    int keep_z = g == NULL, any_ignored = 0;
    /* 1 */
    for (size_t v = 0; v < nv; v++)
        mx[v] = V(set1)((SC_T)-INFINITY);
    for (size_t i = 0; i < n; i++) {
        const SC_T *zi = z + (ptrdiff_t)i * ldz;
        for (size_t v = 0; v < nv; v++)
            mx[v] = V(max)(mx[v], V(ldk)(zi + v * VN, v + 1 < nv ? VN : kl, (SC_T)-INFINITY));
    }
    for (size_t v = 0; v < nv; v++)
        V(store)(lane_m + v * VN, mx[v]);
    for (size_t l = 0; l < m; l++) {
        lane_t[l] = q ? 0 : t[(ptrdiff_t)l * ldt];
        lane_zt[l] = !q && lane_t[l] >= 0 && (uint64_t)lane_t[l] < (uint64_t)n
                         ? (double)z[(ptrdiff_t)lane_t[l] * ldz + (ptrdiff_t)l]
                         : 0.0;
        lane_u[l] = lane_d[l] = 0.0;
    }
    /* 2 */
    if (kind != SC_XENT_PLAIN) {
        for (size_t v = 0; v < nv; v++)
            hu[v] = lu[v] = hd[v] = ld[v] = V(set1)((SC_T)0);
        for (size_t i0 = 0; i0 < n; i0 += 8) {
            size_t i1 = n - i0 < 8 ? n : i0 + 8;
            for (size_t v = 0; v < nv; v++)
                au[v] = ad[v] = V(set1)((SC_T)0);
            for (size_t i = i0; i < i1; i++) {
                const SC_T *zi = z + (ptrdiff_t)i * ldz;
                const SC_T *qi = q ? q + (ptrdiff_t)i * ldq : NULL;
                const VEC wi = V(set1)(w ? w[i] : (SC_T)1);
                for (size_t v = 0; v < nv; v++) {
                    size_t k = v + 1 < nv ? VN : kl;
                    VEC u = V(xc_u)(qi ? qi + v * VN : NULL, k, wi, a, b, kind);
                    au[v] = V(add)(au[v], u);
                    ad[v] = V(fma)(u, V(sub)(mx[v], V(ldk)(zi + v * VN, k, (SC_T)0)), ad[v]);
                }
            }
            for (size_t v = 0; v < nv; v++) {
                V(two_sum)(&hu[v], &lu[v], au[v]);
                V(two_sum)(&hd[v], &ld[v], ad[v]);
            }
        }
        for (size_t v = 0; v < nv; v++) {
            V(store)(tmp + v * VN, hu[v]);
            V(store)(tmp2 + v * VN, lu[v]);
        }
        for (size_t l = 0; l < m; l++)
            lane_u[l] = (double)tmp[l] + (double)tmp2[l];
        for (size_t v = 0; v < nv; v++) {
            V(store)(tmp + v * VN, hd[v]);
            V(store)(tmp2 + v * VN, ld[v]);
        }
        for (size_t l = 0; l < m; l++) {
            lane_d[l] = (double)tmp[l] + (double)tmp2[l];
            if (isfinite(lane_u[l]) && isfinite(lane_d[l]))
                continue;
            /* SC_T lanes overflowed, or u is far outside [0, 1]: in double */
            double U = 0.0, D = 0.0, ml = (double)lane_m[l];
            for (size_t i = 0; i < n; i++) {
                double u = q ? (double)q[(ptrdiff_t)i * ldq + (ptrdiff_t)l] * (1.0 - ls) + eps
                             : 1.0;
                if (w)
                    u *= (double)w[i];
                U += u;
                D += u * (ml - (double)z[(ptrdiff_t)i * ldz + (ptrdiff_t)l]);
            }
            lane_u[l] = U;
            lane_d[l] = D;
            if (q && !(isfinite(U) && isfinite(D)))
                keep_z = 1;
        }
    }
    /* 3 */
    V(cols_expsum)(z, ldz, keep_z ? NULL : g, ldg, n, nv, kl, mx, hu, lu, NULL);
    for (size_t v = 0; v < nv; v++) {
        V(store)(tmp + v * VN, hu[v]);
        V(store)(tmp2 + v * VN, lu[v]);
    }
    /* 4: the lanes' logs together, then per lane */
    for (size_t l = 0; l < m; l++)
        lane_s[l] = lane_ln[l] = (double)tmp[l] + (double)tmp2[l];
    for (size_t l = m; l < SC_COLS_MAX; l++)
        lane_ln[l] = 1.0;
    for (size_t l = 0; l < m; l += SC_LOGD_N)
        sc_logd_n(lane_ln + l);
    for (size_t l = 0; l < m; l++) {
        const double s = lane_s[l], ln_s = lane_ln[l], ml = (double)lane_m[l];
        double A, B, L;
        lane_keep[l] = (SC_T)1;
        lane_gt[l] = (SC_T)0;
        if (q) {
            const double U = lane_u[l], D = lane_d[l];
            if (isfinite(U) && isfinite(D)) {
                L = sc_xent_loss_value(U, ln_s, D);
            } else { /* term by term */
                L = V(xent_loss_terms)(z + l, ldz, q + l, ldq, w, n, ml, ln_s, ls);
            }
            A = p->scale * U / s;
            B = p->scale;
        } else if (lane_t[l] < 0) { /* ignored */
            L = A = B = 0.0;
            lane_keep[l] = (SC_T)0;
            any_ignored = 1;
        } else if ((uint64_t)lane_t[l] >= (uint64_t)n) { /* no such class */
            L = A = B = NAN;
        } else {
            sc_xent_loss_t lt;
            V(xent_finish_index)(lane_t[l], lane_zt[l], NULL, n, ml, s, lane_d[l], p, 1, &lt, &A,
                                 &B, lane_gt + l);
            L = sc_xent_loss_value(lt.a, ln_s, lt.b);
        }
        loss[(ptrdiff_t)l * ldl] = L;
        lane_a[l] = (SC_T)A;
        lane_b[l] = (SC_T)B;
    }
    for (size_t l = m; l < nv * VN; l++) /* lanes past the block: computed, never stored */
        lane_a[l] = lane_b[l] = lane_keep[l] = (SC_T)0;
    if (g == NULL)
        return;
    VEC va[NV], vb[NV], vk[NV];
    for (size_t v = 0; v < nv; v++) {
        va[v] = V(load)(lane_a + v * VN);
        vb[v] = V(load)(lane_b + v * VN);
        vk[v] = V(load)(lane_keep + v * VN);
    }
    const VEC half = V(set1)((SC_T)0.5), zero = V(set1)((SC_T)0);
    /* the next panel, where it follows this one (as in fwd_cols_nv): on an
     * Intel Xeon, 64x1000x32 one thread, four runs each: float32 830-897 ->
     * 797-825 us, float64 1833-1924 -> 1623-1848 us */
    const int next = ldz == (ptrdiff_t)m;
    for (size_t i = 0; i < n; i++) {
        const SC_T *zi = z + (ptrdiff_t)i * ldz;
        const SC_T *qi = q ? q + (ptrdiff_t)i * ldq : NULL;
        SC_T *gi = g + (ptrdiff_t)i * ldg;
        if (next)
            for (size_t v = 0; v < nv; v++)
                SC_PREFETCH(zi + (ptrdiff_t)n * ldz + v * VN);
        const VEC wi = V(set1)(w ? w[i] : (SC_T)1);
        for (size_t v = 0; v < nv; v++) {
            size_t k = v + 1 < nv ? VN : kl;
            VEC e = keep_z ? V(exp_neg)(V(sub)(V(ldk)(zi + v * VN, k, (SC_T)-INFINITY), mx[v]))
                           : V(ldk)(gi + v * VN, k, (SC_T)0);
            VEC gv = V(mul)(e, va[v]);
            if (kind != SC_XENT_PLAIN)
                gv = V(sub)(gv, V(mul)(vb[v], V(xc_u)(qi ? qi + v * VN : NULL, k, wi, a, b, kind)));
            if (any_ignored)
                gv = V(select_lt)(vk[v], half, zero, gv);
            V(stk)(gi + v * VN, gv, k);
        }
    }
    if (!q)
        for (size_t l = 0; l < m; l++)
            if (lane_t[l] >= 0 && (uint64_t)lane_t[l] < (uint64_t)n)
                g[(ptrdiff_t)lane_t[l] * ldg + (ptrdiff_t)l] = lane_gt[l];
}

static void V(xent_cols_block)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq,
                               const int64_t *t, ptrdiff_t ldt, SC_T *g, ptrdiff_t ldg,
                               double *loss, ptrdiff_t ldl, size_t n, size_t m,
                               const sc_xent_params *p)
{
    const size_t nv = (m + VN - 1) / VN, kl = m - (nv - 1) * VN;
    switch (nv) {
    case 1: V(xent_cols_nv)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, 1, kl, p); break;
    case 2: V(xent_cols_nv)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, 2, kl, p); break;
    case 3: V(xent_cols_nv)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, 3, kl, p); break;
    case 4: V(xent_cols_nv)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, 4, kl, p); break;
    default: V(xent_cols_nv)(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, nv, kl, p); break;
    }
}

void KFN(xent_cols)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq, const int64_t *t,
                    ptrdiff_t ldt, SC_T *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t n,
                    size_t m, const sc_xent_params *p)
{
    for (size_t j = 0; j < m; j += SC_COLS_MAX) {
        size_t w = m - j < SC_COLS_MAX ? m - j : SC_COLS_MAX;
        if (n == 0) { /* nothing to read: the row kernel's answers */
            KFN(xent_rows)(z + j, 1, q ? q + j : NULL, 1, q ? NULL : t + (ptrdiff_t)j * ldt, ldt,
                           NULL, 0, loss + (ptrdiff_t)j * ldl, ldl, w, 0, p);
            continue;
        }
        V(xent_cols_block)(z + j, ldz, q ? q + j : NULL, ldq, q ? NULL : t + (ptrdiff_t)j * ldt,
                           ldt, g ? g + j : NULL, ldg, loss + (ptrdiff_t)j * ldl, ldl, n, w, p);
    }
}

#undef C_
#undef V
#undef VEC
#undef VN
#undef KFN
#undef SC_CHUNK
#undef SC_BWD_CHUNK
