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
 * lost to plain stores even on 64 MiB outputs (log_softmax float32, one
 * and two threads, AVX-512 and AVX2: n = 64 1.15-1.2x, n = 128 1.07-1.1x;
 * n = 1000 0.85-0.9x). */
#define SC_STREAM_MIN_ROW_BYTES 1024
/* Two-pass row kernels make their second pass last to first on rows of
 * at least this size per operand: the first pass leaves the row's end in
 * L2, where the second then finds it (softmax_vjp 16x262144 float32, one
 * thread: 1.3 -> 1.03 ms; 1.55x -> 1.27x np.add).  On short rows the
 * reversed order cost 3x (32768x128 with streaming stores); on an Intel
 * Xeon (2 MiB L2) rows of 256-512 KiB, which stay in L2 either way, took
 * 1.2-1.7x as long reversed (one row of 65536, float32 12.5 -> 15.8-19 us,
 * float64 25 -> 36-42 us, its output at NumPy's offsets). */
#define SC_REVERSE_MIN_BYTES (1024 * 1024)
/* The backward row kernels prefetch the next row during the write pass of
 * rows from this size up to SC_PREFETCH_MAX_BYTES, when streaming: the
 * next reduction then reads from cache while this row's output drains
 * (softmax_vjp 256x32000 float32, 1.04x -> 0.93x np.add on one thread,
 * 0.83x -> 0.74x on two).  Rows of 512 bytes (32768x128) took 3x as long
 * with it. */
#define SC_BWD_PREFETCH_MIN_BYTES (32 * 1024)
/* Softmax rows from this size up to SC_PREFETCH_MAX_BYTES, in outputs of
 * SC_STREAM_MIN_BYTES or more, are pipelined (family/pipe.h, rows_pipe; with
 * the caller's scratch, sc_softmax_rows_ws): one
 * thread, out=, vs np.copyto, alternated builds: 256x32000 float32
 * 1.20-1.38x -> 0.95-1.07x, 4096x4096 float32 1.28-1.29x -> 1.13-1.20x,
 * float64 1.30-1.38x -> 1.28x.  On rows of 0.5-4 KiB with an output
 * that is not line-aligned (NumPy's) it was 1.5-2x slower: every row then
 * starts and ends in a partly written line. */
#define SC_PIPE_MIN_BYTES (8 * 1024)
/* ... and from this size when the output rows follow each other (ldy = n):
 * the lines rows share are then written whole (one thread, out=, vs
 * np.copyto: 16384x1024 float32 1.11-1.19x -> 0.99-1.10x, 32768x256
 * 1.30-1.33x -> 1.10-1.34x).  32768x128 (512-byte rows) was 10% slower. */
#define SC_PIPE_FLAT_MIN_BYTES 1024

/* Whether rows of n elements of esz bytes into y take the pipelined form
 * (family/pipe.h, rows_pipe) on a vector ISA: large outputs (as for streaming),
 * rows of SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES (softmax, lg = 0: from
 * SC_PIPE_FLAT_MIN_BYTES when they follow each other; log_softmax, whose
 * last sweep already streamed, lost there: 16384x1024 float32 1.10x ->
 * 1.28x np.copyto). */
static inline int sc_pipe_rows(size_t esz, const void *y, ptrdiff_t ldy, size_t rows, size_t n,
                               int lg)
{
    const size_t rb = n * esz;
    return rows >= 2 && rows * rb >= SC_STREAM_MIN_BYTES && rb <= SC_PREFETCH_MAX_BYTES &&
           (rb >= SC_PIPE_MIN_BYTES || (!lg && ldy == (ptrdiff_t)n && rb >= SC_PIPE_FLAT_MIN_BYTES)) &&
           (size_t)y % esz == 0;
}

/* Whether cross-entropy rows with a gradient g take the pipelined form
 * (family/xent_rows.h, xent_rows_pipe; class-index targets only): as log_softmax,
 * rows of SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES in large outputs.
 * One thread, out=, float32, against the three steps on an Intel Xeon:
 * 4096x4096 10.0 -> 7.6 ms (1.92x -> 1.46x np.copyto), 16384x2048 22.9 ->
 * 17.2 ms, float64 256x32000 9.1 -> 8.6 ms; but float32 256x32000 3.35 ->
 * 3.78 ms, as softmax's pipeline there (3.19 -> 3.54 ms): in a loop over
 * the same arrays that machine keeps a 32 MiB call in its large L3, which
 * streaming stores bypass.  With the caches evicted between calls (as a
 * model's other work does) plain stores lost there: 1.11-1.18x the
 * pipelined time (softmax and this gradient, 256x32000 float32, one and
 * two threads; 8192x1024 softmax 1.40x). */
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
