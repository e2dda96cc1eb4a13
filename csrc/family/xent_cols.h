/*
 * family/xent_cols.h - fused cross-entropy on panels (xent_cols): a
 * sample per column, the classes along the strided axis, in blocks of up
 * to SC_COLS_MAX columns.
 */

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
    V(cols_max)(z, ldz, n, nv, kl, mx);
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
    /* the next panel, where it follows this one (as in fwd_cols_nv) */
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
