/*
 * family/half_out.h - the half-width kernels (family/half.h) for one
 * output dtype:
 *   SC_HO   the output's storage token: SC_H itself, or f32
 *   SC_HOT  its C type: uint16_t or float
 *   HOK     the kernel's name: sc_<name>_<H> or sc_<name>_to32_<H>
 * Included twice by family/half.h.
 */

#define HO(op) SC_HPASTE(sc_, op##_, SC_HO) /* output store: sc_store_f16 / _f32 */
#define HOV(op) SC_HPASTE(HV(op), _, SC_HO) /* this output's helpers */

/* One element into the output. */
static inline void HOV(put)(SC_HOT *p, float v) { HO(storet)(p, HF(set1)(v), 1); }

/* y[0, n) = exp(x - vm) * vinv, the exponentials read from e when not
 * NULL, else evaluated again from x. */
SC_ALWAYS_INLINE static inline void HOV(scale_pass)(const uint16_t *x, const float *e, SC_HOT *y,
                                                    size_t n, HVEC vm, HVEC vinv)
{
    size_t i = 0;
    if (e) {
        for (; i + HN <= n; i += HN)
            HO(store)(y + i, HF(mul)(HF(load)(e + i), vinv));
        if (i < n)
            HO(storet)(y + i, HF(mul)(HF(loadt)(e + i, n - i, 0.0f), vinv), n - i);
    } else {
        for (; i + 2 * HN <= n; i += 2 * HN) {
            HVEC a = sc_exp_neg_f32(HF(sub)(HX(load)(x + i), vm));
            HVEC b = sc_exp_neg_f32(HF(sub)(HX(load)(x + i + HN), vm));
            HO(store)(y + i, HF(mul)(a, vinv));
            HO(store)(y + i + HN, HF(mul)(b, vinv));
        }
        for (; i + HN <= n; i += HN)
            HO(store)(y + i, HF(mul)(sc_exp_neg_f32(HF(sub)(HX(load)(x + i), vm)), vinv));
        if (i < n)
            HO(storet)(y + i,
                       HF(mul)(sc_exp_neg_f32(HF(sub)(HX(loadt)(x + i, n - i, -INFINITY), vm)),
                               vinv),
                       n - i);
    }
}

/* y[0, n) = (x - vm) - vc */
SC_ALWAYS_INLINE static inline void HOV(log_pass)(const uint16_t *x, SC_HOT *y, size_t n,
                                                  HVEC vm, HVEC vc)
{
    size_t i = 0;
    for (; i + 2 * HN <= n; i += 2 * HN) {
        HO(store)(y + i, HF(sub)(HF(sub)(HX(load)(x + i), vm), vc));
        HO(store)(y + i + HN, HF(sub)(HF(sub)(HX(load)(x + i + HN), vm), vc));
    }
    for (; i + HN <= n; i += HN)
        HO(store)(y + i, HF(sub)(HF(sub)(HX(load)(x + i), vm), vc));
    if (i < n)
        HO(storet)(y + i, HF(sub)(HF(sub)(HX(loadt)(x + i, n - i, 0.0f), vm), vc), n - i);
}

void HOK(softmax_rows)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t rows,
                       size_t n)
{
    float e[n <= SC_HALF_BUF ? (n ? n : 1) : 1];
    if (n == 0)
        return;
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + (ptrdiff_t)r * ldx;
        SC_HOT *yr = y + (ptrdiff_t)r * ldy;
        const float mx = HV(row_max)(xr, n);
        float *ep = n <= SC_HALF_BUF ? e : NULL;
        const double s = HV(expsum)(xr, ep, n, mx, HV(prefetch_row)(xr, ldx, r, rows, n));
        HOV(scale_pass)(xr, ep, yr, n, HF(set1)(mx), HF(set1)((float)(1.0 / s)));
    }
}

