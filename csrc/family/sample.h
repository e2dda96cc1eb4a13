/*
 * family/sample.h - one token drawn from a row of logits: temperature,
 * top-k, top-p and min-p, in O(n) without sorting the row.
 *
 * z = x / T (in the compute type), d = z - max(z).  The rank order is
 * (-z, index): larger first, equal values by lower index, a total order,
 * so "the k largest" is always exactly k tokens.  Every filter keeps a
 * prefix of that order: top-k the first k, top-p the shortest prefix of
 * those whose mass reaches top_p of theirs (a token is kept while the mass
 * before it is below top_p * total), min-p those with d >= log(min_p).
 * The draw is by inverse CDF over the kept tokens in index order with one
 * uniform u in [0, 1): the first token whose running sum exceeds u * sum.
 *
 * The ways through a row:
 *   greedy (T == 0)      the first index of the maximum.
 *   no top-k, no top-p   one exp pass stores the (min-p masked) weights and
 *                        their chunk sums; the draw walks the chunk sums,
 *                        then one chunk.
 *   top-k                a streaming selection: candidates above a
 *                        threshold go to a buffer; when it fills, a
 *                        quickselect keeps the k first and the k-th becomes
 *                        the threshold (a later equal value has a higher
 *                        index, so it ranks after).  The k candidates are
 *                        then sorted; top-p and min-p cut the prefix.
 *   top-p without top-k  the weights of the whole row, a histogram of their
 *                        mass by d (buckets of 1/16 nat); only the bucket
 *                        where the mass crosses top_p is gathered and sorted.
 * Weights of candidates are exp(d) in double (libm); the full-row passes use
 * exp_steps.h's exp in the compute type (V(smp_exp): the same bits at every
 * SIMD level), summed in an order fixed by the index (V(smp_weights)), so
 * the kept set and the token are the same at every level and thread count.
 *
 * The uniform: splitmix64's finalizer m(),
 *   h = m(m(key + G) + G * (row + 1)),  u = (h >> 11) * 2^-53,
 * G = 0x9E3779B97F4A7C15: a counter-based stream, the same on every level
 * and thread.  reference.py computes the same in NumPy.
 */

#ifndef SC_SAMPLE_ONCE
#define SC_SAMPLE_ONCE
#define SC_SMP_G UINT64_C(0x9E3779B97F4A7C15)
#define SC_SMP_NB 1024                /* histogram buckets of d: 1/16 nat each */
#define SC_SMP_BSCALE 16
#define SC_SMP_CH 256                 /* chunk of the weight sums, any SIMD level */
#define SC_SMP_LANES 32               /* lanes of a chunk's sum: a multiple of VN */

static inline uint64_t sc_smp_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline double sc_smp_uniform(uint64_t key, uint64_t row)
{
    uint64_t h = sc_smp_mix(sc_smp_mix(key + SC_SMP_G) + SC_SMP_G * (row + 1));
    return (double)(h >> 11) * 0x1.0p-53;
}

static inline size_t sc_smp_align(size_t b) { return (b + 63) & ~(size_t)63; }
#endif

/* a ranks before b in (-z, index) order */
SC_ALWAYS_INLINE static inline int V(smp_before)(SC_T za, size_t ia, SC_T zb, size_t ib)
{
    return za > zb || (za == zb && ia < ib);
}

SC_ALWAYS_INLINE static inline void V(smp_swap)(SC_T *z, size_t *ix, size_t a, size_t b)
{
    SC_T t = z[a];
    size_t u = ix[a];
    z[a] = z[b], ix[a] = ix[b], z[b] = t, ix[b] = u;
}

/* Reorder (z, ix)[0..m) so that position k holds the element of rank k,
 * those before it rank before it (quickselect, median of three). */
