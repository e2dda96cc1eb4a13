"""Build of softmax_c's extension: csrc/ (C99 kernels) + _kernels.pyx.

Environment switches:
  SOFTMAX_C_NO_OPENMP=1   build without OpenMP (serial kernels)
  SOFTMAX_C_DEBUG=1       Cython bounds/wraparound checks on, -O1 -g
  SOFTMAX_C_SANITIZE=1    AddressSanitizer + UndefinedBehaviorSanitizer
                          (compile and link), -O1 -g; any UB report aborts.
                          Python itself is not instrumented, so the runtime
                          must be preloaded: see .ci/sanitize

The shipped flags never include -ffast-math, -Ofast or -march=native: the
kernels pick their instruction set at run time (csrc/sc_dispatch.c), and
fast-math objects can switch the whole process to flush-to-zero.
-fno-trapping-math only lets gcc vectorize the exp's compare-and-select;
it changes no result.  -ffp-contract=off keeps gcc from fusing a
multiply and an add into an FMA on its own: where it did, the same element
rounded differently in the streaming, the cached and the tail loops, so a
result depended on alignment and thread count.  The kernels' FMAs are
explicit.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"
C_SOURCES = ["sc_dispatch.c", "sc_kern_scalar.c", "sc_kern_avx2.c", "sc_kern_avx512.c"]
HEADERS = ["softmax_c.h", "softmax_c_api.h", "sc_kernels.def", "sc_ops.h"]
BASE_CFLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wno-unused-function"]


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _openmp_flags(compiler):
    """Compile and link a tiny OpenMP program with the real compiler; return
    the flags that worked, or None (the build then goes on serial)."""
    if _env_flag("SOFTMAX_C_NO_OPENMP"):
        return None
    src = (
        "#include <omp.h>\n"
        "#include <stdio.h>\n"
        "int main(void) { int n = 0;\n"
        "#pragma omp parallel reduction(+:n)\n"
        "n += 1;\n"
        "printf(\"%d %d\\n\", n, omp_get_max_threads()); return 0; }\n"
    )
    tmp = tempfile.mkdtemp(prefix="softmax_c_omp_")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("probe.c", "w") as f:
            f.write(src)
        flags = ["-fopenmp"]
        try:
            objs = compiler.compile(["probe.c"], extra_postargs=flags)
            compiler.link_executable(objs, "probe", extra_postargs=flags)
            out = subprocess.run([os.path.join(tmp, "probe")], capture_output=True, timeout=60)
        except Exception:
            return None
        return flags if out.returncode == 0 else None
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


def _sanitize_flags():
    """SOFTMAX_C_SANITIZE=1: the ASan + UBSan flags, for both the compiler
    and the linker (so the extension links the sanitizer runtimes); else
    []."""
    if not _env_flag("SOFTMAX_C_SANITIZE"):
        return []
    return ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined"]


class BuildExt(build_ext):
    def build_extensions(self):
        debug = _env_flag("SOFTMAX_C_DEBUG")
        omp = _openmp_flags(self.compiler)
        if omp is None:
            msg = ("softmax_c: OpenMP not found (or SOFTMAX_C_NO_OPENMP set); "
                   "building serial kernels. build_info()['openmp'] will be False.")
            warnings.warn(msg)
            print("WARNING: " + msg, file=sys.stderr)
        sanitize = _sanitize_flags()
        cflags = list(BASE_CFLAGS)
        if debug or sanitize:
            cflags = [f for f in cflags if f != "-O3"] + ["-O1", "-g"]
        else:
            # Python's own CFLAGS carry -g: with the kernels' inlining that is
            # 12 MB of debug information in a 0.2 MB extension.
            cflags.append("-g0")
        cflags += sanitize
        for ext in self.extensions:
            ext.extra_compile_args = cflags + (omp or [])
            ext.extra_link_args = list(omp or []) + sanitize
            ext.define_macros = ext.define_macros + [
                ("SC_CFLAGS", '"%s"' % " ".join(cflags + (omp or [])))]
        super().build_extensions()


def _copy_headers():
    """Install the public C header with the package (get_include())."""
    dst = os.path.join(HERE, "src", "softmax_c", "include")
    os.makedirs(dst, exist_ok=True)
    for h in HEADERS:
        shutil.copyfile(os.path.join(HERE, CSRC, h), os.path.join(dst, h))


def _extensions():
    from Cython.Build import cythonize

    debug = _env_flag("SOFTMAX_C_DEBUG")
    import numpy

    # softmax_c.kernels holds the C kernels (once) and exports them to other
    # extensions (kernels.pxd, softmax_c_api.h); _kernels, the loops behind
    # the Python API, cimports them from there like any other user.
    # Every header the kernels and the Cython modules include: setuptools
    # rebuilds an object only when a listed dependency is newer than it.
    depends = sorted(glob.glob(os.path.join(CSRC, "*.h")) + glob.glob(os.path.join(CSRC, "*", "*.h"))
                     + glob.glob(os.path.join(CSRC, "*.def"))
                     + glob.glob("src/softmax_c/*.h") + glob.glob("src/softmax_c/*.pxd")
                     + glob.glob("src/softmax_c/*.pxi"))
    common = dict(
        include_dirs=[CSRC, "src/softmax_c", numpy.get_include()],
        depends=depends,
        # 1.22: the memory handler API (NEP 49) that _outbuf.h uses
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_22_API_VERSION")],
    )
    exts = [
        Extension("softmax_c.kernels",
                  sources=["src/softmax_c/kernels.pyx"] + [os.path.join(CSRC, s) for s in C_SOURCES],
                  **common),
        Extension("softmax_c._kernels", sources=["src/softmax_c/_kernels.pyx"], **common),
    ]
    return cythonize(
        exts,
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "cdivision": True,
            "initializedcheck": debug,
        },
    )


if os.path.isdir(os.path.join(HERE, CSRC)):
    _copy_headers()

setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
