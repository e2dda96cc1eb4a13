/*
 * family/backward.h - the backward products (softmax_jvp,
 * log_softmax_jvp, log_softmax_vjp) on rows and on panels.  The row
 * kernels pick the short-row form, or the chunked reduction then the
 * fused write pass, streaming on large outputs.
 *
 * Instantiated by family/list.h for float32 and float64 (the operands of
 * the compute dtype), and by family/half.h for float16 and bfloat16
 * storage computed in float32: the includer may define SC_BWD_STORAGE and
 *   BS        the operands' element type (uint16_t)
 *   BL(op)    its loads and stores: load, loadt, store, storet, stream,
 *             ldk, stk (converting to and from the compute vectors)
 *   BV(name)  this file's helpers, BK(name) its kernels
 * else they are the compute dtype's own (SC_T, V, KFN).  The arithmetic
 * is the compute dtype's either way; a half-width result is rounded once,
 * by its store.
 */

#ifndef SC_BWD_STORAGE
#define BS SC_T
#define BL(op) V(op)
#define BV(op) V(op)
#define BK(name) KFN(name)
#define SC_BWD_SAME 1
#endif

/* ---- backward kernels ------------------------------------------------------
 * Each reads its operands at most twice and writes once: a compensated
 * reduction over the row (as the forward sum: chunked lane sums, each
 * chunk reduced in double into a two-sum total), then one fused
 * element-wise pass.
 *   softmax_jvp       d = sum(y v)          out = y (v - d)
 *   log_softmax_jvp   d = sum(exp(lp) v)    out = v - d
 *   log_softmax_vjp   d = sum(g)            out = g - exp(lp) d
 * (a, b) below are (y, v), (lp, v) and (lp, g). */
/* (SC_SOFTMAX_JVP, SC_LOG_SOFTMAX_JVP, SC_LOG_SOFTMAX_VJP: softmax_c.h) */

/* The term summed by `op`; lanes past the end are loaded as a = -inf
 * (exp -> 0) for the exp form and a = b = 0 otherwise, so they add 0. */
SC_ALWAYS_INLINE static inline VEC BV(bwd_term)(VEC a, VEC b, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(mul)(a, b);
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(mul)(V(exp_sat)(a), b);
    return b;
}

SC_ALWAYS_INLINE static inline VEC BV(bwd_out)(VEC a, VEC b, VEC d, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(mul)(a, V(sub)(b, d));
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(sub)(b, d);
    return V(sub)(b, V(mul)(V(exp_sat)(a), d));
}

SC_ALWAYS_INLINE static inline SC_T BV(bwd_fill)(int op)
{
    return op == SC_LOG_SOFTMAX_JVP ? (SC_T)-INFINITY : (SC_T)0;
}

/* s + the term of `op` at (a, b): one FMA for the products. */
SC_ALWAYS_INLINE static inline VEC BV(bwd_acc)(VEC s, VEC a, VEC b, int op)
{
    if (op == SC_SOFTMAX_JVP)
        return V(fma)(a, b, s);
    if (op == SC_LOG_SOFTMAX_JVP)
        return V(fma)(V(exp_sat)(a), b, s);
    return V(add)(s, b);
}

/* The k (< VN) lanes at p, the others `fill`, as BL(loadt); `back` says
 * that the VN - k elements before p are the row's too.  Half-width storage
 * has no masked loads: its BL(loadt) goes through a stack copy, whose
 * whole-vector reload waits for the narrow stores before it, so with
 * `back` the lanes come from one whole load ending at p + k, rotated into
 * place (the same lanes, the same bits). */
#if SC_BWD_SAME
#define SC_BWD_LDT(p, k, fill, back) BL(loadt)(p, k, fill)
#else
SC_ALWAYS_INLINE static inline VEC BV(ldt_back)(const BS *p, size_t k, SC_T fill)
{
    return V(blend_lanes)(V(rotate)(BL(load)(p + k - VN), VN - k), V(set1)(fill), k);
}
#define SC_BWD_LDT(p, k, fill, back) ((back) ? BV(ldt_back)(p, k, fill) : BL(loadt)(p, k, fill))
#endif

