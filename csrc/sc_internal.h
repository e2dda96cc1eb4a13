/*
 * sc_internal.h - what the kernel units and the dispatcher share; not
 * installed for users (softmax_c.h is the public header).
 *
 * Adding a kernel: write it in its family's file (csrc/family/, listed in
 * family/list.h), add its name to the list below and its declaration to
 * softmax_c.h.  The per-ISA symbols, the dispatch
 * table and the public wrapper all come from the list.
 */
#ifndef SC_INTERNAL_H
#define SC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "softmax_c.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SC_X86 1
#else
#define SC_X86 0
#endif

#if defined(__GNUC__)
#define SC_ALWAYS_INLINE __attribute__((always_inline))
#define SC_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define SC_PREFETCH_W(p) __builtin_prefetch((p), 1, 3) /* for writing */
#else
#define SC_ALWAYS_INLINE
#define SC_PREFETCH(p) ((void)0)
#define SC_PREFETCH_W(p) ((void)0)
#endif

#define SC_LINE 64
/* Rows up to this size are prefetched one row ahead (the next row and this
 * row's output then still fit in L2 beside this row). */
#define SC_PREFETCH_MAX_BYTES (256 * 1024)
/* Outputs of at least this many bytes per call are written with streaming
 * (non-temporal) stores in their final pass: they would not stay in cache
 * anyway, and streaming skips reading each output line before writing it. */
#define SC_STREAM_MIN_BYTES (4 * 1024 * 1024)
/* ... in rows of at least this size: below it the lines that a row shares
 * with its neighbours (plain stores) are too large a part, and streaming
 * lost to plain stores even on the largest outputs. */
#define SC_STREAM_MIN_ROW_BYTES 1024
/* Two-pass row kernels make their second pass last to first on rows of
 * at least this size per operand: the first pass leaves the row's end in
 * L2, where the second then finds it.  On shorter rows, which stay in L2
 * either way or are too short to matter, the reversed order lost. */
#define SC_REVERSE_MIN_BYTES (1024 * 1024)
/* The backward row kernels prefetch the next row during the write pass of
 * rows from this size up to SC_PREFETCH_MAX_BYTES, when streaming: the
 * next reduction then reads from cache while this row's output drains.
 * Short rows lost with it. */
#define SC_BWD_PREFETCH_MIN_BYTES (32 * 1024)
/* Softmax rows from this size up to SC_PREFETCH_MAX_BYTES, in outputs of
 * SC_STREAM_MIN_BYTES or more, are pipelined (family/pipe.h, rows_pipe;
 * with the caller's scratch, sc_softmax_rows_ws).  Shorter rows into an
 * output that is not line-aligned (NumPy's) lost: every row then starts
 * and ends in a partly written line. */
#define SC_PIPE_MIN_BYTES (8 * 1024)
/* ... and from this size when the output rows follow each other (ldy = n):
 * the lines rows share are then written whole.  Shorter rows lost. */
#define SC_PIPE_FLAT_MIN_BYTES 1024

/* Whether rows of n elements of esz bytes into y take the pipelined form
 * (family/pipe.h, rows_pipe) on a vector ISA: large outputs (as for streaming),
 * rows of SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES (softmax, lg = 0: from
 * SC_PIPE_FLAT_MIN_BYTES when they follow each other; not log_softmax,
 * whose last sweep already streamed, and which lost there). */
static inline int sc_pipe_rows(size_t esz, const void *y, ptrdiff_t ldy, size_t rows, size_t n,
                               int lg)
{
    const size_t rb = n * esz;
    return rows >= 2 && rows * rb >= SC_STREAM_MIN_BYTES && rb <= SC_PREFETCH_MAX_BYTES &&
           (rb >= SC_PIPE_MIN_BYTES || (!lg && ldy == (ptrdiff_t)n && rb >= SC_PIPE_FLAT_MIN_BYTES)) &&
           (size_t)y % esz == 0;
}

