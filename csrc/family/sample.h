/*
 * family/sample.h - one token drawn from a row of logits: temperature,
 * top-k, top-p and min-p, in O(n) without sorting the row.
 *
 * z = x * rt, rt = 1 / T rounded to the compute type (a multiply, not a
 * division, in the full-row passes), d = z - max(z).  The rank order is
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
 *                        mass by d (buckets of 1/16 nat) per segment of
 *                        SC_SMP_SEG elements, added in segment order; only
 *                        the bucket where the mass crosses top_p is gathered
 *                        and sorted; the kept tokens gathered in index
 *                        order and drawn by their running sum.
 * A row is worked in steps on pieces (below, "the steps of a row"), so that
 * one long row can be split across threads with the one-thread token.
 * Weights of candidates are exp(d) in double (libm); the full-row passes use
 * exp_steps.h's exp in the compute type (V(smp_exp): the same bits at every
 * SIMD level), summed in an order fixed by the index (V(smp_wchunks)), so
 * the kept set and the token are the same at every level, thread count and
 * cut into pieces.
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

#define SC_SMP_SEG 32768             /* segment of top-p's histograms: chunks */
#define SC_SMP_MAXP 64                /* pieces a row may be cut into */

static inline size_t sc_smp_align(size_t b) { return (b + 63) & ~(size_t)63; }

/* the ways through a row (the steps below) */
enum { SC_SMP_GREEDY = 0, SC_SMP_PLAIN = 1, SC_SMP_TOPK = 2, SC_SMP_TOPP = 3 };

typedef double sc_smp_v4d __attribute__((vector_size(32)));

/* The compensated total of chunk sums cs[0..nc), in order. */
static double sc_smp_total_(const double *cs, size_t nc)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < nc; i++)
        sc_two_sum_add(&s, &c, cs[i]);
    return s + c;
}
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

/* The sum of a chunk's lanes in double by a fixed pairwise tree (lane L
 * takes lane L + h, h = 16, 8, 4, 2, 1): the same order at every level.
 * Written on 4-double vectors so that it is a dozen instructions, not a
 * chain of scalar adds through memory. */
static inline double V(smp_lanes)(const SC_T *la)
{
    sc_smp_v4d d[8];
    for (size_t i = 0; i < 8; i++)
        d[i] = (sc_smp_v4d){(double)la[4 * i], (double)la[4 * i + 1], (double)la[4 * i + 2],
                            (double)la[4 * i + 3]};
    for (size_t i = 0; i < 4; i++)
        d[i] += d[i + 4];
    d[0] += d[2];
    d[1] += d[3];
    d[0] += d[1];
    return (d[0][0] + d[0][2]) + (d[0][1] + d[0][3]);
}

/* The chunk sums of the weights w = exp(x / T - zmax) over [lo, hi), lo a
 * multiple of SC_SMP_CH: cs[c] for chunk c of the row; the weights stored
 * to w (do_w), 0 where d < lmin (do_mask), the unmasked chunk sums to ucs
 * (do_u), the quotients x / T to zs (do_z).  Always inlined with constant
 * flags, so each caller gets a loop without the branches it does not need.
 *
 * Every sum is in an order fixed by the index alone, whatever the vector
 * width or the piece: chunks of SC_SMP_CH elements; inside a chunk, lane L
 * of SC_SMP_LANES sums the elements with index = L (mod SC_SMP_LANES) in
 * order, in the compute type (SC_SMP_LANES / VN vectors make the lanes);
 * the lanes are then added in double by smp_lanes' fixed tree.  The chunk
 * sums are added in order by sc_smp_total. */
