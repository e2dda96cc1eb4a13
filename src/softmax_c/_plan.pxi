# Planning and execution (textually part of _kernels.pyx): one problem --
# an operation along axis k of N-d arrays of any strides -- as a Plan of
# rows, panels (cols) or gathered rows, run over threads; the entry points
# forward, backward and cross_entropy of the general path.

# Columns per work item in the cols layout (a multiple of every lane count).
cdef Py_ssize_t COL_BLOCK = 64

cdef enum:
    MAXD = 64          # NumPy's own limit on dimensions
    MAXA = 6           # operands of one problem

cdef enum Mode:
    ROWS = 0
    COLS = 1
    GATHER = 2

cdef struct Plan:
    int mode
    int narr                   # operands
    Py_ssize_t n               # length of the axis
    Py_ssize_t m               # cols: length of the contiguous inner dim
    Py_ssize_t isz[MAXA]       # item size of each operand
    Py_ssize_t ax[MAXA]        # axis stride of each operand, in elements
    int nb                     # batch dims after merging
    Py_ssize_t count           # product of bsize
    Py_ssize_t bsize[MAXD]
    Py_ssize_t bst[MAXA][MAXD] # batch strides of each operand, in bytes


cdef int _plan(Plan *p, tuple arrays, int k, unsigned reduced, bint allow_cols) except -1:
    """Fill p for an operation along axis k of `arrays` (ndarrays of one
    shape, except that operand a has length 1 along k when bit a of
    `reduced` is set: its axis stride then means nothing).  The shape is
    the first operand's."""
    cdef int narr = len(arrays), d, a, i, cnt = 0
    cdef cnp.ndarray arr = <cnp.ndarray>arrays[0]
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(arr)
    cdef cnp.npy_intp *st[MAXA]
    cdef Py_ssize_t size, key
    cdef int order[MAXD]
    cdef bint merge
    p.narr = narr
    p.n = shape[k]
    for a in range(narr):
        arr = <cnp.ndarray>arrays[a]
        st[a] = cnp.PyArray_STRIDES(arr)
        p.isz[a] = cnp.PyArray_ITEMSIZE(arr)
        p.ax[a] = 1 if (reduced >> a) & 1 else st[a][k] // p.isz[a]
    # the other dims of length > 1, largest |stride| of the first operand first
    for d in range(nd):
        if d != k and shape[d] != 1:
            key = abs(st[0][d])
            i = cnt
            while i > 0 and abs(st[0][order[i - 1]]) < key:
                order[i] = order[i - 1]
                i -= 1
            order[i] = d
            cnt += 1
    # merge neighbours that are one dim in every operand
    p.nb = 0
    p.count = 1
    for i in range(cnt):
        d = order[i]
        size = shape[d]
        p.count *= size
        merge = p.nb > 0
        if merge:
            for a in range(narr):
                if p.bst[a][p.nb - 1] != st[a][d] * size:
                    merge = False
                    break
        if merge:
            p.bsize[p.nb - 1] *= size
            for a in range(narr):
                p.bst[a][p.nb - 1] = st[a][d]
        else:
            p.bsize[p.nb] = size
            for a in range(narr):
                p.bst[a][p.nb] = st[a][d]
            p.nb += 1
    p.m = 1
    p.mode = ROWS
    for a in range(narr):
        if p.n != 1 and p.ax[a] != 1:
            p.mode = GATHER
    if allow_cols and p.mode == GATHER and p.nb > 0 and p.bsize[p.nb - 1] > 1:
        merge = True
        for a in range(narr):
            if p.bst[a][p.nb - 1] != p.isz[a]:
                merge = False
        if merge:  # a contiguous inner dim in every operand: panels
            p.mode = COLS
            p.m = p.bsize[p.nb - 1]
            p.count //= p.m
            p.nb -= 1
    return 0


cdef inline void _offsets(const Plan *p, Py_ssize_t idx, int ndims, Py_ssize_t *off) noexcept nogil:
    """Byte offsets in each operand of batch index idx over the first ndims
    batch dims."""
    cdef int a, d
    cdef Py_ssize_t q
    for a in range(p.narr):
        off[a] = 0
    for d in range(ndims - 1, -1, -1):
        q = idx % p.bsize[d]
        idx = idx // p.bsize[d]
        for a in range(p.narr):
            off[a] += q * p.bst[a][d]


