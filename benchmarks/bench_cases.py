"""Shared cases of the pytest-benchmark suite (a plain module, not a
conftest: tests/ has its own conftest module).

Each benchmark test is parametrized over (case, implementation) and puts
softmax_c and every baseline of one case in one pytest-benchmark group, so
that ``pytest benchmarks/`` prints them side by side.  Inputs are built
outside the timed call; the bytes a call must move (its inputs read once,
its output written once) go into ``extra_info`` so every figure can be read
against memory bandwidth; the result is checked against the NumPy
reference after timing.

``pytest benchmarks/ --benchmark-disable`` runs every call once, checked:
the smoke test CI runs.
"""
import os

import numpy as np

from softmax_c.bench import SHAPES

# name -> (shape, axis): the bench command's cases, but for the largest
# (8x12x512x512, 1x131072), which would make the CI smoke run slow.
CASES = {name: SHAPES[name] for name in (
    "64x1000", "256x32000", "4096x4096", "16x262144", "32768x128", "1x32000", "8x32000",
    "64x1000x32:1")}
DTYPES = ["float32", "float64"]
THREADS = sorted({1, os.cpu_count() or 1})


def logits(case, dtype, seed=0):
    shape, axis = CASES[case]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 4).astype(dtype), axis


def check(got, want):
    """The benchmarked result against the reference, after timing."""
    got, want = np.asarray(got), np.asarray(want)
    tol = 2e-5 if got.dtype == np.float32 else 1e-12
    assert got.shape == want.shape
    scale = float(np.max(np.abs(want), initial=0.0)) or 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
