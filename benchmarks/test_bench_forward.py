"""softmax and log_softmax beside the NumPy reference, SciPy and PyTorch.

One group per (operation, case, dtype, threads).  Implementations, each
called the way its users call it:

  softmax_c         sc.softmax(x, axis)                  fresh output
  softmax_c-out     sc.softmax(x, axis, out=y)           preallocated output
  numpy             softmax_c.reference.softmax(x, axis)
  scipy             scipy.special.softmax(x, axis)       (when installed)
  torch             torch.softmax(t, dim)                (when installed)
  torch-out         torch._softmax(t, dim, False, out=)  (when installed)
"""
import numpy as np
import pytest

import softmax_c as sc
from softmax_c import reference

from bench_cases import CASES, DTYPES, THREADS, check, logits

OPS = ["softmax", "log_softmax"]
IMPLS = ["softmax_c", "softmax_c-out", "numpy", "scipy", "torch", "torch-out"]


def _prepare(impl, op, x, axis, nt):
    """A zero-argument callable running `op` on x the way `impl`'s users do,
    and a function turning its result into an ndarray."""
    if impl == "softmax_c":
        fn = getattr(sc, op)
        return (lambda: fn(x, axis, num_threads=nt)), np.asarray
    if impl == "softmax_c-out":
        fn, out = getattr(sc, op), np.empty_like(x)
        return (lambda: fn(x, axis, out=out, num_threads=nt)), np.asarray
    if impl == "numpy":
        fn = getattr(reference, op)
        return (lambda: fn(x, axis)), np.asarray
    if impl == "scipy":
        special = pytest.importorskip("scipy.special")
        fn = getattr(special, op)
        return (lambda: fn(x, axis=axis)), np.asarray
    torch = pytest.importorskip("torch")
    torch.set_num_threads(nt)
    t = torch.from_numpy(x)
    if impl == "torch":
        fn = getattr(torch, op)
        return (lambda: fn(t, axis)), lambda r: r.numpy()
    fn = torch._softmax if op == "softmax" else torch._log_softmax
    out = torch.empty_like(t)
    return (lambda: fn(t, axis, False, out=out)), lambda r: r.numpy()


@pytest.mark.parametrize("nt", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_forward(benchmark, op, impl, case, dtype, nt):
    x, axis = logits(case, dtype)
    fn, to_numpy = _prepare(impl, op, x, axis, nt)
    benchmark.group = f"{op} {case} {dtype} t{nt}"
    benchmark.extra_info["bytes"] = 2 * x.nbytes
    res = benchmark(fn)
    check(to_numpy(res), getattr(reference, op)(x, axis))
