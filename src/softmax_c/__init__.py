"""softmax_c: fast, exact softmax, log_softmax and logsumexp, their
backward products and the fused cross-entropy, for NumPy arrays on the
CPU, with C kernels vectorized for AVX-512 and AVX2.

Threads: a call without ``num_threads`` uses ``set_num_threads(n)``'s
value if set (softmax_c's own override), else the OpenMP runtime's
setting for the calling thread, ``omp_get_max_threads()``, which softmax_c
shares with PyTorch and every library on the same OpenMP runtime:
``OMP_NUM_THREADS``, ``torch.set_num_threads`` and ``threadpoolctl``
change it.  A forked child process computes on one thread."""
from ._version import __version__
from ._api import (
    cross_entropy,
    cross_entropy_grad,
    get_num_threads,
    log_softmax,
    log_softmax_jvp,
    log_softmax_vjp,
    logsumexp,
    set_num_threads,
    softmax,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)
from ._info import build_info, get_include, show_config
from ._sample_api import sample

__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "softmax_jvp",
    "softmax_vjp",
    "log_softmax_jvp",
    "log_softmax_vjp",
    "softmax_jacobian",
    "cross_entropy",
    "cross_entropy_grad",
    "sample",
    "get_num_threads",
    "set_num_threads",
    "build_info",
    "show_config",
    "get_include",
]