static void V(smp_select)(SC_T *z, size_t *ix, size_t m, size_t k)
{
    size_t lo = 0, hi = m - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2, s = lo;
        if (V(smp_before)(z[mid], ix[mid], z[lo], ix[lo]))
            V(smp_swap)(z, ix, lo, mid);
        if (V(smp_before)(z[hi], ix[hi], z[lo], ix[lo]))
            V(smp_swap)(z, ix, lo, hi);
        if (V(smp_before)(z[mid], ix[mid], z[hi], ix[hi]))
            V(smp_swap)(z, ix, mid, hi);
        const SC_T pz = z[hi];
        const size_t pi = ix[hi];
        for (size_t j = lo; j < hi; j++)
            if (V(smp_before)(z[j], ix[j], pz, pi))
                V(smp_swap)(z, ix, s++, j);
        V(smp_swap)(z, ix, s, hi);
        if (s == k)
            return;
        if (k < s)
            hi = s - 1;
        else
            lo = s + 1;
    }
}

/* Heapsort of (z, ix)[0..m): by rank (by_index 0) or by index (1). */
SC_ALWAYS_INLINE static inline int V(smp_less)(const SC_T *z, const size_t *ix, size_t a, size_t b,
                                               int by_index)
{
    /* "a comes before b" in the wanted order */
    return by_index ? ix[a] < ix[b] : V(smp_before)(z[a], ix[a], z[b], ix[b]);
}

static void V(smp_sift)(SC_T *z, size_t *ix, size_t root, size_t m, int by_index)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= m)
            return;
        if (c + 1 < m && V(smp_less)(z, ix, c, c + 1, by_index))
            c++;
        if (!V(smp_less)(z, ix, root, c, by_index))
            return;
        V(smp_swap)(z, ix, root, c);
        root = c;
    }
}

static void V(smp_sort)(SC_T *z, size_t *ix, size_t m, int by_index)
{
    if (m < 2)
        return;
    for (size_t i = m / 2; i-- > 0;)
        V(smp_sift)(z, ix, i, m, by_index);
    for (size_t e = m - 1; e > 0; e--) {
        V(smp_swap)(z, ix, 0, e);
        V(smp_sift)(z, ix, 0, e, by_index);
    }
}

/* The row maximum and whether the row holds a NaN or +inf. */
static inline SC_T V(smp_max)(const SC_T *x, size_t n, int *bad)
{
    const VEC inf = V(set1)((SC_T)INFINITY), zero = V(set1)((SC_T)0), one = V(set1)((SC_T)1);
    VEC m0 = V(set1)((SC_T)-INFINITY), m1 = m0, b0 = zero, b1 = zero;
    size_t i = 0;
    for (; i + 2 * VN <= n; i += 2 * VN) {
        VEC v0 = V(load)(x + i), v1 = V(load)(x + i + VN);
        m0 = V(max)(m0, v0);
        m1 = V(max)(m1, v1);
        b0 = V(add)(b0, V(select_lt)(v0, inf, zero, one));
        b1 = V(add)(b1, V(select_lt)(v1, inf, zero, one));
    }
    for (; i < n; i += VN) {
        size_t k = n - i < VN ? n - i : VN;
        VEC v = V(loadt)(x + i, k, (SC_T)-INFINITY);
        m0 = V(max)(m0, v);
        b0 = V(add)(b0, V(select_lt)(v, inf, zero, one));
    }
    *bad = V(hsum)(V(add)(b0, b1)) > 0;
    return V(hmax)(V(max)(m0, m1));
}

/* The weights' exp: exp_steps.h's exp_neg, whose vector layers (AVX2 and
 * AVX-512) give the same bits lane for lane (the same polynomial and the
 * same fused multiply-adds).  The portable layer writes fma as a*b + c
 * (two roundings), so here it calls C99 fma()/fmaf() instead: the same
 * bits as the vector layers, so that the kept set and the token do not
 * depend on the SIMD level. */
#ifdef SC_VEC_SCALAR_H
SC_ALWAYS_INLINE static inline SC_T V(smp_fma)(SC_T a, SC_T b, SC_T c)
{
#if SC_IS_F64
    return fma(a, b, c);
#else
    return fmaf(a, b, c);
#endif
}
#else
SC_ALWAYS_INLINE static inline VEC V(smp_fma)(VEC a, VEC b, VEC c) { return V(fma)(a, b, c); }
#endif

