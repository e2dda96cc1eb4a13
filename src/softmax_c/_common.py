"""Helpers the public functions' modules share: thread counts and views."""
from . import _kernels, _validate


def _fast_threads(num_threads):
    """num_threads for the hot paths: 0 (the default) for None, the value
    for an int in [1, MAX_THREADS], and -1 (take the general path, which
    raises) for anything else."""
    if num_threads is None:
        return 0
    if type(num_threads) is int and 1 <= num_threads <= _validate.MAX_THREADS:
        return num_threads
    return -1


def _threads(num_threads):
    """A call's thread count: `num_threads` checked, or for None the default
    (what get_num_threads() returns)."""
    if num_threads is None:
        return _kernels.default_threads()
    return _validate.check_num_threads(num_threads)


def _same_view(a, b):
    """Whether ndarrays a and b are the same elements in the same layout."""
    return a is b or _kernels.same_view(a, b)
