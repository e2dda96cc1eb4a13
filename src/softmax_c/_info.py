"""Build and run-time facts: build_info(), show_config(), get_include()."""
import os
import platform
import sys

from . import _kernels
from ._version import __version__

_SIMD_ENV = "SOFTMAX_C_SIMD"


def build_info():
    """How this copy of softmax_c was built and what it uses at run time.

    Returns
    -------
    dict
        ``version``; ``openmp`` (bool: built with OpenMP); ``simd`` (the
        instruction set the kernels use now: "avx512f", "avx2" or "scalar");
        ``simd_supported`` (the best this CPU and OS allow);
        ``simd_compiled`` (the kernel sets in this build); ``simd_env`` (the
        SOFTMAX_C_SIMD cap, or None); ``compiler``; ``cflags``;
        ``num_threads`` (the current default, see get_num_threads);
        ``output_cache`` (bytes of freed large outputs kept for reuse at
        most, see SOFTMAX_C_OUTPUT_CACHE_MB in the README; 0 where the
        build does not keep any); ``platform``.
    """
    from ._api import get_num_threads

    facts = _kernels.build_facts()
    return {
        "version": __version__,
        "openmp": facts["openmp"],
        "simd": facts["simd"],
        "simd_supported": facts["simd_supported"],
        "simd_compiled": facts["simd_compiled"],
        "simd_env": os.environ.get(_SIMD_ENV) or None,
        "compiler": _compiler(),
        "cflags": facts["cflags"],
        "num_threads": get_num_threads(),
        "output_cache": _kernels.output_cache_stats()["limit"],
        "platform": f"{platform.system()} {platform.machine()}, Python {sys.version.split()[0]}",
    }


def _compiler():
    import sysconfig

    cc = sysconfig.get_config_var("CC") or "unknown"
    return cc.split()[0]


def show_config():
    """Print :func:`build_info`, one fact per line."""
    for key, value in build_info().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>15}: {value}")


def get_include():
    """The directory holding softmax_c's C headers, for extensions that call
    the kernels without Python: ``softmax_c_api.h`` (and ``softmax_c.h``, the
    contracts) for C extensions; Cython extensions that ``cimport
    softmax_c.kernels`` need it on their include path too.

    Examples
    --------
    >>> import os, softmax_c
    >>> os.path.isfile(os.path.join(softmax_c.get_include(), "softmax_c_api.h"))
    True
    """
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")