/* The lane sums of one chunk of at most SC_BWD_CHUNK elements: eight
 * accumulators, so that each lane still adds at most 8 terms (as the
 * forward's 4 accumulators over SC_CHUNK), over chunks twice as long: the
 * chunk's horizontal sum and two-sum step weigh on long rows. */
#define SC_BWD_CHUNK (2 * SC_CHUNK)
/* bwd_chunk over operands that sit k elements past a line boundary reads
 * a from line-aligned loads, and b at the same logical places (from
 * line-aligned loads too when b sits at the same k; one stream of loads
 * that straddle lines instead of two when both sit off a line by different
 * amounts).  Aligned vector J (at a - k + J*VN)
 * holds the first VN - k lanes of logical vector J in its lanes >= k
 * and the last k lanes of logical vector J - 1 in its lanes < k, each lane
 * k places along.  Summed whole into t[J % 8] (the chunk's first and last
 * aligned vectors masked to the chunk), the upper lanes of t[u] are the
 * logical accumulator s[u] and its lower lanes are s[u - 1], every lane
 * with the same terms in the same order as the plain loads give: blending
 * and rotating back by k lanes afterwards gives the same bits.  Loads that
 * straddle two lines are slower streaming from memory. */
#define SC_BWD_AL(t, u)                                                        \
    t = BV(bwd_acc)(t, BL(load)(pa + i + (u) * VN), BL(load)(pb + i + (u) * VN), op)
