/*
 * family/fused.h - softmax, log_softmax and logsumexp with the fused
 * inference options (softmax_c.h, sc_fused_rows): per element
 *   z = x * scale; z = softcap * tanh(z / softcap); z = z + bias;
 * a causal kept prefix per row, bias == -inf excluding its position, and a
 * sink logit that joins the max and the sum only.
 *
 * A row is three sweeps, as the plain row kernels (family/exp_steps.h):
 *   1. z of the kept prefix computed in registers from x (and bias),
 *      stored to the output row (logsumexp: to the caller's work row),
 *      its max taken on the way;
 *   2. exp(z - mx) summed (softmax: stored) over that row, in place;
 *   3. softmax: scaled by 1 / s; log_softmax: z - mx - log(s).
 * So every option is computed once per element, in the compute dtype, and
 * no array but the output is written.  The excluded tail of a causal row is
 * written (0 / -inf) without being read.  Rows whose max is not finite or
 * whose sum is not (a NaN or +inf among the kept z) take a scalar path
 * that writes NaN at the kept positions and 0 / -inf at the excluded ones;
 * a row with nothing left (all excluded or -inf, no sink) is 0 / -inf.
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
    if (mx == (SC_T)-INFINITY) { /* nothing left */
        if (op != SC_FUSED_LOGSUMEXP)
            V(fill)(y, n, empty, stream);
        return (SC_T)-INFINITY;
    }
    int special = !(mx < (SC_T)INFINITY); /* +inf or NaN */
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
    for (size_t r = 0; r < rows; r++) {
        size_t L = n;
        if (p->causal) {
            const ptrdiff_t kept = (ptrdiff_t)(q0 + r) + p->causal_k + 1;
            L = kept <= 0 ? 0 : ((size_t)kept < n ? (size_t)kept : n);
        }
        const SC_T sc = scale ? scale[(ptrdiff_t)r * p->ld_scale] : (SC_T)p->scale;
        const double sk = sink ? (double)sink[(ptrdiff_t)r * p->ld_sink] : p->sink;
        const SC_T *br = bias ? bias + (ptrdiff_t)r * p->ld_bias : NULL;
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        const SC_T *pf = V(prefetch_row)(xr, ldx, r, rows, n);
        const size_t pfn = L + 1 < n ? L + 1 : n;
        const SC_T *pfb = pf && bmode == SC_FB_ROW && p->ld_bias != 0 ? br + p->ld_bias : NULL;
        if (op == SC_FUSED_LOGSUMEXP)
            y[(ptrdiff_t)r * ldy] = V(fused_row)(op, xr, NULL, br, n, L, sc, cap_v, p->has_sink,
                                                 sk, work, cap, bmode, 0, pf, pfn, pfb);
        else
            V(fused_row)(op, xr, y + (ptrdiff_t)r * ldy, br, n, L, sc, cap_v, p->has_sink, sk,
                         work, cap, bmode, stream, pf, pfn, pfb);
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
