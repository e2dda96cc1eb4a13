/*
 * family/pieces.h - one row split across threads: the forward, backward
 * and cross-entropy steps on a piece of a row, which the threaded callers
 * (softmax_c.h, "one row across threads") combine in a fixed order so a
 * split row has the one-thread bits.  They pick the same steps as the row
 * kernels of family/rows.h, backward.h and xent_rows.h.
 */

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
