/*
 * family/rows16.h - float32 rows of at most 40 elements with AVX-512, 16
 * rows at a time with the row in the lane: softmax, log_softmax and
 * logsumexp without per-row horizontal reductions.  Included by
 * family/list.h for the float32 kernels of the AVX-512 unit only (the
 * vector layer defines SC_HAVE_ROWS16), so it uses AVX-512 intrinsics
 * directly.  The short-row and row kernels reach it through V(rows16)
 * at the end of this file, which says which rows it takes.
 */

/* Block b (k lanes) of the group's 16 rows (g real ones; zeros after),
 * transposed: c[j] lane i is element b VN + j of row i. */
SC_ALWAYS_INLINE static inline void V(rows16_cols)(const SC_T *xg, ptrdiff_t ldx, size_t g,
                                                   size_t b, size_t k, VEC c[16])
{
    for (size_t i = 0; i < 16; i++) {
        const SC_T *xi = xg + (ptrdiff_t)i * ldx + b * VN;
        c[i] = i >= g ? V(set1)((SC_T)0) : k == VN ? V(load)(xi) : V(loadt)(xi, k, (SC_T)0);
    }
    sc_transpose16_f32(c);
}

/* The lane sums of exp(c[j] - mx), j < k, in double: lanes 0-7 to lo,
 * 8-15 to hi, even and odd j apart. */
SC_ALWAYS_INLINE static inline void V(rows16_expsum)(const VEC c[16], size_t k, VEC mx,
                                                     __m512d s[4])
{
    for (size_t j = 0; j < VN; j += 2) {
        if (j < k) {
            const VEC e = V(exp_neg)(V(sub)(c[j], mx));
            s[0] = _mm512_add_pd(s[0], sc_lo_pd_f32(e));
            s[1] = _mm512_add_pd(s[1], sc_hi_pd_f32(e));
        }
        if (j + 1 < k) {
            const VEC e = V(exp_neg)(V(sub)(c[j + 1], mx));
            s[2] = _mm512_add_pd(s[2], sc_lo_pd_f32(e));
            s[3] = _mm512_add_pd(s[3], sc_hi_pd_f32(e));
        }
    }
}

/* The lane sums of c[j], j < k, in double, as rows16_expsum. */
SC_ALWAYS_INLINE static inline void V(rows16_sum)(const VEC c[16], size_t k, const int full,
                                                  __m512d s[4])
{
    for (size_t j = 0; j < VN; j += 2) {
        if (full || j < k) {
            s[0] = _mm512_add_pd(s[0], sc_lo_pd_f32(c[j]));
            s[1] = _mm512_add_pd(s[1], sc_hi_pd_f32(c[j]));
        }
        if (full || j + 1 < k) {
            s[2] = _mm512_add_pd(s[2], sc_lo_pd_f32(c[j + 1]));
            s[3] = _mm512_add_pd(s[3], sc_hi_pd_f32(c[j + 1]));
        }
    }
}

/* softmax of float32 rows of at most one vector, 16 rows at a time, as
 * rows16_blocks (whose helpers it shares): the exponentials kept as
 * columns, scaled by their row's (float)(1 / s) (s summed in double),
 * transposed back and stored.  A group of fewer than 16 rows is copied
 * into 16 rows of zeros first.  (Rows of two vectors: rows16_blocks.)
 * sm16_group: 16 rows of xg, t lanes (all when `full`); the first g
 * written to yg. */
