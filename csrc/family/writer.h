/*
 * family/writer.h - the write pass of a row, once: elements [j0, j1) of
 * an output row y computed by an element operation and stored as a
 * partial head up to `head` (where y's aligned stores start), a body of
 * whole vectors, plain or streaming, forward or last to first, and a
 * partial tail, the tail optionally carried to the next row so that the
 * line two rows share is written whole.
 *
 * Every write pass (scale, final_pass, pipe_piece, bwd_apply, xent_piece,
 * xent_grad, xent_scale) is a call with constant switches and a constant
 * operation: inlined, the branches on them fold away and each pass keeps
 * its own loop.  Each element's arithmetic is its family's own.
 */

/* The element operations, by constant selector (V(wr_val)):
 *   SC_WR_MUL          a c0                          (softmax's scale)
 *   SC_WR_LOG          (a - c0) - c1                 (log_softmax, final_op)
 *   SC_WR_LOG_S        (a - c0) c2 - c1              (log_softmax with a scale, fused.h)
 *   SC_WR_BWD + op     bwd_out(a, b, c0, op)         (family/backward.h)
 *   SC_WR_XENT_GE + k  xent_ge over the stored e in a (family/xent_rows.h)
 *   SC_WR_XENT_G + k   xent_gt over the logits in a  (family/xent_rows.h) */
#ifndef SC_WR_OPS
#define SC_WR_OPS
enum {
    SC_WR_MUL = 0,
    SC_WR_LOG = 1,
    SC_WR_BWD = 2,
    SC_WR_XENT_GE = 5,
    SC_WR_XENT_G = 8,
    SC_WR_LOG_S = 11
};

/* Switches (a constant, or a run-time int where the pass decides per row):
 *   SC_WR_STREAM  the body through streaming stores (y + head vector-aligned)
 *   SC_WR_REV     the body last to first, its tail before it
 *   SC_WR_LINE    the head reaches a line boundary: whole vectors, then a
 *                 partial one; the body's vectors past the last unrolled
 *                 group are plain (they share a line with the tail) */
enum { SC_WR_STREAM = 1, SC_WR_REV = 2, SC_WR_LINE = 4 };
#endif

/* A partial vector has fewer than VN lanes: said to the compiler, the
 * element operation's loads (V(ldk)) take the masked form without a test. */
#if defined(__GNUC__)
#define SC_WR_PARTIAL(k)                                                       \
    do {                                                                       \
        if ((k) >= VN)                                                         \
            __builtin_unreachable();                                           \
    } while (0)
#else
#define SC_WR_PARTIAL(k) ((void)0)
#endif

/* The operands of an element operation: which are read depends on it. */
typedef struct {
    const SC_T *a, *b;   /* read at the element's index */
    const SC_T *q, *w;   /* cross-entropy's targets and weights, or NULL */
    const SC_T *pa, *pb; /* the next row's a and b, prefetched by a forward
                          * streamed body, or NULL */
    VEC c0, c1, c2, c3, c4;
    size_t t; /* cross-entropy: the target's index, its gradient gt */
    SC_T gt;
} V(wr_src);

/* The last partial vector of an output row, kept to be written with the
 * next row's head as one whole line (rows that follow each other). */
typedef struct {
    VEC v; /* lanes [0, k) */
    size_t k;
} V(carry_t);

/* Defined with their families. */
SC_ALWAYS_INLINE static inline VEC V(final_op)(VEC xv, VEC vm, VEC vc);
SC_ALWAYS_INLINE static inline VEC V(bwd_out)(VEC a, VEC b, VEC d, int op);
SC_ALWAYS_INLINE static inline VEC V(xent_ge)(const SC_T *g, const SC_T *q, const SC_T *w,
                                              size_t i, size_t k, VEC va, VEC vb, VEC a, VEC b,
                                              int kind, size_t t, SC_T gt);
SC_ALWAYS_INLINE static inline VEC V(xent_gt)(const SC_T *z, const SC_T *q, const SC_T *w,
                                              size_t i, size_t k, VEC vm, VEC va, VEC vb, VEC a,
                                              VEC b, int kind, size_t t, SC_T gt);

/* The k lanes (k == VN: a whole vector) of the output at element i. */
SC_ALWAYS_INLINE static inline VEC V(wr_val)(const V(wr_src) *s, size_t i, size_t k, int op)
{
    if (op == SC_WR_MUL)
        return V(mul)(V(ldk)(s->a + i, k, (SC_T)0), s->c0);
    if (op == SC_WR_LOG)
        return V(final_op)(V(ldk)(s->a + i, k, (SC_T)0), s->c0, s->c1);
    if (op == SC_WR_LOG_S)
        return V(sub)(V(mul)(V(sub)(V(ldk)(s->a + i, k, (SC_T)0), s->c0), s->c2), s->c1);
    if (op < SC_WR_XENT_GE)
        return V(bwd_out)(V(ldk)(s->a + i, k, (SC_T)0), V(ldk)(s->b + i, k, (SC_T)0), s->c0,
                          op - SC_WR_BWD);
    if (op < SC_WR_XENT_G)
        return V(xent_ge)(s->a, s->q, s->w, i, k, s->c0, s->c1, s->c2, s->c3, op - SC_WR_XENT_GE,
                          s->t, s->gt);
    return V(xent_gt)(s->a, s->q, s->w, i, k, s->c0, s->c1, s->c2, s->c3, s->c4,
                      op - SC_WR_XENT_G, s->t, s->gt);
}

