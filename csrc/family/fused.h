/*
 * family/fused.h - softmax, log_softmax and logsumexp with the fused
 * inference options (softmax_c.h, sc_fused_rows): per element
 *   z = x * scale; z = softcap * tanh(z / softcap); z = z + bias;
 * a causal kept prefix per row, bias == -inf excluding its position, and a
 * sink logit that joins the max and the sum only.
 *
 * Two forms of a row:
 *   - the fast form (ff_row, ff_pipe; calls without a sink): the plain
 *     row steps of family/exp_steps.h over the kept prefix, the scale
 *     folded into the exponential's argument, or over z made once per row
 *     (softcap, bias); softmax rows of large outputs pipelined as
 *     family/pipe.h's;
 *   - the general row (fused_row): three sweeps that compute z from x (and
 *     bias) in registers, or store it first with softcap; it takes sinks,
 *     scales <= 0, and writes the special rows.
 * The excluded tail of a causal row is written (0 / -inf) without being
 * read.  Rows whose max is not finite or whose sum is not (a NaN or +inf
 * among the kept z) get NaN at the kept positions and 0 / -inf at the
 * excluded ones; a row with nothing left (all excluded or -inf, no sink)
 * is 0 / -inf.
 */

/* V(tanh) lives in family/tanh.h, shared with the cross-entropy's softcap. */

/* Lane-wise tanh for the tests (softmax_c.h, sc_tanh_*): y = tanh(x). */
void KFN(tanh_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        size_t i = 0;
        for (; i + VN <= n; i += VN)
            V(store)(yr + i, V(tanh)(V(load)(xr + i)));
        if (i < n)
            V(storet)(yr + i, V(tanh)(V(loadt)(xr + i, n - i, (SC_T)0)), n - i);
    }
}

/* ---- step 1: z of the kept prefix ------------------------------------- */

#ifndef SC_FUSED_BIAS_MODES
#define SC_FUSED_BIAS_MODES
enum { SC_FB_NONE = 0, SC_FB_ROW = 1, SC_FB_ONE = 2 }; /* bias: none, a row, one value */
#endif

SC_ALWAYS_INLINE static inline VEC V(fz)(VEC xv, VEC bv, VEC vs, VEC vc, VEC vic, int cap,
                                         int bmode)
{
    VEC z = V(mul)(xv, vs);
    if (cap)
        z = V(mul)(vc, V(tanh)(V(mul)(z, vic)));
    if (bmode != SC_FB_NONE) {
        /* bias -inf excludes its position, whatever z is */
        z = V(select_lt)(bv, V(set1)(SC_IS_F64 ? (SC_T)-1.7976931348623157e308 : (SC_T)-3.4028234663852886e38),
                         V(set1)((SC_T)-INFINITY), V(add)(z, bv));
    }
    return z;
}

/* z[0..L) of one row stored to d, returning its max (-inf for L == 0). */
SC_ALWAYS_INLINE static inline SC_T V(fz_row)(const SC_T *x, const SC_T *b, SC_T *d, size_t L,
                                              SC_T sc, SC_T cap_v, int cap, int bmode)
{
    const VEC vs = V(set1)(sc), vc = V(set1)(cap_v), vic = V(set1)((SC_T)1 / cap_v);
    VEC m0 = V(set1)((SC_T)-INFINITY), m1 = m0;
    VEC bone = V(set1)(bmode == SC_FB_ONE ? b[0] : (SC_T)0);
    size_t i = 0;
    for (; i + 2 * VN <= L; i += 2 * VN) {
        VEC b0 = bmode == SC_FB_ROW ? V(load)(b + i) : bone;
        VEC b1 = bmode == SC_FB_ROW ? V(load)(b + i + VN) : bone;
        VEC z0 = V(fz)(V(load)(x + i), b0, vs, vc, vic, cap, bmode);
        VEC z1 = V(fz)(V(load)(x + i + VN), b1, vs, vc, vic, cap, bmode);
        V(store)(d + i, z0);
        V(store)(d + i + VN, z1);
        m0 = V(max)(m0, z0);
        m1 = V(max)(m1, z1);
    }
    for (; i < L; i += VN) {
        const size_t k = L - i < VN ? L - i : VN;
        VEC bv = bmode == SC_FB_ROW ? V(ldk)(b + i, k, (SC_T)0) : bone;
        VEC z = V(fz)(V(ldk)(x + i, k, (SC_T)0), bv, vs, vc, vic, cap, bmode);
        V(stk)(d + i, z, k);
        m0 = V(max)(m0, k == VN ? z : V(blend_lanes)(z, V(set1)((SC_T)-INFINITY), k));
    }
    return V(hmax)(V(max)(m0, m1));
}