SC_ALWAYS_INLINE static inline VEC BV(bwd_chunk)(const BS *a, const BS *b, size_t n, int op)
{
    VEC s0 = V(set1)((SC_T)0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    size_t i = 0;
#if SC_BWD_SAME /* (storage loads of the compute dtype's vectors only) */
    const size_t k = ((size_t)a / sizeof(BS)) % VN, kb = ((size_t)b / sizeof(BS)) % VN;
    if (VN > 1 && k && kb && 8 * VN <= n && (size_t)a % sizeof(BS) == 0 &&
        (size_t)b % sizeof(BS) == 0) {
        /* a's line start, and b as far before b (as integers, not pointer
         * arithmetic) */
        const BS *pa = (const BS *)((size_t)a - k * sizeof(BS));
        const BS *pb = (const BS *)((size_t)b - k * sizeof(BS));
        /* aligned vector 0: the lanes before a are 0, not read (adding 0
         * changes no accumulator: none is ever -0) */
        s0 = BV(bwd_acc)(s0, V(loadt_from)(pa, k), V(loadt_from)(pb, k), op);
        for (; i + 8 * VN <= n; i += 8 * VN) {
            SC_BWD_AL(s1, 1);
            SC_BWD_AL(s2, 2);
            SC_BWD_AL(s3, 3);
            SC_BWD_AL(s4, 4);
            SC_BWD_AL(s5, 5);
            SC_BWD_AL(s6, 6);
            SC_BWD_AL(s7, 7);
            if (i + 16 * VN <= n)
                SC_BWD_AL(s0, 8);
            else /* the block's last: its lanes past the blocks are 0, not read */
                s0 = BV(bwd_acc)(s0, BL(loadt)(pa + i + 8 * VN, k, BV(bwd_fill)(op)),
                                BL(loadt)(pb + i + 8 * VN, k, (SC_T)0), op);
        }
        const VEC t0 = s0, t1 = s1, t2 = s2, t3 = s3, t4 = s4, t5 = s5, t6 = s6, t7 = s7;
        s0 = V(rotate)(V(blend_lanes)(t1, t0, k), k);
        s1 = V(rotate)(V(blend_lanes)(t2, t1, k), k);
        s2 = V(rotate)(V(blend_lanes)(t3, t2, k), k);
        s3 = V(rotate)(V(blend_lanes)(t4, t3, k), k);
        s4 = V(rotate)(V(blend_lanes)(t5, t4, k), k);
        s5 = V(rotate)(V(blend_lanes)(t6, t5, k), k);
        s6 = V(rotate)(V(blend_lanes)(t7, t6, k), k);
        s7 = V(rotate)(V(blend_lanes)(t0, t7, k), k);
    }
#endif
    for (; i + 8 * VN <= n; i += 8 * VN) {
        s0 = BV(bwd_acc)(s0, BL(load)(a + i), BL(load)(b + i), op);
        s1 = BV(bwd_acc)(s1, BL(load)(a + i + VN), BL(load)(b + i + VN), op);
        s2 = BV(bwd_acc)(s2, BL(load)(a + i + 2 * VN), BL(load)(b + i + 2 * VN), op);
        s3 = BV(bwd_acc)(s3, BL(load)(a + i + 3 * VN), BL(load)(b + i + 3 * VN), op);
        s4 = BV(bwd_acc)(s4, BL(load)(a + i + 4 * VN), BL(load)(b + i + 4 * VN), op);
        s5 = BV(bwd_acc)(s5, BL(load)(a + i + 5 * VN), BL(load)(b + i + 5 * VN), op);
        s6 = BV(bwd_acc)(s6, BL(load)(a + i + 6 * VN), BL(load)(b + i + 6 * VN), op);
        s7 = BV(bwd_acc)(s7, BL(load)(a + i + 7 * VN), BL(load)(b + i + 7 * VN), op);
    }
    for (; i + VN <= n; i += VN)
        s0 = BV(bwd_acc)(s0, BL(load)(a + i), BL(load)(b + i), op);
    if (i < n)
        s1 = BV(bwd_acc)(s1, SC_BWD_LDT(a + i, n - i, BV(bwd_fill)(op), n >= VN),
                         SC_BWD_LDT(b + i, n - i, (SC_T)0, n >= VN), op);
    return V(add)(V(add)(V(add)(s0, s1), V(add)(s2, s3)), V(add)(V(add)(s4, s5), V(add)(s6, s7)));
}
#undef SC_BWD_AL

#if !SC_BWD_SAME
/* Elements [i0, i1) of the fused pass through plain stores: whole
 * vectors, then a partial one (half-width bwd_apply). */
SC_ALWAYS_INLINE static inline void BV(bwd_span)(const BS *a, const BS *b, BS *out, size_t i0,
                                                 size_t i1, VEC d, int op)
{
    size_t i = i0;
    for (; i + VN <= i1; i += VN)
        BL(store)(out + i, BV(bwd_out)(BL(load)(a + i), BL(load)(b + i), d, op));
    if (i < i1)
        BL(storet)(out + i,
                   BV(bwd_out)(BL(loadt)(a + i, i1 - i, (SC_T)0), BL(loadt)(b + i, i1 - i, (SC_T)0),
                               d, op),
                   i1 - i);
}
#endif

/* The fused element-wise pass with the row's reduction d, element by
 * element, so that it may write over b (out = g).  Last to first on long
 * rows (SC_REVERSE_MIN_BYTES).  (pa, pb), when not NULL, are the next
 * row's operands, prefetched while streaming this row's output.  Stores
 * are vector-aligned (a partial head first), streamed or not: a store
 * that straddles two lines costs more than a load that does. */
SC_ALWAYS_INLINE static inline void BV(bwd_apply)(const BS *a, const BS *b, BS *out, size_t n,
                                                 SC_T dd, int op, int stream,
                                                 const BS *pa, const BS *pb, V(carry_t) *cy,
                                                 int last)
{
    const int rev = n * sizeof(BS) >= SC_REVERSE_MIN_BYTES;
    /* vector-aligned stores from lo on (a partial head [0, lo) first) */
    size_t lo = 0;
    if (VN > 1 && (size_t)out % sizeof(BS) == 0) {
        size_t mis = ((size_t)out / sizeof(BS)) % VN;
        lo = mis ? VN - mis : 0;
        if (lo >= n)
            lo = 0, stream = 0;
    } else {
        stream = 0;
    }
#if SC_BWD_SAME
    const V(wr_src) s = {.a = a, .b = b, .pa = pa, .pb = pb, .c0 = V(set1)(dd)};
    if (stream)
        V(write)(&s, SC_WR_BWD + op, out, 0, n, lo, 1, SC_WR_STREAM | (rev ? SC_WR_REV : 0), cy,
                 last);
    else
        V(write)(&s, SC_WR_BWD + op, out, 0, n, lo, 2, rev ? SC_WR_REV : 0, cy, last);
#else
    /* Half-width storage: the row writer (family/writer.h) is the compute
     * dtype's, so its plan is written out here without the carried line
     * (a vector of 16-bit elements is less than a line).  Streamed, only
     * whole lines are: the partial lines at the ends, which neighbouring
     * rows share, take plain stores (a line written by both kinds of
     * store costs many times a plain one). */
    (void)cy, (void)last;
    const VEC d = V(set1)(dd);
    size_t b0 = lo, b1 = n - (n - lo) % VN; /* the body [b0, b1): whole aligned vectors */
    if (!stream && n >= VN && (b0 || b1 < n)) {
        /* the partial ends as the whole first and last vectors of the row,
         * loaded before any store (out may be b), stored after the body
         * over their overlap with it (the same values) */
        const VEC h = BV(bwd_out)(BL(load)(a), BL(load)(b), d, op);
        const VEC t = BV(bwd_out)(BL(load)(a + n - VN), BL(load)(b + n - VN), d, op);
        if (rev) {
            for (size_t i = b1; i > b0; i -= VN)
                BL(store)(out + i - VN, BV(bwd_out)(BL(load)(a + i - VN), BL(load)(b + i - VN), d, op));
        } else {
            for (size_t i = b0; i < b1; i += VN)
                BL(store)(out + i, BV(bwd_out)(BL(load)(a + i), BL(load)(b + i), d, op));
        }
        BL(store)(out, h);
        BL(store)(out + n - VN, t);
        return;
    }
    if (stream) {
        const size_t lw = SC_LINE / sizeof(BS), mis = ((size_t)out / sizeof(BS)) % lw;
        b0 = mis ? lw - mis : 0;
        if (b0 > n)
            b0 = n;
        b1 = b0 + (n - b0) / lw * lw;
    }
    BV(bwd_span)(a, b, out, 0, b0, d, op);
    BV(bwd_span)(a, b, out, b1, n, d, op);
    if (rev) {
        for (size_t i = b1; i > b0; i -= VN) {
            const VEC r = BV(bwd_out)(BL(load)(a + i - VN), BL(load)(b + i - VN), d, op);
            if (stream)
                BL(stream)(out + i - VN, r);
            else
                BL(store)(out + i - VN, r);
        }
    } else {
        for (size_t i = b0; i < b1; i += VN) {
            const VEC r = BV(bwd_out)(BL(load)(a + i), BL(load)(b + i), d, op);
            if (pa && (i * sizeof(BS)) % SC_LINE < VN * sizeof(BS)) {
                SC_PREFETCH(pa + i);
                SC_PREFETCH(pb + i);
            }
            if (stream)
                BL(stream)(out + i, r);
            else
                BL(store)(out + i, r);
        }
    }
#endif
}

SC_ALWAYS_INLINE static inline void BV(bwd_row)(const BS *a, const BS *b, BS *out, size_t n,
                                               int op, int stream, const BS *pa, const BS *pb,
                                               V(carry_t) *cy, int last)
{
    double s = 0.0, c = 0.0;
    for (size_t i = 0; i < n; i += SC_BWD_CHUNK) {
        size_t len = n - i < SC_BWD_CHUNK ? n - i : SC_BWD_CHUNK;
        sc_two_sum_add(&s, &c, V(hsum)(BV(bwd_chunk)(a + i, b + i, len, op)));
    }
    /* c is NaN (inf - inf) once s overflows or holds an infinity */
    BV(bwd_apply)(a, b, out, n, (SC_T)(isfinite(s) ? s + c : s), op, stream, pa, pb, cy, last);
}

/* Rows of at most two vectors: bwd_row's arithmetic without its per-row
 * setup (chunks, eight accumulators, the compensated total, the store
 * plan), which dominates such rows.  Same bits: below 8 VN elements
 * bwd_chunk sums the whole vectors into s0 in turn and the partial one
 * into s1, the other accumulators stay 0 (adding 0 changes none: none is
 * ever -0), and the total of one chunk is its own sum.  Plain stores: a
 * row is at most two lines. */
SC_ALWAYS_INLINE static inline void BV(bwd_short_rows)(const BS *a, ptrdiff_t lda, const BS *b,
                                                      ptrdiff_t ldb, BS *out, ptrdiff_t ldo,
                                                      size_t rows, size_t n, int op)
{
    const VEC z = V(set1)((SC_T)0);
    if (n < VN) {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x = BL(loadt)(a, n, BV(bwd_fill)(op)), y = BL(loadt)(b, n, (SC_T)0);
            VEC d = V(set1)((SC_T)V(hsum)(BV(bwd_acc)(z, x, y, op)));
            BL(storet)(out, BV(bwd_out)(x, y, d, op), n);
        }
    } else if (n == VN) {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x = BL(load)(a), y = BL(load)(b);
            VEC d = V(set1)((SC_T)V(hsum)(BV(bwd_acc)(z, x, y, op)));
            BL(store)(out, BV(bwd_out)(x, y, d, op));
        }
    } else if (n < 2 * VN) {
        const size_t t = n - VN;
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x0 = BL(load)(a), y0 = BL(load)(b);
            VEC x1 = SC_BWD_LDT(a + VN, t, BV(bwd_fill)(op), 1);
            VEC y1 = SC_BWD_LDT(b + VN, t, (SC_T)0, 1);
            VEC d = V(set1)((SC_T)V(hsum)(V(add)(BV(bwd_acc)(z, x0, y0, op), BV(bwd_acc)(z, x1, y1, op))));
#if SC_BWD_SAME
            BL(store)(out, BV(bwd_out)(x0, y0, d, op));
            BL(storet)(out + VN, BV(bwd_out)(x1, y1, d, op), t);
#else
            /* the last VN elements whole, loaded before any store (out may
             * be b), stored over the first vector's overlap with the same
             * values */
            const VEC o1 = BV(bwd_out)(BL(load)(a + n - VN), BL(load)(b + n - VN), d, op);
            BL(store)(out, BV(bwd_out)(x0, y0, d, op));
            BL(store)(out + n - VN, o1);
#endif
        }
    } else {
        for (size_t r = 0; r < rows; r++, a += lda, b += ldb, out += ldo) {
            VEC x0 = BL(load)(a), y0 = BL(load)(b), x1 = BL(load)(a + VN), y1 = BL(load)(b + VN);
            VEC d = V(set1)((SC_T)V(hsum)(BV(bwd_acc)(BV(bwd_acc)(z, x0, y0, op), x1, y1, op)));
            BL(store)(out, BV(bwd_out)(x0, y0, d, op));
            BL(store)(out + VN, BV(bwd_out)(x1, y1, d, op));
        }
    }
}