/* A whole vector, through a streaming store (nt) or a plain one. */
SC_ALWAYS_INLINE static inline void V(wr_put)(SC_T *p, VEC v, int nt)
{
    if (nt)
        V(stream)(p, v);
    else
        V(store)(p, v);
}

/* The partial vector [hi, j1) (if any), stored or carried. */
SC_ALWAYS_INLINE static inline void V(wr_tail)(const V(wr_src) *s, int op, SC_T *y, size_t hi,
                                               size_t j1, V(carry_t) *cy, int last)
{
    if (hi < j1) {
        const size_t k = j1 - hi;
        SC_WR_PARTIAL(k);
        const VEC t = V(wr_val)(s, hi, k, op);
        if (cy && !last) {
            cy->v = t;
            cy->k = k;
        } else {
            V(storet)(y + hi, t, k);
        }
    }
}

/* Elements [j0, j1) of the row y (n elements, j1 <= n) by `op`: plain
 * stores before `head` (y + head is where aligned stores start; the head
 * is one partial vector unless SC_WR_LINE), then whole vectors, `unroll`
 * (1, 2 or 4) to an iteration, then a partial tail.  With `cy` (streamed
 * rows that follow each other, j0 = 0 for a row's first range), a row's
 * head is joined in registers to the previous row's carried tail and
 * streamed as one vector (a line built on the stack and read back whole
 * waits for the stores before it), and the tail is carried unless `last`. */
SC_ALWAYS_INLINE static inline void V(write)(const V(wr_src) *s, int op, SC_T *y, size_t j0,
                                             size_t j1, size_t head, int unroll, int mode,
                                             V(carry_t) *cy, int last)
{
    const int stream = mode & SC_WR_STREAM, rev = mode & SC_WR_REV;
    size_t j = j0;
    if (j < head) {
        const size_t e = head < j1 ? head : j1;
        if (mode & SC_WR_LINE)
            for (; j + VN <= e; j += VN)
                V(store)(y + j, V(wr_val)(s, j, VN, op));
        if (j < e) {
            const size_t k = e - j;
            SC_WR_PARTIAL(k);
            const VEC h = V(wr_val)(s, j, k, op);
            if (cy && cy->k + k == VN) {
                V(stream)(y - cy->k, V(join)(cy->v, h, cy->k));
                cy->k = 0;
            } else {
                V(storet)(y + j, h, k);
            }
        }
        j = e;
    }
    if (cy && cy->k) { /* not reached while the rows stream */
        V(storet)(y - cy->k, cy->v, cy->k);
        cy->k = 0;
    }
    const size_t hi = j1 - (j1 - j) % VN; /* [j, hi) whole vectors */
    if (rev) /* the tail first: the body then runs toward the head */
        V(wr_tail)(s, op, y, hi, j1, cy, last);
    if (rev) {
        for (size_t i = hi; i > j; i -= VN)
            V(wr_put)(y + i - VN, V(wr_val)(s, i - VN, VN, op), stream);
    } else if (stream && s->pa) {
        for (size_t i = j; i < hi; i += VN) {
            if ((i * sizeof(SC_T)) % SC_LINE < VN * sizeof(SC_T)) {
                SC_PREFETCH(s->pa + i);
                SC_PREFETCH(s->pb + i);
            }
            V(stream)(y + i, V(wr_val)(s, i, VN, op));
        }
    } else {
        size_t i = j;
        for (; i + (size_t)unroll * VN <= hi; i += (size_t)unroll * VN) {
            V(wr_put)(y + i, V(wr_val)(s, i, VN, op), stream);
            if (unroll > 1)
                V(wr_put)(y + i + VN, V(wr_val)(s, i + VN, VN, op), stream);
            if (unroll > 2) {
                V(wr_put)(y + i + 2 * VN, V(wr_val)(s, i + 2 * VN, VN, op), stream);
                V(wr_put)(y + i + 3 * VN, V(wr_val)(s, i + 3 * VN, VN, op), stream);
            }
        }
        for (; i < hi; i += VN)
            V(wr_put)(y + i, V(wr_val)(s, i, VN, op), stream && !(mode & SC_WR_LINE));
    }
    if (!rev)
        V(wr_tail)(s, op, y, hi, j1, cy, last);
}