/* ---- without softcap: z recomputed in every sweep ------------------------
 * z = x * scale (+ bias) costs one or two operations, less than a store
 * and a reload of z would: these sweeps read x (and bias) as the plain
 * kernels read x, and store only the results. */

/* z of the k (< VN, or VN) elements at i, lanes past k -inf. */
SC_ALWAYS_INLINE static inline VEC V(fz_at)(const SC_T *x, const SC_T *b, size_t i, size_t k,
                                            VEC vs, VEC bone, int bmode)
{
    const VEC one = V(set1)((SC_T)1);
    VEC bv = bmode == SC_FB_ROW ? V(ldk)(b + i, k, (SC_T)0) : bone;
    VEC z = V(fz)(V(ldk)(x + i, k, (SC_T)0), bv, vs, one, one, 0, bmode);
    return k == VN ? z : V(blend_lanes)(z, V(set1)((SC_T)-INFINITY), k);
}

SC_ALWAYS_INLINE static inline SC_T V(fz_max)(const SC_T *x, const SC_T *b, size_t L, SC_T sc, int bmode)
{
    const VEC vs = V(set1)(sc), bone = V(set1)(bmode == SC_FB_ONE ? b[0] : (SC_T)0);
    VEC m0 = V(set1)((SC_T)-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 4 * VN <= L; i += 4 * VN) {
        m0 = V(max)(m0, V(fz_at)(x, b, i, VN, vs, bone, bmode));
        m1 = V(max)(m1, V(fz_at)(x, b, i + VN, VN, vs, bone, bmode));
        m2 = V(max)(m2, V(fz_at)(x, b, i + 2 * VN, VN, vs, bone, bmode));
        m3 = V(max)(m3, V(fz_at)(x, b, i + 3 * VN, VN, vs, bone, bmode));
    }
    for (; i < L; i += VN)
        m0 = V(max)(m0, V(fz_at)(x, b, i, L - i < VN ? L - i : VN, vs, bone, bmode));
    return V(hmax)(V(max)(V(max)(m0, m1), V(max)(m2, m3)));
}

/* The sum of exp(z - mx) over z[0..L), in chunks as V(expsum); each term
 * stored to y unless y is NULL. */
