# Threads (textually part of _kernels.pyx): how many a call uses, the
# default count, and one thread in a child forked after threads ran.

# Below this many bytes of input per thread a call runs on fewer threads (on
# one thread below twice this): where a second thread starts to pay for its
# start-up and barrier (docs/performance.md, MIN_BYTES_PER_THREAD).
cdef Py_ssize_t MIN_BYTES_PER_THREAD = 64 * 1024


# GNU OpenMP keeps its thread pool's bookkeeping across fork() but not the
# threads: in a child forked after the parent ran a parallel region, the
# child's first parallel region waits forever for workers that do not
# exist.  The runtime is shared with every other OpenMP library in the
# process (PyTorch, scikit-learn, ...), whose regions softmax_c cannot see,
# so a forked child always computes on one thread.
cdef int _serial_after_fork = 0


def _after_fork_in_child():
    global _serial_after_fork
    _serial_after_fork = 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def serial_after_fork():
    """True in a forked child process (whoever ran OpenMP threads in the parent)."""
    return bool(_serial_after_fork)


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t parts, int requested) noexcept nogil:
    """Threads for `work` bytes of input in `parts` independent parts."""
    if _serial_after_fork:
        return 1
    cdef Py_ssize_t t = work // MIN_BYTES_PER_THREAD
    if t > requested:
        t = requested
    if t > parts:
        t = parts
    if t > 1:
        return <int>t
    return 1


cdef int _default_threads = 0   # set_num_threads' value; 0: OpenMP's default


cdef inline int _threads_default() noexcept nogil:
    if _serial_after_fork:
        return 1
    return _default_threads if _default_threads > 0 else omp_get_max_threads()


def set_default_threads(int n):
    """The thread count of calls without num_threads (0: OpenMP's default)."""
    global _default_threads
    _default_threads = n


def default_threads():
    return _threads_default()
