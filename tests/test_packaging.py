"""The release artefacts: `python -m build` makes an sdist and a wheel (the
wheel built from the sdist, so the sdist is proven complete), the wheel
installs into a fresh virtualenv, and the tests shipped in the sdist that
depend on what the wheel holds pass there against it: the downstream
Cython/C extension builds (headers, .pxd, the manifest), the SIMD levels
and the forward functions.  The whole suite runs against an install from
a source copy in the sanitizer job (.ci/sanitize) and in place in the main
run, so a third full run here would add minutes and no coverage.

Slow (a from-scratch build in an isolated environment plus a second test
run), and needs the package index for the build requirements; it runs in CI.
"""
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

if not (ROOT / "pyproject.toml").is_file() or not (ROOT / "csrc").is_dir():
    pytest.skip("needs the source tree", allow_module_level=True)
pytest.importorskip("build")


def _run(cmd, cwd, timeout=1200, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # Default `build`: the sdist first, then the wheel from the unpacked sdist.
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    sdists = list(out.glob("softmax_c-*.tar.gz"))
    wheels = list(out.glob("softmax_c-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return sdists[0], wheels[0]


def test_sdist_has_what_the_build_needs(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for f in os.listdir(ROOT / "csrc"):
        assert f"csrc/{f}" in names, f
    for f in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in",
              "src/softmax_c/_kernels.pyx", "src/softmax_c/kernels.pyx",
              "src/softmax_c/_kernels.pxd", "src/softmax_c/kernels.pxd", "src/softmax_c/_omp.h",
              "src/softmax_c/_outbuf.h",
              "tests/conftest.py", "tests/test_downstream.py", "benchmarks/bench_cases.py"):
        assert f in names, f
    # Cython's output is made anew by every build, never shipped stale.
    assert "src/softmax_c/_kernels.c" not in names
    assert "src/softmax_c/kernels.c" not in names


def test_wheel_contents(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for f in ("softmax_c/kernels.pxd", "softmax_c/include/softmax_c.h",
              "softmax_c/include/softmax_c_api.h", "softmax_c/reference.py"):
        assert f in infos, f
    sos = [f for f in infos if f.endswith(".so") or f.endswith(".pyd")]
    assert {Path(f).name.split(".")[0] for f in sos} == {"kernels", "_kernels"}, sos
    # no debug information (Python's own CFLAGS carry -g; setup.py adds -g0),
    # and a size that says the kernels were not instantiated more than once
    for f in sos:
        with zipfile.ZipFile(wheel) as zf:
            assert b".debug_info" not in zf.read(f), f
        assert infos[f].file_size < 12 * 2**20, (f, infos[f].file_size)


# The tests whose subject is what the wheel ships: headers and .pxd for
# downstream builds, the per-level kernels, the Python entry points.
WHEEL_TESTS = ("test_downstream.py", "test_simd_levels.py", "test_forward.py")


def test_wheel_passes_tests_in_fresh_venv(dist, tmp_path):
    sdist, wheel = dist
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", f"{wheel}[test]"], cwd=tmp_path)
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp_path / "src")
    (tree,) = (tmp_path / "src").iterdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("SOFTMAX_C_SIMD", None)
    # The tests the sdist ships, run from outside it: `softmax_c` must come
    # from the installed wheel, not from a source tree.
    where = _run([py, "-c", "import softmax_c; print(softmax_c.__file__)"], cwd=tmp_path, env=env)
    assert str(venv) in where, where
    files = [str(tree / "tests" / f) for f in WHEEL_TESTS]
    _run([py, "-m", "pytest", *files, "-q", "-x", "-p", "no:cacheprovider",
          "-m", "not slow", "--benchmark-disable"], cwd=tmp_path, env=env)