cdef struct Job:
    # what one call computes: op, and for the cross-entropy its parameters
    int op
    bint has_q              # xent: probability targets in operand 1
    bint has_g              # xent: a gradient in operand 2
    bint bconst             # logsumexp_w: one weight per row (b's axis stride 0)
    bint has_sign           # logsumexp_w: a sign output in operand 3
    bint opts               # xent: the options' kernel (sc_xent_opt_rows), lse in operand 5
    sc_xent_params prm
    sc_xent_opts opt


cdef void _rows_range(const Job *job, char **base, const Plan *p, Py_ssize_t g0,
                      Py_ssize_t g1, floating dummy) noexcept nogil:
    """Rows g0..g1 of the batch (row-major over the batch dims), in runs of
    equally spaced rows along the last batch dim."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t ld[MAXA]
    cdef Py_ssize_t step[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t R = p.bsize[p.nb - 1] if p.nb else 1
    cdef Py_ssize_t g = g0, r, seg
    cdef int a
    for a in range(p.narr):
        step[a] = p.bst[a][p.nb - 1] if p.nb else 0
        ld[a] = step[a] // p.isz[a]
    while g < g1:
        r = g % R
        seg = R - r
        if seg > g1 - g:
            seg = g1 - g
        _offsets(p, g // R, p.nb - 1 if p.nb else 0, off)
        for a in range(p.narr):
            ptr[a] = base[a] + off[a] + r * step[a]
        _rows_kernel(job, ptr, ld, seg, p.n, dummy)
        g += seg


cdef void _cols_item(const Job *job, char **base, const Plan *p, Py_ssize_t it,
                     Py_ssize_t nblk, floating dummy) noexcept nogil:
    """Column block it % nblk of panel it // nblk."""
    cdef Py_ssize_t off[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t j0 = (it % nblk) * COL_BLOCK, w = p.m - j0
    cdef int a
    if w > COL_BLOCK:
        w = COL_BLOCK
    _offsets(p, it // nblk, p.nb, off)
    for a in range(p.narr):
        ptr[a] = base[a] + off[a] + j0 * p.isz[a]
    _cols_kernel(job, ptr, p.ax, p.n, w, dummy)


cdef void _gather_row(const Job *job, char **base, const Plan *p, Py_ssize_t r,
                      floating *buf) noexcept nogil:
    """Row r through buf: gather the operands that have the axis into rows
    of buf, compute there, scatter the output back.  Operands without the
    axis (logsumexp's output; the cross-entropy's targets and losses) are
    used in place."""
    cdef Py_ssize_t off[MAXA]
    cdef Py_ssize_t ld[MAXA]
    cdef char *ptr[MAXA]
    cdef Py_ssize_t i, n = p.n
    cdef int a, out, nrow = 0
    cdef floating *src
    cdef floating *row
    _offsets(p, r, p.nb, off)
    # zeroed only for -Wmaybe-uninitialized, which cannot see that the loop
    # below sets every operand
    memset(ptr, 0, sizeof(ptr))
    memset(ld, 0, sizeof(ld))
    # which operand is written along the axis
    if job.op == SC_OP_XENT:
        out = 2 if job.has_g else -1
    elif job.op == SC_OP_LOGSUMEXP or job.op == SC_OP_LOGSUMEXP_W:
        out = -1
    else:
        out = p.narr - 1
    for a in range(p.narr):
        ptr[a] = base[a] + off[a]
        ld[a] = 1
        if (job.op == SC_OP_XENT and a >= 3) or (job.op == SC_OP_LOGSUMEXP and a == 1):
            continue            # no axis: used in place
        if job.op == SC_OP_LOGSUMEXP_W and (a >= 2 or (a == 1 and job.bconst)):
            continue            # outputs, and a weight per row: used in place
        if a == out:
            continue
        if job.op == SC_OP_XENT and ((a == 1 and not job.has_q) or (a == 2 and not job.has_g)):
            continue            # a placeholder operand, never read
        row = buf + nrow * n
        nrow += 1
        src = <floating *>ptr[a]
        for i in range(n):
            row[i] = src[i * p.ax[a]]
        ptr[a] = <char *>row
        ld[a] = n
    if out >= 0:
        # compute in place in the last gathered row (every kernel allows
        # its output to be its last input; the cross-entropy's gradient may
        # be the logits but not the probability targets: a row of its
        # own), then scatter
        row = buf + (nrow if job.op == SC_OP_XENT and job.has_q else nrow - 1) * n
        ptr[out] = <char *>row
        ld[out] = n
        _rows_kernel(job, ptr, ld, 1, n, buf[0])
        src = <floating *>(base[out] + off[out])
        for i in range(n):
            src[i * p.ax[out]] = row[i]
    else:
        _rows_kernel(job, ptr, ld, 1, n, buf[0])


cdef int _execute(const Job *job, char **base, const Plan *p, int nthreads,
                  floating dummy) except -1:
    cdef Py_ssize_t rows = p.count, c, it, r
    cdef Py_ssize_t nblk = (p.m + COL_BLOCK - 1) // COL_BLOCK
    cdef int nt
    cdef floating *buf = NULL
    cdef int failed = 0
    cdef int *pfailed = &failed
    cdef Py_ssize_t off[MAXA]
    # the options' kernel takes whole rows only: the same bits on any thread count
    nt = (_split_threads(job.op, rows, p.n, sizeof(floating), nthreads)
          if p.mode == ROWS and job.op != SC_OP_LOGSUMEXP_W
          and not (job.op == SC_OP_XENT and job.opts) else 1)
    if nt > 1:
        with nogil:
            for r in range(rows):
                _offsets(p, r, p.nb, off)
                if job.op == SC_OP_XENT:
                    _split_row_xent(job, <floating *>(base[0] + off[0]),
                                    <floating *>(base[1] + off[1]) if job.has_q else NULL,
                                    <int64_t *>(base[3] + off[3]),
                                    <floating *>(base[2] + off[2]) if job.has_g else NULL,
                                    <double *>(base[4] + off[4]), p.n, nt)
                elif sc_op_is_forward(job.op):
                    _split_row(job.op, <floating *>(base[0] + off[0]),
                               <floating *>(base[1] + off[1]), p.n, nt)
                else:
                    _split_row_bwd(job.op, <floating *>(base[0] + off[0]),
                                   <floating *>(base[1] + off[1]),
                                   <floating *>(base[2] + off[2]), p.n, nt)
    elif p.mode == ROWS:
        nt = _threads_for(rows * p.n * <Py_ssize_t>sizeof(floating), rows, nthreads)
        if nt == 1:
            with nogil:
                _rows_range(job, base, p, 0, rows, dummy)
        else:
            for c in prange(nt, nogil=True, schedule='static', num_threads=nt):
                _rows_range(job, base, p, rows * c // nt, rows * (c + 1) // nt, dummy)
    elif p.mode == COLS:
        nt = _threads_for(rows * p.n * p.m * <Py_ssize_t>sizeof(floating), rows * nblk, nthreads)
        if nt == 1:
            with nogil:
                for it in range(rows * nblk):
                    _cols_item(job, base, p, it, nblk, dummy)
        else:
            for it in prange(rows * nblk, nogil=True, schedule='static', num_threads=nt):
                _cols_item(job, base, p, it, nblk, dummy)
    else:
        nt = _threads_for(rows * p.n * <Py_ssize_t>sizeof(floating), rows, nthreads)
        with nogil, parallel(num_threads=nt):
            buf = <floating *> malloc(3 * p.n * sizeof(floating) + sizeof(floating))
            if buf == NULL:
                pfailed[0] = 1
            else:
                for r in prange(rows, schedule='static'):
                    _gather_row(job, base, p, r, buf)
                free(buf)
        if failed:
            raise MemoryError(f"softmax_c: could not allocate row buffers of {p.n} elements")
    return 0


cdef int _run(Job *job, tuple arrays, int k, unsigned reduced, int nthreads) except -1:
    """job along axis k of `arrays` (see _plan); the first operand's dtype
    (float32 or float64) is the compute dtype."""
    return _plan_run(job, arrays, k, reduced, True, nthreads)


cdef int _plan_run(Job *job, tuple arrays, int k, unsigned reduced, bint allow_cols,
                   int nthreads) except -1:
    """_run, panels allowed or not (an operation without a panel kernel)."""
    cdef Plan p
    cdef int a
    cdef char *base[MAXA]
    _plan(&p, arrays, k, reduced, allow_cols)
    for a in range(p.narr):
        base[a] = <char *>cnp.PyArray_DATA(<cnp.ndarray>arrays[a])
    if p.isz[0] == 4:
        _execute[float](job, base, &p, nthreads, 0)
    else:
        _execute[double](job, base, &p, nthreads, 0)
    return 0


def forward(int op, cnp.ndarray x, cnp.ndarray y, int k, int nthreads):
    """Unary op along axis k of x into y (both float32 or both float64, not
    empty; for logsumexp y has length 1 along k)."""
    cdef Job job
    job.op = op
    _run(&job, (x, y), k, 2 if op == SC_OP_LOGSUMEXP else 0, nthreads)


def logsumexp_w(cnp.ndarray x, cnp.ndarray b, cnp.ndarray out, sign, int k, int nthreads):
    """Weighted logsumexp along axis k of x (not empty) with weights b (x's
    dtype and shape; broadcast views with stride 0 are read in place) into
    out and, when it is an array, sign (both x's shape with length 1 along
    k).  Rows whose x is contiguous along k and whose b is contiguous or
    constant along k go to the row kernel where they are; the others
    (a non-last axis, say) are gathered a row at a time into a per-thread
    buffer of two rows."""
    cdef Job job
    cdef Py_ssize_t sb = cnp.PyArray_STRIDES(b)[k] if x.shape[k] > 1 else 0
    job.op = SC_OP_LOGSUMEXP_W
    job.bconst = sb == 0
    job.has_sign = sign is not None
    _plan_run(&job, (x, b, out, sign if job.has_sign else out), k, (2 if job.bconst else 0) | 4 | 8,
              False, nthreads)


def backward(int op, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int k, int nthreads):
    """Binary op along axis k of (a, b) into out (one dtype, one shape, not
    empty; out is a, b, or overlaps neither)."""
    cdef Job job
    job.op = op
    _run(&job, (a, b, out), k, 0, nthreads)


def xent_uses_panels(cnp.ndarray logits, q, cnp.ndarray target, grad, cnp.ndarray loss, int k):
    """Whether cross_entropy with these operands would take the panel
    kernel (whose sums run per lane: other bits than the row kernel's)."""
    cdef Plan p
    _plan(&p, (logits, q if q is not None else logits, grad if grad is not None else logits,
               target, loss), k, 8 | 16, True)
    return p.mode == COLS


def cross_entropy(cnp.ndarray logits, q, cnp.ndarray target, grad, cnp.ndarray loss, int k,
                  weight, double label_smoothing, double scale, double weight_sum, int nthreads,
                  lse=None, double softcap=0.0, double z_scale=0.0):
    """Per-sample losses (into `loss`, float64, of the logits' shape with
    length 1 along k) and, when `grad` is an array, the gradient times
    `scale`.  `q`: probability targets of the logits' shape, or None;
    `target`: int64 class indices (< 0: ignored) shaped like `loss` (any
    int64 array of that shape when q is given); `weight`: a contiguous
    array of the logits' dtype, or None.  grad may be logits itself.
    With `lse` (float64, shaped like `loss`) the options' kernel: each
    row's logsumexp of the capped logits into lse, the logits capped by
    `softcap` (> 0; 0: none) and the gradient's z-loss term of factor
    `z_scale`; it takes whole rows, and other layouts through gathered
    rows."""
    cdef Job job
    job.op = SC_OP_XENT
    job.has_q = q is not None
    job.has_g = grad is not None
    job.opts = lse is not None
    job.opt.softcap = softcap
    job.opt.z_scale = z_scale
    job.prm.weight = cnp.PyArray_DATA(<cnp.ndarray>weight) if weight is not None else NULL
    job.prm.label_smoothing = label_smoothing
    job.prm.scale = scale
    job.prm.weight_sum = weight_sum
    if job.opts:
        _plan_run(&job, (logits, q if job.has_q else logits, grad if job.has_g else logits,
                         target, loss, lse), k, 8 | 16 | 32, False, nthreads)
        return
    _run(&job, (logits, q if job.has_q else logits, grad if job.has_g else logits, target, loss),
         k, 8 | 16, nthreads)
