/*
 * family/lse_w.h - weighted logsumexp rows (logsumexp_w_rows): SciPy's
 * scipy.special.logsumexp with `b=` and `return_sign=`.
 *
 * Per row of n elements x_i with weights b_i (b read where it is: its
 * row stride ldb may be 0, a weight row shared by every row; its element
 * stride sb may be 0, one weight per row, or any other value):
 *   1. m = max of x_i over the terms with b_i != 0 (zero weights drop
 *      their terms, even where x_i is +inf or NaN);
 *   2. s = sum of b_i * exp(x_i - m), each lane's sum a two-sum (hi, lo)
 *      pair, so that positive and negative weights cancel with an error of
 *      about u * |s| + n u^2 * sum |b_i exp(x_i - m)| besides the
 *      exponentials' own (about 1 ulp of each term, as SciPy's);
 *   3. result log|s| + m (in double), sign -1 / +1.
 * A row whose result that way is not finite -- m not finite (every
 * weight zero, every kept x -inf, a kept +inf or NaN), s zero (exact
 * cancellation), infinite or NaN (an infinite or NaN weight), s negative
 * without `sgn` (NaN) -- takes
 * SciPy's direct formula, as SciPy does: S = sum of b_i * exp(x_i) over
 * every term in the working precision (where 0 * inf is NaN: a zero
 * weight on +inf or NaN drops its term only when the result is finite),
 * result log|S|, sign -1 / 0 / +1, or NaN with a NaN sign when S is NaN.
 *
 * Without `sgn` (NULL), a negative sum gives NaN (SciPy's
 * return_sign=False); with it, the result is log|sum| and the sign goes
 * to sgn[r * lds] (+1, -1, 0 for a zero sum, NaN for NaN).
 *
 * x rows are contiguous (ldx apart); rows of n == 0 give -inf, sign 0.
 */

/* x where b != 0, else -inf (NaN weights also give -inf here; their term
 * b * exp(...) is NaN all the same). */
SC_ALWAYS_INLINE static inline VEC V(lsew_keep)(VEC xv, VEC bv)
{
    const VEC z = V(set1)((SC_T)0);
    return V(select_lt)(bv, z, xv, V(select_lt)(z, bv, xv, V(set1)((SC_T)-INFINITY)));
}

/* The weights of elements i .. i + len of a row: b itself when its
 * elements follow each other, else gathered into buf (SC_CHUNK long). */
SC_ALWAYS_INLINE static inline const SC_T *V(lsew_wts)(const SC_T *b, ptrdiff_t sb, size_t i,
                                                       size_t len, SC_T *buf)
{
    if (sb == 1)
        return b + i;
    for (size_t j = 0; j < len; j++)
        buf[j] = b[(ptrdiff_t)(i + j) * sb];
    return buf;
}

/* Step 1 on one chunk: the max of x over the nonzero weights, into m0. */
SC_ALWAYS_INLINE static inline VEC V(lsew_max_chunk)(const SC_T *x, const SC_T *b, size_t n,
                                                     VEC m0)
{
    VEC m1 = V(set1)((SC_T)-INFINITY);
    size_t i = 0;
    for (; i + 2 * VN <= n; i += 2 * VN) {
        m0 = V(max)(m0, V(lsew_keep)(V(load)(x + i), V(load)(b + i)));
        m1 = V(max)(m1, V(lsew_keep)(V(load)(x + i + VN), V(load)(b + i + VN)));
    }
    for (; i + VN <= n; i += VN)
        m0 = V(max)(m0, V(lsew_keep)(V(load)(x + i), V(load)(b + i)));
    if (i < n)
        m1 = V(max)(m1, V(lsew_keep)(V(loadt)(x + i, n - i, (SC_T)-INFINITY),
                                     V(loadt)(b + i, n - i, (SC_T)0)));
    return V(max)(m0, m1);
}

/* Step 2 on one chunk: the lane sums of b_i * exp(x_i - m) as two-sum
 * pairs, added into (*hi, *lo).  Lanes past the end load x = -inf and
 * b = 0: they add 0. */