void HOK(log_softmax_rows)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy,
                           size_t rows, size_t n)
{
    if (n == 0)
        return;
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + (ptrdiff_t)r * ldx;
        const float mx = HV(row_max)(xr, n);
        const double s = HV(expsum)(xr, NULL, n, mx, HV(prefetch_row)(xr, ldx, r, rows, n));
        HOV(log_pass)(xr, y + (ptrdiff_t)r * ldy, n, HF(set1)(mx), HF(set1)((float)log(s)));
    }
}

void HOK(logsumexp_rows)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *out, ptrdiff_t ldo,
                         size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + (ptrdiff_t)r * ldx;
        float res;
        if (n == 0) {
            res = -INFINITY;
        } else {
            const float mx = HV(row_max)(xr, n);
            if (!(mx > -INFINITY && mx < INFINITY))
                res = HV(lse_nonfinite)(xr, 1, n, mx);
            else
                res = (float)((double)mx +
                              log(HV(expsum)(xr, NULL, n, mx,
                                             HV(prefetch_row)(xr, ldx, r, rows, n))));
        }
        HOV(put)(out + (ptrdiff_t)r * ldo, res);
    }
}

/* ---- panels: n rows (stride ldx) by m contiguous columns ---------------
 * One vector of columns per sweep: max, sum, write, each over the n rows;
 * softmax evaluates the exponentials again in its write sweep. */

void HOK(softmax_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t n,
                       size_t m)
{
    float bs[HN];
    for (size_t j = 0; j < m && n > 0; j += HN) {
        const size_t k = m - j < HN ? m - j : HN;
        HVEC mx, s;
        HV(col_stats)(x + j, ldx, n, k, &mx, &s);
        HF(store)(bs, s);
        for (size_t l = 0; l < HN; l++)
            bs[l] = (float)(1.0 / (double)bs[l]);
        const HVEC inv = HF(load)(bs);
        for (size_t i = 0; i < n; i++) {
            const HVEC v = HF(mul)(
                sc_exp_neg_f32(HF(sub)(HV(ldk)(x + (ptrdiff_t)i * ldx + j, k, -INFINITY), mx)),
                inv);
            if (k == HN)
                HO(store)(y + (ptrdiff_t)i * ldy + j, v);
            else
                HO(storet)(y + (ptrdiff_t)i * ldy + j, v, k);
        }
    }
}

void HOK(log_softmax_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t n,
                           size_t m)
{
    float bs[HN];
    for (size_t j = 0; j < m && n > 0; j += HN) {
        const size_t k = m - j < HN ? m - j : HN;
        HVEC mx, s;
        HV(col_stats)(x + j, ldx, n, k, &mx, &s);
        HF(store)(bs, s);
        for (size_t l = 0; l < HN; l++)
            bs[l] = (float)log((double)bs[l]);
        const HVEC c = HF(load)(bs);
        for (size_t i = 0; i < n; i++) {
            const HVEC v =
                HF(sub)(HF(sub)(HV(ldk)(x + (ptrdiff_t)i * ldx + j, k, 0.0f), mx), c);
            if (k == HN)
                HO(store)(y + (ptrdiff_t)i * ldy + j, v);
            else
                HO(storet)(y + (ptrdiff_t)i * ldy + j, v, k);
        }
    }
}

void HOK(logsumexp_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *out, ptrdiff_t ldo, size_t n,
                         size_t m)
{
    float bm[HN], bs[HN];
    for (size_t j = 0; j < m; j += HN) {
        const size_t k = m - j < HN ? m - j : HN;
        HVEC mx, s;
        HV(col_stats)(x + j, ldx, n, k, &mx, &s);
        HF(store)(bm, mx);
        HF(store)(bs, s);
        for (size_t l = 0; l < k; l++) {
            float res;
            if (n == 0)
                res = -INFINITY;
            else if (!(bm[l] > -INFINITY && bm[l] < INFINITY))
                res = HV(lse_nonfinite)(x + j + l, ldx, n, bm[l]);
            else
                res = (float)((double)bm[l] + log((double)bs[l]));
            HOV(put)(out + (ptrdiff_t)(j + l) * ldo, res);
        }
    }
}

#undef HO
#undef HOV