SC_ALWAYS_INLINE static inline double V(fz_expsum)(const SC_T *x, const SC_T *b, SC_T *y,
                                                   size_t L, SC_T sc, int bmode, SC_T mx)
{
    const VEC vs = V(set1)(sc), bone = V(set1)(bmode == SC_FB_ONE ? b[0] : (SC_T)0);
    const VEC vm = V(set1)(mx);
    double s = 0.0, c = 0.0;
    for (size_t i0 = 0; i0 < L; i0 += SC_CHUNK) {
        const size_t end = L - i0 < SC_CHUNK ? L : i0 + SC_CHUNK;
        VEC a0 = V(set1)((SC_T)0), a1 = a0, a2 = a0, a3 = a0;
        size_t i = i0;
        for (; i + 4 * VN <= end; i += 4 * VN) {
            VEC e0 = V(exp_neg)(V(sub)(V(fz_at)(x, b, i, VN, vs, bone, bmode), vm));
            VEC e1 = V(exp_neg)(V(sub)(V(fz_at)(x, b, i + VN, VN, vs, bone, bmode), vm));
            VEC e2 = V(exp_neg)(V(sub)(V(fz_at)(x, b, i + 2 * VN, VN, vs, bone, bmode), vm));
            VEC e3 = V(exp_neg)(V(sub)(V(fz_at)(x, b, i + 3 * VN, VN, vs, bone, bmode), vm));
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
        for (; i < end; i += VN) {
            const size_t k = end - i < VN ? end - i : VN;
            VEC e = V(exp_neg)(V(sub)(V(fz_at)(x, b, i, k, vs, bone, bmode), vm));
            if (y)
                V(stk)(y + i, e, k);
            a1 = V(add)(a1, e);
        }
        sc_two_sum_add(&s, &c, V(hsum)(V(add)(V(add)(a0, a1), V(add)(a2, a3))));
    }
    return s + c;
}

/* log_softmax's write sweep: y = (z - mx) - c over [0, L). */
SC_ALWAYS_INLINE static inline void V(fz_final)(const SC_T *x, const SC_T *b, SC_T *y, size_t L,
                                                SC_T sc, int bmode, SC_T mx, SC_T c)
{
    const VEC vs = V(set1)(sc), bone = V(set1)(bmode == SC_FB_ONE ? b[0] : (SC_T)0);
    const VEC vm = V(set1)(mx), vc = V(set1)(c);
    size_t i = 0;
    for (; i + 2 * VN <= L; i += 2 * VN) {
        VEC z0 = V(fz_at)(x, b, i, VN, vs, bone, bmode);
        VEC z1 = V(fz_at)(x, b, i + VN, VN, vs, bone, bmode);
        V(store)(y + i, V(final_op)(z0, vm, vc));
        V(store)(y + i + VN, V(final_op)(z1, vm, vc));
    }
    for (; i < L; i += VN) {
        const size_t k = L - i < VN ? L - i : VN;
        V(stk)(y + i, V(final_op)(V(fz_at)(x, b, i, k, vs, bone, bmode), vm, vc), k);
    }
}

/* One z, in scalar code, for the special rows: whether position j is
 * excluded by the bias. */
static inline int V(fexcluded)(const SC_T *b, int bmode, size_t j)
{
    return bmode != SC_FB_NONE && b[bmode == SC_FB_ROW ? j : 0] == (SC_T)-INFINITY;
}

/* Whether a kept z of the row (d: the stored z, or NULL: x * sc + bias)
 * is NaN: the vector max skips NaN, so a row whose max is -inf may hold
 * one (then it is NaN, not empty). */
static int V(fz_nan)(const SC_T *x, const SC_T *b, const SC_T *d, size_t L, SC_T sc, int bmode)
{
    for (size_t j = 0; j < L; j++) {
        SC_T z = d ? d[j] : x[j] * sc;
        if (!d && bmode != SC_FB_NONE)
            z += b[bmode == SC_FB_ROW ? j : 0];
        if (z != z && !V(fexcluded)(b, bmode, j))
            return 1;
    }
    return 0;
}

/* y[0..n) = v; with `stream`, the whole lines of y through streaming
 * stores (the caller fences): a causal row's excluded tail is only
 * written, and in a large output would otherwise be read for ownership
 * first.  The line y starts in, shared with the kept part, takes plain
 * stores. */
static void V(fill)(SC_T *y, size_t n, SC_T v, int stream)
{
    const VEC vv = V(set1)(v);
    size_t i = 0;
    if (stream && VN > 1 && (size_t)y % sizeof(SC_T) == 0) {
        const size_t lw = SC_LINE / sizeof(SC_T), mis = ((size_t)y / sizeof(SC_T)) % lw;
        size_t head = mis ? lw - mis : 0;
        if (head > n)
            head = n;
        for (; i + VN <= head; i += VN)
            V(store)(y + i, vv);
        if (i < head) {
            V(storet)(y + i, vv, head - i);
            i = head;
        }
        for (; i + VN <= n; i += VN)
            V(stream)(y + i, vv);
    }
    for (; i + VN <= n; i += VN)
        V(store)(y + i, vv);
    if (i < n)
        V(storet)(y + i, vv, n - i);
}

/* The write sweep into a large output (stream): y[0..L) from the work row
 * w (softmax: w * c0; log_softmax: (w - c0) - c1) or, with w NULL, from x
 * and bias (log_softmax without softcap: (z - c0) - c1): plain stores up
 * to y's first line boundary, whole lines through streaming stores, the
 * last partial line plain (it shares its line with what follows).  The
 * caller fences. */
SC_ALWAYS_INLINE static inline VEC V(fst_val)(int op, const SC_T *w, const SC_T *x,
                                              const SC_T *b, size_t i, size_t k, VEC vs,
                                              VEC bone, int bmode, VEC c0, VEC c1)
{
    if (op == SC_FUSED_SOFTMAX)
        return V(mul)(V(ldk)(w + i, k, (SC_T)0), c0);
    if (w)
        return V(final_op)(V(ldk)(w + i, k, (SC_T)0), c0, c1);
    return V(final_op)(V(fz_at)(x, b, i, k, vs, bone, bmode), c0, c1);
}

SC_ALWAYS_INLINE static inline void V(fstream)(int op, SC_T *y, const SC_T *w, const SC_T *x,
                                               const SC_T *b, size_t L, SC_T sc, int bmode,
                                               SC_T a0, SC_T a1)
{
    const VEC vs = V(set1)(sc), bone = V(set1)(bmode == SC_FB_ONE ? b[0] : (SC_T)0);
    const VEC c0 = V(set1)(a0), c1 = V(set1)(a1);
    const size_t lw = SC_LINE / sizeof(SC_T), mis = ((size_t)y / sizeof(SC_T)) % lw;
    size_t head = mis ? lw - mis : 0, i = 0;
    if (head > L)
        head = L;
    for (; i < head; i += VN) {
        const size_t k = head - i < VN ? head - i : VN;
        V(stk)(y + i, V(fst_val)(op, w, x, b, i, k, vs, bone, bmode, c0, c1), k);
    }
    i = head;
    for (; i + lw <= L; i += lw)
        for (size_t j = i; j < i + lw; j += VN)
            V(stream)(y + j, V(fst_val)(op, w, x, b, j, VN, vs, bone, bmode, c0, c1));
    for (; i < L; i += VN) {
        const size_t k = L - i < VN ? L - i : VN;
        V(stk)(y + i, V(fst_val)(op, w, x, b, i, k, vs, bone, bmode, c0, c1), k);
    }
}

/* One row, every sweep; y the output row (softmax, log_softmax) or NULL
 * (logsumexp: the row goes to `work`, the result is returned). */
SC_ALWAYS_INLINE static inline SC_T V(fused_row)(int op, const SC_T *x, SC_T *y, const SC_T *b,
                                                 size_t n, size_t L, SC_T sc, SC_T cap_v,
                                                 int has_sink, double sink, SC_T *work, int cap,
                                                 int bmode, int stream, const SC_T *pf, size_t pfn,
                                                 const SC_T *pfb)
{
    /* with softcap, z is stored by the first sweep (d) and read back;
     * without, each sweep computes it again from x */
    /* stream (a large output, VN > 1): the row is made in the work row and
     * written once, through streaming stores (no read of y's lines) */
    const int st = stream && work && VN > 1 && op != SC_FUSED_LOGSUMEXP;
    SC_T *d = op == SC_FUSED_LOGSUMEXP || st ? work : y;
    SC_T mx = cap ? V(fz_row)(x, b, d, L, sc, cap_v, cap, bmode) : V(fz_max)(x, b, L, sc, bmode);
    /* the next row's kept part (and bias), while this row's sweeps compute */
    for (size_t k = 0; pf && k < pfn; k += SC_LINE / sizeof(SC_T)) {
        SC_PREFETCH(pf + k);
        if (pfb)
            SC_PREFETCH(pfb + k);
    }
    double s = 0.0;
    if (has_sink && (double)mx < sink)
        mx = (SC_T)sink;
    if (has_sink && sink != sink)
        mx = (SC_T)NAN;
    const SC_T empty = op == SC_FUSED_SOFTMAX ? (SC_T)0 : (SC_T)-INFINITY;
    if (mx == (SC_T)-INFINITY && !V(fz_nan)(x, b, cap ? d : NULL, L, sc, bmode)) {
        /* nothing left */
        if (op != SC_FUSED_LOGSUMEXP)
            V(fill)(y, n, empty, stream);
        return (SC_T)-INFINITY;
    }
    /* +inf or NaN, or -inf beside a NaN */
    int special = !(mx < (SC_T)INFINITY) || mx == (SC_T)-INFINITY;
    if (!special) {
        if (cap)
            s = V(expsum)(d, op == SC_FUSED_SOFTMAX ? d : NULL, L, mx, NULL);
        else
            s = V(fz_expsum)(x, b, op == SC_FUSED_SOFTMAX ? d : NULL, L, sc, bmode, mx);
        if (has_sink)
            s += exp(sink - (double)mx);
        special = !(s < INFINITY); /* NaN among the z */
    }
    if (op == SC_FUSED_LOGSUMEXP) {
        if (!special)
            return (SC_T)((double)mx + log(s));
        if (mx != mx || s != s)
            return (SC_T)NAN;
        for (size_t j = 0; j < L; j++) {
            /* z again, as the kernel computes it (without softcap, x * sc
             * + b; with, the stored z) */
            SC_T z = cap ? d[j] : x[j] * sc + (bmode == SC_FB_NONE ? (SC_T)0 : b[bmode == SC_FB_ROW ? j : 0]);
            if (z != z && !V(fexcluded)(b, bmode, j))
                return (SC_T)NAN;
        }
        return (SC_T)INFINITY;
    }
    if (special) {
        for (size_t j = 0; j < L; j++)
            y[j] = V(fexcluded)(b, bmode, j) ? empty : (SC_T)NAN;
    } else if (L == 0) {
    } else if (st) {
        if (op == SC_FUSED_SOFTMAX)
            V(fstream)(op, y, d, x, b, L, sc, bmode, (SC_T)(1.0 / s), (SC_T)0);
        else
            V(fstream)(op, y, cap ? d : NULL, x, b, L, sc, bmode, mx, (SC_T)log(s));
    } else if (op == SC_FUSED_SOFTMAX) {
        V(scale)(y, L, (SC_T)(1.0 / s));
    } else if (cap) {
        V(final_pass)(y, y, L, mx, (SC_T)log(s), 0);
    } else {
        V(fz_final)(x, b, y, L, sc, bmode, mx, (SC_T)log(s));
    }
    if (L < n)
        V(fill)(y + L, n - L, empty, stream);
    return (SC_T)0;
}

/* ---- the fast form: the plain row steps over the kept prefix ----------
 * Calls without a sink.  Without softcap and bias, a row is the plain
 * steps (family/exp_steps.h) over its kept prefix with the scale folded
 * into the exponential's argument: mx = max(x), e = exp((x - mx) scale),
 * log_softmax (x - mx) scale - log(s), which for scale > 0 is the softmax
 * of z = x * scale with z's max taken exactly (rounding is monotone) and
 * without the rounding of x * scale and z - max(z).  Rows with another
 * scale take fused_row.  With softcap or bias, z is made once (fz_row) in
 * the output row or, pipelined, in a scratch row still in L1, and the
 * plain steps run over it.  Softmax rows of large outputs are pipelined
 * as family/pipe.h's (the previous row streamed out while this row's
 * exponentials are summed), with the same bits as the row at a time.
 * A row whose max or sum is not finite (a NaN or +inf among the kept z,
 * or nothing left) is written by ff_special, as fused_row writes it. */

/* The special row of the fast form: 0 / -inf everywhere when nothing is
 * left (`empty`), else NaN at the kept positions the bias keeps. */
static void V(ff_special)(int op, SC_T *y, const SC_T *b, int bmode, size_t n, size_t L,
                          int empty)
{
    const SC_T e = op == SC_FUSED_SOFTMAX ? (SC_T)0 : (SC_T)-INFINITY;
    size_t j = 0;
    if (!empty)
        for (; j < L; j++)
            y[j] = V(fexcluded)(b, bmode, j) ? e : (SC_T)NAN;
    V(fill)(y + j, n - j, e, 0);
}

/* One row of the fast form a row at a time (y the output row; logsumexp:
 * NULL, the result returned).  0 with nothing written when the row takes
 * fused_row instead (a scale <= 0 without softcap and bias). */
SC_ALWAYS_INLINE static inline int V(ff_row)(int op, const SC_T *x, SC_T *y, const SC_T *b,
                                              size_t n, size_t L, SC_T sc, SC_T cap_v, int cap,
                                              int bmode, int stream, const SC_T *pf,
                                              SC_T *res)
{
    const int mat = cap || bmode != SC_FB_NONE;
    const SC_T empty = op == SC_FUSED_SOFTMAX ? (SC_T)0 : (SC_T)-INFINITY;
    if (!mat && !(sc > (SC_T)0))
        return 0;
    if (L == 0) {
        if (op == SC_FUSED_LOGSUMEXP)
            *res = (SC_T)-INFINITY;
        else
            V(fill)(y, n, empty, stream);
        return 1;
    }
    /* z in y (made there with softcap or bias), else read from x */
    const SC_T mx = mat ? V(fz_row)(x, b, y, L, sc, cap_v, cap, bmode) : V(row_max)(x, L);
    const SC_T *src = mat ? y : x;
    double s = INFINITY;
    if (mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY)
        s = V(expsum_s)(src, op == SC_FUSED_SOFTMAX ? y : NULL, L, mx, pf, sc, !mat);
    if (op == SC_FUSED_LOGSUMEXP) { /* without softcap and bias only */
        if (!(s < INFINITY))
            *res = V(lse_nonfinite)(x, 1, L, mx);
        else
            *res = (SC_T)((double)mx * (double)sc + log(s));
        return 1;
    }
    if (!(s < INFINITY)) {
        V(ff_special)(op, y, b, bmode, n, L,
                      mx == (SC_T)-INFINITY && !V(fz_nan)(x, b, mat ? y : NULL, L, sc, bmode));
        return 1;
    }
    if (op == SC_FUSED_SOFTMAX)
        V(scale)(y, L, (SC_T)(1.0 / s));
    else if (mat)
        V(final_pass_s)(y, y, L, mx, (SC_T)log(s), stream, (SC_T)1, 0);
    else
        V(final_pass_s)(x, y, L, mx, (SC_T)log(s), stream, sc, 1);
    if (L < n)
        V(fill)(y + L, n - L, empty, stream);
    return 1;
}

/* The row parameters fused_loop and ff_pipe share: row r's kept length. */
SC_ALWAYS_INLINE static inline size_t V(kept)(const sc_fused_params *p, size_t q, size_t n)
{
    if (!p->causal)
        return n;
    const ptrdiff_t kept = (ptrdiff_t)q + p->causal_k + 1;
    return kept <= 0 ? 0 : ((size_t)kept < n ? (size_t)kept : n);
}

/* Softmax rows of a large output in the fast form, pipelined: row r's
 * exponentials (and zeros past its kept prefix) made in a scratch row
 * chunk by chunk, while row r - 1's scratch row is written out scaled by
 * its 1 / s (pipe_piece, streaming stores).  `work`: sc_pipe_work
 * elements.  A row that takes fused_row or ff_special is written at once
 * with plain stores, after the row before it. */
static void V(ff_pipe)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                       size_t n, const SC_T *bias, const SC_T *scale, size_t q0,
                       const sc_fused_params *p, SC_T *work, int cap, int bmode)
{
    const size_t lw = SC_LINE / sizeof(SC_T), np = (n + lw - 1) / lw * lw;
    const int mat = cap || bmode != SC_FB_NONE;
    const SC_T cap_v = cap ? (SC_T)p->softcap : (SC_T)1;
    SC_T *cur = work + (lw - ((uintptr_t)work / sizeof(SC_T)) % lw) % lw, *prev = cur + np;
    SC_T *py = NULL, p0 = 0;
    const SC_T *psrc = NULL;
    size_t phead = 0;
    V(carry_t) cy_buf, *carry = ldy == (ptrdiff_t)n ? &cy_buf : NULL;
    cy_buf.k = 0;
    for (size_t r = 0; r < rows; r++) {
        const size_t L = V(kept)(p, q0 + r, n);
        const SC_T sc = scale ? scale[(ptrdiff_t)r * p->ld_scale] : (SC_T)p->scale;
        const SC_T *br = bias ? bias + (ptrdiff_t)r * p->ld_bias : NULL;
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        /* the next row's kept prefix (and bias row), prefetched chunk by
         * chunk, and rows after it up to SC_FF_AHEAD_BYTES */
        const SC_T *pf = r + 1 < rows ? xr + ldx : NULL;
        const SC_T *pfb = pf && bmode == SC_FB_ROW && p->ld_bias != 0 ? br + p->ld_bias : NULL;
        const size_t pfn = L + 1 < n ? L + 1 : n;
        int ok = L > 0 && (mat || sc > (SC_T)0);
        SC_T mx = (SC_T)-INFINITY;
        if (ok) {
            mx = mat ? V(fz_row)(xr, br, cur, L, sc, cap_v, cap, bmode) : V(row_max)(xr, L);
            ok = mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY;
        }
        double s = 0.0, c = 0.0;
        if (ok) {
            const VEC vm = V(set1)(mx), vs = V(set1)(sc);
            for (size_t i = 0, k = 0; i < n; i += SC_CHUNK, k++) {
                const size_t e = n - i < SC_CHUNK ? n : i + SC_CHUNK;
                size_t j = i;
                for (size_t q = i; pf && q < e && q < pfn; q += lw) {
                    SC_PREFETCH(pf + q);
                    if (pfb)
                        SC_PREFETCH(pfb + q);
                }
                /* rows after the next, while the kept prefixes ahead are
                 * short: a short causal row's sweeps do not hide a fetch */
                size_t ahead = pfn * sizeof(SC_T);
                for (size_t a = 2; a <= 4 && ahead < SC_FF_AHEAD_BYTES && r + a < rows; a++) {
                    const SC_T *pa = xr + (ptrdiff_t)a * ldx;
                    const SC_T *pb = pfb ? br + (ptrdiff_t)a * p->ld_bias : NULL;
                    const size_t la = V(kept)(p, q0 + r + a, n);
                    for (size_t q = i; q < e && q < la; q += lw) {
                        SC_PREFETCH(pa + q);
                        if (pb)
                            SC_PREFETCH(pb + q);
                    }
                    ahead += la * sizeof(SC_T);
                }
                if (i < L) {
                    j = L < e ? L : e;
                    const VEC v = mat ? V(expsum_chunk_s)(cur + i, cur + i, j - i, vm, vs, 0)
                                      : V(expsum_chunk_s)(xr + i, cur + i, j - i, vm, vs, 1);
                    sc_two_sum_add(&s, &c, V(hsum)(v));
                }
                if (j < e)
                    V(fill)(cur + j, e - j, (SC_T)0, 0);
                size_t j0, j1;
                if (py && V(pipe_span)(phead, k, n, &j0, &j1))
                    V(pipe_piece)(psrc, py, j0, j1, phead, p0, 0, 0, carry, 0);
            }
            ok = s + c < INFINITY;
            if (!ok && carry && carry->k) { /* the row before is out but its carried tail */
                V(storet)(yr - carry->k, carry->v, carry->k);
                carry->k = 0;
            }
        } else if (py) {
            V(pipe_piece)(psrc, py, 0, n, phead, p0, 0, 0, carry, 1);
        }
        if (!ok) {
            if (L > 0 && !mat && !(sc > (SC_T)0))
                V(fused_row)(SC_FUSED_SOFTMAX, xr, yr, br, n, L, sc, cap_v, 0, 0.0, NULL, cap,
                             bmode, 0, NULL, 0, NULL);
            else
                V(ff_special)(SC_FUSED_SOFTMAX, yr, br, bmode, n, L,
                              L == 0 || (mx == (SC_T)-INFINITY &&
                                         !V(fz_nan)(xr, br, mat ? cur : NULL, L, sc, bmode)));
            py = NULL;
            continue;
        }
        SC_T *t = prev;
        prev = cur;
        cur = t;
        psrc = prev;
        p0 = (SC_T)(1.0 / (s + c));
        py = yr;
        phead = (VN - ((size_t)py / sizeof(SC_T)) % VN) % VN;
        if (r + 1 < rows && !carry) {
            SC_PREFETCH_W(py + ldy);
            SC_PREFETCH_W(py + ldy + n - 1);
        }
    }
    if (py)
        V(pipe_piece)(psrc, py, 0, n, phead, p0, 0, 0, carry, 1);
    sc_sfence();
}

