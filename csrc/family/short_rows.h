/*
 * family/short_rows.h - log_softmax and logsumexp of rows of at most four
 * vectors: the row steps collapsed to their few vectors, the logs of a
 * group of rows taken at once.  The row kernels (family/rows.h) send such
 * rows here; the AVX-512 float32 16-row forms (V(rows16)) take those
 * they are faster on first.
 */

/* log_softmax of rows of at most two vectors: the row steps' arithmetic
 * (row_max, expsum, final_pass, each collapsed to its one or two vectors)
 * without their per-row loop setup, for groups of SC_LOGD_N rows: first
 * the rows' maxima and sums (two rows interleaved), then log(s) for the
 * whole group in the vector layer's log (sc_logd_n; lane by lane, so a row
 * has the same bits in any group, and alone), then the outputs from the
 * inputs again (in L1).  The length's case is resolved once per call, not
 * per row.  Plain stores: a row is at most two lines.  A libm log per
 * row, a call the rows' work could not overlap, weighed on such rows.
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

/* F(x, ldx, y, ldy, rows, n, kind) with the kind of rows of n elements (as
 * lss_stats numbers them) a constant in each call, so that each kind gets
 * its own loop; the caller's n has a kind from K0 to K1 (constants: the
 * other rungs fold away). */
#define SC_SHORT_KINDS(F, K0, K1, x, ldx, y, ldy, rows, n)                     \
    do {                                                                       \
        if ((K0) <= 0 && (n) < VN)                                             \
            F(x, ldx, y, ldy, rows, n, 0);                                     \
        else if ((K0) <= 1 && (n) == VN)                                       \
            F(x, ldx, y, ldy, rows, n, 1);                                     \
        else if ((K0) <= 2 && ((K1) == 2 || (n) < 2 * VN))                     \
            F(x, ldx, y, ldy, rows, n, 2);                                     \
        else if ((K0) <= 3 && ((K1) == 3 || (n) == 2 * VN))                    \
            F(x, ldx, y, ldy, rows, n, 3);                                     \
        else if ((K1) == 4 || (n) <= 3 * VN)                                   \
            F(x, ldx, y, ldy, rows, n, 4);                                     \
        else                                                                   \
            F(x, ldx, y, ldy, rows, n, 5);                                     \
    } while (0)

/* Not inlined: inlined, it slowed the long-row loop of float64 rows of
 * 24-64 elements (code layout). */
static void V(log_softmax_short)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                 ptrdiff_t ldy, size_t rows, size_t n)
{
    if (V(rows16)(SC_R16_LOG_SOFTMAX, x, ldx, y, ldy, rows, n))
        return;
    SC_SHORT_KINDS(V(lss_rows), 0, 3, x, ldx, y, ldy, rows, n);
}

/* Rows of three or four vectors (float32 33-64 elements with AVX-512),
 * the same way, sparing the row-at-a-time form's libm log per row and
 * loop setup.  AVX-512 float32 rows of up to 40 elements go 16 rows at a
 * time (V(rows16)); longer ones stay here, where they lost less.  Not
 * inlined, as log_softmax_short. */
static void V(log_softmax_4v)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                              size_t n)
{
    if (V(rows16)(SC_R16_LOG_SOFTMAX_4V, x, ldx, y, ldy, rows, n))
        return;
    SC_SHORT_KINDS(V(lss_rows), 4, 5, x, ldx, y, ldy, rows, n);
}

/* logsumexp of rows of at most four vectors: lss_rows' maxima and sums,
 * a group's logs at once, mx + log(s) in double; a row whose maximum is
 * not finite as below.  The kind's case resolved once per call; not
 * inlined, as log_softmax_short. */
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

static void V(logsumexp_short)(const SC_T *x, ptrdiff_t ldx, SC_T *out, ptrdiff_t ldo,
                               size_t rows, size_t n)
{
    if (V(rows16)(SC_R16_LOGSUMEXP, x, ldx, out, ldo, rows, n))
        return;
    SC_SHORT_KINDS(V(lse_rows), 0, 5, x, ldx, out, ldo, rows, n);
}