SC_ALWAYS_INLINE static inline void V(sm16_group)(const SC_T *xg, ptrdiff_t ldx, SC_T *yg,
                                                  ptrdiff_t ldy, size_t g, size_t t,
                                                  const int full)
{
    VEC c[16];
    VEC mx = V(set1)((SC_T)-INFINITY);
    __m512d s[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
    V(rows16_cols)(xg, ldx, 16, 0, full ? VN : t, c);
    for (size_t j = 0; j < VN; j++)
        if (full || j < t)
            mx = V(max)(mx, c[j]);
    for (size_t j = 0; j < VN; j++)
        if (full || j < t)
            c[j] = V(exp_neg)(V(sub)(c[j], mx));
    V(rows16_sum)(c, t, full, s);
    const VEC rc = sc_from_pd_f32(_mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s[0], s[2])),
                                  _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s[1], s[3])));
    for (size_t j = 0; j < VN; j++)
        c[j] = V(mul)(c[j], rc);
    sc_transpose16_f32(c);
    for (size_t i = 0; i < 16; i++) {
        if (i >= g)
            break;
        SC_T *yr = yg + (ptrdiff_t)i * ldy;
        if (full)
            V(store)(yr, c[i]);
        else
            V(storet)(yr, c[i], t);
    }
}

SC_ALWAYS_INLINE static inline void V(softmax_rows16)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                   ptrdiff_t ldy, size_t rows, size_t n,
                                                   const int full)
{
    size_t r0 = 0;
    for (; r0 + 16 <= rows; r0 += 16)
        V(sm16_group)(x + (ptrdiff_t)r0 * ldx, ldx, y + (ptrdiff_t)r0 * ldy, ldy, 16, n, full);
    if (r0 < rows) {
        SC_T buf[16 * VN] __attribute__((aligned(64)));
        const size_t g = rows - r0;
        memset(buf, 0, sizeof buf);
        for (size_t i = 0; i < g; i++)
            memcpy(buf + i * VN, x + (ptrdiff_t)(r0 + i) * ldx, n * sizeof(SC_T));
        V(sm16_group)(buf, (ptrdiff_t)VN, y + (ptrdiff_t)r0 * ldy, ldy, g, n, full);
    }
}

/* Contiguous rows of n = 1, 2, 4 or 8 elements (m = 16 / n rows to a
 * vector), 16 m rows at a time: the group's 16 vectors loaded whole and
 * transposed, so that column r n + e holds element e of rows r, m + r,
 * 2 m + r, ... in its lanes; softmax (log_softmax when lg) of each of the m
 * sets of n columns with the rows16 kernels' arithmetic in their order (so
 * the same bits as there), transposed back and stored whole.  Spares the
 * rows16 kernels' masked loads and stores of partial rows and their second
 * read of the input. */
SC_ALWAYS_INLINE static inline void V(rowsk_group)(const SC_T *x, SC_T *y, const size_t n,
                                                   const int lg)
{
    const size_t m = VN / n;
    VEC c[16];
    for (size_t i = 0; i < 16; i++)
        c[i] = V(load)(x + i * VN);
    sc_transpose16_f32(c);
    for (size_t r = 0; r < m; r++) {
        VEC *cr = c + r * n;
        VEC mx = V(set1)((SC_T)-INFINITY);
        for (size_t e = 0; e < n; e++)
            mx = V(max)(mx, cr[e]);
        __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t e = 0; e < n; e++) {
            const VEC ev = V(exp_neg)(V(sub)(cr[e], mx));
            if (e % 2 == 0) {
                s0 = _mm512_add_pd(s0, sc_lo_pd_f32(ev));
                s1 = _mm512_add_pd(s1, sc_hi_pd_f32(ev));
            } else {
                s2 = _mm512_add_pd(s2, sc_lo_pd_f32(ev));
                s3 = _mm512_add_pd(s3, sc_hi_pd_f32(ev));
            }
            if (!lg)
                cr[e] = ev;
        }
        if (lg) {
            const VEC lc = sc_from_pd_f32(sc_logd_v(_mm512_add_pd(s0, s2)),
                                          sc_logd_v(_mm512_add_pd(s1, s3)));
            for (size_t e = 0; e < n; e++)
                cr[e] = V(final_op)(cr[e], mx, lc);
        } else {
            const VEC rc =
                sc_from_pd_f32(_mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s0, s2)),
                               _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_add_pd(s1, s3)));
            for (size_t e = 0; e < n; e++)
                cr[e] = V(mul)(cr[e], rc);
        }
    }
    sc_transpose16_f32(c);
    for (size_t i = 0; i < 16; i++)
        V(store)(y + i * VN, c[i]);
}

