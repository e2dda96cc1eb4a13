"""softmax_c: fast, exact softmax, log_softmax and logsumexp, their
backward products and the fused cross-entropy, for NumPy arrays on the
CPU, with C kernels vectorized for AVX-512 and AVX2."""
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
    "get_num_threads",
    "set_num_threads",
    "build_info",
    "show_config",
    "get_include",
]
