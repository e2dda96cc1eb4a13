/*
 * family/xent_rows.h - fused cross-entropy on rows (xent_rows,
 * xent_rows_ws): loss and gradient in one read of the logits.  A row
 * takes the cached path (one exp per element) when it fits in L2, else
 * the online sweep; class-index rows of a large output are pipelined
 * when sc_xent_pipe_rows (sc_internal.h) says so.
 */

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
 * back from memory (a miss per row).  Vector-aligned stores after a
 * partial head, streamed or not, as bwd_apply's. */
SC_ALWAYS_INLINE static inline void V(xent_grad)(const SC_T *z, const SC_T *q, const SC_T *w,
                                                 SC_T *g, size_t n, size_t ncls, double m,
                                                 double A, double B, double ls, int kind,
                                                 int stream, size_t t, SC_T gt)
{
    const V(wr_src) s = {.a = z, .q = q, .w = w, .c0 = V(set1)((SC_T)m), .c1 = V(set1)((SC_T)A),
                         .c2 = V(set1)((SC_T)B), .c3 = V(set1)((SC_T)(1.0 - ls)),
                         .c4 = V(set1)((SC_T)(ncls ? ls / (double)ncls : 0.0)), .t = t, .gt = gt};
    const size_t head = V(head)(g, n);
    if (VN > 1 && stream && head < n && (size_t)g % sizeof(SC_T) == 0)
        V(write)(&s, SC_WR_XENT_G + kind, g, 0, n, head, 1, SC_WR_STREAM, NULL, 1);
    else
        V(write)(&s, SC_WR_XENT_G + kind, g, 0, n, head, 1, 0, NULL, 1);
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
 * 1 MiB, the L2 size), so this moves the row from memory once, as the
 * online sweep does, but evaluates half the exponentials.  g may be z: z
 * is not read after step 3.  For the loss alone (g NULL), steps 1-3
 * without the stores. */
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
    const V(wr_src) s = {.a = g, .q = q, .w = w, .c0 = V(set1)((SC_T)A), .c1 = V(set1)((SC_T)B),
                         .c2 = V(set1)((SC_T)(1.0 - ls)), .c3 = V(set1)((SC_T)eps), .t = t, .gt = gt};
    const size_t head = n * sizeof(SC_T) >= 2048 ? V(head)(g, n) : 0; /* as scale */
    V(write)(&s, SC_WR_XENT_GE + kind, g, 0, n, head, 1, 0, NULL, 1);
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
/* za is added to A: the z-loss's share of the gradient (family/xent_opts.h),
 * 0 without it. */