/* The rows of whole groups of rowsk_group, when the rows are contiguous
 * and n is 1, 2, 4 or 8; how many were done. */
static size_t V(rowsk)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                       size_t n, int lg)
{
    if (ldx != (ptrdiff_t)n || ldy != (ptrdiff_t)n || (n != 1 && n != 2 && n != 4 && n != 8))
        return 0;
    const size_t per = 16 * (VN / n), done = rows / per * per;
    for (size_t r0 = 0; r0 < done; r0 += per) {
        const SC_T *xg = x + r0 * n;
        SC_T *yg = y + r0 * n;
        if (n == 8)
            lg ? V(rowsk_group)(xg, yg, 8, 1) : V(rowsk_group)(xg, yg, 8, 0);
        else if (n == 4)
            lg ? V(rowsk_group)(xg, yg, 4, 1) : V(rowsk_group)(xg, yg, 4, 0);
        else if (n == 2)
            lg ? V(rowsk_group)(xg, yg, 2, 1) : V(rowsk_group)(xg, yg, 2, 0);
        else
            lg ? V(rowsk_group)(xg, yg, 1, 1) : V(rowsk_group)(xg, yg, 1, 0);
    }
    return done;
}

/* The maxima (lane = row) of a group of 16 rows of nb blocks (1-3, a
 * constant; t lanes in the last), and the lane sums of their exponentials
 * as rows16_expsum: the first blocks' max, then the last block's, kept for
 * its exponentials, then the first blocks' again. */
SC_ALWAYS_INLINE static inline void V(rows16_stats)(const SC_T *xg, ptrdiff_t ldx, size_t g,
                                                    const int nb, size_t t, VEC *pmx,
                                                    __m512d s[4])
{
    VEC c[16];
    VEC mx = V(set1)((SC_T)-INFINITY);
    s[0] = s[1] = s[2] = s[3] = _mm512_setzero_pd();
    if (nb >= 2) {
        V(rows16_cols)(xg, ldx, g, 0, VN, c);
        for (size_t j = 0; j < VN; j++)
            mx = V(max)(mx, c[j]);
    }
    if (nb == 3) {
        V(rows16_cols)(xg, ldx, g, 1, VN, c);
        for (size_t j = 0; j < VN; j++)
            mx = V(max)(mx, c[j]);
    }
    V(rows16_cols)(xg, ldx, g, (size_t)nb - 1, t, c);
    for (size_t j = 0; j < VN; j++)
        if (j < t)
            mx = V(max)(mx, c[j]);
    V(rows16_expsum)(c, t, mx, s);
    if (nb >= 2) {
        V(rows16_cols)(xg, ldx, g, 0, VN, c);
        V(rows16_expsum)(c, VN, mx, s);
    }
    if (nb == 3) {
        V(rows16_cols)(xg, ldx, g, 1, VN, c);
        V(rows16_expsum)(c, VN, mx, s);
    }
    *pmx = mx;
}

/* log_softmax (lg 1) of float32 rows of up to 40 elements, 16 rows at a
 * time, lane = row: each block of 16 rows is transposed in registers, so that
 * the maxima, the exponentials and their sums (in double, two accumulators
 * per half) are vertical operations, and the logs of the 16 sums one pair
 * of vector logs; then each row's output from its input again, with its
 * maximum and log taken from their lanes.  Per row, this takes none of the
 * horizontal max and sum of the row-at-a-time form (lss_rows), whose
 * latency bounds it.  A group of
 * fewer than 16 rows is padded with rows of zeros: every lane is its own
 * row's arithmetic, so a row has the same bits in any group and alone.
 * softmax (lg 0) of rows of 17-32 elements the same way, with the sums'
 * reciprocals, then each row's exponentials again from its input (in L1),
 * scaled: an exp more per element than the row kernel, none of its
 * latency-bound per-row reductions.  (Keeping the two blocks' exponentials in
 * registers for the scaling, as sm16_group does with one, spilled: no
 * faster than the row kernel.  The lss_rows form, with the exponentials
 * again, was slower than the row kernel at 17-64 elements.) */
