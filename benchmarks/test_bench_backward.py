"""softmax_vjp beside the NumPy reference and PyTorch's softmax backward.

One group per (case, dtype, threads).  Implementations:

  softmax_c         sc.softmax_vjp(y, g, axis)                     fresh output
  softmax_c-out     sc.softmax_vjp(y, g, axis, out=o)
  numpy             softmax_c.reference.softmax_vjp(y, g, axis)
  torch             torch._softmax_backward_data(g, y, dim, dtype)  (when installed)
  torch-out         the same with grad_input=o                      (when installed)

The bytes moved are two reads (y, g) and one write.
"""
import numpy as np
import pytest

import softmax_c as sc
from softmax_c import reference

from bench_cases import CASES, DTYPES, THREADS, check, logits

IMPLS = ["softmax_c", "softmax_c-out", "numpy", "torch", "torch-out"]


def _operands(case, dtype):
    x, axis = logits(case, dtype)
    y = reference.softmax(x, axis)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    return y, g, axis


def _prepare(impl, y, g, axis, nt):
    if impl == "softmax_c":
        return (lambda: sc.softmax_vjp(y, g, axis, num_threads=nt)), np.asarray
    if impl == "softmax_c-out":
        out = np.empty_like(y)
        return (lambda: sc.softmax_vjp(y, g, axis, out=out, num_threads=nt)), np.asarray
    if impl == "numpy":
        return (lambda: reference.softmax_vjp(y, g, axis)), np.asarray
    torch = pytest.importorskip("torch")
    torch.set_num_threads(nt)
    ty, tg = torch.from_numpy(y), torch.from_numpy(g)
    bwd = torch._softmax_backward_data
    if impl == "torch":
        return (lambda: bwd(tg, ty, axis, ty.dtype)), lambda r: r.numpy()
    out = torch.empty_like(ty)
    return (lambda: bwd(tg, ty, axis, ty.dtype, grad_input=out)), lambda r: r.numpy()


@pytest.mark.parametrize("nt", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IMPLS)
def test_softmax_vjp(benchmark, impl, case, dtype, nt):
    y, g, axis = _operands(case, dtype)
    fn, to_numpy = _prepare(impl, y, g, axis, nt)
    benchmark.group = f"softmax_vjp {case} {dtype} t{nt}"
    benchmark.extra_info["bytes"] = 3 * y.nbytes
    res = benchmark(fn)
    check(to_numpy(res), reference.softmax_vjp(y, g, axis))
