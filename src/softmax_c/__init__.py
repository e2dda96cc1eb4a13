"""softmax_c: fast, exact softmax, log_softmax and logsumexp for NumPy
arrays on the CPU, with C kernels vectorized for AVX-512 and AVX2."""
from ._version import __version__
from ._api import (
    get_num_threads,
    log_softmax,
    logsumexp,
    set_num_threads,
    softmax,
)
from ._info import build_info, get_include, show_config

__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "get_num_threads",
    "set_num_threads",
    "build_info",
    "show_config",
    "get_include",
]
