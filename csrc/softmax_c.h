/*
 * softmax_c.h - the C API of softmax_c: row and panel kernels for softmax,
 * log_softmax and logsumexp, in float32 (_f32) and float64 (_f64), and
 * for float16 (_f16) and bfloat16 (_bf16) storage computed in float32.
 *
 * Plain C99, no Python.  Each function dispatches at run time to the best
 * kernel this CPU and OS support (AVX-512F, AVX2+FMA, or portable C),
 * chosen once on first use; the environment variable SOFTMAX_C_SIMD
 * ("avx512f", "avx2" or "scalar") caps the level, e.g. for tests.
 * No function allocates memory, takes a lock, or touches floating-point
 * control state; all are safe to call from several threads at once.
 *
 * Layouts.  Strides (ld*) count elements, not bytes, and may be negative.
 *   _rows : `rows` slices of n contiguous elements; slice r starts at
 *           x + r*ldx (and y + r*ldy).
 *   _cols : one panel of n rows by m contiguous columns; the slice is a
 *           column: x[i*ldx + j], i in [0, n), for each j in [0, m).
 *           This is a non-last axis of a C-contiguous array.
 * For softmax and log_softmax, y may be x (same strides) for in-place use;
 * otherwise x and y must not overlap.
 *
 * Values, each slice on its own:
 *   - finite inputs of any magnitude: no overflow; softmax relative error
 *     <= 1e-6 (f32) / 1e-14 (f64) + u*|x_i - max| for results at least the
 *     smallest normal (smaller results may be flushed to 0); log_softmax and
 *     logsumexp absolute error <= tol * max(1, |result|).  Slices of 2^20
 *     elements and more keep this bound (compensated sums).
 *   - softmax / log_softmax: a NaN or +inf in the slice, or a slice of only
 *     -inf, gives a slice of NaN.
 *   - logsumexp: NaN -> NaN; else +inf present -> +inf; all -inf or n == 0
 *     -> -inf.
 *   - n == 0 (or rows == 0 / m == 0): nothing is written except logsumexp's
 *     -inf results.
 */
#ifndef SOFTMAX_C_H
#define SOFTMAX_C_H

#include <stddef.h>
#include <stdint.h>

#include "sc_kernels.def"