/* softmax of rows of three or four vectors (float32 33-64 elements with
 * AVX-512), two rows at a time (sm4_pair), kept in registers: row_max's
 * four accumulators and expsum_chunk's, collapsed to the row's vectors
 * (the same operations in the same order, so the same bits as the row
 * kernel), then the exponentials scaled in registers and stored once.
 * Spares the row kernel's loop setup, its store and reload of the
 * exponentials and its masked tail's second pass.  kind: 0 two vectors and
 * a partial one, 1 three whole, 2 three and a partial one, 3 four whole. */
SC_ALWAYS_INLINE static inline void V(sm4_row)(const SC_T *xr, SC_T *yr, size_t t, int kind)
{
    const VEC ninf = V(set1)((SC_T)-INFINITY), z = V(set1)((SC_T)0);
    const VEC x0 = V(load)(xr), x1 = V(load)(xr + VN);
    VEC x2, x3, m0, m1 = ninf, m2 = ninf, m3 = ninf;
    if (kind == 0) {
        x2 = V(loadt)(xr + 2 * VN, t, (SC_T)-INFINITY);
        m0 = V(max)(V(max)(ninf, x0), x1);
        m1 = V(max)(ninf, x2);
    } else if (kind <= 2) {
        x2 = V(load)(xr + 2 * VN);
        m0 = V(max)(V(max)(V(max)(ninf, x0), x1), x2);
        if (kind == 2) {
            x3 = V(loadt)(xr + 3 * VN, t, (SC_T)-INFINITY);
            m1 = V(max)(ninf, x3);
        }
    } else {
        x2 = V(load)(xr + 2 * VN), x3 = V(load)(xr + 3 * VN);
        m0 = V(max)(ninf, x0), m1 = V(max)(ninf, x1);
        m2 = V(max)(ninf, x2), m3 = V(max)(ninf, x3);
    }
    const VEC vm = V(set1)(V(hmax)(V(max)(V(max)(m0, m1), V(max)(m2, m3))));
    const VEC e0 = V(exp_neg)(V(sub)(x0, vm)), e1 = V(exp_neg)(V(sub)(x1, vm));
    const VEC e2 = V(exp_neg)(V(sub)(x2, vm));
    VEC e3 = z, a0, a1 = z, a2 = z, a3 = z;
    if (kind == 0) {
        a0 = V(add)(V(add)(z, e0), e1);
        a1 = V(add)(z, e2);
    } else if (kind <= 2) {
        a0 = V(add)(V(add)(V(add)(z, e0), e1), e2);
        if (kind == 2) {
            e3 = V(exp_neg)(V(sub)(x3, vm));
            a1 = V(add)(z, e3);
        }
    } else {
        e3 = V(exp_neg)(V(sub)(x3, vm));
        a0 = V(add)(z, e0), a1 = V(add)(z, e1), a2 = V(add)(z, e2), a3 = V(add)(z, e3);
    }
    double s = 0.0, c = 0.0;
    sc_two_sum_add(&s, &c, V(hsum)(V(add)(V(add)(a0, a1), V(add)(a2, a3))));
    const VEC vc = V(set1)((SC_T)(1.0 / (s + c)));
    V(store)(yr, V(mul)(e0, vc));
    V(store)(yr + VN, V(mul)(e1, vc));
    if (kind == 0) {
        V(storet)(yr + 2 * VN, V(mul)(e2, vc), t);
        return;
    }
    V(store)(yr + 2 * VN, V(mul)(e2, vc));
    if (kind == 2)
        V(storet)(yr + 3 * VN, V(mul)(e3, vc), t);
    else if (kind == 3)
        V(store)(yr + 3 * VN, V(mul)(e3, vc));
}

/* Two rows' steps interleaved (P = 2: their latency-bound reductions
 * overlap), each row's arithmetic as sm4_row's. */
