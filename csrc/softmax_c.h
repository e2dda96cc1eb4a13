/*
 * softmax_c.h - the C API of softmax_c: row and panel kernels for softmax,
 * log_softmax and logsumexp, in float32 (_f32) and float64 (_f64).
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

#ifdef __cplusplus
extern "C" {
#endif

/* y[r*ldy + i] = exp(x_i - max) / sum_j exp(x_j - max) over slice r. */
void sc_softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n);
void sc_softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n);

/* The same with scratch space: given `work` of at least
 * sc_softmax_rows_work(y, ldy, rows, n) elements (a number that is 0 where
 * it would not help), large outputs (4 MiB or more, rows of 1-256 KiB) are
 * written a row behind through streaming stores, from the scratch, so that
 * no line of y is read before it is written.  Without enough work (NULL,
 * work_len too small) it is sc_softmax_rows.  The same results either way;
 * work must not overlap x or y and holds nothing afterwards. */
size_t sc_softmax_rows_work_f32(const float *y, ptrdiff_t ldy, size_t rows, size_t n);
size_t sc_softmax_rows_work_f64(const double *y, ptrdiff_t ldy, size_t rows, size_t n);
void sc_softmax_rows_ws_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows,
                            size_t n, float *work, size_t work_len);
void sc_softmax_rows_ws_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows,
                            size_t n, double *work, size_t work_len);

/* y[r*ldy + i] = x_i - logsumexp(slice r). */
void sc_log_softmax_rows_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t rows, size_t n);
void sc_log_softmax_rows_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t rows, size_t n);

/* out[r*ldo] = log(sum_i exp(x_i)) over slice r. */
void sc_logsumexp_rows_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_logsumexp_rows_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t rows, size_t n);

/* The same three over the columns of an n-by-m panel (see Layouts);
 * logsumexp_cols writes out[j*ldo] for each column j. */