SC_ALWAYS_INLINE static inline VEC V(rows16_out)(VEC xv, VEC vm, VEC vc, const int lg)
{
    return lg ? V(final_op)(xv, vm, vc) : V(mul)(V(exp_neg)(V(sub)(xv, vm)), vc);
}

SC_ALWAYS_INLINE static inline void V(rows16_blocks)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                     ptrdiff_t ldy, size_t rows, size_t n,
                                                     const int nb, const size_t tc, const int lg)
{
    /* lanes in the last block: tc when not 0 (a constant: as lse_rows16) */
    const size_t t = tc ? tc : n - (size_t)(nb - 1) * VN;
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        const size_t g = rows - r0 < 16 ? rows - r0 : 16;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        SC_T *yg = y + (ptrdiff_t)r0 * ldy;
        VEC mx;
        __m512d s[4];
        V(rows16_stats)(xg, ldx, g, nb, t, &mx, s);
        const __m512d s0 = _mm512_add_pd(s[0], s[2]), s1 = _mm512_add_pd(s[1], s[3]);
        const __m512d one = _mm512_set1_pd(1.0);
        /* log(s) for log_softmax, 1 / s for softmax */
        const VEC lc = lg ? sc_from_pd_f32(sc_logd_v(s0), sc_logd_v(s1))
                          : sc_from_pd_f32(_mm512_div_pd(one, s0), _mm512_div_pd(one, s1));
        for (size_t i = 0; i < g; i++) {
            const SC_T *xr = xg + (ptrdiff_t)i * ldx;
            SC_T *yr = yg + (ptrdiff_t)i * ldy;
            const VEC vm = sc_lane_f32(mx, i), vc = sc_lane_f32(lc, i);
            if (nb >= 2)
                V(store)(yr, V(rows16_out)(V(load)(xr), vm, vc, lg));
            if (nb == 3)
                V(store)(yr + VN, V(rows16_out)(V(load)(xr + VN), vm, vc, lg));
            if (t == VN)
                V(store)(yr + (nb - 1) * VN,
                         V(rows16_out)(V(load)(xr + (nb - 1) * VN), vm, vc, lg));
            else
                V(storet)(yr + (nb - 1) * VN,
                          V(rows16_out)(V(loadt)(xr + (nb - 1) * VN, t, (SC_T)0), vm, vc, lg),
                          t);
        }
    }
}

static void V(softmax_short)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                             size_t n)
{
    if (n > VN) {
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 2, 0, 0);
        return;
    }
    const size_t done = V(rowsk)(x, ldx, y, ldy, rows, n, 0);
    x += (ptrdiff_t)done * ldx, y += (ptrdiff_t)done * ldy, rows -= done;
    if (n < VN)
        V(softmax_rows16)(x, ldx, y, ldy, rows, n, 0);
    else
        V(softmax_rows16)(x, ldx, y, ldy, rows, n, 1);
}

/* logsumexp of float32 rows of at most two vectors with AVX-512, 16 rows at
 * a time as rows16_blocks (lane = row; rows past the last are zeros,
 * not read): mx + log(s) for the 16 rows in double, two vector logs;
 * lanes whose maximum is not finite as in the row kernel. */
