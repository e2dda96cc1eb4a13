/*
 * family/half_out.h - the half-width kernels (family/half.h) for one
 * output dtype:
 *   SC_HO   the output's storage token: SC_H itself, or f32
 *   SC_HOT  its C type: uint16_t or float
 *   HOK     the kernel's name: sc_<name>_<H> or sc_<name>_to32_<H>
 *   SC_HO_WS  1 for the scratch-row entry (softmax_rows_ws), half output only
 * Included twice by family/half.h.
 */

#define HO(op) SC_HPASTE(sc_, op##_, SC_HO) /* output store: sc_store_f16 / _f32 */
#define HOV(op) SC_HPASTE(HV(op), _, SC_HO) /* this output's helpers */

/* One element into the output. */
static inline void HOV(put)(SC_HOT *p, float v) { HO(storet)(p, HF(set1)(v), 1); }

/* The k lanes (k == HN: a whole vector) of the output at element i:
 * softmax (lg == 0) exp(x - vm) * vc, the exponentials read from e when
 * not NULL, else evaluated again from x; log_softmax (x - vm) - vc. */
SC_ALWAYS_INLINE static inline HVEC HOV(val)(const uint16_t *x, const float *e, size_t i,
                                             size_t k, HVEC vm, HVEC vc, int lg)
{
    if (lg)
        return HF(sub)(HF(sub)(HV(ldk)(x + i, k, 0.0f), vm), vc);
    if (e)
        return HF(mul)(k == HN ? HF(load)(e + i) : HF(loadt)(e + i, k, 0.0f), vc);
    return HF(mul)(sc_exp_neg_f32(HF(sub)(HV(ldk)(x + i, k, -INFINITY), vm)), vc);
}

/* The write pass of a row: y[0, n) = val.  With `stream` (large outputs,
 * the caller fences), the whole lines of y go through streaming stores,
 * the partial lines it shares with its neighbours through plain ones. */
SC_ALWAYS_INLINE static inline void HOV(write)(const uint16_t *x, const float *e, SC_HOT *y,
                                               size_t n, HVEC vm, HVEC vc, int lg, int stream)
{
    size_t i = 0;
    if (stream && HN > 1 && (size_t)y % sizeof(SC_HOT) == 0) {
        const size_t lw = SC_LINE / sizeof(SC_HOT), mis = ((size_t)y / sizeof(SC_HOT)) % lw;
        size_t head = mis ? lw - mis : 0;
        if (head > n)
            head = n;
        for (; i + HN <= head; i += HN)
            HO(store)(y + i, HOV(val)(x, e, i, HN, vm, vc, lg));
        if (i < head) {
            HO(storet)(y + i, HOV(val)(x, e, i, head - i, vm, vc, lg), head - i);
            i = head;
        }
        for (; i + lw <= n; i += lw)
            for (size_t j = 0; j < lw; j += HN)
                HO(stream)(y + i + j, HOV(val)(x, e, i + j, HN, vm, vc, lg));
    }
    /* A partial last vector as the row's whole last vector, evaluated before
     * any store (y may be x) and stored after the others, over their
     * overlap with it (the same values): a half-width partial store goes
     * through a stack copy. */
    const int whole_tail = HN > 1 && i + HN <= n && (n - i) % HN != 0;
    HVEC t = HF(set1)(0.0f);
    if (whole_tail)
        t = HOV(val)(x, e, n - HN, HN, vm, vc, lg);
    for (; i + 2 * HN <= n; i += 2 * HN) {
        const HVEC a = HOV(val)(x, e, i, HN, vm, vc, lg);
        const HVEC b = HOV(val)(x, e, i + HN, HN, vm, vc, lg);
        HO(store)(y + i, a);
        HO(store)(y + i + HN, b);
    }
    for (; i + HN <= n; i += HN)
        HO(store)(y + i, HOV(val)(x, e, i, HN, vm, vc, lg));
    if (whole_tail)
        HO(store)(y + n - HN, t);
    else if (i < n)
        HO(storet)(y + i, HOV(val)(x, e, i, n - i, vm, vc, lg), n - i);
}

/* Whether a call's output goes through streaming stores (as the float32
 * kernels': SC_STREAM_MIN_BYTES in all, SC_HALF_STREAM_MIN_ROW_BYTES a row). */
static inline int HOV(stream)(size_t rows, size_t n)
{
    return rows * n * sizeof(SC_HOT) >= SC_STREAM_MIN_BYTES &&
           n * sizeof(SC_HOT) >= SC_HALF_STREAM_MIN_ROW_BYTES;
}

/* The softmax rows, the exponentials kept in `work` (work_len floats) when
 * it holds a row, else as SC_HALF_BUF says.  A float32 output holds them
 * itself: each row's are stored there, then scaled in place (the same
 * values as from a buffer). */
SC_ALWAYS_INLINE static inline void HOV(softmax_rows_w)(const uint16_t *x, ptrdiff_t ldx,
                                                        SC_HOT *y, ptrdiff_t ldy, size_t rows,
                                                        size_t n, float *work, size_t work_len)
{
    float e[n <= SC_HALF_BUF ? (n ? n : 1) : 1];
    const int stream = HOV(stream)(rows, n);
    const int to32 = sizeof(SC_HOT) == sizeof(float);
    if (n == 0)
        return;
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + (ptrdiff_t)r * ldx;
        SC_HOT *yr = y + (ptrdiff_t)r * ldy;
        const float mx = HV(row_max)(xr, n);
        float *ep = to32 ? (float *)yr : work && work_len >= n ? work : n <= SC_HALF_BUF ? e : NULL;
        const double s = HV(expsum)(xr, ep, n, mx, HV(prefetch_row)(xr, ldx, r, rows, n));
        const HVEC vm = HF(set1)(mx), vc = HF(set1)((float)(1.0 / s));
        if (stream)
            HOV(write)(xr, ep, yr, n, vm, vc, 0, 1);
        else
            HOV(write)(xr, ep, yr, n, vm, vc, 0, 0);
    }
    if (stream)
        sc_sfence();
}