SC_ALWAYS_INLINE static inline void V(sm4_pair)(const SC_T *xa, ptrdiff_t ldx, SC_T *ya,
                                                ptrdiff_t ldy, size_t t, int kind)
{
    const VEC ninf = V(set1)((SC_T)-INFINITY), z = V(set1)((SC_T)0);
    VEC xv[2][4], e[2][4], vm[2], vc[2];
    for (int p = 0; p < 2; p++) {
        const SC_T *xr = xa + p * ldx;
        VEC m0, m1 = ninf, m2 = ninf, m3 = ninf;
        xv[p][0] = V(load)(xr), xv[p][1] = V(load)(xr + VN);
        if (kind == 0) {
            xv[p][2] = V(loadt)(xr + 2 * VN, t, (SC_T)-INFINITY);
            m0 = V(max)(V(max)(ninf, xv[p][0]), xv[p][1]);
            m1 = V(max)(ninf, xv[p][2]);
        } else if (kind <= 2) {
            xv[p][2] = V(load)(xr + 2 * VN);
            m0 = V(max)(V(max)(V(max)(ninf, xv[p][0]), xv[p][1]), xv[p][2]);
            if (kind == 2) {
                xv[p][3] = V(loadt)(xr + 3 * VN, t, (SC_T)-INFINITY);
                m1 = V(max)(ninf, xv[p][3]);
            }
        } else {
            xv[p][2] = V(load)(xr + 2 * VN), xv[p][3] = V(load)(xr + 3 * VN);
            m0 = V(max)(ninf, xv[p][0]), m1 = V(max)(ninf, xv[p][1]);
            m2 = V(max)(ninf, xv[p][2]), m3 = V(max)(ninf, xv[p][3]);
        }
        vm[p] = V(set1)(V(hmax)(V(max)(V(max)(m0, m1), V(max)(m2, m3))));
    }
    for (int p = 0; p < 2; p++) {
        VEC a0, a1 = z, a2 = z, a3 = z;
        for (int j = 0; j < 3; j++)
            e[p][j] = V(exp_neg)(V(sub)(xv[p][j], vm[p]));
        e[p][3] = z;
        if (kind == 0) {
            a0 = V(add)(V(add)(z, e[p][0]), e[p][1]);
            a1 = V(add)(z, e[p][2]);
        } else if (kind <= 2) {
            a0 = V(add)(V(add)(V(add)(z, e[p][0]), e[p][1]), e[p][2]);
            if (kind == 2) {
                e[p][3] = V(exp_neg)(V(sub)(xv[p][3], vm[p]));
                a1 = V(add)(z, e[p][3]);
            }
        } else {
            e[p][3] = V(exp_neg)(V(sub)(xv[p][3], vm[p]));
            a0 = V(add)(z, e[p][0]), a1 = V(add)(z, e[p][1]);
            a2 = V(add)(z, e[p][2]), a3 = V(add)(z, e[p][3]);
        }
        double s = 0.0, c = 0.0;
        sc_two_sum_add(&s, &c, V(hsum)(V(add)(V(add)(a0, a1), V(add)(a2, a3))));
        vc[p] = V(set1)((SC_T)(1.0 / (s + c)));
    }
    for (int p = 0; p < 2; p++) {
        SC_T *yr = ya + p * ldy;
        V(store)(yr, V(mul)(e[p][0], vc[p]));
        V(store)(yr + VN, V(mul)(e[p][1], vc[p]));
        if (kind == 0) {
            V(storet)(yr + 2 * VN, V(mul)(e[p][2], vc[p]), t);
            continue;
        }
        V(store)(yr + 2 * VN, V(mul)(e[p][2], vc[p]));
        if (kind == 2)
            V(storet)(yr + 3 * VN, V(mul)(e[p][3], vc[p]), t);
        else if (kind == 3)
            V(store)(yr + 3 * VN, V(mul)(e[p][3], vc[p]));
    }
}

SC_ALWAYS_INLINE static inline void V(sm4_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                ptrdiff_t ldy, size_t rows, size_t t, int kind)
{
    size_t r = 0;
    for (; r + 2 <= rows; r += 2)
        V(sm4_pair)(x + (ptrdiff_t)r * ldx, ldx, y + (ptrdiff_t)r * ldy, ldy, t, kind);
    if (r < rows)
        V(sm4_row)(x + (ptrdiff_t)r * ldx, y + (ptrdiff_t)r * ldy, t, kind);
}

/* Not inlined, as log_softmax_short. */
static void V(softmax_4v)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                          size_t n)
{
    const size_t t = n - (n - 1) / VN * VN; /* lanes of the last vector */
    if (n < 3 * VN)
        V(sm4_rows)(x, ldx, y, ldy, rows, t, 0);
    else if (n == 3 * VN)
        V(sm4_rows)(x, ldx, y, ldy, rows, t, 1);
    else if (n < 4 * VN)
        V(sm4_rows)(x, ldx, y, ldy, rows, t, 2);
    else
        V(sm4_rows)(x, ldx, y, ldy, rows, t, 3);
}