SC_ALWAYS_INLINE static inline void V(smp_wchunks)(const SC_T *x, size_t lo, size_t hi, SC_T rt,
                                                   SC_T zmax, SC_T lmin, SC_T *w, double *cs,
                                                   double *ucs, SC_T *zs, int do_w, int do_mask,
                                                   int do_u, int do_z)
{
    enum { NA = SC_SMP_LANES / VN };
    const VEC vr = V(set1)(rt), vm = V(set1)(zmax), vl = V(set1)(lmin), zero = V(set1)((SC_T)0);
    for (size_t i0 = lo; i0 < hi; i0 += SC_SMP_CH) {
        const size_t len = hi - i0 < SC_SMP_CH ? hi - i0 : SC_SMP_CH;
        VEC a[NA], ua[NA];
        for (size_t j = 0; j < NA; j++)
            a[j] = zero, ua[j] = zero;
        if (len == SC_SMP_CH) {
            /* a whole chunk: plain loads and stores, no lane counts */
            for (size_t g = 0; g < SC_SMP_CH; g += SC_SMP_LANES) {
                for (size_t j = 0; j < NA; j++) {
                    const size_t i = i0 + g + j * VN;
                    const VEC z = V(mul)(V(load)(x + i), vr);
                    if (do_z)
                        V(store)(zs + i, z);
                    const VEC d = V(sub)(z, vm);
                    const VEC e = V(smp_exp)(d);
                    const VEC em = do_mask ? V(select_lt)(d, vl, zero, e) : e;
                    if (do_w)
                        V(store)(w + i, em);
                    a[j] = V(add)(a[j], em);
                    if (do_u)
                        ua[j] = V(add)(ua[j], e);
                }
            }
        } else {
            for (size_t g = 0; g < len; g += SC_SMP_LANES) {
                for (size_t j = 0; j < NA; j++) {
                    const size_t i = g + j * VN;
                    const size_t k = i >= len ? 0 : len - i < VN ? len - i : VN;
                    const VEC z = V(mul)(V(loadt)(x + i0 + i, k, (SC_T)-INFINITY), vr);
                    if (do_z)
                        V(storet)(zs + i0 + i, z, k);
                    const VEC d = V(sub)(z, vm);
                    const VEC e = V(smp_exp)(d);
                    const VEC em = do_mask ? V(select_lt)(d, vl, zero, e) : e;
                    if (do_w)
                        V(storet)(w + i0 + i, em, k);
                    a[j] = V(add)(a[j], em);
                    if (do_u)
                        ua[j] = V(add)(ua[j], e);
                }
            }
        }
        SC_T la[SC_SMP_LANES];
        for (size_t j = 0; j < NA; j++)
            V(store)(la + j * VN, a[j]);
        cs[i0 / SC_SMP_CH] = V(smp_lanes)(la);
        if (do_u) {
            for (size_t j = 0; j < NA; j++)
                V(store)(la + j * VN, ua[j]);
            ucs[i0 / SC_SMP_CH] = V(smp_lanes)(la);
        }
    }
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

/* ---- the steps of a row --------------------------------------------------
 * A row is sampled in steps; each step has a part on pieces of the row
 * (piece p of np, run by as many threads as there are pieces, or by one
 * thread in turn) and a part on the whole row after it (piece -1), which
 * combines the pieces' results in an order that does not depend on np:
 *   step 0  pieces: the maximum and whether a NaN or +inf is there.
 *   step 1  pieces: the chunk sums of the weights (stored for the plain
 *           draw), or top-k's selection of the piece's k first, or top-p's
 *           weights and a histogram per segment of SC_SMP_SEG elements.
 *           whole row: the plain draw; top-k's merge, cut and draw; top-p's
 *           histograms added segment by segment, the boundary bucket.
 *   step 2  (top-p) pieces: the kept tokens, in index order.
 *           whole row: the pieces' lists joined in order, the draw.
 * So the token is the same for every np.  The whole-row part returns the
 * token, -1 for a bad row, -2 for a short work area, -3 to go on with the
 * next step. */
typedef struct {
    SC_T pmax[SC_SMP_MAXP];
    int pbad[SC_SMP_MAXP];
    size_t pm[SC_SMP_MAXP];   /* top-k: candidates each piece kept */
    int mode;
    size_t k, ib, b0;
    SC_T xmax, rt, zmax, lmin, zb;   /* rt: 1 / T in the compute type */
    double all;
} V(smp_state);

typedef struct {
    V(smp_state) *st;
    SC_T *w, *zz, *bz;
    double *cs, *ucs, *hs, *hm;
    uint16_t *bk;
    size_t *bi;
} V(smp_areas);

static size_t V(smp_need)(size_t n)
{
    const size_t nc = n / SC_SMP_CH + 2, nseg = n / SC_SMP_SEG + 1;
    return sc_smp_align(sizeof(V(smp_state))) + 3 * sc_smp_align(n * sizeof(SC_T)) +
           2 * sc_smp_align(nc * sizeof(double)) + sc_smp_align(n * sizeof(uint16_t)) +
           sc_smp_align(n * sizeof(size_t)) + sc_smp_align(nseg * SC_SMP_NB * sizeof(double)) +
           sc_smp_align(SC_SMP_NB * sizeof(double)) + 64;
}

static V(smp_areas) V(smp_carve)(void *work, size_t n)
{
    const size_t nc = n / SC_SMP_CH + 2, nseg = n / SC_SMP_SEG + 1;
    V(smp_areas) a;
    char *p = (char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    a.st = (V(smp_state) *)p;
    p += sc_smp_align(sizeof(V(smp_state)));
    a.w = (SC_T *)p;
    p += sc_smp_align(n * sizeof(SC_T));
    a.zz = (SC_T *)p;   /* x / T, for the top-p passes */
    p += sc_smp_align(n * sizeof(SC_T));
    a.bz = (SC_T *)p;   /* candidates: quotients */
    p += sc_smp_align(n * sizeof(SC_T));
    a.cs = (double *)p;
    p += sc_smp_align(nc * sizeof(double));
    a.ucs = (double *)p;
    p += sc_smp_align(nc * sizeof(double));
    a.bk = (uint16_t *)p;   /* each token's histogram bucket */
    p += sc_smp_align(n * sizeof(uint16_t));
    a.bi = (size_t *)p;   /* candidates: indices */
    p += sc_smp_align(n * sizeof(size_t));
    a.hs = (double *)p;   /* one histogram per segment */
    p += sc_smp_align(nseg * SC_SMP_NB * sizeof(double));
    a.hm = (double *)p;
    return a;
}

/* Piece p of np: whole units (SC_SMP_CH or SC_SMP_SEG elements) shared out
 * evenly, the last ending at n. */
static inline void V(smp_cut)(size_t n, size_t unit, int p, int np, size_t *lo, size_t *hi)
{
    const size_t units = (n + unit - 1) / unit;
    const size_t a = units * (size_t)p / (size_t)np * unit;
    const size_t b = units * (size_t)(p + 1) / (size_t)np * unit;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* top-k on [lo, hi): the piece's k first in rank, unordered, at
 * (bz, bi)[lo..lo + m); returns m (at most k). */
static size_t V(smp_topk_piece)(const SC_T *x, size_t lo, size_t hi, SC_T rt, size_t k, SC_T *bz,
                                size_t *bi)
{
    /* A short buffer: each selection raises the threshold, and the fewer
     * elements pass it, the fewer are looked at one by one. */
    const size_t cap = k + (k > 256 ? k : 256);
    /* The filter compares logits, not products: x -> x * rt is
     * non-decreasing, so x * rt > thr = xthr * rt needs x > xthr (a
     * superset; the product decides).  No multiply for the many elements
     * below the threshold. */
    SC_T thr = (SC_T)-INFINITY, xthr = (SC_T)-INFINITY;
    size_t m = 0;
    bz += lo, bi += lo;
    for (size_t i0 = lo; i0 < hi; i0 += 4 * VN) {
        size_t len = hi - i0 < 4 * VN ? hi - i0 : 4 * VN;
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
                SC_T z = x[i] * rt;
                if (z > thr) {
                    bz[m] = z, bi[m] = i, m++;
                    if (m == cap) {
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
    return m;
}

/* top-p: the weights, products and buckets of the segments in [lo, hi)
 * (lo a multiple of SC_SMP_SEG), one histogram of weight by bucket per
 * segment: four sub-histograms, element i in the one of i mod 4 in index
 * order (four chains of adds through memory, not one), added as
 * (h0 + h1) + (h2 + h3). */
static void V(smp_topp_piece)(const SC_T *x, size_t lo, size_t hi, const V(smp_areas) *A)
{
    const V(smp_state) *st = A->st;
    const SC_T zmax = st->zmax;
    const SC_T *w = A->w, *zz = A->zz;
    uint16_t *bk = A->bk;
    double hq[4][SC_SMP_NB + 1];   /* bucket SC_SMP_NB: no weight, never kept */
    for (size_t s0 = lo; s0 < hi; s0 += SC_SMP_SEG) {
        const size_t s1 = hi - s0 < SC_SMP_SEG ? hi : s0 + SC_SMP_SEG;
        double *h = A->hs + (s0 / SC_SMP_SEG) * SC_SMP_NB;
        V(smp_wchunks)(x, s0, s1, st->rt, zmax, (SC_T)-INFINITY, A->w, A->cs, NULL, A->zz, 1,
                       0, 0, 1);
        /* the buckets (smp_bucket's), branch-free so that it vectorizes */
        for (size_t i = s0; i < s1; i++) {
            const SC_T v = -(zz[i] - zmax) * (SC_T)SC_SMP_BSCALE;
            const int32_t b = v < (SC_T)SC_SMP_NB ? (int32_t)v : SC_SMP_NB - 1;
            bk[i] = (uint16_t)(w[i] > 0 ? b : SC_SMP_NB);
        }
        for (size_t q = 0; q < 4; q++)
            for (size_t b = 0; b <= SC_SMP_NB; b++)
                hq[q][b] = 0.0;
        size_t i = s0;
        for (; i + 4 <= s1; i += 4) {
            hq[0][bk[i]] += (double)w[i];
            hq[1][bk[i + 1]] += (double)w[i + 1];
            hq[2][bk[i + 2]] += (double)w[i + 2];
            hq[3][bk[i + 3]] += (double)w[i + 3];
        }
        for (; i < s1; i++)
            hq[i & 3][bk[i]] += (double)w[i];
        for (size_t b = 0; b < SC_SMP_NB; b++)
            h[b] = (hq[0][b] + hq[1][b]) + (hq[2][b] + hq[3][b]);
    }
}

/* top-p, step 2: the kept tokens of [lo, hi) (chunk-aligned) compacted,
 * in index order, to (w, bi)[lo..lo + m) (in place: lo + m <= i); returns
 * m.  Kept tokens are few and scattered, so a branch skips the others and
 * smp_any_le the chunks without any. */
static size_t V(smp_topp_keep)(size_t lo, size_t hi, const V(smp_areas) *A)
{
    const V(smp_state) *st = A->st;
    const SC_T zb = st->zb, zmax = st->zmax, lmin = st->lmin;
    const size_t ib = st->ib;
    const uint16_t b0 = (uint16_t)st->b0;
    const uint16_t *bk = A->bk;
    const SC_T *zz = A->zz;
    SC_T *w = A->w;
    size_t *bi = A->bi;
    size_t m = lo;
    for (size_t i0 = lo; i0 < hi; i0 += SC_SMP_CH) {
        const size_t i1 = hi - i0 < SC_SMP_CH ? hi : i0 + SC_SMP_CH;
        if (!V(smp_any_le)(bk + i0, i1 - i0, b0, 0))
            continue;
        for (size_t j0 = i0; j0 < i1; j0 += 16) {
            const size_t j1 = i1 - j0 < 16 ? i1 : j0 + 16;
            if (j1 - j0 == 16 && !V(smp_any_le)(bk + j0, 16, b0, 0))
                continue;
            for (size_t i = j0; i < j1; i++) {
                if (bk[i] > b0)
                    continue;
                const SC_T z = zz[i];
                if ((bk[i] < b0 || z > zb || (z == zb && i <= ib)) && (SC_T)(z - zmax) >= lmin)
                    w[m] = w[i], bi[m] = i, m++;
            }
        }
    }
    return m - lo;
}

static void V(smp_piece)(const SC_T *x, size_t n, int step, int p, int np, double *logp,
                         const V(smp_areas) *A)
{
    V(smp_state) *st = A->st;
    size_t lo, hi;
    if (step == 0) {
        V(smp_cut)(n, SC_SMP_CH, p, np, &lo, &hi);
        st->pmax[p] = lo < hi ? V(smp_max)(x + lo, hi - lo, &st->pbad[p]) : (SC_T)-INFINITY;
        if (lo >= hi)
            st->pbad[p] = 0;
        return;
    }
    const SC_T ninf = (SC_T)-INFINITY;
    if (st->mode == SC_SMP_TOPP && step == 1) {
        V(smp_cut)(n, SC_SMP_SEG, p, np, &lo, &hi);
        V(smp_topp_piece)(x, lo, hi, A);
        return;
    }
    V(smp_cut)(n, SC_SMP_CH, p, np, &lo, &hi);
    if (st->mode == SC_SMP_TOPP) {
        st->pm[p] = V(smp_topp_keep)(lo, hi, A);
    } else if (st->mode == SC_SMP_GREEDY) {
        V(smp_wchunks)(x, lo, hi, (SC_T)1, st->xmax, ninf, NULL, A->cs, NULL, NULL, 0, 0, 0, 0);
    } else if (st->mode == SC_SMP_PLAIN) {
        if (!(st->lmin > ninf))
            V(smp_wchunks)(x, lo, hi, st->rt, st->zmax, ninf, A->w, A->cs, NULL, NULL, 1, 0, 0, 0);
        else if (logp)
            V(smp_wchunks)(x, lo, hi, st->rt, st->zmax, st->lmin, A->w, A->cs, A->ucs, NULL, 1, 1,
                           1, 0);
        else
            V(smp_wchunks)(x, lo, hi, st->rt, st->zmax, st->lmin, A->w, A->cs, NULL, NULL, 1, 1,
                           0, 0);
    } else {
        st->pm[p] = V(smp_topk_piece)(x, lo, hi, st->rt, st->k, A->bz, A->bi);
        if (logp)
            V(smp_wchunks)(x, lo, hi, st->rt, st->zmax, ninf, NULL, A->cs, NULL, NULL, 0, 0, 0, 0);
    }
}

/* The kept prefix of the candidates (bz, bi)[0..m), sorted by rank: top-p
 * (kept while the mass before is below top_p * mass, cum being the mass
 * ranked before the candidates), then min-p. */
static size_t V(smp_keep)(const SC_T *bz, size_t m, double cum, double mass, double top_p,
                          SC_T zmax, SC_T lmin)
{
    const double target = top_p * mass;
    size_t keep = 0;
    for (; keep < m; keep++) {
        if (keep > 0 && top_p < 1.0 && cum >= target)
            break;
        if (keep > 0 && !((SC_T)(bz[keep] - zmax) >= lmin))
            break;
        cum += exp((double)(SC_T)(bz[keep] - zmax));
    }
    return keep;
}

static int64_t V(smp_whole)(const SC_T *x, size_t n, const double *prm, uint64_t key,
                            uint64_t row, double *logp, int step, int np, const V(smp_areas) *A)
{
    V(smp_state) *st = A->st;
    const size_t nc = (n + SC_SMP_CH - 1) / SC_SMP_CH;
    const double top_p = prm[2];
    if (step == 0) {
        SC_T xmax = st->pmax[0];
        int bad = st->pbad[0];
        for (int p = 1; p < np; p++) {
            xmax = st->pmax[p] > xmax ? st->pmax[p] : xmax;
            bad |= st->pbad[p];
        }
        if (bad || xmax == (SC_T)-INFINITY)
            return -1;
        st->xmax = xmax;
        const double temp = prm[0];
        if (temp == 0.0) {
            if (!logp) {
                size_t i = 0;
                while (x[i] != xmax)
                    i++;
                return (int64_t)i;
            }
            st->mode = SC_SMP_GREEDY;
            return -3;
        }
        st->rt = (SC_T)(1.0 / temp);
        st->zmax = xmax * st->rt;
        st->lmin = (SC_T)log(prm[3]);
        if (!(st->zmax < (SC_T)INFINITY && st->zmax > (SC_T)-INFINITY))
            return -1;
        st->k = prm[1] >= (double)n ? 0 : (size_t)prm[1];
        st->mode = st->k > 0 ? SC_SMP_TOPK : top_p < 1.0 ? SC_SMP_TOPP : SC_SMP_PLAIN;
        return -3;
    }
    const double u = sc_smp_uniform(key, row);
    const SC_T rt = st->rt, zmax = st->zmax, lmin = st->lmin;
    SC_T *bz = A->bz;
    size_t *bi = A->bi;
    if (st->mode == SC_SMP_GREEDY) {
        size_t i = 0;
        while (x[i] != st->xmax)
            i++;
        *logp = -log(sc_smp_total_(A->cs, nc));
        return (int64_t)i;
    }
    if (st->mode == SC_SMP_PLAIN) {
        const double total = sc_smp_total_(A->cs, nc);
        const size_t tok = V(smp_draw)(A->w, A->cs, n, u * total);
        if (logp) {
            const double all = st->lmin > (SC_T)-INFINITY ? sc_smp_total_(A->ucs, nc) : total;
            *logp = (double)(x[tok] * rt - zmax) - log(all);
        }
        return (int64_t)tok;
    }
    if (st->mode == SC_SMP_TOPK) {
        /* the pieces' candidates together, cut to the k first, by rank */
        size_t m = 0, lo, hi;
        for (int p = 0; p < np; p++) {
            V(smp_cut)(n, SC_SMP_CH, p, np, &lo, &hi);
            memmove(bz + m, bz + lo, st->pm[p] * sizeof(SC_T));
            memmove(bi + m, bi + lo, st->pm[p] * sizeof(size_t));
            m += st->pm[p];
        }
        if (m > st->k) {
            V(smp_select)(bz, bi, m, st->k - 1);
            m = st->k;
        }
        V(smp_sort)(bz, bi, m, 0);
        double mass = 0.0;
        for (size_t j = 0; j < m; j++)
            mass += exp((double)(SC_T)(bz[j] - zmax));
        const size_t keep = V(smp_keep)(bz, m, 0.0, mass, top_p, zmax, lmin);
        /* draw among the kept candidates in index order */
        V(smp_sort)(bz, bi, keep, 1);
        double total = 0.0, acc = 0.0;
        for (size_t j = 0; j < keep; j++)
            total += exp((double)(SC_T)(bz[j] - zmax));
        const double target = u * total;
        size_t tok = bi[keep - 1];
        for (size_t j = 0; j < keep; j++) {
            acc += exp((double)(SC_T)(bz[j] - zmax));
            if (acc > target) {
                tok = bi[j];
                break;
            }
        }
        if (logp)
            *logp = (double)(x[tok] * rt - zmax) - log(sc_smp_total_(A->cs, nc));
        return (int64_t)tok;
    }
    if (step == 1) {
        /* top-p: the segments' histograms added in segment order; the bucket
         * where the mass crosses top_p; its tokens sorted by rank */
        const double mass = sc_smp_total_(A->cs, nc), target = top_p * mass;
        const size_t nseg = (n + SC_SMP_SEG - 1) / SC_SMP_SEG;
        double *hm = A->hm;
        st->all = mass;
        for (size_t b = 0; b < SC_SMP_NB; b++)
            hm[b] = A->hs[b];
        for (size_t s = 1; s < nseg; s++)
            for (size_t b = 0; b < SC_SMP_NB; b++)
                hm[b] += A->hs[s * SC_SMP_NB + b];
        double cum = 0.0, before_last = 0.0;
        size_t bs = SC_SMP_NB, lastb = 0;
        for (size_t b = 0; b < SC_SMP_NB; b++) {
            if (!(hm[b] > 0))   /* no token (a held weight is > 0) */
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
        size_t m = 0;
        for (size_t i0 = 0; i0 < n; i0 += SC_SMP_CH) {
            const size_t i1 = n - i0 < SC_SMP_CH ? n : i0 + SC_SMP_CH;
            if (!V(smp_any_le)(A->bk + i0, i1 - i0, (uint16_t)bs, 1))
                continue;
            for (size_t i = i0; i < i1; i++)
                if (A->bk[i] == bs)
                    bz[m] = A->zz[i], bi[m] = i, m++;
        }
        V(smp_sort)(bz, bi, m, 0);
        const size_t keep = V(smp_keep)(bz, m, cum, mass, top_p, zmax, lmin);
        /* the kept set: the buckets before bs, and of bs the candidates up
         * to the last kept one in rank; min-p on both (step 2) */
        st->zb = bz[keep - 1];
        st->ib = bi[keep - 1];
        st->b0 = V(smp_bucket)(st->zb - zmax);
        return -3;
    }
    /* top-p, step 2: the pieces' kept tokens together, in index order; the
     * draw by their running sum */
    size_t nk = 0, lo, hi;
    SC_T *w = A->w;
    for (int p = 0; p < np; p++) {
        V(smp_cut)(n, SC_SMP_CH, p, np, &lo, &hi);
        memmove(w + nk, w + lo, st->pm[p] * sizeof(SC_T));
        memmove(bi + nk, bi + lo, st->pm[p] * sizeof(size_t));
        nk += st->pm[p];
    }
    double total = 0.0, acc = 0.0;
    for (size_t j = 0; j < nk; j++)
        total += (double)w[j];
    const double target = u * total;
    size_t tok = bi[nk - 1];
    for (size_t j = 0; j < nk; j++) {
        acc += (double)w[j];
        if (acc > target) {
            tok = bi[j];
            break;
        }
    }
    if (logp)
        *logp = (double)(x[tok] * rt - zmax) - log(st->all);
    return (int64_t)tok;
}

/* One step of a row on np pieces: piece p's part (p >= 0; returns 0), or
 * the whole row's part after it (p == -1).  prm: [T, top_k, top_p, min_p]
 * (0 / 0 / 1 / 0 switch a filter off); the min-p cut is at
 * d >= log(min_p), libm's log (what reference.py takes).  The whole row's
 * part returns the token, -1 for a row with a NaN, +inf, only -inf or a
 * maximum that overflows at this temperature, -2 when work_len is short
 * (of sc_sample_work's need) or np is outside [1, SC_SMP_MAXP], -3 for
 * the next step.  The work area is the row's, shared by the pieces. */
int64_t KFN(sample_split)(const SC_T *x, size_t n, const double *prm, uint64_t key, uint64_t row,
                          double *logp, void *work, size_t work_len, int step, int piece, int np)
{
    if (n == 0 || work_len < V(smp_need)(n) || np < 1 || np > SC_SMP_MAXP || piece >= np)
        return -2;
    const V(smp_areas) A = V(smp_carve)(work, n);
    if (piece >= 0) {
        V(smp_piece)(x, n, step, piece, np, logp, &A);
        return 0;
    }
    return V(smp_whole)(x, n, prm, key, row, logp, step, np, &A);
}

/* One row on one thread: the steps, one piece each. */
int64_t KFN(sample_row)(const SC_T *x, size_t n, const double *prm, uint64_t key, uint64_t row,
                        double *logp, void *work, size_t work_len)
{
    if (n == 0 || work_len < V(smp_need)(n))
        return -2;
    const V(smp_areas) A = V(smp_carve)(work, n);
    for (int step = 0;; step++) {
        V(smp_piece)(x, n, step, 0, 1, logp, &A);
        const int64_t r = V(smp_whole)(x, n, prm, key, row, logp, step, 1, &A);
        if (r != -3)
            return r;
    }
}