SC_ALWAYS_INLINE static inline void BV(bwd_rows)(const BS *a, ptrdiff_t lda, const BS *b,
                                                ptrdiff_t ldb, BS *out, ptrdiff_t ldo,
                                                size_t rows, size_t n, int op)
{
    if (VN > 1 && n <= 2 * VN) {
        BV(bwd_short_rows)(a, lda, b, ldb, out, ldo, rows, n, op);
        return;
    }
    /* half-width rows stream from SC_STREAM_MIN_ROW_BYTES, as the forward's:
     * without the carried line, the lines shorter rows share weigh more */
    if (rows * n * sizeof(BS) >= SC_STREAM_MIN_BYTES &&
        (SC_BWD_SAME || n * sizeof(BS) >= SC_STREAM_MIN_ROW_BYTES)) {
        const int pf = n * sizeof(BS) >= SC_BWD_PREFETCH_MIN_BYTES &&
                       n * sizeof(BS) <= SC_PREFETCH_MAX_BYTES;
        /* output rows that follow each other share lines: each is written
         * whole.  Except rows of exactly 4 KiB whose operands sit at the
         * output's offset in a line (NumPy arrays alike), where the joined
         * line was slower than plain stores. */
        const int rows_4k = n * sizeof(BS) == 4096 && lda == ldo && ldb == ldo &&
                            ((size_t)a - (size_t)out) % SC_LINE == 0 &&
                            ((size_t)b - (size_t)out) % SC_LINE == 0;
        const int join = SC_BWD_SAME && ldo == (ptrdiff_t)n && !rows_4k;
        V(carry_t) cy;
        cy.k = 0;
        for (size_t r = 0; r < rows; r++)
            BV(bwd_row)(a + (ptrdiff_t)r * lda, b + (ptrdiff_t)r * ldb, out + (ptrdiff_t)r * ldo, n, op, 1,
                       pf && r + 1 < rows ? a + (ptrdiff_t)(r + 1) * lda : NULL,
                       pf && r + 1 < rows ? b + (ptrdiff_t)(r + 1) * ldb : NULL,
                       join ? &cy : NULL, r + 1 == rows);
        sc_sfence();
    } else {
        for (size_t r = 0; r < rows; r++)
            BV(bwd_row)(a + (ptrdiff_t)r * lda, b + (ptrdiff_t)r * ldb, out + (ptrdiff_t)r * ldo, n, op, 0,
                       NULL, NULL, NULL, 1);
    }
}