void HOK(softmax_rows)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t rows,
                       size_t n)
{
    HOV(softmax_rows_w)(x, ldx, y, ldy, rows, n, NULL, 0);
}

#if SC_HO_WS
/* With a scratch row of the caller's: rows longer than SC_HALF_BUF (whose
 * exponentials are otherwise evaluated twice) keep them there.  (A float32
 * output needs none.) */
void HOK(softmax_rows_ws)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy,
                          size_t rows, size_t n, float *work, size_t work_len)
{
    HOV(softmax_rows_w)(x, ldx, y, ldy, rows, n, work, work_len);
}
#endif

void HOK(log_softmax_rows)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy,
                           size_t rows, size_t n)
{
    const int stream = HOV(stream)(rows, n);
    if (n == 0)
        return;
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *xr = x + (ptrdiff_t)r * ldx;
        const float mx = HV(row_max)(xr, n);
        const double s = HV(expsum)(xr, NULL, n, mx, HV(prefetch_row)(xr, ldx, r, rows, n));
        const HVEC vm = HF(set1)(mx), vc = HF(set1)((float)log(s));
        if (stream)
            HOV(write)(xr, NULL, y + (ptrdiff_t)r * ldy, n, vm, vc, 1, 1);
        else
            HOV(write)(xr, NULL, y + (ptrdiff_t)r * ldy, n, vm, vc, 1, 0);
    }
    if (stream)
        sc_sfence();
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
 * Up to four vectors of columns per sweep (they share each row's lines):
 * max, sum, write, each over the n rows; softmax evaluates the
 * exponentials again in its write sweep. */

/* softmax (lg == 0) or log_softmax of nv column vectors, the last of kl
 * lanes. */
SC_ALWAYS_INLINE static inline void HOV(cols_block)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y,
                                                    ptrdiff_t ldy, size_t n, size_t nv,
                                                    size_t kl, int lg)
{
    HVEC mx[4], s[4], c[4];
    float bs[HN];
    HV(col_stats)(x, ldx, n, nv, kl, mx, s);
    for (size_t v = 0; v < nv; v++) {
        HF(store)(bs, s[v]);
        for (size_t l = 0; l < HN; l++)
            bs[l] = lg ? (float)log((double)bs[l]) : (float)(1.0 / (double)bs[l]);
        c[v] = HF(load)(bs);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t v = 0; v < nv; v++) {
            const size_t k = v + 1 == nv ? kl : HN;
            const uint16_t *xi = x + (ptrdiff_t)i * ldx + v * HN;
            const HVEC val =
                lg ? HF(sub)(HF(sub)(HV(ldk)(xi, k, 0.0f), mx[v]), c[v])
                    : HF(mul)(sc_exp_neg_f32(HF(sub)(HV(ldk)(xi, k, -INFINITY), mx[v])), c[v]);
            if (k == HN)
                HO(store)(y + (ptrdiff_t)i * ldy + v * HN, val);
            else
                HO(storet)(y + (ptrdiff_t)i * ldy + v * HN, val, k);
        }
    }
}

/* The panel in blocks of four vectors (the last block fewer), each block's
 * vector count a constant of its own copy of the loops. */
SC_ALWAYS_INLINE static inline void HOV(cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y,
                                              ptrdiff_t ldy, size_t n, size_t m, int lg)
{
    if (n == 0)
        return;
    for (size_t j = 0; j < m; j += 4 * HN) {
        const size_t w = m - j < 4 * HN ? m - j : 4 * HN;
        const size_t nv = (w + HN - 1) / HN, kl = w - (nv - 1) * HN;
        switch (nv) {
        case 4:
            HOV(cols_block)(x + j, ldx, y + j, ldy, n, 4, kl, lg);
            break;
        case 3:
            HOV(cols_block)(x + j, ldx, y + j, ldy, n, 3, kl, lg);
            break;
        case 2:
            HOV(cols_block)(x + j, ldx, y + j, ldy, n, 2, kl, lg);
            break;
        default:
            HOV(cols_block)(x + j, ldx, y + j, ldy, n, 1, kl, lg);
        }
    }
}

void HOK(softmax_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t n,
                       size_t m)
{
    HOV(cols)(x, ldx, y, ldy, n, m, 0);
}

void HOK(log_softmax_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *y, ptrdiff_t ldy, size_t n,
                           size_t m)
{
    HOV(cols)(x, ldx, y, ldy, n, m, 1);
}

void HOK(logsumexp_cols)(const uint16_t *x, ptrdiff_t ldx, SC_HOT *out, ptrdiff_t ldo, size_t n,
                         size_t m)
{
    float bm[HN], bs[HN];
    for (size_t j = 0; j < m; j += HN) {
        const size_t k = m - j < HN ? m - j : HN;
        HVEC mx, s;
        HV(col_stats)(x + j, ldx, n, 1, k, &mx, &s);
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