/* Whether cross-entropy rows with a gradient g take the pipelined form
 * (family/xent_rows.h, xent_rows_pipe; class-index targets only): as
 * log_softmax, rows of SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES in large
 * outputs.  Where a machine's L3 holds the whole call in a loop over the
 * same arrays, plain stores win; with the caches evicted between calls,
 * as a model's other work does, the pipeline wins. */
static inline int sc_xent_pipe_rows(size_t esz, const void *g, ptrdiff_t ldg, size_t rows, size_t n)
{
    return sc_pipe_rows(esz, g, ldg, rows, n, 1);
}

/* Elements of scratch softmax's pipeline takes: two rows, each rounded up
 * to whole lines, and a line to align them. */
static inline size_t sc_pipe_work(size_t esz, size_t n)
{
    const size_t lw = SC_LINE / esz;
    return 2 * ((n + lw - 1) / lw * lw) + lw;
}

/* Kernels of signature (const T *x, ptrdiff_t ldx, T *y, ptrdiff_t ldy,
 * size_t a, size_t b), per dtype. */
#define SC_UNARY_KERNELS(X)                                                    \
    X(softmax_rows) X(log_softmax_rows) X(logsumexp_rows)                      \
    X(softmax_cols) X(log_softmax_cols) X(logsumexp_cols)

/* Kernels of signature (const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb,
 * T *out, ptrdiff_t ldo, size_t p, size_t q), per dtype. */
#define SC_BINARY_KERNELS(X)                                                   \
    X(softmax_jvp_rows) X(log_softmax_jvp_rows) X(log_softmax_vjp_rows)        \
    X(softmax_jvp_cols) X(log_softmax_jvp_cols) X(log_softmax_vjp_cols)

#define SC_DECLARE_ISA(isa)                                                    \
    SC_UNARY_KERNELS(SC_DECL_F32_##isa) SC_UNARY_KERNELS(SC_DECL_F64_##isa)    \
    SC_BINARY_KERNELS(SC_DECLB_F32_##isa) SC_BINARY_KERNELS(SC_DECLB_F64_##isa)  \
    SC_DECL_XENT(isa) SC_DECL_PIECES(f32, float, isa) SC_DECL_PIECES(f64, double, isa) \
    SC_DECL_WS(f32, float, isa) SC_DECL_WS(f64, double, isa)

/* softmax_rows and xent_rows with scratch (softmax_c.h, sc_softmax_rows_ws,
 * sc_xent_rows_ws). */
#define SC_DECL_WS(s, T, isa)                                                  \
    void sc_softmax_rows_ws_##s##__##isa(const T *, ptrdiff_t, T *, ptrdiff_t, size_t, size_t, \
                                         T *, size_t);                                       \
    void sc_xent_rows_ws_##s##__##isa(const T *, ptrdiff_t, const T *, ptrdiff_t, const int64_t *, \
                                      ptrdiff_t, T *, ptrdiff_t, double *, ptrdiff_t, size_t, \
                                      size_t, const sc_xent_params *, T *, size_t);

/* The row pieces (softmax_c.h, "one row across threads"). */
#define SC_DECL_PIECES(s, T, isa)                                              \
    T sc_piece_max_##s##__##isa(const T *, size_t);                                  \
    size_t sc_piece_chunk_##s##__##isa(void);                                    \
    void sc_piece_expsum_##s##__##isa(const T *, T *, size_t, T, double *);   \
    void sc_piece_scale_##s##__##isa(T *, size_t, T);                                \
    void sc_piece_log_softmax_##s##__##isa(const T *, T *, size_t, T, T);          \
    size_t sc_piece_bwd_chunk_##s##__##isa(void);                              \
    void sc_piece_bwd_sums_##s##__##isa(int, const T *, const T *, size_t, double *); \
    void sc_piece_bwd_out_##s##__##isa(int, const T *, const T *, T *, size_t, T);     \
    size_t sc_piece_xent_max_bytes_##s##__##isa(void);                         \
    void sc_piece_xent_ud_##s##__##isa(const T *, const T *, size_t, size_t, size_t, T, \
                                       const sc_xent_params *, double *, double *); \
    double sc_piece_xent_finish_##s##__##isa(const T *, int64_t, double, const T *, size_t, T, \
                                             double, double, double, const sc_xent_params *, \
                                             double *);                          \
    void sc_piece_xent_scale_##s##__##isa(T *, const T *, int64_t, size_t, size_t, size_t, \
                                          const sc_xent_params *, const double *);       \
    void sc_piece_xent_sweep_max_##s##__##isa(const T *, size_t, size_t, double *);        \
    void sc_piece_xent_sweep_sums_##s##__##isa(const T *, const T *, size_t, size_t, size_t, \
                                               const sc_xent_params *, double *);        \
    int sc_piece_xent_sweep_finish_##s##__##isa(const T *, const T *, int64_t, size_t,       \
                                                const sc_xent_params *, const double *, int, \
                                                double *, double *);                     \
    void sc_piece_xent_sweep_grad_##s##__##isa(const T *, const T *, int64_t, T *, size_t,  \
                                               size_t, size_t, const sc_xent_params *,   \
                                               const double *);

