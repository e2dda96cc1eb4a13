"""cross_entropy_grad (loss and gradient) beside the NumPy reference and a
PyTorch training step.

One group per (case, dtype, threads).  Implementations:

  softmax_c         sc.cross_entropy_grad(z, t)              fresh gradient
  softmax_c-inplace sc.cross_entropy_grad(z, t, out=z)       gradient over the logits
  numpy             softmax_c.reference.cross_entropy_grad(z, t)
  torch             F.cross_entropy(z, t).backward()         (when installed)

Bytes moved: the logits read once and the gradient written once.
"""
import numpy as np
import pytest

import softmax_c as sc
from softmax_c import reference

from bench_cases import DTYPES, THREADS, check

CASES = {
    "64x1000": (64, 1000),
    "256x32000": (256, 32000),
    "4096x4096": (4096, 4096),
    "16x262144": (16, 262144),
    "32768x128": (32768, 128),
    "8x32000": (8, 32000),
}
IMPLS = ["softmax_c", "softmax_c-inplace", "numpy", "torch"]


def _operands(case, dtype):
    rng = np.random.default_rng(0)
    rows, n = CASES[case]
    z = (rng.standard_normal((rows, n)) * 4).astype(dtype)
    t = rng.integers(0, n, rows)
    return z, t


def _prepare(impl, z, t, nt):
    """The timed callable and a function giving (loss, grad) as NumPy from
    its result."""
    if impl == "softmax_c":
        return (lambda: sc.cross_entropy_grad(z, t, num_threads=nt)), lambda r: r
    if impl == "softmax_c-inplace":
        return (lambda: sc.cross_entropy_grad(z, t, out=z, num_threads=nt)), lambda r: r
    if impl == "numpy":
        return (lambda: reference.cross_entropy_grad(z, t)), lambda r: r
    torch = pytest.importorskip("torch")
    torch.set_num_threads(nt)
    F = torch.nn.functional
    tz = torch.from_numpy(z).requires_grad_()
    tt = torch.from_numpy(t)

    def step():
        tz.grad = None
        loss = F.cross_entropy(tz, tt)
        loss.backward()
        return loss, tz.grad

    return step, lambda r: (r[0].detach().numpy(), r[1].numpy())


@pytest.mark.parametrize("nt", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IMPLS)
def test_cross_entropy_grad(benchmark, impl, case, dtype, nt):
    z, t = _operands(case, dtype)
    z0 = z.copy()
    fn, to_numpy = _prepare(impl, z, t, nt)
    benchmark.group = f"cross_entropy_grad {case} {dtype} t{nt}"
    benchmark.extra_info["bytes"] = 2 * z.nbytes
    res = benchmark(fn)
    if impl == "softmax_c-inplace":  # the timed calls overwrote z: once more from the start
        np.copyto(z, z0)
        res = fn()
    loss, grad = to_numpy(res)
    want_loss, want_grad = reference.cross_entropy_grad(z0, t)
    check(loss, want_loss)
    check(grad, want_grad)
