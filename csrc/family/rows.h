/*
 * family/rows.h - the row kernels (softmax_rows, softmax_rows_ws,
 * log_softmax_rows, logsumexp_rows): the planner for a call's rows.  Each
 * picks, by row length and output size, the 16-row forms, the short-row
 * forms, the grouped-log form, the pipeline, or the three steps a row at
 * a time with plain or streaming stores.
 */

/* Softmax rows: the three steps, exp stored while summing and scaled in
 * place, the next row prefetched during the exp sweep.  (A variant that
 * summed without storing and recomputed exp in a write-only streaming
 * pass, to spare the read for ownership of each output line, lost: exp
 * costs more than that read.) */
void KFN(softmax_rows_ws)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                          size_t n, SC_T *work, size_t work_len)
{
    if (n == 0)
        return;
    if (V(rows16)(SC_R16_SOFTMAX, x, ldx, y, ldy, rows, n))
        return;
    if (VN > 1 && n > 2 * VN && n <= 4 * VN) {
        V(softmax_4v)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN > 1 && work != NULL && work_len >= sc_pipe_work(sizeof(SC_T), n) &&
        sc_pipe_rows(sizeof(SC_T), y, ldy, rows, n, 0)) {
        V(rows_pipe)(x, ldx, y, ldy, rows, n, 0, work);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        SC_T mx = V(row_max)(xr, n);
        double s = V(expsum)(xr, yr, n, mx, V(prefetch_row)(xr, ldx, r, rows, n));
        V(scale)(yr, n, (SC_T)(1.0 / s));
    }
}

void KFN(softmax_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows, size_t n)
{
    KFN(softmax_rows_ws)(x, ldx, y, ldy, rows, n, NULL, 0);
}

/* Rows of more than four vectors but under SC_STREAM_MIN_ROW_BYTES (float32
 * 65-255 elements with AVX-512): the row steps, the logs of SC_LOGD_N
 * rows' sums at once (sc_logd_n, lane by lane: a row's bits do not depend
 * on its group) instead of a libm log per row, each group's final passes
 * reading its rows again from L1.  AVX-512 only: with AVX2 it lost.  Not
 * inlined, as log_softmax_short. */
static void V(log_softmax_grouped)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy,
                                   size_t rows, size_t n)
{
    for (size_t r0 = 0; r0 < rows; r0 += SC_LOGD_N) {
        const size_t g = rows - r0 < SC_LOGD_N ? rows - r0 : SC_LOGD_N;
        SC_T mxs[SC_LOGD_N];
        double ls[SC_LOGD_N];
        for (size_t j = 0; j < g; j++) {
            const SC_T *xr = x + (ptrdiff_t)(r0 + j) * ldx;
            mxs[j] = V(row_max)(xr, n);
            ls[j] = V(expsum)(xr, NULL, n, mxs[j], V(prefetch_row)(xr, ldx, r0 + j, rows, n));
        }
        for (size_t j = g; j < SC_LOGD_N; j++)
            ls[j] = 1.0;
        sc_logd_n(ls);
        for (size_t j = 0; j < g; j++)
            V(final_pass)(x + (ptrdiff_t)(r0 + j) * ldx, y + (ptrdiff_t)(r0 + j) * ldy, n, mxs[j],
                          (SC_T)ls[j], 0);
    }
}

void KFN(log_softmax_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *y, ptrdiff_t ldy, size_t rows,
                           size_t n)
{
    if (n == 0)
        return;
    if (VN > 1 && n <= 2 * VN) {
        V(log_softmax_short)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN > 1 && n <= 4 * VN) {
        V(log_softmax_4v)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN * sizeof(SC_T) == 64 && n * sizeof(SC_T) < SC_STREAM_MIN_ROW_BYTES) {
        V(log_softmax_grouped)(x, ldx, y, ldy, rows, n);
        return;
    }
    if (VN > 1 && sc_pipe_rows(sizeof(SC_T), y, ldy, rows, n, 1)) {
        V(rows_pipe)(x, ldx, y, ldy, rows, n, 1, NULL);
        return;
    }
    const int stream = rows * n * sizeof(SC_T) >= SC_STREAM_MIN_BYTES &&
                       n * sizeof(SC_T) >= SC_STREAM_MIN_ROW_BYTES;
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T mx = V(row_max)(xr, n);
        double s = V(expsum)(xr, NULL, n, mx, V(prefetch_row)(xr, ldx, r, rows, n));
        SC_T *yr = y + (ptrdiff_t)r * ldy;
        if (stream)
            V(final_pass)(xr, yr, n, mx, (SC_T)log(s), 1);
        else
            V(final_pass)(xr, yr, n, mx, (SC_T)log(s), 0);
    }
    if (stream)
        sc_sfence();
}

void KFN(logsumexp_rows)(const SC_T *x, ptrdiff_t ldx, SC_T *out, ptrdiff_t ldo, size_t rows,
                         size_t n)
{
    if (VN > 1 && n >= 1 && n <= 4 * VN) {
        V(logsumexp_short)(x, ldx, out, ldo, rows, n);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const SC_T *xr = x + (ptrdiff_t)r * ldx;
        SC_T mx = V(row_max)(xr, n), res;
        if (n == 0)
            res = (SC_T)-INFINITY;
        else if (!(mx > (SC_T)-INFINITY && mx < (SC_T)INFINITY))
            res = V(lse_nonfinite)(xr, 1, n, mx);
        else
            res = (SC_T)((double)mx + log(V(expsum)(xr, NULL, n, mx,
                                                     V(prefetch_row)(xr, ldx, r, rows, n))));
        out[(ptrdiff_t)r * ldo] = res;
    }
}