#ifdef __cplusplus
extern "C" {
#endif

/* sc_softmax_rows_<dt>(x, ldx, y, ldy, rows, n):
 *   y[r*ldy + i] = exp(x_i - max) / sum_j exp(x_j - max) over slice r. */

/* sc_softmax_rows_ws_<dt>(x, ldx, y, ldy, rows, n, work, work_len),
 * sc_softmax_rows_work_<dt>(y, ldy, rows, n):
 * the same with scratch space: given `work` of at least
 * sc_softmax_rows_work(y, ldy, rows, n) elements (a number that is 0 where
 * it would not help), large outputs (4 MiB or more, rows of 1-256 KiB) are
 * written a row behind through streaming stores, from the scratch, so that
 * no line of y is read before it is written.  Without enough work (NULL,
 * work_len too small) it is sc_softmax_rows.  The same results either way;
 * work must not overlap x or y and holds nothing afterwards. */

/* sc_log_softmax_rows_<dt>(x, ldx, y, ldy, rows, n):
 *   y[r*ldy + i] = x_i - logsumexp(slice r). */

/* sc_logsumexp_rows_<dt>(x, ldx, out, ldo, rows, n):
 *   out[r*ldo] = log(sum_i exp(x_i)) over slice r. */

/* sc_logsumexp_w_rows_<dt>(x, ldx, b, ldb, sb, out, ldo, sgn, lds, rows, n):
 *   SciPy's weighted logsumexp (scipy.special.logsumexp with b= and
 *   return_sign=) over slice r of x (contiguous, rows ldx apart), weights
 *   b[r*ldb + i*sb] (ldb and sb may be 0: weights shared by every row, one
 *   weight per row): out[r*ldo] = log|sum_i b_i exp(x_i)| and, when sgn is
 *   not NULL, sgn[r*lds] = its sign (+1, -1, 0 for a zero sum, NaN for
 *   NaN); without sgn a negative sum gives NaN.  Zero weights drop their
 *   terms (even on +inf or NaN); the terms b_i exp(x_i - max) are summed
 *   with lane-wise two-sum compensation, so terms of both signs cancel with
 *   an error of about u |sum| plus the exponentials' own (1 ulp of each
 *   term).  A slice whose result that way is not finite (see
 *   family/lse_w.h) takes SciPy's direct formula, log|sum b_i exp(x_i)| in
 *   the working precision, as SciPy does.  n == 0: -inf, sign 0. */

/* sc_softmax_cols_<dt>, sc_log_softmax_cols_<dt>, sc_logsumexp_cols_<dt>
 * (x, ldx, y, ldy, n, m): the same three over the columns of an n-by-m
 * panel (see Layouts); logsumexp_cols writes out[j*ldo] for each column j. */

/* sc_<op>_rows_<dt>(a, lda, b, ldb, out, ldo, rows, n) and
 * sc_<op>_cols_<dt>(a, lda, b, ldb, out, ldo, n, m), <op> one of
 * softmax_jvp, log_softmax_jvp, log_softmax_vjp: the backward products,
 * per slice (rows: slice r at a + r*lda, b + r*ldb, out + r*ldo; cols: an
 * n-by-m panel as above):
 *   softmax_jvp(y, v)       out = y * (v - sum(y * v))   (also the VJP: the
 *                           Jacobian diag(y) - y y^T is symmetric)
 *   log_softmax_jvp(lp, v)  out = v - sum(exp(lp) * v)
 *   log_softmax_vjp(lp, g)  out = g - exp(lp) * sum(g)
 * The sums are compensated (rows of 2^20 and more keep a relative error
 * near 1e-7 / 1e-16 of the sum of magnitudes); NaN in a slice makes its
 * result NaN.  lp are log-probabilities (<= 0); exp(lp) saturates to +inf
 * above about 88 (f32) / 709 (f64).  out may be b (same strides), for
 * in-place use. */

/* sc_xent_rows_<dt>(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p):
 * fused cross-entropy, PyTorch's semantics (torch.nn.functional.
 * cross_entropy), one row of n class logits at a time: the per-row loss
 * (in double, before any reduction) and, when g is not NULL, its gradient
 * times `scale` -- in one read sweep over the logits for the loss and one
 * more that writes the gradient.
 *   q == NULL: class index targets t[r*ldt] in [0, n), or < 0 for an
 *              ignored row (loss 0, gradient 0); an index >= n gives a
 *              NaN loss and a NaN gradient row (nothing is read there);
 *   q != NULL: class probability targets q[r*ldq + c] (t unused).
 * g may be z (same strides): the gradient overwrites the logits; it must
 * not overlap q. */
typedef struct {
    const void *weight;     /* n per-class weights of the kernel's dtype, or NULL (all 1) */
    double label_smoothing; /* in [0, 1] */
    double scale;           /* gradient factor: 1 / denominator for "mean", else 1 */
    double weight_sum;      /* sum of the weights; n without weights */
} sc_xent_params;

/* sc_xent_rows_ws_<dt>(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, rows, n, p,
 * work, work_len), sc_xent_rows_work_<dt>(g, ldg, rows, n): the same with
 * scratch space, as sc_softmax_rows_ws: given `work` of at
 * least sc_xent_rows_work(g, ldg, rows, n) elements (0 where it would not
 * help), the gradients of large outputs (4 MiB or more, rows of 8-256 KiB)
 * with class-index targets (q NULL), not in place (g != z), are written a
 * row behind through streaming stores, from the scratch.  Without enough work it is
 * sc_xent_rows.  The same results either way (bitwise); work must not
 * overlap the operands and holds nothing afterwards. */

/* sc_xent_cols_<dt>(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, n, m, p): the
 * same over a panel: n classes (stride ldz) by m contiguous columns,
 * one sample per column -- the layout of PyTorch's (N, C, d1, ...) along
 * axis 1 -- with t[j*ldt] and loss[j*ldl] per column and q, g panels like z
 * (strides ldq, ldg; g may be z).  Results within the same bounds as the
 * row kernel's, not bitwise the same (the sums run per lane). */

/* sc_xent_opt_rows_<dt>(z, ldz, q, ldq, t, ldt, g, ldg, loss, ldl, lse, ldlse,
 * rows, n, p, o, work, work_len): sc_xent_rows with the options o, in one
 * read of each row of z:
 *   o->softcap > 0: the logits are c = softcap * tanh(z / softcap) (the
 *                   fused softmax's cap), the gradient chained through it
 *                   (times 1 - tanh^2); needs `work` of n elements (per
 *                   call; without it every output is NaN); 0: no cap;
 *   o->z_scale:     the gradient gains 2 z_scale lse softmax(c) per kept
 *                   row (z_scale: the z-loss coefficient times its
 *                   reduction's factor); the loss does not: `loss` holds
 *                   the cross-entropy alone, the caller adds the z-loss
 *                   from lse;
 *   lse (or NULL):  lse[r*ldlse] = logsumexp of row r of c, for every row
 *                   (ignored rows and rows of an out-of-range class too).
 * Rows with the same inputs give the same bits whatever the other rows. */
typedef struct {
    double softcap; /* > 0, or 0 for none */
    double z_scale; /* >= 0 */
} sc_xent_opts;

/* sc_fused_rows_<dt>(x, ldx, y, ldy, rows, n, bias, scale, sink, q0, p, work):
 * softmax, log_softmax or logsumexp (p->op) of rows whose elements are, in
 * this order (all in the kernel's dtype):
 *   z = x * scale            scale: row r's at scale[r * p->ld_scale], or
 *                            p->scale for every row when scale is NULL;
 *   z = c * tanh(z / c)      when c = p->softcap > 0;
 *   z = z + bias             bias (or NULL): row r's at bias + r * p->ld_bias,
 *                            n values (p->inc_bias 1) or one (inc_bias 0);
 *                            a bias of -inf excludes its position;
 * row r keeps only its first clamp(q0 + r + p->causal_k + 1, 0, n)
 * positions when p->causal (query q0 + r over n keys), the others excluded
 * and never read; with p->has_sink, a logit (sink[r * p->ld_sink], or
 * p->sink when sink is NULL) joins the max and the sum only.  Excluded
 * positions get 0 (softmax) / -inf (log_softmax); a row with nothing left
 * (no kept finite z, no sink) gives 0 / -inf / -inf; a NaN or +inf among
 * the kept z makes the kept positions NaN (logsumexp: NaN, or +inf).
 * softmax / log_softmax write y[r * ldy + i]; logsumexp writes y[r * ldy]
 * and needs `work` of n elements with softcap; p->stream calls need `work` of
 * 2 * ceil(n / L) * L + L elements (L: the elements of a 64-byte line).  y
 * may be x (same strides) for softmax / log_softmax. */
enum sc_fused_op { SC_FUSED_SOFTMAX = 0, SC_FUSED_LOG_SOFTMAX = 1, SC_FUSED_LOGSUMEXP = 2 };
typedef struct {
    int op;              /* enum sc_fused_op */
    int causal;          /* 0 or 1 */
    int has_sink;        /* 0 or 1 */
    double scale;        /* every row's factor when the scale pointer is NULL */
    ptrdiff_t ld_scale;  /* row stride of the scale pointer */
    double softcap;      /* > 0, or 0: no cap */
    ptrdiff_t ld_bias;   /* row stride of bias */
    ptrdiff_t inc_bias;  /* 1: a row of n values; 0: one value per row */
    ptrdiff_t causal_k;  /* query i keeps keys j <= i + causal_k */
    double sink;         /* every row's sink when the sink pointer is NULL */
    ptrdiff_t ld_sink;   /* row stride of the sink pointer */
    int stream;          /* 1: a large output (4 MiB or more in the whole call): rows
                          * of 1 KiB or more are made in `work` (see above, needed
                          * then) and written through streaming stores */
} sc_fused_params;

/* sc_tanh_rows_<dt>(x, ldx, y, ldy, rows, n): y = tanh(x), the softcap's
 * vector tanh (a few ulp), exposed for the tests. */

/* ---- One row across threads ---------------------------------------------
 * The pieces the row kernels are made of, for splitting one long row
 * between threads (softmax_c does this itself when rows are fewer than
 * threads).  The row kernels sum exp(x_i - max) in chunks of
 * sc_piece_chunk_*() elements (it depends on the SIMD level in use) and add
 * the chunk sums in order with compensation.  Cut a row into pieces at
 * multiples of that length and this recipe gives bitwise the row kernels'
 * results, whatever the number of pieces:
 *   1. mx = the max of sc_piece_max(piece) over the pieces (exact, any
 *      order); if mx is not finite, use the row kernel on the whole row;
 *   2. per piece: sc_piece_expsum(piece, y_piece or NULL, len, mx,
 *      sums + index of the piece's first chunk);
 *   3. s = sc_piece_total(sums, number of chunks), on one thread;
 *   4. softmax:     per piece sc_piece_scale(y_piece, len, (T)(1.0 / s));
 *      log_softmax: per piece sc_piece_log_softmax(x_piece, y_piece, len,
 *                   mx, (T)log(s));
 *      logsumexp:   (T)((double)mx + log(s)).
 * sc_piece_max may skip a NaN; the NaN still reaches every result through
 * the sums.  y may be x (in place). */
/* sc_piece_max_<dt>(x, n): the max, -inf for n == 0.
 * sc_piece_chunk_<dt>(): the chunk length.
 * sc_piece_expsum_<dt>(x, y, n, mx, sums): sums[k] = sum of exp(x_i - mx)
 *   over chunk k (elements k*chunk on), y_i = exp(x_i - mx) when y != NULL;
 *   needs mx >= every x_i.
 * sc_piece_total(sums, k): the compensated sum of sums[0..k), in order.
 * sc_piece_scale_<dt>(y, n, a): y *= a.
 * sc_piece_log_softmax_<dt>(x, y, n, mx, c): y = (x - mx) - c. */

/* The backward products in pieces, by the same recipe: the reduction d of
 * a row is d = (T)sc_piece_total(sums, chunks) over the chunk sums that
 * sc_piece_bwd_sums writes for each piece (cut at multiples of
 * sc_piece_bwd_chunk_*() elements), then sc_piece_bwd_out writes each
 * piece of the output; bitwise the _rows kernels' results:
 *   sc_piece_bwd_chunk_<dt>(), sc_piece_bwd_sums_<dt>(op, a, b, n, sums),
 *   sc_piece_bwd_out_<dt>(op, a, b, out, n, d); `op` is one of: */
enum sc_bwd_op { SC_SOFTMAX_JVP = 0, SC_LOG_SOFTMAX_JVP = 1, SC_LOG_SOFTMAX_VJP = 2 };

/* The cross-entropy of one row (sc_xent_rows, rows = 1) in pieces, by the
 * same recipe, for rows of at most sc_piece_xent_max_bytes_*() bytes (for
 * longer rows, the sweep pieces below): z, q, g point at the row's start;
 * a piece is [lo, lo + len), lo a multiple of sc_piece_chunk_*().
 *   0. index targets: t < 0 (ignored) or t >= n, use the row kernel.
 *   1. mx = the max of sc_piece_max over the pieces; not finite: the row
 *      kernel;
 *   2. probability targets or label smoothing: per piece
 *      sc_piece_xent_ud(z, q, lo, len, n, mx, p, usums + k, dsums + k),
 *      k = lo / chunk; then U and D = the plain sums of usums[0..K) and
 *      dsums[0..K) in order, from 0.0; either not finite: the row kernel
 *      (U = D = 0 otherwise);
 *   3. index targets: zt = z[t], before step 4 may overwrite it (g == z);
 *   4. per piece sc_piece_expsum(z + lo, g ? g + lo : NULL, len, mx,
 *      sums + k); s = sc_piece_total(sums, K);
 *   5. loss = sc_piece_xent_finish(q, t, zt, g, n, mx, s, U, D, p, f),
 *      f: 3 doubles (the gradient's factors);
 *   6. with a gradient, per piece sc_piece_xent_scale(g, q, t, lo, len, n,
 *      p, f).  p->scale as for sc_xent_rows. */

/* The cross-entropy of one row of more than sc_piece_xent_max_bytes_*()
 * bytes in pieces (the row kernel's one-sweep path; bitwise its results):
 * z, q, g point at the row's start, a piece is [lo, lo + len), lo a
 * multiple of sc_piece_chunk_*(); ws holds 4 K doubles, K = the row's
 * chunks.
 *   1. per piece sc_piece_xent_sweep_max(z, lo, len, ws);
 *   2. per piece sc_piece_xent_sweep_sums(z, q, lo, len, n, p, ws);
 *   3. sc_piece_xent_sweep_finish(z, q, t, n, p, ws, want_g, &loss, f),
 *      f: 4 doubles (the gradient's factors); it returns 0, or 1 for a row
 *      the row kernel must take whole (an index target ignored or out of
 *      range, sums that need the kernel's slower forms);
 *   4. with a gradient, per piece sc_piece_xent_sweep_grad(z, q, t, g, lo,
 *      len, n, p, f).  g may be z: step 4 writes what it has read. */

/* SIMD levels, lowest first. */
enum sc_simd_level { SC_SIMD_SCALAR = 0, SC_SIMD_AVX2 = 1, SC_SIMD_AVX512F = 2 };

/* sc_simd_level(): the level in use (selecting it on first call).
 * sc_simd_name(level): its name, "scalar", "avx2" or "avx512f".
 * sc_simd_supported(): the highest level this CPU and OS support, ignoring
 *   SOFTMAX_C_SIMD.
 * sc_simd_compiled(): bit mask of the levels compiled into this build
 *   (1 << level). */

/* Half-width storage, computed in float32 (family/half.h):
 * sc_softmax_rows_<H>, sc_log_softmax_rows_<H>, sc_logsumexp_rows_<H> and
 * the _cols forms, H = f16 (IEEE float16) or bf16 (bfloat16), take and
 * write the bits as uint16_t; sc_<name>_to32_<H> write float32 (y of type
 * float).  The input is converted to float32 in registers (no float32 copy
 * is made), computed as the float32 kernels compute, and each result is
 * rounded once, to nearest even, into the output (overflow to +-inf, NaN
 * stays NaN): within one unit in the last place of a half-width output
 * (softmax results of float32's normal range; log_softmax / logsumexp plus
 * the float32 error above).  Same layouts and value rules; y may be x for
 * the half-width outputs. */

/* ---- The declarations -------------------------------------------------
 * Every function above, declared from the one list of entry points,
 * sc_kernels.def: a row K(family, name, dt, sig) or P(name, dt, sig) is
 * sc_<name>_<dt> with the signature SC_SIG_<sig> there (S and C the
 * dtype's storage and compute types: float, double, or uint16_t and
 * float for f16 / bf16); P0(name, sig) is
 * sc_<name>. */
#define SC_DECL_K(family, name, dt, sig) SC_DECLARE(sc_##name##_##dt, SC_SIG(sig, dt))
#define SC_DECL_P(name, dt, sig) SC_DECLARE(sc_##name##_##dt, SC_SIG(sig, dt))
#define SC_DECL_P0(name, sig) SC_DECLARE(sc_##name, SC_SIG0(sig))
SC_MANIFEST(SC_DECL_K, SC_DECL_P, SC_DECL_P0)

/* ---- The same functions as a table -----------------------------------
 * For code that cannot link against the kernels: they live inside the
 * Python extension module softmax_c.kernels, which publishes this table as
 * the capsule "softmax_c.kernels._C_API".  A C extension fetches it with
 * softmax_c_import() (softmax_c_api.h); Cython code cimports
 * softmax_c.kernels, which does the same behind typed inline functions.
 * Each entry is the dispatching function of the same name above
 * (sc_softmax_rows_f32 -> api->softmax_rows_f32), with its contract.
 * Entries are only ever appended: `version` changes when one changes
 * meaning, `size` is sizeof(sc_api) in the build that filled the table. */
#define SC_API_VERSION 1

#define SC_FN_TYPE_(fname, sigx) typedef SC_RET(sigx) fname SC_PARAMS(sigx);
#define SC_FN_TYPE(kind, dt, sig) SC_FN_TYPE_(sc_##kind##_##dt##_fn, SC_SIG(sig, dt))
SC_FN_TYPE(unary, f32, UNARY)
SC_FN_TYPE(unary, f64, UNARY)
SC_FN_TYPE(binary, f32, BINARY)
SC_FN_TYPE(binary, f64, BINARY)
SC_FN_TYPE(xent, f32, XENT)
SC_FN_TYPE(xent, f64, XENT)

/* One member per row of sc_kernels.def, in its order: sc_api.<name>_<dt>
 * (sc_api.<name> for the rows without a dtype). */
#define SC_API_K(family, name, dt, sig) SC_MEMBER(name##_##dt, SC_SIG(sig, dt))
#define SC_API_P(name, dt, sig) SC_MEMBER(name##_##dt, SC_SIG(sig, dt))
#define SC_API_P0(name, sig) SC_MEMBER(name, SC_SIG0(sig))
typedef struct {
    unsigned int version; /* SC_API_VERSION of the build that filled it */
    unsigned int size;    /* sizeof(sc_api) there */
    SC_MANIFEST(SC_API_K, SC_API_P, SC_API_P0)
} sc_api;

/* The table (a static object: never freed, never changes). */
const sc_api *sc_get_api(void);

#ifdef __cplusplus
}
#endif

#endif /* SOFTMAX_C_H */