/* Column panels (m <= SC_COLS_MAX columns): the reduction per lane over n
 * rows, 8-row chunks into a two-sum accumulator per column vector, then the
 * element-wise pass.  Every row is taken whole (all its column vectors) before
 * the next, so each cache line is read once per pass, not once per column
 * vector. */
#ifndef SC_COLS_MAX
#define SC_COLS_MAX 64
#endif

/* One block of nv column vectors (the last of kl lanes).  Inlined with a
 * constant nv (1-4 below), the loops over v unroll and the accumulators
 * stay in registers (with a run-time nv they went through the stack); two
 * accumulators per vector (even and odd rows) halve the add chain.  The
 * reduction pass also prefetches the output's lines for writing, so that
 * the write pass does not wait for them.  Where the panel's rows are whole
 * rows of a C-contiguous array (lda = ldb = m, a panel of (N, C, d) along
 * C), the next panel follows it in memory: the write pass prefetches it
 * row by row, so that the next reduction reads it from cache.  (Streaming
 * stores for the write pass lost; and a panel alone cannot know the call's
 * size.) */
SC_ALWAYS_INLINE static inline void BV(bwd_cols_nv)(const BS *a, ptrdiff_t lda, const BS *b,
                                                   ptrdiff_t ldb, BS *out, ptrdiff_t ldo,
                                                   size_t n, size_t nv, size_t kl, int op)
{
    enum { NV = SC_COLS_MAX / VN };
    VEC hi[NV], lo[NV], acc[NV], acc2[NV];
    for (size_t v = 0; v < nv; v++)
        hi[v] = lo[v] = V(set1)((SC_T)0);
    for (size_t i0 = 0; i0 < n; i0 += 8) {
        size_t i1 = n - i0 < 8 ? n : i0 + 8, i = i0;
        for (size_t v = 0; v < nv; v++)
            acc[v] = acc2[v] = V(set1)((SC_T)0);
        for (; i + 2 <= i1; i += 2) {
            const BS *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
            for (size_t v = 0; v < nv; v++) {
                SC_PREFETCH_W(out + (ptrdiff_t)i * ldo + v * VN);
                SC_PREFETCH_W(out + (ptrdiff_t)(i + 1) * ldo + v * VN);
            }
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                acc[v] = V(add)(acc[v], BV(bwd_term)(BL(ldk)(ai + v * VN, k, BV(bwd_fill)(op)),
                                                    BL(ldk)(bi + v * VN, k, (SC_T)0), op));
                acc2[v] = V(add)(acc2[v], BV(bwd_term)(BL(ldk)(ai + lda + v * VN, k, BV(bwd_fill)(op)),
                                                      BL(ldk)(bi + ldb + v * VN, k, (SC_T)0), op));
            }
        }
        if (i < i1) {
            const BS *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
            for (size_t v = 0; v < nv; v++) {
                size_t k = v + 1 < nv ? VN : kl;
                acc[v] = V(add)(acc[v], BV(bwd_term)(BL(ldk)(ai + v * VN, k, BV(bwd_fill)(op)),
                                                    BL(ldk)(bi + v * VN, k, (SC_T)0), op));
            }
        }
        for (size_t v = 0; v < nv; v++)
            V(two_sum)(&hi[v], &lo[v], V(add)(acc[v], acc2[v]));
    }
    for (size_t v = 0; v < nv; v++)
        /* d of each column vector; lo is NaN once hi is not finite */
        acc[v] = V(select_lt)(V(sub)(hi[v], hi[v]), V(set1)((SC_T)1), V(add)(hi[v], lo[v]), hi[v]);
    const ptrdiff_t m = (ptrdiff_t)((nv - 1) * VN + kl);
    const int next = lda == m && ldb == m; /* the next panel follows this one */
    for (size_t i = 0; i < n; i++) {
        const BS *ai = a + (ptrdiff_t)i * lda, *bi = b + (ptrdiff_t)i * ldb;
        BS *oi = out + (ptrdiff_t)i * ldo;
        if (next) {
            for (size_t v = 0; v < nv; v++) {
                SC_PREFETCH(ai + (ptrdiff_t)n * lda + v * VN);
                SC_PREFETCH(bi + (ptrdiff_t)n * ldb + v * VN);
            }
        }
        for (size_t v = 0; v < nv; v++) {
            size_t k = v + 1 < nv ? VN : kl;
            BL(stk)(oi + v * VN, BV(bwd_out)(BL(ldk)(ai + v * VN, k, (SC_T)0),
                                           BL(ldk)(bi + v * VN, k, (SC_T)0), acc[v], op), k);
        }
    }
}