SC_ALWAYS_INLINE static inline VEC V(smp_exp)(VEC x) { return V(exp_neg_with)(x, V(smp_fma)); }

/* The sum of a chunk's lanes in double by a fixed pairwise tree: the same
 * order at every level, and no chain of SC_SMP_LANES dependent adds. */
static inline double V(smp_lanes)(const SC_T *la)
{
    double d[SC_SMP_LANES];
    for (size_t L = 0; L < SC_SMP_LANES; L++)
        d[L] = (double)la[L];
    for (size_t h = SC_SMP_LANES / 2; h > 0; h /= 2)
        for (size_t L = 0; L < h; L++)
            d[L] += d[L + h];
    return d[0];
}

/* The weights w = exp(x / T - zmax), 0 where d < lmin, stored to w (when
 * not NULL) with their chunk sums to cs (when not NULL), the quotients
 * x / T to zs (when not NULL); returns their total, and the total of the
 * unmasked weights in *all (when not NULL).
 *
 * Every sum is in an order fixed by the index alone, whatever the vector
 * width: chunks of SC_SMP_CH elements; inside a chunk, lane L of
 * SC_SMP_LANES sums the elements with index = L (mod SC_SMP_LANES) in
 * order, in the compute type (SC_SMP_LANES / VN vectors make the lanes);
 * the lanes are then added in double by sc_smp_lanes' fixed tree, and the
 * chunk sums in order into a compensated double total. */
static double V(smp_weights)(const SC_T *x, size_t n, SC_T t, SC_T zmax, SC_T lmin, SC_T *w,
                             double *cs, double *all, SC_T *zs)
{
    enum { NA = SC_SMP_LANES / VN };
    const VEC vt = V(set1)(t), vm = V(set1)(zmax), vl = V(set1)(lmin), zero = V(set1)((SC_T)0);
    double s = 0.0, c = 0.0, sa = 0.0, ca = 0.0;
    for (size_t i0 = 0, ci = 0; i0 < n; i0 += SC_SMP_CH, ci++) {
        const size_t len = n - i0 < SC_SMP_CH ? n - i0 : SC_SMP_CH;
        VEC a[NA], ua[NA];
        for (size_t j = 0; j < NA; j++)
            a[j] = zero, ua[j] = zero;
        for (size_t g = 0; g < len; g += SC_SMP_LANES) {
            for (size_t j = 0; j < NA; j++) {
                const size_t i = g + j * VN;
                const size_t k = i >= len ? 0 : len - i < VN ? len - i : VN;
                VEC z = V(div)(V(loadt)(x + i0 + i, k, (SC_T)-INFINITY), vt);
                if (zs)
                    V(storet)(zs + i0 + i, z, k);
                VEC d = V(sub)(z, vm);
                VEC e = V(smp_exp)(d);
                VEC em = V(select_lt)(d, vl, zero, e);
                if (w) {
                    if (k == VN)
                        V(store)(w + i0 + i, em);
                    else
                        V(storet)(w + i0 + i, em, k);
                }
                a[j] = V(add)(a[j], em);
                if (all)
                    ua[j] = V(add)(ua[j], e);
            }
        }
        SC_T la[SC_SMP_LANES], lu[SC_SMP_LANES];
        for (size_t j = 0; j < NA; j++)
            V(storet)(la + j * VN, a[j], VN), V(storet)(lu + j * VN, ua[j], VN);
        double cm = V(smp_lanes)(la), cu = all ? V(smp_lanes)(lu) : 0.0;
        if (cs)
            cs[ci] = cm;
        sc_two_sum_add(&s, &c, cm);
        sc_two_sum_add(&sa, &ca, cu);
    }
    if (all)
        *all = sa + ca;
    return s + c;
}

/* The draw from stored weights and their chunk sums: the first index whose
 * running sum exceeds target (rounding: the last positive weight). */
