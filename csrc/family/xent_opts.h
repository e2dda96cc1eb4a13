/*
 * family/xent_opts.h - fused cross-entropy with the options of
 * sc_xent_opts (softmax_c.h): the logits capped as c = cap tanh(z / cap),
 * a z-loss z_scale lse^2 per row, and each row's lse written out.  Rows
 * only: softmax_c gathers the rows of another layout into contiguous
 * scratch first.
 *
 * A row is the plain row kernel's (xent_row_o, family/xent_rows.h) on c
 * instead of z (a kept class-index row that fits in L2 takes the same
 * steps fused into three sweeps, xent_cap_index), with:
 *   1. (softcap) c computed from z once, into the caller's work row (n
 *      elements), so the tanh is evaluated once per element;
 *   2. the plain steps on c; lse = m + log(s) is taken per row before the
 *      gradient is written, and the z-loss's gradient 2 z_scale lse p
 *      (p = softmax(c)) joins the gradient's factor of exp(c - m);
 *   3. (softcap, gradient) the gradient chained through the cap, g *= 1 -
 *      t^2 with t = c / cap read back from the work row, which is still in
 *      cache.
 * The z-loss's value is not in `loss`: the caller adds z_loss lse^2 from
 * the lse it gets, so that the reductions can treat the two terms apart.
 * No row is split and no stream store is made when a cap has to be
 * chained (step 3 reads the gradient back), so the bits of a row do not
 * depend on the rows around it or on the thread count.
 */

/* c = cap tanh(z / cap) on n elements, z / cap taken as z * (1 / cap) as
 * the fused softmax does (family/fused.h, fz). */
SC_ALWAYS_INLINE static inline void V(xent_cap_row)(const SC_T *z, SC_T *c, size_t n, VEC vc,
                                                    VEC vic)
{
    size_t i = 0;
    for (; i + VN <= n; i += VN)
        V(store)(c + i, V(mul)(vc, V(tanh)(V(mul)(V(load)(z + i), vic))));
    if (i < n)
        V(storet)(c + i, V(mul)(vc, V(tanh)(V(mul)(V(loadt)(z + i, n - i, (SC_T)0), vic))), n - i);
}

/* g *= 1 - t^2, t = c / cap (as c * (1 / cap)): the derivative of the cap.
 * An infinite z gives t = +-1, a factor 0, as the cap's derivative is
 * there. */
SC_ALWAYS_INLINE static inline void V(xent_cap_chain)(SC_T *g, const SC_T *c, size_t n, VEC vic)
{
    const VEC one = V(set1)((SC_T)1);
    size_t i = 0;
    for (; i + VN <= n; i += VN) {
        const VEC t = V(mul)(V(load)(c + i), vic);
        V(store)(g + i, V(mul)(V(load)(g + i), V(fma)(V(sub)(V(set1)((SC_T)0), t), t, one)));
    }
    if (i < n) {
        const VEC t = V(mul)(V(loadt)(c + i, n - i, (SC_T)0), vic);
        V(storet)(g + i,
                  V(mul)(V(loadt)(g + i, n - i, (SC_T)0), V(fma)(V(sub)(V(set1)((SC_T)0), t), t, one)),
                  n - i);
    }
}

/* A kept row of class index t under a cap, n * sizeof(SC_T) <= SC_XENT_CACHED_MAX_BYTES:
 * xent_row_o's cached path on c, in three sweeps --
 *   1. c = cap tanh(z / cap) stored to the work row c, its max taken;
 *   (smoothing) U and D over c;
 *   2. e = exp(c - m) stored to g while summing s;
 *   3. g = (A e - B w) (1 - (c / cap)^2), the target's element set to its
 *      exact value times its own factor.
 * The loss alone (g NULL) takes steps 1-2 without the stores to g. */