SC_ALWAYS_INLINE static inline void V(lse_rows16)(const SC_T *x, ptrdiff_t ldx, SC_T *out,
                                                 ptrdiff_t ldo, size_t rows, size_t n,
                                                 const int nb, const size_t tc)
{
    /* lanes in the last block: tc when not 0 (a constant, whose loops
     * unroll: with a run-time count the column loop stayed a loop, and
     * rows of 16 took longer than rows of 20) */
    const size_t t = tc ? tc : n - (size_t)(nb - 1) * VN;
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        const size_t g = rows - r0 < 16 ? rows - r0 : 16;
        const SC_T *xg = x + (ptrdiff_t)r0 * ldx;
        VEC mx;
        __m512d s[4];
        V(rows16_stats)(xg, ldx, g, nb, t, &mx, s);
        const VEC res = sc_from_pd_f32(
            _mm512_add_pd(sc_lo_pd_f32(mx), sc_logd_v(_mm512_add_pd(s[0], s[2]))),
            _mm512_add_pd(sc_hi_pd_f32(mx), sc_logd_v(_mm512_add_pd(s[1], s[3]))));
        const __mmask16 fin = _mm512_cmp_ps_mask(mx, V(set1)((SC_T)-INFINITY), _CMP_GT_OQ) &
                              _mm512_cmp_ps_mask(mx, V(set1)((SC_T)INFINITY), _CMP_LT_OQ);
        if (ldo == 1 && g == 16 && fin == 0xffff) {
            _mm512_storeu_ps(out + r0, res);
            continue;
        }
        SC_T mxs[16], rs[16];
        V(store)(mxs, mx);
        V(store)(rs, res);
        for (size_t i = 0; i < g; i++)
            out[(ptrdiff_t)(r0 + i) * ldo] =
                (fin >> i) & 1 ? rs[i] : V(lse_nonfinite)(xg + (ptrdiff_t)i * ldx, 1, n, mxs[i]);
    }
}

/* The 16-row forms' one entry from the generic kernels: form is an
 * SC_R16_* constant (the call folds to that form's branch); 1 when the
 * rows were done here, 0 when the caller's generic form takes them. */
SC_ALWAYS_INLINE static inline int V(rows16)(int form, const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                             ptrdiff_t ldy, size_t rows, size_t n)
{
    if (form == SC_R16_SOFTMAX) { /* softmax_rows: rows of at most two vectors */
        if (n > 2 * VN)
            return 0;
        V(softmax_short)(x, ldx, y, ldy, rows, n);
        return 1;
    }
    if (form == SC_R16_LOG_SOFTMAX) { /* log_softmax_short: every row it gets */
        const size_t done = V(rowsk)(x, ldx, y, ldy, rows, n, 1);
        x += (ptrdiff_t)done * ldx, y += (ptrdiff_t)done * ldy, rows -= done;
        if (n == VN)
            V(rows16_blocks)(x, ldx, y, ldy, rows, n, 1, VN, 1);
        else if (n < VN)
            V(rows16_blocks)(x, ldx, y, ldy, rows, n, 1, 0, 1);
        else
            V(rows16_blocks)(x, ldx, y, ldy, rows, n, 2, 0, 1);
        return 1;
    }
    if (form == SC_R16_LOG_SOFTMAX_4V) { /* log_softmax_4v: rows of up to 40 */
        if (n > 2 * VN + 8)
            return 0;
        V(rows16_blocks)(x, ldx, y, ldy, rows, n, 3, 0, 1);
        return 1;
    }
    /* SC_R16_LOGSUMEXP, logsumexp_short: rows of at most two vectors, y
     * the output (one value a row, stride ldy) */
    if (n > 2 * VN)
        return 0;
    const int nb = n <= VN ? 1 : 2;
    const size_t t = n - (size_t)(nb - 1) * VN;
    if (nb == 1 && t == 16)
        V(lse_rows16)(x, ldx, y, ldy, rows, n, 1, 16);
    else if (nb == 1 && t == 8)
        V(lse_rows16)(x, ldx, y, ldy, rows, n, 1, 8);
    else if (nb == 1 && t == 4)
        V(lse_rows16)(x, ldx, y, ldy, rows, n, 1, 4);
    else if (nb == 1)
        V(lse_rows16)(x, ldx, y, ldy, rows, n, 1, 0);
    else
        V(lse_rows16)(x, ldx, y, ldy, rows, n, 2, 0);
    return 1;
}