static size_t V(smp_draw)(const SC_T *w, const double *cs, size_t n, double target)
{
    double acc = 0.0;
    size_t last = 0;
    for (size_t i0 = 0, ci = 0; i0 < n; i0 += SC_SMP_CH, ci++) {
        size_t len = n - i0 < SC_SMP_CH ? n - i0 : SC_SMP_CH;
        if (cs[ci] <= 0.0)
            continue;
        if (acc + cs[ci] > target) {
            for (size_t i = i0; i < i0 + len; i++) {
                if (w[i] > 0) {
                    acc += (double)w[i];
                    last = i;
                    if (acc > target)
                        return i;
                }
            }
            return last;
        }
        acc += cs[ci];
        for (size_t i = i0 + len; i-- > i0;)
            if (w[i] > 0) {
                last = i;
                break;
            }
    }
    return last;
}

/* Whether any of bk[0..len) is <= b (eq: == b): a branch-free loop the
 * compiler vectorizes, so that the gathers skip the many chunks that hold
 * nothing they keep. */
static inline int V(smp_any_le)(const uint16_t *bk, size_t len, uint16_t b, int eq)
{
    unsigned hit = 0;
    if (eq)
        for (size_t i = 0; i < len; i++)
            hit |= bk[i] == b;
    else
        for (size_t i = 0; i < len; i++)
            hit |= bk[i] <= b;
    return hit != 0;
}

/* The histogram bucket of d = z - zmax <= 0: 1/SC_SMP_BSCALE nat each,
 * everything past the last bucket's start in the last one. */
static inline size_t V(smp_bucket)(SC_T d)
{
    /* -d * SC_SMP_BSCALE is exact (a power of two); a signed conversion is
     * one instruction where an unsigned one is a branch */
    const SC_T v = -d * (SC_T)SC_SMP_BSCALE;
    return v < (SC_T)SC_SMP_NB ? (size_t)(int64_t)v : SC_SMP_NB - 1;
}

/* prm: [T, top_k, top_p, min_p] (0 / 0 / 1 / 0 switch a filter off); the
 * min-p cut is at d >= log(min_p), libm's log (what reference.py takes).  Returns the token, -1 for a row with a NaN, +inf, only -inf or a
 * maximum that overflows at this temperature, -2 when work_len is short
 * (of KFN(sample_row)'s need, sc_smp_need). */
static size_t V(smp_need)(size_t n)
{
    return 2 * sc_smp_align(n * sizeof(SC_T)) + sc_smp_align(n * sizeof(uint16_t)) +
           sc_smp_align((n / SC_SMP_CH + 2) * sizeof(double)) +
           sc_smp_align(n * sizeof(SC_T)) + sc_smp_align(n * sizeof(size_t)) +
           2 * sc_smp_align(SC_SMP_NB * sizeof(double)) + 64;
}

