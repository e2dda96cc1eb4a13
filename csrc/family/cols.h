/*
 * family/cols.h - the forward panel kernels (softmax_cols,
 * log_softmax_cols, logsumexp_cols), for a reduction along a non-last
 * axis; the entry points split the panel into blocks of column vectors.
 */

/* ---- panel (cols) kernels -------------------------------------------------
 * A panel is n rows (the reduction axis, stride ldx) by m contiguous
 * columns; every column is normalized on its own.  This is the layout of a
 * non-last axis of a C-contiguous array: the reduction runs over the
 * strided axis while the vectors run along the contiguous inner axis, with
 * no transposed copy.  One vector of columns (k <= VN lanes) per sweep. */

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
 * order, so the same bits as sweeping the rows once per vector, which
 * reads every line once per vector instead of once. */
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

/* The maxima of a panel's nv column vectors (the last of kl lanes) over
 * its n rows, into mx[0, nv); lanes past the panel are -inf. */
SC_ALWAYS_INLINE static inline void V(cols_max)(const SC_T *x, ptrdiff_t ldx, size_t n, size_t nv,
                                                size_t kl, VEC *mx)
{
    for (size_t v = 0; v < nv; v++)
        mx[v] = V(set1)((SC_T)-INFINITY);
    for (size_t i = 0; i < n; i++) {
        const SC_T *xi = x + (ptrdiff_t)i * ldx;
        for (size_t v = 0; v < nv; v++)
            mx[v] = V(max)(mx[v], V(ldk)(xi + v * VN, v + 1 < nv ? VN : kl, (SC_T)-INFINITY));
    }
}

SC_ALWAYS_INLINE static inline void V(fwd_cols_nv)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                   ptrdiff_t ldy, size_t n, size_t nv, size_t kl,
                                                   int log_form)
{
    enum { NV = SC_FWD_COLS_MAX / VN };
    VEC mx[NV], hi[NV], lo[NV], acc[NV];
    V(cols_max)(x, ldx, n, nv, kl, mx);
    /* log_softmax: where the panel's rows are whole rows (see below), the
     * exp sweep, which reads x from cache, prefetches the next panel (in
     * its last sweep, as softmax's, it cost float64 time) */
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
         * scaling sweep, which reads y from cache, prefetches it.
         * log_softmax's last sweep reads x: there the prefetch cost
         * float64 time. */
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
