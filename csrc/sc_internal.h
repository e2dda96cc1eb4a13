/*
 * sc_internal.h - what the kernel units and the dispatcher share; not
 * installed for users (softmax_c.h is the public header).
 *
 * Adding a kernel: one row in sc_kernels.def and its body in its family's
 * file (csrc/family/, listed in family/list.h); the per-level declarations
 * below, the dispatch table, the public functions and the sc_api table all
 * come from that row.
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
/* ... for log_softmax up to this size only: on longer rows its row-at-a-time
 * form, whose last sweep already streams, was as fast or faster. */
#define SC_PIPE_FLAT_LOG_MAX_BYTES 2048

/* The fused softmax's pipelined rows (family/fused.h, ff_pipe) prefetch
 * the kept prefixes of the rows after the next one until this many bytes
 * are on their way: a causal row's short prefix is summed too quickly to
 * hide the next row's fetch.  More ahead slowed full rows. */
#define SC_FF_AHEAD_BYTES 2048

/* Whether rows of n elements of esz bytes into y take the pipelined form
 * (family/pipe.h, rows_pipe) on a vector ISA: large outputs (as for streaming),
 * rows of SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES, and from
 * SC_PIPE_FLAT_MIN_BYTES when they follow each other (log_softmax, lg = 1:
 * those up to SC_PIPE_FLAT_LOG_MAX_BYTES). */
static inline int sc_pipe_rows(size_t esz, const void *y, ptrdiff_t ldy, size_t rows, size_t n,
                               int lg)
{
    const size_t rb = n * esz;
    return rows >= 2 && rows * rb >= SC_STREAM_MIN_BYTES && rb <= SC_PREFETCH_MAX_BYTES &&
           (rb >= SC_PIPE_MIN_BYTES ||
            (ldy == (ptrdiff_t)n && rb >= SC_PIPE_FLAT_MIN_BYTES &&
             (!lg || rb <= SC_PIPE_FLAT_LOG_MAX_BYTES))) &&
           (size_t)y % esz == 0;
}

/* Whether cross-entropy rows with a gradient g take the pipelined form
 * (family/xent_rows.h, xent_rows_pipe; class-index targets only): rows of
 * SC_PIPE_MIN_BYTES to SC_PREFETCH_MAX_BYTES in large outputs.  Where a
 * machine's L3 holds the whole call in a loop over the same arrays, plain
 * stores win; with the caches evicted between calls,
 * as a model's other work does, the pipeline wins. */
static inline int sc_xent_pipe_rows(size_t esz, const void *g, ptrdiff_t ldg, size_t rows, size_t n)
{
    return n * esz >= SC_PIPE_MIN_BYTES && sc_pipe_rows(esz, g, ldg, rows, n, 1);
}

/* Elements of scratch softmax's pipeline takes: two rows, each rounded up
 * to whole lines, and a line to align them. */
static inline size_t sc_pipe_work(size_t esz, size_t n)
{
    const size_t lw = SC_LINE / esz;
    return 2 * ((n + lw - 1) / lw * lw) + lw;
}

/* Each SIMD level's body of every K row of sc_kernels.def:
 * sc_<name>_<dt>__<isa>, defined by the level's unit (sc_kern_<isa>.c). */
#define SC_LEVEL_FN(name, dt, isa) sc_##name##_##dt##__##isa
#define SC_DECL_LEVEL_scalar(family, name, dt, sig) SC_DECLARE(SC_LEVEL_FN(name, dt, scalar), SC_SIG(sig, dt))
#define SC_DECL_LEVEL_avx2(family, name, dt, sig) SC_DECLARE(SC_LEVEL_FN(name, dt, avx2), SC_SIG(sig, dt))
#define SC_DECL_LEVEL_avx512f(family, name, dt, sig) SC_DECLARE(SC_LEVEL_FN(name, dt, avx512f), SC_SIG(sig, dt))

SC_MANIFEST(SC_DECL_LEVEL_scalar, SC_NOTHING3, SC_NOTHING2)
#if SC_X86
SC_MANIFEST(SC_DECL_LEVEL_avx2, SC_NOTHING3, SC_NOTHING2)
SC_MANIFEST(SC_DECL_LEVEL_avx512f, SC_NOTHING3, SC_NOTHING2)
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