SC_ALWAYS_INLINE static inline void V(xent_cap_index)(const SC_T *z, int64_t t, SC_T *g, SC_T *c,
                                                      sc_xent_loss_t *loss, size_t n,
                                                      const sc_xent_params *p,
                                                      const sc_xent_opts *o, double *lse, VEC vc,
                                                      VEC vic, int kind)
{
    const SC_T *w = (const SC_T *)p->weight;
    const double ls = p->label_smoothing;
    const VEC one = V(set1)((SC_T)1), zero = V(set1)((SC_T)0);
    /* 1 */
    VEC m0 = V(set1)((SC_T)-INFINITY), m1 = m0;
    size_t i = 0;
    for (; i + VN <= n; i += VN) {
        const VEC cv = V(mul)(vc, V(tanh)(V(mul)(V(load)(z + i), vic)));
        V(store)(c + i, cv);
        m0 = V(max)(m0, cv);
    }
    if (i < n) {
        V(storet)(c + i, V(mul)(vc, V(tanh)(V(mul)(V(loadt)(z + i, n - i, (SC_T)0), vic))), n - i);
        m1 = V(max)(m1, V(loadt)(c + i, n - i, (SC_T)-INFINITY));
    }
    const SC_T mx = V(hmax)(V(max)(m0, m1));
    double U = 0.0, D = 0.0;
    if (kind != SC_XENT_PLAIN) {
        V(xent_ud)(c, NULL, w, n, (double)mx, ls, kind, &U, &D);
        if (!(isfinite(U) && isfinite(D)))
            V(xent_ud_double)(c, NULL, w, n, (double)mx, ls, kind, &U, &D);
    }
    /* 2, as xent_cached_stats */
    double s;
    if (n <= SC_CHUNK)
        s = V(hsum)(V(expsum_chunk)(c, g, n, V(set1)(mx)));
    else
        s = V(expsum)(c, g, n, mx, NULL);
    double A, B;
    SC_T gt;
    const double za = V(xent_lse_za)(c, n, (double)mx, s, o, lse);
    V(xent_finish_index_za)(t, (double)c[t], g, n, (double)mx, s, D, p, g != NULL, loss, &A, &B,
                            &gt, za);
    if (g == NULL)
        return;
    /* 3 */
    const VEC va = V(set1)((SC_T)A), vb = V(set1)((SC_T)B);
    for (i = 0; i + VN <= n; i += VN) {
        VEC v = V(mul)(V(load)(g + i), va);
        if (kind != SC_XENT_PLAIN)
            v = V(sub)(v, V(mul)(vb, w ? V(load)(w + i) : one));
        const VEC th = V(mul)(V(load)(c + i), vic);
        V(store)(g + i, V(mul)(v, V(fma)(V(sub)(zero, th), th, one)));
    }
    if (i < n) {
        VEC v = V(mul)(V(loadt)(g + i, n - i, (SC_T)0), va);
        if (kind != SC_XENT_PLAIN)
            v = V(sub)(v, V(mul)(vb, w ? V(loadt)(w + i, n - i, (SC_T)0) : one));
        const VEC th = V(mul)(V(loadt)(c + i, n - i, (SC_T)0), vic);
        V(storet)(g + i, V(mul)(v, V(fma)(V(sub)(zero, th), th, one)), n - i);
    }
    /* the target's factor in a vector too: the same arithmetic as its lanes */
    SC_T d[16];
    const VEC tht = V(mul)(V(set1)(c[t]), vic);
    V(storet)(d, V(fma)(V(sub)(zero, tht), tht, one), 1);
    g[t] = gt * d[0];
}

void KFN(xent_opt_rows)(const SC_T *z, ptrdiff_t ldz, const SC_T *q, ptrdiff_t ldq,
                        const int64_t *t, ptrdiff_t ldt, SC_T *g, ptrdiff_t ldg, double *loss,
                        ptrdiff_t ldl, double *lse, ptrdiff_t ldlse, size_t rows, size_t n,
                        const sc_xent_params *p, const sc_xent_opts *o, SC_T *work,
                        size_t work_len)
{
    const int cap = o->softcap > 0.0;
    if (cap && (work == NULL || work_len < n)) { /* nowhere to put c: NaN, nothing read */
        for (size_t r = 0; r < rows; r++) {
            loss[(ptrdiff_t)r * ldl] = NAN;
            if (lse)
                lse[(ptrdiff_t)r * ldlse] = NAN;
            if (g)
                V(fill_row)(g + (ptrdiff_t)r * ldg, n, (SC_T)NAN);
        }
        return;
    }
    const SC_T cv = (SC_T)o->softcap;
    const VEC vc = V(set1)(cv), vic = V(set1)((SC_T)1 / cv);
    /* as xent_rows_ws, when no cap is chained */
    const int stream = !cap && g != NULL && rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES;
    sc_xent_loss_t lt[SC_LOGD_N];
    for (size_t r = 0; r < rows; r++) {
        const SC_T *zr = z + (ptrdiff_t)r * ldz;
        const SC_T *qr = q ? q + (ptrdiff_t)r * ldq : NULL;
        const int64_t tr = q ? 0 : t[(ptrdiff_t)r * ldt];
        SC_T *gr = g ? g + (ptrdiff_t)r * ldg : NULL;
        double l = NAN; /* set by xent_row_o on every path */
        if (cap && q == NULL && tr >= 0 && (uint64_t)tr < (uint64_t)n &&
            n * sizeof(SC_T) <= SC_XENT_CACHED_MAX_BYTES) {
            if (p->label_smoothing / (double)n != 0.0)
                V(xent_cap_index)(zr, tr, gr, work, lt + r % SC_LOGD_N, n, p, o, &l, vc, vic,
                                  SC_XENT_INDEX_SMOOTH);
            else
                V(xent_cap_index)(zr, tr, gr, work, lt + r % SC_LOGD_N, n, p, o, &l, vc, vic,
                                  SC_XENT_PLAIN);
        } else if (cap) {
            V(xent_cap_row)(zr, work, n, vc, vic);
            V(xent_row_o)(work, qr, tr, gr, lt + r % SC_LOGD_N, n, p, 0, o, &l);
            if (gr && !(q == NULL && tr < 0)) /* an ignored row's 0 stays 0, whatever z is */
                V(xent_cap_chain)(gr, work, n, vic);
        } else if (stream) {
            V(xent_row_o)(zr, qr, tr, gr, lt + r % SC_LOGD_N, n, p, 1, o, &l);
        } else {
            V(xent_row_o)(zr, qr, tr, gr, lt + r % SC_LOGD_N, n, p, 0, o, &l);
        }
        if (lse)
            lse[(ptrdiff_t)r * ldlse] = l;
        V(xent_group_loss)(lt, r, rows, loss, ldl);
    }
    if (stream)
        sc_sfence();
}