void sc_softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m);
void sc_softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m);
void sc_log_softmax_cols_f32(const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, size_t n, size_t m);
void sc_log_softmax_cols_f64(const double *x, ptrdiff_t ldx, double *y, ptrdiff_t ldy, size_t n, size_t m);
void sc_logsumexp_cols_f32(const float *x, ptrdiff_t ldx, float *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_logsumexp_cols_f64(const double *x, ptrdiff_t ldx, double *out, ptrdiff_t ldo, size_t n, size_t m);

/* Backward products, per slice (rows: slice r at a + r*lda, b + r*ldb,
 * out + r*ldo; cols: an n-by-m panel as above):
 *   softmax_jvp(y, v)       out = y * (v - sum(y * v))   (also the VJP: the
 *                           Jacobian diag(y) - y y^T is symmetric)
 *   log_softmax_jvp(lp, v)  out = v - sum(exp(lp) * v)
 *   log_softmax_vjp(lp, g)  out = g - exp(lp) * sum(g)
 * The sums are compensated (rows of 2^20 and more keep a relative error
 * near 1e-7 / 1e-16 of the sum of magnitudes); NaN in a slice makes its
 * result NaN.  lp are log-probabilities (<= 0); exp(lp) saturates to +inf
 * above about 88 (f32) / 709 (f64).  out may be b (same strides), for
 * in-place use. */
void sc_softmax_jvp_rows_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_softmax_jvp_rows_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_log_softmax_jvp_rows_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_log_softmax_jvp_rows_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_log_softmax_vjp_rows_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_log_softmax_vjp_rows_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t rows, size_t n);
void sc_softmax_jvp_cols_f32(const float *y, ptrdiff_t ldy, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_softmax_jvp_cols_f64(const double *y, ptrdiff_t ldy, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_log_softmax_jvp_cols_f32(const float *lp, ptrdiff_t ldl, const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_log_softmax_jvp_cols_f64(const double *lp, ptrdiff_t ldl, const double *v, ptrdiff_t ldv, double *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_log_softmax_vjp_cols_f32(const float *lp, ptrdiff_t ldl, const float *g, ptrdiff_t ldg, float *out, ptrdiff_t ldo, size_t n, size_t m);
void sc_log_softmax_vjp_cols_f64(const double *lp, ptrdiff_t ldl, const double *g, ptrdiff_t ldg, double *out, ptrdiff_t ldo, size_t n, size_t m);

/* Fused cross-entropy, PyTorch's semantics (torch.nn.functional.
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

void sc_xent_rows_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t,
                      ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows,
                      size_t n, const sc_xent_params *p);
void sc_xent_rows_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t,
                      ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t rows,
                      size_t n, const sc_xent_params *p);
/* The same with scratch space, as sc_softmax_rows_ws: given `work` of at
 * least sc_xent_rows_work(g, ldg, rows, n) elements (0 where it would not
 * help), the gradients of large outputs (4 MiB or more, rows of 8-256 KiB)
 * with class-index targets (q NULL), not in place (g != z), are written a
 * row behind through streaming stores, from the scratch.  Without enough work it is
 * sc_xent_rows.  The same results either way (bitwise); work must not
 * overlap the operands and holds nothing afterwards. */
size_t sc_xent_rows_work_f32(const float *g, ptrdiff_t ldg, size_t rows, size_t n);
size_t sc_xent_rows_work_f64(const double *g, ptrdiff_t ldg, size_t rows, size_t n);
void sc_xent_rows_ws_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq,
                         const int64_t *t, ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss,
                         ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p,
                         float *work, size_t work_len);
void sc_xent_rows_ws_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq,
                         const int64_t *t, ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss,
                         ptrdiff_t ldl, size_t rows, size_t n, const sc_xent_params *p,
                         double *work, size_t work_len);
/* The same over a panel: n classes (stride ldz) by m contiguous columns,
 * one sample per column -- the layout of PyTorch's (N, C, d1, ...) along
 * axis 1 -- with t[j*ldt] and loss[j*ldl] per column and q, g panels like z
 * (strides ldq, ldg; g may be z).  Results within the same bounds as the
 * row kernel's, not bitwise the same (the sums run per lane). */
void sc_xent_cols_f32(const float *z, ptrdiff_t ldz, const float *q, ptrdiff_t ldq, const int64_t *t,
                      ptrdiff_t ldt, float *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t n,
                      size_t m, const sc_xent_params *p);
void sc_xent_cols_f64(const double *z, ptrdiff_t ldz, const double *q, ptrdiff_t ldq, const int64_t *t,
                      ptrdiff_t ldt, double *g, ptrdiff_t ldg, double *loss, ptrdiff_t ldl, size_t n,
                      size_t m, const sc_xent_params *p);

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
float sc_piece_max_f32(const float *x, size_t n);      /* -inf for n == 0 */
double sc_piece_max_f64(const double *x, size_t n);
size_t sc_piece_chunk_f32(void);
size_t sc_piece_chunk_f64(void);
/* sums[k] = sum of exp(x_i - mx) over chunk k (elements k*chunk on),
 * y_i = exp(x_i - mx) when y != NULL; needs mx >= every x_i. */
void sc_piece_expsum_f32(const float *x, float *y, size_t n, float mx, double *sums);
void sc_piece_expsum_f64(const double *x, double *y, size_t n, double mx, double *sums);
/* The compensated sum of sums[0..k), in order. */
double sc_piece_total(const double *sums, size_t k);
/* y *= a. */
void sc_piece_scale_f32(float *y, size_t n, float a);
void sc_piece_scale_f64(double *y, size_t n, double a);
/* y = (x - mx) - c. */
void sc_piece_log_softmax_f32(const float *x, float *y, size_t n, float mx, float c);
void sc_piece_log_softmax_f64(const double *x, double *y, size_t n, double mx, double c);

/* The backward products in pieces, by the same recipe: the reduction d of
 * a row is d = (T)sc_piece_total(sums, chunks) over the chunk sums that
 * sc_piece_bwd_sums writes for each piece (cut at multiples of
 * sc_piece_bwd_chunk_*() elements), then sc_piece_bwd_out writes each
 * piece of the output; bitwise the _rows kernels' results.  `op` is one of: */
enum sc_bwd_op { SC_SOFTMAX_JVP = 0, SC_LOG_SOFTMAX_JVP = 1, SC_LOG_SOFTMAX_VJP = 2 };
size_t sc_piece_bwd_chunk_f32(void);
size_t sc_piece_bwd_chunk_f64(void);
void sc_piece_bwd_sums_f32(int op, const float *a, const float *b, size_t n, double *sums);
void sc_piece_bwd_sums_f64(int op, const double *a, const double *b, size_t n, double *sums);
void sc_piece_bwd_out_f32(int op, const float *a, const float *b, float *out, size_t n, float d);
void sc_piece_bwd_out_f64(int op, const double *a, const double *b, double *out, size_t n, double d);

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
size_t sc_piece_xent_max_bytes_f32(void);
size_t sc_piece_xent_max_bytes_f64(void);
void sc_piece_xent_ud_f32(const float *z, const float *q, size_t lo, size_t len, size_t n, float mx,
                          const sc_xent_params *p, double *usums, double *dsums);
void sc_piece_xent_ud_f64(const double *z, const double *q, size_t lo, size_t len, size_t n,
                          double mx, const sc_xent_params *p, double *usums, double *dsums);
double sc_piece_xent_finish_f32(const float *q, int64_t t, double zt, const float *g, size_t n,
                                float mx, double s, double U, double D, const sc_xent_params *p,
                                double *factors);
double sc_piece_xent_finish_f64(const double *q, int64_t t, double zt, const double *g, size_t n,
                                double mx, double s, double U, double D, const sc_xent_params *p,
                                double *factors);
void sc_piece_xent_scale_f32(float *g, const float *q, int64_t t, size_t lo, size_t len, size_t n,
                             const sc_xent_params *p, const double *factors);
void sc_piece_xent_scale_f64(double *g, const double *q, int64_t t, size_t lo, size_t len, size_t n,
                             const sc_xent_params *p, const double *factors);

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
void sc_piece_xent_sweep_max_f32(const float *z, size_t lo, size_t len, double *ws);
void sc_piece_xent_sweep_max_f64(const double *z, size_t lo, size_t len, double *ws);
void sc_piece_xent_sweep_sums_f32(const float *z, const float *q, size_t lo, size_t len, size_t n,
                                  const sc_xent_params *p, double *ws);
void sc_piece_xent_sweep_sums_f64(const double *z, const double *q, size_t lo, size_t len,
                                  size_t n, const sc_xent_params *p, double *ws);
int sc_piece_xent_sweep_finish_f32(const float *z, const float *q, int64_t t, size_t n,
                                   const sc_xent_params *p, const double *ws, int want_g,
                                   double *loss, double *factors);
int sc_piece_xent_sweep_finish_f64(const double *z, const double *q, int64_t t, size_t n,
                                   const sc_xent_params *p, const double *ws, int want_g,
                                   double *loss, double *factors);
void sc_piece_xent_sweep_grad_f32(const float *z, const float *q, int64_t t, float *g, size_t lo,
                                  size_t len, size_t n, const sc_xent_params *p,
                                  const double *factors);
void sc_piece_xent_sweep_grad_f64(const double *z, const double *q, int64_t t, double *g,
                                  size_t lo, size_t len, size_t n, const sc_xent_params *p,
                                  const double *factors);

/* SIMD levels, lowest first. */
enum sc_simd_level { SC_SIMD_SCALAR = 0, SC_SIMD_AVX2 = 1, SC_SIMD_AVX512F = 2 };

/* The level in use (selecting it on first call). */
int sc_simd_level(void);
/* Its name: "scalar", "avx2" or "avx512f". */
const char *sc_simd_name(int level);
/* The highest level this CPU and OS support, ignoring SOFTMAX_C_SIMD. */
int sc_simd_supported(void);
/* Bit mask of the levels compiled into this build (1 << level). */
int sc_simd_compiled(void);

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

typedef void sc_unary_f32_fn(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t);
typedef void sc_unary_f64_fn(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t);
typedef void sc_binary_f32_fn(const float *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t,
                              size_t, size_t);
typedef void sc_binary_f64_fn(const double *, ptrdiff_t, const double *, ptrdiff_t, double *,
                              ptrdiff_t, size_t, size_t);
typedef void sc_xent_f32_fn(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *,
                            ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                            const sc_xent_params *);
typedef void sc_xent_f64_fn(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *,
                            ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                            const sc_xent_params *);

typedef struct {
    unsigned int version; /* SC_API_VERSION of the build that filled it */
    unsigned int size;    /* sizeof(sc_api) there */
    sc_unary_f32_fn *softmax_rows_f32;
    sc_unary_f64_fn *softmax_rows_f64;
    sc_unary_f32_fn *log_softmax_rows_f32;
    sc_unary_f64_fn *log_softmax_rows_f64;
    sc_unary_f32_fn *logsumexp_rows_f32;
    sc_unary_f64_fn *logsumexp_rows_f64;
    sc_unary_f32_fn *softmax_cols_f32;
    sc_unary_f64_fn *softmax_cols_f64;
    sc_unary_f32_fn *log_softmax_cols_f32;
    sc_unary_f64_fn *log_softmax_cols_f64;
    sc_unary_f32_fn *logsumexp_cols_f32;
    sc_unary_f64_fn *logsumexp_cols_f64;
    sc_binary_f32_fn *softmax_jvp_rows_f32;
    sc_binary_f64_fn *softmax_jvp_rows_f64;
    sc_binary_f32_fn *log_softmax_jvp_rows_f32;
    sc_binary_f64_fn *log_softmax_jvp_rows_f64;
    sc_binary_f32_fn *log_softmax_vjp_rows_f32;
    sc_binary_f64_fn *log_softmax_vjp_rows_f64;
    sc_binary_f32_fn *softmax_jvp_cols_f32;
    sc_binary_f64_fn *softmax_jvp_cols_f64;
    sc_binary_f32_fn *log_softmax_jvp_cols_f32;
    sc_binary_f64_fn *log_softmax_jvp_cols_f64;
    sc_binary_f32_fn *log_softmax_vjp_cols_f32;
    sc_binary_f64_fn *log_softmax_vjp_cols_f64;
    sc_xent_f32_fn *xent_rows_f32;
    sc_xent_f64_fn *xent_rows_f64;
    int (*simd_level)(void);
    const char *(*simd_name)(int level);
    int (*simd_supported)(void);
    int (*simd_compiled)(void);
    /* one row across threads */
    float (*piece_max_f32)(const float *, size_t);
    double (*piece_max_f64)(const double *, size_t);
    size_t (*piece_chunk_f32)(void);
    size_t (*piece_chunk_f64)(void);
    void (*piece_expsum_f32)(const float *, float *, size_t, float, double *);
    void (*piece_expsum_f64)(const double *, double *, size_t, double, double *);
    double (*piece_total)(const double *, size_t);
    void (*piece_scale_f32)(float *, size_t, float);
    void (*piece_scale_f64)(double *, size_t, double);
    void (*piece_log_softmax_f32)(const float *, float *, size_t, float, float);
    void (*piece_log_softmax_f64)(const double *, double *, size_t, double, double);
    size_t (*piece_bwd_chunk_f32)(void);
    size_t (*piece_bwd_chunk_f64)(void);
    void (*piece_bwd_sums_f32)(int, const float *, const float *, size_t, double *);
    void (*piece_bwd_sums_f64)(int, const double *, const double *, size_t, double *);
    void (*piece_bwd_out_f32)(int, const float *, const float *, float *, size_t, float);
    void (*piece_bwd_out_f64)(int, const double *, const double *, double *, size_t, double);
    /* appended later: cross-entropy panels and pieces (check size before use) */
    sc_xent_f32_fn *xent_cols_f32;
    sc_xent_f64_fn *xent_cols_f64;
    size_t (*piece_xent_max_bytes_f32)(void);
    size_t (*piece_xent_max_bytes_f64)(void);
    void (*piece_xent_ud_f32)(const float *, const float *, size_t, size_t, size_t, float,
                              const sc_xent_params *, double *, double *);
    void (*piece_xent_ud_f64)(const double *, const double *, size_t, size_t, size_t, double,
                              const sc_xent_params *, double *, double *);
    double (*piece_xent_finish_f32)(const float *, int64_t, double, const float *, size_t, float,
                                    double, double, double, const sc_xent_params *, double *);
    double (*piece_xent_finish_f64)(const double *, int64_t, double, const double *, size_t,
                                    double, double, double, double, const sc_xent_params *,
                                    double *);
    void (*piece_xent_scale_f32)(float *, const float *, int64_t, size_t, size_t, size_t,
                                 const sc_xent_params *, const double *);
    void (*piece_xent_scale_f64)(double *, const double *, int64_t, size_t, size_t, size_t,
                                 const sc_xent_params *, const double *);
    /* appended later: softmax rows with scratch (check size before use) */
    size_t (*softmax_rows_work_f32)(const float *, ptrdiff_t, size_t, size_t);
    size_t (*softmax_rows_work_f64)(const double *, ptrdiff_t, size_t, size_t);
    void (*softmax_rows_ws_f32)(const float *, ptrdiff_t, float *, ptrdiff_t, size_t, size_t, float *,
                                size_t);
    void (*softmax_rows_ws_f64)(const double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                                double *, size_t);
    /* appended later: the cross-entropy of one long row in pieces */
    void (*piece_xent_sweep_max_f32)(const float *, size_t, size_t, double *);
    void (*piece_xent_sweep_max_f64)(const double *, size_t, size_t, double *);
    void (*piece_xent_sweep_sums_f32)(const float *, const float *, size_t, size_t, size_t,
                                      const sc_xent_params *, double *);
    void (*piece_xent_sweep_sums_f64)(const double *, const double *, size_t, size_t, size_t,
                                      const sc_xent_params *, double *);
    int (*piece_xent_sweep_finish_f32)(const float *, const float *, int64_t, size_t,
                                       const sc_xent_params *, const double *, int, double *,
                                       double *);
    int (*piece_xent_sweep_finish_f64)(const double *, const double *, int64_t, size_t,
                                       const sc_xent_params *, const double *, int, double *,
                                       double *);
    void (*piece_xent_sweep_grad_f32)(const float *, const float *, int64_t, float *, size_t,
                                      size_t, size_t, const sc_xent_params *, const double *);
    void (*piece_xent_sweep_grad_f64)(const double *, const double *, int64_t, double *, size_t,
                                      size_t, size_t, const sc_xent_params *, const double *);
    /* appended later: cross-entropy rows with scratch (check size before use) */
    size_t (*xent_rows_work_f32)(const float *, ptrdiff_t, size_t, size_t);
    size_t (*xent_rows_work_f64)(const double *, ptrdiff_t, size_t, size_t);
    void (*xent_rows_ws_f32)(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *,
                             ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                             const sc_xent_params *, float *, size_t);
    void (*xent_rows_ws_f64)(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *,
                             ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t,
                             const sc_xent_params *, double *, size_t);
} sc_api;

/* The table (a static object: never freed, never changes). */
const sc_api *sc_get_api(void);

#ifdef __cplusplus
}
#endif

#endif /* SOFTMAX_C_H */
