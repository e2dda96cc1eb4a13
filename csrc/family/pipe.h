/*
 * family/pipe.h - softmax and log_softmax rows pipelined over rows: the
 * previous row written with streaming stores while this row's
 * exponentials are summed.  The row kernels (family/rows.h) take it when
 * sc_pipe_rows (sc_internal.h) says so; cross-entropy's pipelined rows
 * (family/xent_rows.h) share its chunk steps.
 */

/* Elements [j0, j1) of a pipelined output row: softmax y = e p0 (e the
 * stored exponential in src, p0 = 1/s), log_softmax (lg) y = (x - p0) - p1
 * (x in src, p0 the max, p1 = log s); streaming stores from `head` on (y +
 * head is vector-aligned), plain ones before it and in a last partial
 * vector.  With `cy` (output rows that follow each other), the line a row
 * shares with the next is written whole (V(write)). */
SC_ALWAYS_INLINE static inline void V(pipe_piece)(const SC_T *src, SC_T *y, size_t j0, size_t j1,
                                                  size_t head, SC_T p0, SC_T p1, int lg,
                                                  V(carry_t) *cy, int last)
{
    const V(wr_src) s = {.a = src, .c0 = V(set1)(p0), .c1 = V(set1)(p1)};
    V(write)(&s, lg ? SC_WR_LOG : SC_WR_MUL, y, j0, j1, head, 1, SC_WR_STREAM, cy, last);
}

/* Chunk [i, i + SC_CHUNK) of a pipelined row's exp sweep: the same lines
 * of the next row (pf, if any) prefetched, e stored to dst (if any), the
 * chunk's sum added in as expsum adds it. */
SC_ALWAYS_INLINE static inline void V(pipe_expsum)(const SC_T *x, SC_T *dst, const SC_T *pf,
                                                   size_t i, size_t n, VEC vm, double *s,
                                                   double *c)
{
    const size_t len = n - i < SC_CHUNK ? n - i : SC_CHUNK;
    if (pf) {
        for (size_t q = 0; q < len; q += SC_LINE / sizeof(SC_T))
            SC_PREFETCH(pf + i + q);
    }
    sc_two_sum_add(s, c, V(hsum)(V(expsum_chunk)(x + i, dst ? dst + i : NULL, len, vm)));
}

/* The span [*j0, *j1) of the previous row written beside chunk k of a
 * pipelined row (its head, up to the first aligned vector, goes with chunk
 * 0); 0 when it is empty. */
SC_ALWAYS_INLINE static inline int V(pipe_span)(size_t head, size_t k, size_t n, size_t *j0,
                                                size_t *j1)
{
    *j0 = k ? head + k * SC_CHUNK : 0;
    *j1 = head + (k + 1) * SC_CHUNK;
    if (*j1 > n)
        *j1 = n;
    return *j0 < *j1;
}

/* Softmax (lg = 0) and log_softmax (lg = 1) rows of a large output,
 * pipelined over rows: while a row's exponentials are summed, chunk by
 * chunk, the previous row is written out with streaming stores, from a
 * scratch row holding its exponentials (softmax) or from its x, still in
 * L2 (log_softmax).  The output's lines are then never read (no read for
 * ownership), and its writes drain while exp computes.  The same bits as
 * the row kernels' sweeps.  The lines an output row shares with its
 * neighbours are written whole when the rows follow each other (ldy = n),
 * else with plain stores, prefetched for writing a row ahead.  softmax's
 * two scratch rows are in `work` (sc_pipe_work elements). */
SC_ALWAYS_INLINE static inline void V(rows_pipe)(const SC_T *x, ptrdiff_t ldx, SC_T *y,
                                                 ptrdiff_t ldy, size_t rows, size_t n, int lg,
                                                 SC_T *work)
{
    const size_t lw = SC_LINE / sizeof(SC_T), np = (n + lw - 1) / lw * lw;
    SC_T *cur = NULL, *prev = NULL;
    if (!lg) {
        cur = work + (lw - ((uintptr_t)work / sizeof(SC_T)) % lw) % lw;
        prev = cur + np;
    }
    SC_T *py = NULL, p0 = 0, p1 = 0;
    const SC_T *psrc = NULL;
    size_t phead = 0;
    V(carry_t) cy_buf, *carry = ldy == (ptrdiff_t)n ? &cy_buf : NULL;
    cy_buf.k = 0;
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        const SC_T *pf = r + 1 < rows ? xr + ldx : NULL;
        const SC_T mx = V(row_max)(xr, n);
        const VEC vm = V(set1)(mx);
        double s = 0.0, c = 0.0;
        for (size_t i = 0, k = 0; i < n; i += SC_CHUNK, k++) {
            V(pipe_expsum)(xr, lg ? NULL : cur, pf, i, n, vm, &s, &c);
            size_t j0, j1;
            if (py && V(pipe_span)(phead, k, n, &j0, &j1))
                V(pipe_piece)(psrc, py, j0, j1, phead, p0, p1, lg, carry, 0);
        }
        if (lg) {
            psrc = xr;
            p0 = mx;
            p1 = (SC_T)log(s + c);
        } else {
            SC_T *t = prev;
            prev = cur;
            cur = t;
            psrc = prev;
            p0 = (SC_T)(1.0 / (s + c));
        }
        py = y + (ptrdiff_t)r * ldy;
        phead = (VN - ((size_t)py / sizeof(SC_T)) % VN) % VN;
        if (r + 1 < rows && !carry) {
            SC_PREFETCH_W(py + ldy);
            SC_PREFETCH_W(py + ldy + n - 1);
        }
    }
    V(pipe_piece)(psrc, py, 0, n, phead, p0, p1, lg, carry, 1);
    sc_sfence();
}
