# The operation codes of csrc/sc_ops.h, the one list of them: the loops of
# _kernels index their kernel tables by these, and _kernels hands the same
# values to Python (SOFTMAX, ..., for _api.py).
cdef extern from "sc_ops.h" nogil:
    cdef enum sc_op:
        SC_OP_SOFTMAX
        SC_OP_LOG_SOFTMAX
        SC_OP_LOGSUMEXP
        SC_OP_SOFTMAX_JVP
        SC_OP_LOG_SOFTMAX_JVP
        SC_OP_LOG_SOFTMAX_VJP
        SC_OP_XENT
        SC_OP_LOGSUMEXP_W
        SC_OP_COUNT
    bint sc_op_is_forward(int op)
    bint sc_op_is_backward(int op)
    int sc_op_bwd(int op)