/* Whether a fused call's rows take ff_pipe: softmax without a sink, in a
 * large output (p->stream: the whole call's, so that every thread's share
 * decides alike) of rows as sc_pipe_rows takes them. */
static inline int V(ff_piped)(const sc_fused_params *p, const SC_T *y, ptrdiff_t ldy,
                              size_t rows, size_t n, const SC_T *work)
{
    const size_t rb = n * sizeof(SC_T);
    return VN > 1 && p->op == SC_FUSED_SOFTMAX && !p->has_sink && p->stream && work &&
           rows >= 2 && rb <= SC_PREFETCH_MAX_BYTES &&
           (rb >= SC_PIPE_MIN_BYTES || (ldy == (ptrdiff_t)n && rb >= SC_PIPE_FLAT_MIN_BYTES)) &&
           (size_t)y % sizeof(SC_T) == 0;
}

SC_ALWAYS_INLINE static inline void V(fused_loop)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                  ptrdiff_t ldy, size_t rows, size_t n,
                                                  const SC_T *bias, const SC_T *scale,
                                                  const SC_T *sink, size_t q0,
                                                  const sc_fused_params *p, SC_T *work, int cap,
                                                  int bmode)
{
    const int op = p->op;
    const SC_T cap_v = cap ? (SC_T)p->softcap : (SC_T)1;
    const int stream = p->stream && n * sizeof(SC_T) >= SC_STREAM_MIN_ROW_BYTES;
    /* the fast form: no sink; logsumexp without softcap and bias */
    const int fast = !p->has_sink && (op != SC_FUSED_LOGSUMEXP || (!cap && bmode == SC_FB_NONE));
    if (fast && V(ff_piped)(p, y, ldy, rows, n, work)) {
        V(ff_pipe)(x, ldx, y, ldy, rows, n, bias, scale, q0, p, work, cap, bmode);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const size_t L = V(kept)(p, q0 + r, n);
        const SC_T sc = scale ? scale[(ptrdiff_t)r * p->ld_scale] : (SC_T)p->scale;
        const double sk = sink ? (double)sink[(ptrdiff_t)r * p->ld_sink] : p->sink;
        const SC_T *br = bias ? bias + (ptrdiff_t)r * p->ld_bias : NULL;
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        const SC_T *pf = V(prefetch_row)(xr, ldx, r, rows, n);
        const size_t pfn = L + 1 < n ? L + 1 : n;
        const SC_T *pfb = pf && bmode == SC_FB_ROW && p->ld_bias != 0 ? br + p->ld_bias : NULL;
        SC_T *yr = op == SC_FUSED_LOGSUMEXP ? NULL : y + (ptrdiff_t)r * ldy;
        if (fast) {
            SC_T res = 0;
            if (pfb)
                for (size_t k = 0; k < pfn; k += SC_LINE / sizeof(SC_T))
                    SC_PREFETCH(pfb + k);
            if (V(ff_row)(op, xr, yr, br, n, L, sc, cap_v, cap, bmode, stream, pf, &res)) {
                if (op == SC_FUSED_LOGSUMEXP)
                    y[(ptrdiff_t)r * ldy] = res;
                continue;
            }
        }
        if (op == SC_FUSED_LOGSUMEXP)
            y[(ptrdiff_t)r * ldy] = V(fused_row)(op, xr, NULL, br, n, L, sc, cap_v, p->has_sink,
                                                 sk, work, cap, bmode, 0, pf, pfn, pfb);
        else
            V(fused_row)(op, xr, yr, br, n, L, sc, cap_v, p->has_sink, sk, work, cap, bmode,
                         stream, pf, pfn, pfb);
    }
    if (stream)
        sc_sfence();
}

void KFN(fused_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows, size_t n,
                     const SC_T *bias, const SC_T *scale, const SC_T *sink, size_t q0,
                     const sc_fused_params *p, SC_T *work)
{
    const int cap = p->softcap > 0.0;
    const int bmode = bias == NULL ? SC_FB_NONE : (p->inc_bias == 0 ? SC_FB_ONE : SC_FB_ROW);
#define SC_FUSED_CALL(c, bm) \
    V(fused_loop)(x, ldx, y, ldy, rows, n, bias, scale, sink, q0, p, work, c, bm)
    if (cap) {
        if (bmode == SC_FB_NONE)
            SC_FUSED_CALL(1, SC_FB_NONE);
        else if (bmode == SC_FB_ROW)
            SC_FUSED_CALL(1, SC_FB_ROW);
        else
            SC_FUSED_CALL(1, SC_FB_ONE);
    } else {
        if (bmode == SC_FB_NONE)
            SC_FUSED_CALL(0, SC_FB_NONE);
        else if (bmode == SC_FB_ROW)
            SC_FUSED_CALL(0, SC_FB_ROW);
        else
            SC_FUSED_CALL(0, SC_FB_ONE);
    }
#undef SC_FUSED_CALL
}