SC_ALWAYS_INLINE static inline void V(lsew_sum_chunk)(const SC_T *x, const SC_T *b, size_t n,
                                                      VEC vm, VEC *hi, VEC *lo)
{
    VEC h0 = *hi, l0 = *lo, h1 = V(set1)((SC_T)0), l1 = h1;
    size_t i = 0;
    for (; i + 2 * VN <= n; i += 2 * VN) {
        VEC b0 = V(load)(b + i), b1 = V(load)(b + i + VN);
        VEC t0 = V(mul)(b0, V(exp_neg)(V(sub)(V(lsew_keep)(V(load)(x + i), b0), vm)));
        VEC t1 = V(mul)(b1, V(exp_neg)(V(sub)(V(lsew_keep)(V(load)(x + i + VN), b1), vm)));
        V(two_sum)(&h0, &l0, t0);
        V(two_sum)(&h1, &l1, t1);
    }
    for (; i + VN <= n; i += VN) {
        VEC b0 = V(load)(b + i);
        V(two_sum)(&h0, &l0, V(mul)(b0, V(exp_neg)(V(sub)(V(lsew_keep)(V(load)(x + i), b0), vm))));
    }
    if (i < n) {
        VEC b1 = V(loadt)(b + i, n - i, (SC_T)0);
        VEC x1 = V(loadt)(x + i, n - i, (SC_T)-INFINITY);
        V(two_sum)(&h1, &l1, V(mul)(b1, V(exp_neg)(V(sub)(V(lsew_keep)(x1, b1), vm))));
    }
    V(two_sum)(&h0, &l0, h1);
    *hi = h0;
    *lo = V(add)(l0, l1);
}

/* SciPy's direct formula (the non-finite rows, see the top): S = sum of
 * b_i * exp(x_i) in the working precision. */
static SC_T V(lsew_direct)(const SC_T *x, const SC_T *b, ptrdiff_t sb, size_t n)
{
    SC_T s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[(ptrdiff_t)i * sb] * (SC_T)exp((double)x[i]);
    return s;
}

/* The row's result from S (sum of b_i exp(x_i - m), or SciPy's direct S
 * with m = 0): log|S| + m and the sign; NaN for S < 0 without sgn. */
SC_ALWAYS_INLINE static inline void V(lsew_put)(double S, double m, SC_T *res, SC_T *sgn)
{
    const SC_T sg = S > 0 ? (SC_T)1 : S < 0 ? (SC_T)-1 : S == 0 ? (SC_T)0 : (SC_T)NAN;
    SC_T r = (SC_T)(log(fabs(S)) + m);
    if (sgn)
        *sgn = sg;
    else if (S < 0)
        r = (SC_T)NAN;
    *res = r;
}

/* One row: x (contiguous), weights b with element stride sb. */
static void V(lsew_row)(const SC_T *x, const SC_T *b, ptrdiff_t sb, size_t n, const SC_T *pf,
                        SC_T *res, SC_T *sgn)
{
    double S = 0.0, m = 0.0;
    SC_T mx;
    if (sb == 0) {
        /* one weight for the row: w * sum exp(x - max), w == 0 dropping all */
        const SC_T w = b[0];
        if (w != 0) {
            mx = V(row_max)(x, n);
            if (mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY) {
                S = (double)w * V(expsum)(x, NULL, n, mx, pf);
                m = (double)mx;
            }
        }
    } else {
        SC_T buf[SC_CHUNK];
        VEC vmx = V(set1)((SC_T)-INFINITY);
        for (size_t i = 0; i < n; i += SC_CHUNK) {
            size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
            vmx = V(lsew_max_chunk)(x + i, V(lsew_wts)(b, sb, i, len, buf), len, vmx);
        }
        mx = V(hmax)(vmx);
        if (mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY) {
            const VEC vm = V(set1)(mx);
            double s = 0.0, c = 0.0;
            for (size_t i = 0; i < n; i += SC_CHUNK) {
                size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
                SC_T hl[VN], ll[VN];
                VEC hi = V(set1)((SC_T)0), lo = hi;
                if (pf) {
                    for (size_t k = 0; k < len; k += SC_LINE / sizeof(SC_T))
                        SC_PREFETCH(pf + i + k);
                }
                V(lsew_sum_chunk)(x + i, V(lsew_wts)(b, sb, i, len, buf), len, vm, &hi, &lo);
                V(store)(hl, hi);
                V(store)(ll, lo);
                for (size_t j = 0; j < VN; j++) {
                    sc_two_sum_add(&s, &c, (double)hl[j]);
                    c += (double)ll[j];
                }
            }
            S = s + c;
            m = (double)mx;
        }
    }
    if (S != 0 && S - S == 0) { /* finite, nonzero */
        V(lsew_put)(S, m, res, sgn);
        if (*res - *res == 0)
            return;
    }
    V(lsew_put)((double)V(lsew_direct)(x, b, sb, n), 0.0, res, sgn);
}

void KFN(logsumexp_w_rows)(const SC_T *x, ptrdiff_t ldx, const SC_T *b, ptrdiff_t ldb,
                           ptrdiff_t sb, SC_T *out, ptrdiff_t ldo, SC_T *sgn, ptrdiff_t lds,
                           size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        V(lsew_row)(xr, b + (ptrdiff_t)r * ldb, sb, n, V(prefetch_row)(xr, ldx, r, rows, n),
                    out + (ptrdiff_t)r * ldo, sgn ? sgn + (ptrdiff_t)r * lds : NULL);
    }
}