int64_t KFN(sample_row)(const SC_T *x, size_t n, const double *prm, uint64_t key, uint64_t row,
                        double *logp, void *work, size_t work_len)
{
    if (n == 0 || work_len < V(smp_need)(n))
        return -2;
    int bad;
    const SC_T xmax = V(smp_max)(x, n, &bad);
    if (bad || xmax == (SC_T)-INFINITY)
        return -1;
    const double temp = prm[0], top_p = prm[2];
    const double u = sc_smp_uniform(key, row);
    double all;
    size_t k = prm[1] >= (double)n ? 0 : (size_t)prm[1];

    if (temp == 0.0) {
        size_t i = 0;
        while (x[i] != xmax)
            i++;
        if (logp)
            {
            V(smp_weights)(x, n, (SC_T)1, xmax, (SC_T)-INFINITY, NULL, NULL, &all, NULL);
            *logp = -log(all);
        }
        return (int64_t)i;
    }
    const SC_T t = (SC_T)temp, zmax = xmax / t, lmin = (SC_T)log(prm[3]);
    if (!(zmax < (SC_T)INFINITY))
        return -1;

    /* the work areas */
    char *p = (char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    SC_T *w = (SC_T *)p;
    p += sc_smp_align(n * sizeof(SC_T));
    double *cs = (double *)p;
    p += sc_smp_align((n / SC_SMP_CH + 2) * sizeof(double));
    SC_T *zz = (SC_T *)p;   /* x / T, for the top-p passes */
    p += sc_smp_align(n * sizeof(SC_T));
    uint16_t *bk = (uint16_t *)p;   /* each token's histogram bucket */
    p += sc_smp_align(n * sizeof(uint16_t));
    SC_T *bz = (SC_T *)p;
    p += sc_smp_align(n * sizeof(SC_T));
    size_t *bi = (size_t *)p;
    p += sc_smp_align(n * sizeof(size_t));
    double *hm = (double *)p;
    p += sc_smp_align(SC_SMP_NB * sizeof(double));
    size_t *hc = (size_t *)p;

    if (k == 0 && !(top_p < 1.0)) {
        double total = V(smp_weights)(x, n, t, zmax, lmin, w, cs, logp ? &all : NULL, NULL);
        size_t tok = V(smp_draw)(w, cs, n, u * total);
        if (logp)
            *logp = (double)(x[tok] / t - zmax) - log(all);
        return (int64_t)tok;
    }

    size_t m = 0;   /* candidates (bz, bi)[0..m), sorted by rank */
    double cum = 0.0, mass;
    if (k > 0) {
        /* A short buffer: each selection raises the threshold, and the
         * fewer elements pass it, the fewer are looked at one by one. */
        const size_t cap = k + (k > 256 ? k : 256);
        /* The filter compares logits, not quotients: x -> x / t is
         * non-decreasing, so x / t > thr = xthr / t needs x > xthr (a
         * superset; the quotient decides).  No division for the many
         * elements below the threshold. */
        SC_T thr = (SC_T)-INFINITY, xthr = (SC_T)-INFINITY;
        for (size_t i0 = 0; i0 < n; i0 += 4 * VN) {
            size_t len = n - i0 < 4 * VN ? n - i0 : 4 * VN;
            if (len == 4 * VN) {
                VEC b = V(max)(V(max)(V(load)(x + i0), V(load)(x + i0 + VN)),
                               V(max)(V(load)(x + i0 + 2 * VN), V(load)(x + i0 + 3 * VN)));
                if (!(V(hmax)(b) > xthr))
                    continue;
            }
            for (size_t v0 = i0; v0 < i0 + len; v0 += VN) {
                const size_t v1 = v0 + VN < i0 + len ? v0 + VN : i0 + len;
                if (v1 - v0 == VN && VN > 1 && !(V(hmax)(V(load)(x + v0)) > xthr))
                    continue;
                for (size_t i = v0; i < v1; i++) {
                    if (!(x[i] > xthr))
                        continue;
                    SC_T z = x[i] / t;
                    if (z > thr) {
                        bz[m] = z, bi[m] = i, m++;
                        if (m == cap && m < n) {
                            V(smp_select)(bz, bi, m, k - 1);
                            m = k;
                            thr = bz[k - 1];
                            xthr = x[bi[k - 1]];
                        }
                    }
                }
            }
        }
        if (m > k) {
            V(smp_select)(bz, bi, m, k - 1);
            m = k;
        }
        V(smp_sort)(bz, bi, m, 0);
        mass = 0.0;
        for (size_t j = 0; j < m; j++)
            mass += exp((double)(SC_T)(bz[j] - zmax));
    } else {
        /* top-p over the whole row: the bucket where the mass crosses */
        mass = V(smp_weights)(x, n, t, zmax, (SC_T)-INFINITY, w, NULL, NULL, zz);
        all = mass;
        const double target = top_p * mass;
        for (size_t b = 0; b < SC_SMP_NB; b++)
            hm[b] = 0.0, hc[b] = 0;
        for (size_t i = 0; i < n; i++) {
            if (!(w[i] > 0)) {
                bk[i] = SC_SMP_NB;   /* no weight: never kept */
                continue;
            }
            const size_t b = V(smp_bucket)(zz[i] - zmax);
            bk[i] = (uint16_t)b;
            hm[b] += (double)w[i];
            hc[b]++;
        }
        size_t bs = SC_SMP_NB, lastb = 0;
        double before_last = 0.0;
        for (size_t b = 0; b < SC_SMP_NB; b++) {
            if (!hc[b])
                continue;
            if (cum + hm[b] >= target) {
                bs = b;
                break;
            }
            lastb = b, before_last = cum;
            cum += hm[b];
        }
        if (bs == SC_SMP_NB)   /* rounding: the last bucket that holds any */
            bs = lastb, cum = before_last;
        for (size_t i0 = 0; i0 < n; i0 += SC_SMP_CH) {
            const size_t i1 = n - i0 < SC_SMP_CH ? n : i0 + SC_SMP_CH;
            if (!V(smp_any_le)(bk + i0, i1 - i0, (uint16_t)bs, 1))
                continue;
            for (size_t i = i0; i < i1; i++)
                if (bk[i] == bs)
                    bz[m] = zz[i], bi[m] = i, m++;
        }
        V(smp_sort)(bz, bi, m, 0);
    }

    /* the kept prefix of the candidates: top-p (mass before < top_p * mass,
     * cum being the mass of the buckets before), then min-p */
    size_t keep = 0;
    {
        const double target = top_p * mass;
        for (; keep < m; keep++) {
            if (keep > 0 && top_p < 1.0 && cum >= target)
                break;
            if (keep > 0 && !((SC_T)(bz[keep] - zmax) >= lmin))
                break;
            cum += exp((double)(SC_T)(bz[keep] - zmax));
        }
    }
    size_t tok;
    if (k > 0) {
        /* draw among the kept candidates in index order */
        V(smp_sort)(bz, bi, keep, 1);
        double total = 0.0, acc = 0.0;
        for (size_t j = 0; j < keep; j++)
            total += exp((double)(SC_T)(bz[j] - zmax));
        const double target = u * total;
        tok = bi[keep - 1];
        for (size_t j = 0; j < keep; j++) {
            acc += exp((double)(SC_T)(bz[j] - zmax));
            if (acc > target) {
                tok = bi[j];
                break;
            }
        }
        if (logp)
            V(smp_weights)(x, n, t, zmax, (SC_T)-INFINITY, NULL, NULL, &all, NULL);
    } else {
        /* The kept set: the buckets before bs, and of bs the candidates up
         * to the last kept one in rank; min-p on both.  Gathered in index
         * order (weights compacted in place into w, indices into bi: the
         * candidates are no longer needed), then drawn from. */
        const SC_T zb = bz[keep - 1];
        const size_t ib = bi[keep - 1];
        const uint16_t b0 = (uint16_t)V(smp_bucket)(zb - zmax);
        size_t nk = 0;
        for (size_t i0 = 0; i0 < n; i0 += SC_SMP_CH) {
            const size_t i1 = n - i0 < SC_SMP_CH ? n : i0 + SC_SMP_CH;
            if (!V(smp_any_le)(bk + i0, i1 - i0, b0, 0))
                continue;
            for (size_t i = i0; i < i1; i++) {
                if (bk[i] > b0)
                    continue;
                const SC_T z = zz[i];
                if ((bk[i] < b0 || z > zb || (z == zb && i <= ib)) && (SC_T)(z - zmax) >= lmin)
                    w[nk] = w[i], bi[nk] = i, nk++;
            }
        }
        double total = 0.0, acc = 0.0;
        for (size_t j = 0; j < nk; j++)
            total += (double)w[j];
        const double target = u * total;
        tok = bi[nk - 1];
        for (size_t j = 0; j < nk; j++) {
            acc += (double)w[j];
            if (acc > target) {
                tok = bi[j];
                break;
            }
        }
    }
    if (logp)
        *logp = (double)(x[tok] / t - zmax) - log(all);
    return (int64_t)tok;
}