#define SC_DECL_UNARY(name, s, T, isa)                                         \
    void sc_##name##_##s##__##isa(const T *, ptrdiff_t, T *, ptrdiff_t, size_t, size_t);
#define SC_DECL_BINARY(name, s, T, isa)                                        \
    void sc_##name##_##s##__##isa(const T *, ptrdiff_t, const T *, ptrdiff_t, T *, ptrdiff_t, \
                                  size_t, size_t);
#define SC_DECLB_F32_scalar(name) SC_DECL_BINARY(name, f32, float, scalar)
#define SC_DECLB_F64_scalar(name) SC_DECL_BINARY(name, f64, double, scalar)
#define SC_DECLB_F32_avx2(name) SC_DECL_BINARY(name, f32, float, avx2)
#define SC_DECLB_F64_avx2(name) SC_DECL_BINARY(name, f64, double, avx2)
#define SC_DECLB_F32_avx512f(name) SC_DECL_BINARY(name, f32, float, avx512f)
#define SC_DECLB_F64_avx512f(name) SC_DECL_BINARY(name, f64, double, avx512f)
#define SC_DECL_XENT(isa) SC_DECL_XENT_(xent_rows, isa) SC_DECL_XENT_(xent_cols, isa)
#define SC_DECL_XENT_(name, isa)                                               \
    void sc_##name##_f32__##isa(const float *, ptrdiff_t, const float *, ptrdiff_t, const int64_t *, \
                                ptrdiff_t, float *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, \
                                const sc_xent_params *);                       \
    void sc_##name##_f64__##isa(const double *, ptrdiff_t, const double *, ptrdiff_t, const int64_t *, \
                                ptrdiff_t, double *, ptrdiff_t, double *, ptrdiff_t, size_t, size_t, \
                                const sc_xent_params *);
#define SC_DECL_F32_scalar(name) SC_DECL_UNARY(name, f32, float, scalar)
#define SC_DECL_F64_scalar(name) SC_DECL_UNARY(name, f64, double, scalar)
#define SC_DECL_F32_avx2(name) SC_DECL_UNARY(name, f32, float, avx2)
#define SC_DECL_F64_avx2(name) SC_DECL_UNARY(name, f64, double, avx2)
#define SC_DECL_F32_avx512f(name) SC_DECL_UNARY(name, f32, float, avx512f)
#define SC_DECL_F64_avx512f(name) SC_DECL_UNARY(name, f64, double, avx512f)

SC_DECLARE_ISA(scalar)
#if SC_X86
SC_DECLARE_ISA(avx2)
SC_DECLARE_ISA(avx512f)
#endif

/* s + c += v, error-free (Knuth's two-sum): the compensated accumulator of
 * the kernels' row sums. */
static inline void sc_two_sum_add(double *s, double *c, double v)
{
    double t = *s + v;
    double bp = t - *s;
    *c += (*s - (t - bp)) + (v - bp);
    *s = t;
}

#endif /* SC_INTERNAL_H */