SC_ALWAYS_INLINE static inline void BV(bwd_cols_block)(const BS *a, ptrdiff_t lda,
                                                      const BS *b, ptrdiff_t ldb, BS *out,
                                                      ptrdiff_t ldo, size_t n, size_t m, int op)
{
    if (m == 0)
        return;
    const size_t nv = (m + VN - 1) / VN, kl = m - (nv - 1) * VN; /* lanes of the last */
    switch (nv) {
    case 1: BV(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 1, kl, op); break;
    case 2: BV(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 2, kl, op); break;
    case 3: BV(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 3, kl, op); break;
    case 4: BV(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, 4, kl, op); break;
    default: BV(bwd_cols_nv)(a, lda, b, ldb, out, ldo, n, nv, kl, op); break;
    }
}

/* Any m: blocks of SC_COLS_MAX columns. */
SC_ALWAYS_INLINE static inline void BV(bwd_cols)(const BS *a, ptrdiff_t lda, const BS *b,
                                                ptrdiff_t ldb, BS *out, ptrdiff_t ldo,
                                                size_t n, size_t m, int op)
{
    for (size_t j = 0; j < m; j += SC_COLS_MAX)
        BV(bwd_cols_block)(a + j, lda, b + j, ldb, out + j, ldo, n,
                          m - j < SC_COLS_MAX ? m - j : SC_COLS_MAX, op);
}

