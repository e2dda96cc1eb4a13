/*
 * sc_ops.h - the operations of softmax_c, one code each.
 *
 * The one list of operations for every layer above the kernels: the Cython
 * loops (src/softmax_c/_ops.pxd) index their kernel tables by these codes,
 * and the Python API passes them down.  Three groups, in this order:
 *   forward          x -> y          SC_OP_SOFTMAX .. SC_OP_LOGSUMEXP
 *   backward         (a, b) -> out   SC_OP_SOFTMAX_JVP .. SC_OP_LOG_SOFTMAX_VJP
 *   cross-entropy    (logits, targets) -> losses, gradient    SC_OP_XENT
 *   weighted logsumexp  (x, b) -> (out, sign)                 SC_OP_LOGSUMEXP_W
 * No function of softmax_c.h takes these codes, so they are not part of its
 * ABI.  The backward products' public code is enum sc_bwd_op of softmax_c.h
 * (the `op` of sc_piece_bwd_*), whose values are ABI: sc_op_bwd() below is
 * the one place that maps an operation to it.
 */
#ifndef SC_OPS_H
#define SC_OPS_H

#include "softmax_c.h"

enum sc_op {
    SC_OP_SOFTMAX = 0,
    SC_OP_LOG_SOFTMAX = 1,
    SC_OP_LOGSUMEXP = 2,
    SC_OP_SOFTMAX_JVP = 3,
    SC_OP_LOG_SOFTMAX_JVP = 4,
    SC_OP_LOG_SOFTMAX_VJP = 5,
    SC_OP_XENT = 6,
    SC_OP_LOGSUMEXP_W = 7,      /* weighted logsumexp: (x, b) -> (out, sign) */
    SC_OP_COUNT = 8             /* the size of a table indexed by operation */
};

/* A forward operation (x -> y): softmax, log_softmax, logsumexp. */
static inline int sc_op_is_forward(int op)
{
    return op >= SC_OP_SOFTMAX && op <= SC_OP_LOGSUMEXP;
}

/* A backward product ((a, b) -> out). */
static inline int sc_op_is_backward(int op)
{
    return op >= SC_OP_SOFTMAX_JVP && op <= SC_OP_LOG_SOFTMAX_VJP;
}

/* The enum sc_bwd_op of a backward product (softmax_c.h); -1 for any other
 * operation. */
static inline int sc_op_bwd(int op)
{
    switch (op) {
    case SC_OP_SOFTMAX_JVP: return SC_SOFTMAX_JVP;
    case SC_OP_LOG_SOFTMAX_JVP: return SC_LOG_SOFTMAX_JVP;
    case SC_OP_LOG_SOFTMAX_VJP: return SC_LOG_SOFTMAX_VJP;
    default: return -1;
    }
}

#endif /* SC_OPS_H */