SC_ALWAYS_INLINE static inline void V(xent_finish_index_za)(int64_t t, double zt, const SC_T *ge,
                                                            size_t n, double m, double s, double D,
                                                            const sc_xent_params *p, int want_g,
                                                            sc_xent_loss_t *loss, double *pa,
                                                            double *pb, SC_T *gt, double za)
{
    const double ls = p->label_smoothing, eps = ls / (double)n;
    const double wt = p->weight ? (double)((const SC_T *)p->weight)[t] : 1.0;
    loss->s = s;
    loss->a = (1.0 - ls) * wt + (eps != 0.0 ? eps * p->weight_sum : 0.0);
    loss->b = (1.0 - ls) * wt * (m - zt) + (eps != 0.0 ? eps * D : 0.0);
    double A = p->scale * ((1.0 - ls) * wt + eps * p->weight_sum) / s;
    if (za != 0.0)
        A += za;
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

SC_ALWAYS_INLINE static inline void V(xent_finish_index)(int64_t t, double zt, const SC_T *ge,
                                                         size_t n, double m, double s, double D,
                                                         const sc_xent_params *p, int want_g,
                                                         sc_xent_loss_t *loss, double *pa,
                                                         double *pb, SC_T *gt)
{
    V(xent_finish_index_za)(t, zt, ge, n, m, s, D, p, want_g, loss, pa, pb, gt, 0.0);
}

/* With the cross-entropy's options (o not NULL, family/xent_opts.h): the
 * row's logsumexp m + log(s) to *lse, and the z-loss's gradient
 * 2 o->z_scale lse softmax(z) added through A.  An ignored row or one
 * without such a class still gets its lse (the row is read then). */
static inline double V(lse_of)(const SC_T *z, size_t n, double m, double s)
{
    /* a row of -inf: -inf (NaN if a NaN hides in it, whose s is NaN); one
     * holding +inf: +inf unless it holds a NaN -- logsumexp's values */
    if (m == -INFINITY)
        return isnan(s) ? NAN : -INFINITY;
    if (m == INFINITY)
        return V(has_nan)(z, 1, n) ? NAN : INFINITY;
    return m + sc_logd_1(s);
}

SC_ALWAYS_INLINE static inline double V(xent_lse_za)(const SC_T *z, size_t n, double m, double s,
                                                     const sc_xent_opts *o, double *lse)
{
    *lse = V(lse_of)(z, n, m, s);
    return o->z_scale != 0.0 ? 2.0 * o->z_scale * *lse / s : 0.0;
}

SC_ALWAYS_INLINE static inline void V(xent_row_o)(const SC_T *z, const SC_T *q, int64_t t, SC_T *g,
                                                  sc_xent_loss_t *loss, size_t n,
                                                  const sc_xent_params *p, int stream,
                                                  const sc_xent_opts *o, double *lse)
{
    const SC_T *w = (const SC_T *)p->weight;
    const double ls = p->label_smoothing;
    if (o && q == NULL && (t < 0 || (uint64_t)t >= (uint64_t)n)) {
        const SC_T mx = V(row_max)(z, n);
        if (mx == (SC_T)-INFINITY)
            *lse = V(has_nan)(z, 1, n) ? NAN : -INFINITY;
        else
            *lse = V(lse_of)(z, n, (double)mx, V(expsum)(z, NULL, n, mx, NULL));
    }
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
        double A = p->scale * U / s;
        if (o) {
            const double za = V(xent_lse_za)(z, n, m, s, o, lse);
            if (za != 0.0)
                A += za;
        }
        if (cached && g)
            V(xent_scale)(g, q, w, n, A, p->scale, ls, ls / (double)n, SC_XENT_PROB, (size_t)-1,
                          (SC_T)0);
        else if (g)
            V(xent_grad)(z, q, w, g, n, n, m, A, p->scale, ls, SC_XENT_PROB, stream, (size_t)-1,
                         (SC_T)0);
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
    const double za = o ? V(xent_lse_za)(z, n, m, s, o, lse) : 0.0;
    V(xent_finish_index_za)(t, zt, cached && g ? g : NULL, n, m, s, D, p, g != NULL, loss, &A, &B,
                            &gt, za);
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

SC_ALWAYS_INLINE static inline void V(xent_row)(const SC_T *z, const SC_T *q, int64_t t, SC_T *g,
                                                sc_xent_loss_t *loss, size_t n,
                                                const sc_xent_params *p, int stream)
{
    V(xent_row_o)(z, q, t, g, loss, n, p, stream, NULL, NULL);
}

/* Rows go in groups of SC_LOGD_N, row r's statistics in lt[r % SC_LOGD_N].
 * After row r of `rows`: if it ends its group, the group's losses, the
 * logs taken together (lane by lane: a row's bits do not depend on its
 * group), into loss[r' * ldl] for each row r' of the group. */
static inline void V(xent_group_loss)(const sc_xent_loss_t *lt, size_t r, size_t rows,
                                       double *loss, ptrdiff_t ldl)
{
    const size_t k = r % SC_LOGD_N + 1;
    if (k < SC_LOGD_N && r + 1 < rows)
        return;
    loss += (ptrdiff_t)(r + 1 - k) * ldl;
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
    const V(wr_src) s = {.a = src, .w = w, .c0 = va, .c1 = vb, .c2 = a, .c3 = b, .t = t, .gt = gt};
    V(write)(&s, SC_WR_XENT_GE + kind, y, j0, j1, head, 1, SC_WR_STREAM, NULL, 1);
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
    /* row r's loss statistics in lt[j]; the group's losses in the loop's
     * step, which an ignored row's `continue` takes too */
    for (size_t r = 0; r < rows; V(xent_group_loss)(lt, r++, rows, loss, ldl)) {
        const size_t j = r % SC_LOGD_N;
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
     * over it would only evict it */
    if (VN > 1 && q == NULL && g != NULL && (const void *)g != (const void *)z && work != NULL &&
        work_len >= sc_pipe_work(sizeof(SC_T), n) && sc_xent_pipe_rows(sizeof(SC_T), g, ldg, rows, n)) {
        V(xent_rows_pipe)(z, ldz, t, ldt, g, ldg, loss, ldl, rows, n, p, work);
        return;
    }
    const int stream = g != NULL && rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES;
    /* rows in groups of SC_LOGD_N, whose logs are taken together */
    sc_xent_loss_t lt[SC_LOGD_N];
    for (size_t r = 0; r < rows; r++) {
        const SC_T *zr = z + (ptrdiff_t)r * ldz;
        const SC_T *qr = q ? q + (ptrdiff_t)r * ldq : NULL;
        const int64_t tr = q ? 0 : t[(ptrdiff_t)r * ldt];
        SC_T *gr = g ? g + (ptrdiff_t)r * ldg : NULL;
        if (stream)
            V(xent_row)(zr, qr, tr, gr, lt + r % SC_LOGD_N, n, p, 1);
        else
            V(xent_row)(zr, qr, tr, gr, lt + r % SC_LOGD_N, n, p, 0);
        V(xent_group_loss)(lt, r, rows, loss, ldl);
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