#define SC_BWD_KERNELS(name, OP)                                                              \
    void BK(name##_rows)(const BS *a, ptrdiff_t lda, const BS *b, ptrdiff_t ldb, BS *out, \
                          ptrdiff_t ldo, size_t rows, size_t n)                                 \
    {                                                                                         \
        BV(bwd_rows)(a, lda, b, ldb, out, ldo, rows, n, OP);                                   \
    }                                                                                         \
    void BK(name##_cols)(const BS *a, ptrdiff_t lda, const BS *b, ptrdiff_t ldb, BS *out, \
                          ptrdiff_t ldo, size_t n, size_t m)                                    \
    {                                                                                         \
        BV(bwd_cols)(a, lda, b, ldb, out, ldo, n, m, OP);                                      \
    }

SC_BWD_KERNELS(softmax_jvp, SC_SOFTMAX_JVP)
SC_BWD_KERNELS(log_softmax_jvp, SC_LOG_SOFTMAX_JVP)
SC_BWD_KERNELS(log_softmax_vjp, SC_LOG_SOFTMAX_VJP)
#undef SC_BWD_KERNELS

#undef SC_BWD_LDT
#ifndef SC_BWD_STORAGE
#undef BS
#undef BL
#undef BV
#undef BK
#undef SC_BWD_SAME
#endif
