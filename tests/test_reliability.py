"""Reliability of softmax_c as a library inside a larger process.

Five sections, each proving one property with checks that fail when it
breaks:

1. Concurrency.  Eight Python threads, released together by a Barrier,
   call every public function at once on inputs small (serial) and large
   enough to start the OpenMP team (>= 64 KiB per OpenMP thread, in the
   row, column-panel, gather and streaming-store layouts), with
   num_threads 1, 2 and the default; every result is bitwise equal (NaN
   positions and payloads included) to the one computed alone, on one
   thread, beforehand.  The same holds while another thread keeps calling
   set_num_threads.
2. Fork.  After the parent has used the library, OpenMP team included, a
   child made by multiprocessing's "fork" context computes softmax and
   cross_entropy_grad bitwise like the parent, on one thread and when
   asked for two (GNU OpenMP cannot run a team in such a child: the library
   then runs serially instead of deadlocking); a deadlock fails after a
   timeout instead of hanging the suite.
3. Memory.  100k calls of every function (fast paths, general paths,
   out=, and calls that raise) on a tiny input grow neither malloc's bytes
   in use (glibc's mallinfo2) nor the resident set, a further 5k calls
   grow nothing tracemalloc sees, and the arguments' reference counts stay
   as they were; a deliberate 16-byte-per-call leak is shown to fail the
   same measures.
4. 64-bit indexing.  float32 arrays of more than 2^31 elements (8 GiB),
   as one row longer than 2^31 and as rows whose offsets cross 2^31, give
   the right softmax, log_softmax, logsumexp and cross_entropy_grad
   (written over the input), checked against an exact float64 formula at
   sampled elements and through full-array maxima and row sums.  Skipped
   where the machine lacks the memory.
5. Process state.  In a fresh interpreter, importing the package and
   calling every function changes neither the floating-point environment
   (rounding mode, x87 control word, MXCSR with FTZ/DAZ, subnormal
   arithmetic), nor any signal disposition (Python's and the C-level
   sigaction), nor the environment (os.environ and the C environ), both
   from the default state and from a non-default one the user set.
"""
import concurrent.futures
import ctypes
import gc
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from conftest import MODULE_UNDER_TEST, AxisError

ALL_FUNCTIONS = ["softmax", "log_softmax", "logsumexp", "softmax_jvp", "softmax_vjp",
                 "log_softmax_jvp", "log_softmax_vjp", "softmax_jacobian", "cross_entropy",
                 "cross_entropy_grad"]

LINUX = sys.platform.startswith("linux")
X86_64_LINUX = LINUX and platform.machine() in ("x86_64", "AMD64")


def same_bits(a, b):
    """a and b are the same result bit for bit: tuples element by element;
    arrays and NumPy scalars by dtype, shape and bytes (so NaN positions,
    NaN payloads and the sign of zero count)."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(same_bits(u, v) for u, v in zip(a, b)))
    if type(a) is not type(b):
        return False
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ================================================================ 1. concurrency

N_WORKERS = 8
ROUNDS = 3


def _make_tasks(sc, ref):
    """name -> fn(num_threads) for every public function over the layouts
    the library has code paths for.  The inputs are built once and only
    read; a task that writes (out=, in place) writes into its own copy."""
    rng = np.random.default_rng(20240611)
    f32, f64 = np.float32, np.float64

    # 64 x 4096 float32 = 1 MiB: two OpenMP threads of 512 KiB (the library
    # goes parallel from 64 KiB per thread); special rows for NaN positions.
    big = rng.normal(0, 3, (64, 4096)).astype(f32)
    big_special = big.copy()
    big_special[3, 100] = np.nan
    big_special[5, :] = -np.inf
    big_special[7, 10] = np.inf
    big_special[9, ::3] = -np.inf
    # 8 MiB: outputs of >= 4 MiB per call go through streaming stores
    stream = rng.normal(0, 3, (256, 8192)).astype(f32)
    # float64 along axis 0 of a C array: the column-panel kernels, 1 MiB
    cols = rng.normal(0, 3, (512, 256))
    cols[100, 3] = np.nan
    # a strided axis with no contiguous dim: per-thread gather buffers, 2 MiB
    gather = rng.normal(0, 3, (128, 4096))[:, ::2]
    small64 = rng.normal(0, 3, (3, 7))
    small32 = rng.normal(0, 3, (5, 33)).astype(f32)
    half = rng.normal(0, 3, (16, 100)).astype(np.float16)
    cube = rng.normal(0, 3, (8, 64, 130)).astype(f32)        # axis=(0, 2)
    mask = rng.random(big.shape) < 0.7
    mask[11] = False                                         # a row with nothing

    forward_inputs = {"big": (big_special, -1), "stream": (stream, -1), "cols": (cols, 0),
                      "gather": (gather, -1), "small64": (small64, -1),
                      "small32_axis0": (small32, 0), "half": (half, -1),
                      "cube_axes02": (cube, (0, 2))}
    tasks = {}
    for key, (x, axis) in forward_inputs.items():
        for name in ("softmax", "log_softmax", "logsumexp"):
            tasks[f"{name}[{key}]"] = (
                lambda nt, f=getattr(sc, name), x=x, axis=axis: f(x, axis=axis, num_threads=nt))
    tasks["logsumexp[big,keepdims]"] = lambda nt: sc.logsumexp(big, keepdims=True, num_threads=nt)
    tasks["softmax[big,where]"] = lambda nt: sc.softmax(big, where=mask, num_threads=nt)
    tasks["log_softmax[big,where]"] = lambda nt: sc.log_softmax(big, where=mask, num_threads=nt)
    tasks["softmax[big,out]"] = lambda nt: sc.softmax(big, out=np.empty_like(big), num_threads=nt)

    def log_softmax_in_place(nt):
        x = big.copy()
        return sc.log_softmax(x, out=x, num_threads=nt)
    tasks["log_softmax[big,out=x]"] = log_softmax_in_place

    # backward: y = softmax(x) and logp = log_softmax(x) from the reference
    backward_inputs = {
        "big": (rng.normal(0, 3, (64, 4096)).astype(f32), -1),
        "cols": (rng.normal(0, 3, (512, 256)), 0),
        "gather": (rng.normal(0, 3, (128, 4096))[:, ::2], -1),
        "small32": (rng.normal(0, 3, (5, 33)).astype(f32), -1),
    }
    for key, (x, axis) in backward_inputs.items():
        y = ref.softmax(x.astype(f64), axis=axis).astype(x.dtype)
        logp = ref.log_softmax(x.astype(f64), axis=axis).astype(x.dtype)
        v = rng.normal(0, 1, x.shape).astype(x.dtype)
        for name, a in (("softmax_jvp", y), ("softmax_vjp", y), ("log_softmax_jvp", logp),
                        ("log_softmax_vjp", logp)):
            tasks[f"{name}[{key}]"] = (
                lambda nt, f=getattr(sc, name), a=a, v=v, axis=axis: f(a, v, axis, num_threads=nt))
    y_big = ref.softmax(backward_inputs["big"][0].astype(f64)).astype(f32)
    g_big = rng.normal(0, 1, y_big.shape).astype(f32)

    def softmax_vjp_in_place(nt):
        g = g_big.copy()
        return sc.softmax_vjp(y_big, g, out=g, num_threads=nt)
    tasks["softmax_vjp[big,out=g]"] = softmax_vjp_in_place

    for key, shape, dtype, axis in (("f64", (32, 48), f64, -1), ("f32", (8, 128), f32, -1),
                                    ("f32_axis1", (4, 16, 8), f32, 1)):
        y = ref.softmax(rng.normal(0, 2, shape), axis=axis).astype(dtype)
        tasks[f"softmax_jacobian[{key}]"] = lambda nt, y=y, axis=axis: sc.softmax_jacobian(y, axis)

    # cross-entropy: index targets (some ignored), options, probability
    # targets, PyTorch's (N, C, L) layout, a single sample
    logits = rng.normal(0, 3, (64, 4096)).astype(f32)
    target = rng.integers(0, 4096, 64)
    target[::7] = -100
    weight = rng.uniform(0.5, 2.0, 4096).astype(f32)
    probs = ref.softmax(rng.normal(0, 2, logits.shape)).astype(f32)
    logits3 = rng.normal(0, 3, (16, 64, 256)).astype(f32)
    target3 = rng.integers(0, 64, (16, 256))
    logits_s = rng.normal(0, 3, (5, 7))
    target_s = np.array([0, 6, 3, -100, 2])
    logits_1d = rng.normal(0, 3, 1000)
    target_1d = np.array(417)
    xent_cases = {
        "big,mean": (logits, target, {}),
        "big,sum,weight,smooth": (logits, target, {"reduction": "sum", "weight": weight,
                                                   "label_smoothing": 0.1}),
        "big,none": (logits, target, {"reduction": "none"}),
        "big,probs": (logits, probs, {}),
        "stream,mean": (stream, rng.integers(0, 8192, 256), {}),
        "NCL,axis1": (logits3, target3, {"axis": 1}),
        "small64": (logits_s, target_s, {"label_smoothing": 0.2}),
        "1d": (logits_1d, target_1d, {}),
    }
    for key, (z, t, kw) in xent_cases.items():
        for name in ("cross_entropy", "cross_entropy_grad"):
            tasks[f"{name}[{key}]"] = (
                lambda nt, f=getattr(sc, name), z=z, t=t, kw=kw: f(z, t, num_threads=nt, **kw))

    def xent_grad_in_place(nt):
        z = logits.copy()
        return sc.cross_entropy_grad(z, target, out=z, num_threads=nt)
    tasks["cross_entropy_grad[big,out=logits]"] = xent_grad_in_place
    return tasks


@pytest.fixture(scope="module")
def tasks(sc, ref):
    return _make_tasks(sc, ref)


@pytest.fixture(scope="module")
def baseline(tasks):
    """Every task's result alone, in this thread, on one OpenMP thread."""
    return {name: fn(1) for name, fn in tasks.items()}


@pytest.fixture
def restore_num_threads(sc):
    """The module under test, with its default thread count put back
    afterwards: OpenMP's default (set_num_threads(None)) if that is what it
    was, else the value."""
    if not hasattr(sc, "set_num_threads"):
        pytest.skip(f"{MODULE_UNDER_TEST} has no thread API")
    before = sc.get_num_threads()
    yield sc
    sc.set_num_threads(None)
    if sc.get_num_threads() != before:
        sc.set_num_threads(before)


def test_tasks_cover_every_function_and_special_values(tasks, baseline):
    """The concurrency tests below exercise every public function, and the
    special rows really give NaN (so NaN positions are compared)."""
    for name in ALL_FUNCTIONS:
        assert any(t.startswith(name + "[") for t in tasks), name
    assert np.isnan(baseline["softmax[big]"][3]).all()
    assert np.isnan(baseline["softmax[big]"][5]).all()
    assert not np.isnan(baseline["softmax[big]"][4]).any()
    assert np.isnan(baseline["softmax[cols]"][:, 3]).all()


def test_results_do_not_depend_on_num_threads(tasks, baseline):
    """Rows are independent, so the OpenMP thread count cannot change a bit:
    this is what lets the tests below compare every thread count with one
    baseline."""
    bad = [f"{name} num_threads={nt}" for name, fn in tasks.items() for nt in (2, 3, None)
           if not same_bits(fn(nt), baseline[name])]
    assert not bad, f"{len(bad)} results differ between thread counts: {bad[:10]}"


def _run_workers(tasks, baseline, nt_of_worker, rounds=ROUNDS):
    """N_WORKERS Python threads run every task in their own shuffled order,
    `rounds` times, each round started together at a Barrier; returns the
    mismatches with the baseline."""
    barrier = threading.Barrier(N_WORKERS, timeout=120)

    def worker(i):
        order = list(tasks)
        random.Random(i).shuffle(order)
        nt = nt_of_worker(i)
        bad = []
        for rnd in range(rounds):
            barrier.wait()
            for name in order:
                if not same_bits(tasks[name](nt), baseline[name]):
                    bad.append(f"worker {i}, round {rnd}, num_threads={nt}: {name}")
        return bad

    with concurrent.futures.ThreadPoolExecutor(N_WORKERS) as pool:
        futures = [pool.submit(worker, i) for i in range(N_WORKERS)]
        return [msg for f in futures for msg in f.result(timeout=300)]


@pytest.mark.parametrize("mode", ["1", "2", "default", "mixed"])
def test_python_threads_calling_every_function_at_once(tasks, baseline, mode):
    """mode: every worker with num_threads=1, =2, None, or mixed (1, 2 and
    None by worker)."""
    nt_of_worker = {"1": lambda i: 1, "2": lambda i: 2, "default": lambda i: None,
                    "mixed": lambda i: (1, 2, None)[i % 3]}[mode]
    bad = _run_workers(tasks, baseline, nt_of_worker)
    assert not bad, f"{len(bad)} results differ from the baseline: {bad[:10]}"


def test_set_num_threads_while_other_threads_compute(restore_num_threads, tasks, baseline):
    """One thread keeps changing the default thread count (1..4 and back to
    OpenMP's default) while the workers compute with that default."""
    sc = restore_num_threads
    stop = threading.Event()
    changes = []

    def hammer():
        k = 0
        while not stop.is_set():
            for n in (1, 2, 3, 4, None, 2):
                sc.set_num_threads(n)
                k += 1
            time.sleep(0)   # let the workers take the GIL
        changes.append(k)

    t = threading.Thread(target=hammer)
    t.start()
    try:
        bad = _run_workers(tasks, baseline, lambda i: None, rounds=2)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive()
    assert changes and changes[0] > 0
    assert not bad, f"{len(bad)} results differ from the baseline: {bad[:10]}"
    # the setting still works after the storm
    sc.set_num_threads(3)
    assert sc.get_num_threads() == 3


# ================================================================ 2. fork

HAVE_FORK = "fork" in multiprocessing.get_all_start_methods()
FORK_TIMEOUT = 10  # s; the child's work takes milliseconds


class ChildTimeout(AssertionError):
    """The forked child did not answer in FORK_TIMEOUT seconds: a deadlock."""


def _fork_inputs():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, (64, 4096)).astype(np.float32)   # 1 MiB: two OpenMP threads
    t = rng.integers(0, 4096, 64)
    t[::5] = -100
    small = rng.normal(0, 3, (4, 9))
    return x, t, small


def _fork_calls(num_threads):
    """The calls the child makes: softmax and cross_entropy_grad of the
    1 MiB input, softmax of a small one (serial whatever is asked)."""
    x, t, small = _fork_inputs()
    return [("softmax", (x,), {"num_threads": num_threads}),
            ("cross_entropy_grad", (x, t), {"label_smoothing": 0.1, "num_threads": num_threads}),
            ("softmax", (small,), {"num_threads": num_threads})]


def _call_in_child(calls):
    """Run in the forked child: [(function name, args, kwargs)] -> results."""
    import importlib

    sc = importlib.import_module(MODULE_UNDER_TEST)
    return [getattr(sc, name)(*args, **kwargs) for name, args, kwargs in calls]


def _fork_and_compare(sc, calls):
    """After the parent ran OpenMP regions with two threads, a forked child
    makes `calls`; its results must be the parent's on one thread."""
    x, t, _ = _fork_inputs()
    sc.softmax(x, num_threads=2)
    sc.cross_entropy_grad(x, t, num_threads=2)
    expected = [getattr(sc, name)(*args, **dict(kwargs, num_threads=1))
                for name, args, kwargs in calls]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:   # leaving the block terminates a hung child
        job = pool.apply_async(_call_in_child, (calls,))
        try:
            got = job.get(timeout=FORK_TIMEOUT)
        except multiprocessing.TimeoutError:
            raise ChildTimeout(f"the forked child did not finish {len(calls)} calls in "
                               f"{FORK_TIMEOUT} s") from None
    for (name, _, kwargs), g, e in zip(calls, got, expected):
        assert same_bits(g, e), f"the child's {name}({kwargs}) differs from the parent's"


@pytest.mark.skipif(not HAVE_FORK, reason="no fork start method on this platform")
def test_forked_child_computes_like_the_parent_on_one_thread(sc, ref):
    """The child computes the large input on one thread and the small one
    with the default thread count (which runs it serially)."""
    x, t, small = _fork_inputs()
    np.testing.assert_allclose(sc.softmax(x), ref.softmax(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-30)
    _fork_and_compare(sc, _fork_calls(1) + [("softmax", (small,), {})])


# libgomp (GCC's OpenMP runtime) keeps its thread pool across fork()
# without the threads: a parallel region in a child forked after the parent
# ran one waited forever.  softmax_c makes such a child's calls serial
# (os.register_at_fork); without that this test times out.
@pytest.mark.skipif(not HAVE_FORK, reason="no fork start method on this platform")
def test_forked_child_can_use_two_threads(sc):
    """The child computes with num_threads=2, then with the default count."""
    _fork_and_compare(sc, _fork_calls(2) + _fork_calls(None))


# ================================================================ 3. memory

LEAK_CALLS = 100_000    # measured by RSS and malloc's count, at full speed
TRACED_CALLS = 5_000    # measured by tracemalloc (exact, but 3-8x slower)
WARMUP_CALLS = 2_000
# A leak of 16 bytes per call is 3.2 MB of malloc chunks (32 bytes each) over
# LEAK_CALLS; a leaked Python object is at least 16 bytes, 80 kB over
# TRACED_CALLS.  Without a leak the malloc and tracemalloc growths were
# exactly 0 for every case on the project's machine; the limits leave room
# for a cache that grows once.  RSS is the coarse check: leaked chunks first
# fill the free memory malloc already holds, which after the rest of the
# suite can be megabytes, so it only sees leaks larger than that.
# test_leak_measures_see_a_16_byte_leak shows the two exact measures at work.
HEAP_LIMIT = 256 * 1024
TRACED_LIMIT = 16 * 1024
RSS_LIMIT = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss():
    """Resident set size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use_function():
    """glibc's count of the bytes malloc has handed out and not had back
    (all arenas, mmapped chunks included), or None (not glibc >= 2.33)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []

    def in_use():
        m = mallinfo2()
        return m.uordblks + m.hblkhd
    return in_use


_malloc_in_use = _malloc_in_use_function()


def _leak_cases():
    """name -> (function name, args, kwargs, the exception it raises or
    None), on 4 x 8 inputs."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (4, 8))
    x32 = x.astype(np.float32)
    strided = rng.normal(0, 3, (8, 16))[::2, ::2]       # the gather path
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    logp = np.log(y)
    v = rng.normal(0, 1, x.shape)
    out = np.empty_like(x)
    out32 = np.empty_like(x32)
    t = np.array([1, 7, -100, 0])
    bad_t = np.array([1, 7, 8, 0])
    w = rng.uniform(0.5, 2.0, 8)
    mask = rng.random(x.shape) < 0.6
    return {
        "softmax": ("softmax", (x,), {}, None),
        "softmax_out": ("softmax", (x,), {"out": out}, None),
        "softmax_axis0": ("softmax", (x32,), {"axis": 0}, None),
        "softmax_gather": ("softmax", (strided,), {}, None),
        "softmax_where": ("softmax", (x,), {"where": mask}, None),
        "softmax_float16": ("softmax", (x.astype(np.float16),), {}, None),
        "log_softmax": ("log_softmax", (x,), {}, None),
        "log_softmax_out_axis0": ("log_softmax", (x32,), {"axis": 0, "out": out32}, None),
        "logsumexp": ("logsumexp", (x,), {}, None),
        "logsumexp_all_axes": ("logsumexp", (x32,), {"axis": None}, None),
        "softmax_jvp": ("softmax_jvp", (y, v), {}, None),
        "softmax_vjp_out": ("softmax_vjp", (y, v), {"out": out}, None),
        "log_softmax_jvp_axis0": ("log_softmax_jvp", (logp, v, 0), {}, None),
        "log_softmax_vjp": ("log_softmax_vjp", (logp, v), {}, None),
        "softmax_jacobian": ("softmax_jacobian", (y,), {}, None),
        "cross_entropy": ("cross_entropy", (x, t), {}, None),
        "cross_entropy_grad_weight_smooth": ("cross_entropy_grad", (x, t),
                                             {"weight": w, "label_smoothing": 0.1}, None),
        "cross_entropy_grad_out": ("cross_entropy_grad", (x, t), {"out": out}, None),
        "cross_entropy_grad_probs_none": ("cross_entropy_grad", (x, y),
                                          {"reduction": "none"}, None),
        # error paths, each raising after a different amount of work
        "error_softmax_axis": ("softmax", (x,), {"axis": 5}, AxisError),
        "error_softmax_out_shape": ("softmax", (x,), {"out": np.empty((4, 9))}, ValueError),
        "error_logsumexp_num_threads": ("logsumexp", (x,), {"num_threads": 0}, ValueError),
        "error_softmax_complex": ("softmax", (x.astype(complex),), {}, TypeError),
        "error_jvp_shapes": ("softmax_jvp", (y, v[:, :7]), {}, ValueError),
        "error_cross_entropy_index": ("cross_entropy_grad", (x, bad_t), {}, IndexError),
        "error_cross_entropy_smoothing": ("cross_entropy", (x, t), {"label_smoothing": 2.0},
                                          ValueError),
    }


def _call_many(fn, args, kwargs, exc, n):
    if exc is None:
        for _ in range(n):
            fn(*args, **kwargs)
    else:
        for _ in range(n):
            try:
                fn(*args, **kwargs)
            except exc:
                pass
            else:
                raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


def _growth(fn, args, kwargs, exc=None):
    """The growth of (RSS, malloc's bytes in use) over LEAK_CALLS calls and
    of the memory tracemalloc sees over TRACED_CALLS calls, each after a
    warm-up; None for a measure this platform lacks."""
    _call_many(fn, args, kwargs, exc, WARMUP_CALLS)
    gc.collect()
    rss0 = _rss()
    heap0 = _malloc_in_use and _malloc_in_use()
    _call_many(fn, args, kwargs, exc, LEAK_CALLS)
    gc.collect()
    heap = _malloc_in_use and _malloc_in_use() - heap0
    rss = None if rss0 is None else _rss() - rss0
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        _call_many(fn, args, kwargs, exc, WARMUP_CALLS // 4)
        gc.collect()
        traced0 = tracemalloc.get_traced_memory()[0]
        _call_many(fn, args, kwargs, exc, TRACED_CALLS)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced0
    finally:
        if started:
            tracemalloc.stop()
    return rss, heap, traced


# Under AddressSanitizer (.ci/sanitize) malloc is ASan's: freed memory sits
# in its quarantine (RSS grows by design) and glibc's counters see nothing.
# The leak checks run on the normal build; ASan's own leak checker is off
# there because CPython keeps memory to its exit.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
NOT_UNDER_ASAN = pytest.mark.skipif(UNDER_ASAN, reason="ASan's allocator: the leak checks "
                                                       "run on the normal build")


@NOT_UNDER_ASAN
@pytest.mark.parametrize("case", list(_leak_cases()))
def test_no_leak_over_many_calls(sc, case):
    fname, args, kwargs, exc = _leak_cases()[case]
    arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]
    refs = [sys.getrefcount(a) for a in arrays]
    rss, heap, traced = _growth(getattr(sc, fname), args, kwargs, exc)
    assert [sys.getrefcount(a) for a in arrays] == refs, "an argument's reference leaked"
    assert traced < TRACED_LIMIT, f"tracemalloc: +{traced} bytes over {TRACED_CALLS} calls"
    if heap is not None:
        assert heap < HEAP_LIMIT, f"malloc: +{heap} bytes in use after {LEAK_CALLS} calls"
    if rss is not None:
        assert rss < RSS_LIMIT, f"RSS: +{rss} bytes over {LEAK_CALLS} calls"


@NOT_UNDER_ASAN
def test_leak_measures_see_a_16_byte_leak():
    """The exact measures of the test above, on functions that leak 16
    bytes per call: as Python objects (tracemalloc) and from malloc."""
    kept = []

    def python_leak():
        kept.append(object())        # 16 bytes, and a list slot

    _, _, traced = _growth(python_leak, (), {})
    assert traced >= TRACED_LIMIT
    if _malloc_in_use is None:
        pytest.skip("no mallinfo2 (glibc >= 2.33) here: the malloc measure is off")
    malloc = ctypes.CDLL(None).malloc
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    _, heap, _ = _growth(malloc, (16,), {})
    assert heap >= HEAP_LIMIT


# ================================================================ 4. 64-bit indexing

# Shapes of more than 2^31 float32 elements: one row longer than 2^31; two
# rows whose second starts past 2^30 and ends past 2^31 (one per OpenMP
# thread); 65532 short rows, one of which straddles element 2^31.
BIG_SHAPES = {
    "one_row_past_2**31": (1, 2**31 + 3),
    "two_rows_ending_past_2**31": (2, 2**30 + 17),
    "short_rows_straddling_2**31": (2**31 // 32771 + 2, 32771),
}
# The input, the same for every shape: element i is
#     _pattern()[i % PERIOD] + _block_offsets()[i // BLOCK],
# a period of distinct values plus a step every 4 MiB, so that rows in
# different blocks have different results (a row read from the wrong place
# shows).  Both terms are dyadic (multiples of 2^-10 and 2^-4, below 4 in
# magnitude), so their float32 sum is exact.
PERIOD = 4099           # prime
BLOCK = 2**20
N_BLOCKS = 2**12        # more than any shape needs


def _pattern():
    """One period: 4099 distinct float32 values in [-4, 0.003)."""
    return ((np.arange(PERIOD) * 7919 % PERIOD) / 1024.0 - 4.0).astype(np.float32)


def _block_offsets():
    """The step of each block: multiples of 1/16 in [0, 1.875], differing
    between any two blocks less than 31 blocks apart and between blocks
    2^29, 2^30 or 2^31 elements apart."""
    return (np.arange(N_BLOCKS) * 7 % 31) / 16.0


def _value(g):
    """The input's value at flat indices g, in float64 (exactly)."""
    return _pattern().astype(np.float64)[g % PERIOD] + _block_offsets()[g // BLOCK]


def _fill(x):
    """Write the input into the flat float32 array x."""
    p, d = _pattern(), _block_offsets().astype(np.float32)
    k = x.size // PERIOD
    x[:k * PERIOD].reshape(k, PERIOD)[...] = p
    x[k * PERIOD:] = p[:x.size - k * PERIOD]
    k = x.size // BLOCK
    x[:k * BLOCK].reshape(k, BLOCK)[...] += d[:k, None]
    x[k * BLOCK:] += d[k]


def _mem_available():
    """MemAvailable in bytes, or None where /proc/meminfo is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _exact_logsumexp(shape):
    """float64 logsumexp of every row of the input: the rows are cut into
    segments that lie in one block, and a segment's sum of exp comes from
    how many times it holds each value of the period (prefix sums over two
    periods)."""
    rows, n = shape
    size = rows * n
    p64, d = _pattern().astype(np.float64), _block_offsets()
    e = np.exp(p64 - p64.max())
    pref = np.concatenate([[0.0], np.cumsum(np.concatenate([e, e]))])
    starts = np.union1d(np.arange(rows, dtype=np.int64) * n,
                        np.arange(0, size, BLOCK, dtype=np.int64))
    length = np.append(starts[1:], size) - starts
    a, rem = starts % PERIOD, length % PERIOD
    seg = (length // PERIOD) * e.sum() + (pref[a + rem] - pref[a])
    total = np.bincount(starts // n, weights=np.exp(d[starts // BLOCK] - d.max()) * seg,
                        minlength=rows)
    return p64.max() + d.max() + np.log(total)


def _sample(shape, rng):
    """(rows, cols) to check: the ends of rows, the rows each side of the
    split between two threads and of element 2^31, the elements around flat
    index 2^31, and random ones."""
    rows, n = shape
    cross = 2**31 // n
    rr = [0, rows // 2 - 1, rows // 2, cross - 1, cross, cross + 1, rows - 2, rows - 1]
    rr = np.clip(np.array(rr + list(rng.integers(0, rows, 40))), 0, rows - 1)
    cc = np.array([0, 1, 2, n // 2, n - 3, n - 2, n - 1])
    r = np.repeat(rr, cc.size)
    c = np.tile(cc, rr.size)
    g = np.arange(2**31 - 40, 2**31 + 40)                 # around flat index 2^31
    r2, c2 = np.divmod(g[g < rows * n], n)
    r3 = rng.integers(0, rows, 20000)
    c3 = rng.integers(0, n, 20000)
    return np.concatenate([r, r2, r3]), np.concatenate([c, c2, c3])


@pytest.fixture(scope="class")
def big_buffer(sc):
    """A float32 buffer as large as the largest shape, shared by the tests
    of TestMoreThan2To31Elements and freed after them."""
    size = max(r * n for r, n in BIG_SHAPES.values())
    need = size * 4 + (1 << 30)   # the buffer, 1 GiB for the rest
    if MODULE_UNDER_TEST != "softmax_c":
        pytest.skip("the NumPy reference would need float64 temporaries of 16 GiB each")
    avail = _mem_available()
    if avail is None or avail < need:
        pytest.skip(f"needs {need / 2**30:.1f} GiB of available memory, "
                    f"{'unknown' if avail is None else f'{avail / 2**30:.1f} GiB'} here")
    assert size <= N_BLOCKS * BLOCK
    bufs = [np.empty(size, np.float32)]
    yield bufs
    bufs.clear()
    gc.collect()


@pytest.mark.slow
class TestMoreThan2To31Elements:
    """Each shape is a prefix of the same buffer, which holds the input of
    _fill before each call and the call's result after it: the results are
    written over the input (out=x), which keeps the working set at 8 GiB."""

    @pytest.mark.parametrize("shape_name", list(BIG_SHAPES))
    def test_forward_and_cross_entropy_grad(self, sc, big_buffer, shape_name):
        shape = BIG_SHAPES[shape_name]
        rows, n = shape
        assert rows * n > 2**31
        flat = big_buffer[0][:rows * n]
        try:
            _check_big(sc, flat, shape)
        finally:
            flat = None    # a failure's traceback keeps frames, not the buffer


def _check_big(sc, flat, shape):
    """The checks for one shape on the flat buffer `flat` of its size.  An
    element a call leaves unwritten keeps its input value, in [-4, 2): the
    log_softmax's maximum and the row sums of the softmax and of the
    gradient show it."""
    rows, n = shape
    x = flat.reshape(shape)
    lse = _exact_logsumexp(shape)
    rng = np.random.default_rng(rows)
    r, c = _sample(shape, rng)
    val = _value(r * n + c)

    _fill(flat)
    assert np.array_equal(x[r, c], val)     # the formula is the input
    np.testing.assert_allclose(sc.logsumexp(x), lse, rtol=0, atol=1e-5 * np.abs(lse).max())

    assert sc.log_softmax(x, out=x) is x
    want = val - lse[r]
    np.testing.assert_allclose(x[r, c], want, rtol=0, atol=1e-5 * np.abs(want).max())
    bound = _pattern().max() + _block_offsets().max() - lse.min()
    assert bound < _pattern().min()     # below every input value
    assert float(x.max()) <= bound + 1e-4, "an element was not written"

    _fill(flat)
    assert sc.softmax(x, out=x) is x
    np.testing.assert_allclose(x[r, c], np.exp(val - lse[r]), rtol=1e-5, atol=0)
    np.testing.assert_allclose(np.add.reduce(x, axis=1, dtype=np.float64), 1.0,
                               rtol=0, atol=1e-5)

    # the cross-entropy's gradient, targets at the ends of rows (in the
    # longest row, past element 2^31)
    _fill(flat)
    t = np.where(np.arange(rows) % 2 == 0, n - 1, rng.integers(0, n, rows))
    t[0] = n - 2
    res = sc.cross_entropy_grad(x, t, out=x)
    assert res[1] is x
    loss = res[0]
    del res
    xt = _value(np.arange(rows, dtype=np.int64) * n + t)
    np.testing.assert_allclose(loss, np.mean(lse - xt), rtol=1e-5)
    onehot = c == t[r]
    np.testing.assert_allclose(x[r, c], (np.exp(val - lse[r]) - onehot) / rows,
                               rtol=1e-5, atol=1e-6 / rows)
    np.testing.assert_allclose(x[np.arange(rows), t], (np.exp(xt - lse) - 1) / rows,
                               rtol=1e-5, atol=1e-6 / rows)
    np.testing.assert_allclose(np.add.reduce(x, axis=1, dtype=np.float64), 0.0,
                               rtol=0, atol=1e-5 / rows)


# ================================================================ 5. process state

STATE_SCRIPT = r"""
import ctypes, ctypes.util, importlib, json, os, platform, signal, sys
import numpy as np

MODE, MODULE = sys.argv[1], sys.argv[2]
LINUX = sys.platform.startswith("linux")
X86 = LINUX and platform.machine() in ("x86_64", "AMD64")
libm = ctypes.CDLL(ctypes.util.find_library("m"))
libc = ctypes.CDLL(None)
FE_TONEAREST, FE_UPWARD = 0, 0x800            # x86
FTZ, DAZ = 1 << 15, 1 << 6                     # MXCSR bits

def fenv():
    # x86-64 glibc fenv_t: x87 control word first, MXCSR in bytes 28..31;
    # the sticky exception flags are left out
    buf = ctypes.create_string_buffer(64)
    assert libm.fegetenv(buf) == 0
    return buf.raw

def control():
    if not X86:
        return None
    raw = fenv()
    return {"x87_control": int.from_bytes(raw[0:2], "little"),
            "mxcsr": int.from_bytes(raw[28:32], "little") & ~0x3F}

def subnormals():
    # operands from arrays, so that nothing is folded at compile time
    f32, f64 = np.array([1e-39, 2.0**20, 1e-20, 1e-19], np.float32), np.array(
        [1e-310, 2.0**40, 5e-324, 1.0])
    vec32 = np.full(64, f32[0])
    return {
        "f64_denormal_times_one": bool(f64[2] * f64[3] != 0),
        "f64_daz": bool(f64[0] * f64[1] != 0),
        "f64_ftz": bool(np.finfo(np.float64).tiny / f64[1] != 0),
        "f32_daz": bool(f32[0] * f32[1] != 0),
        "f32_ftz": bool(f32[2] * f32[3] != 0),
        "f32_ftz_vector": bool(np.all(vec32 * np.float32(0.5) != 0)),
        "python_float": bool(float(f64[2]) * float(f64[3]) != 0),
        "nextafter": bool(np.nextafter(np.float32(0), np.float32(1)) > 0),
    }

def c_signals():
    # the dispositions as the C library sees them (Python's getsignal shows
    # only what Python set).  glibc's struct sigaction on x86-64: handler,
    # sa_mask (128 bytes, of which the kernel fills the first 8: glibc
    # copies stack garbage into the rest), sa_flags at 136, sa_restorer at 144
    if not X86:
        return None
    res = {}
    for s in sorted(signal.valid_signals()):
        buf = ctypes.create_string_buffer(256)
        rc = libc.sigaction(int(s), None, buf)
        raw = buf.raw
        res[int(s)] = [rc, raw[0:8].hex(), raw[8:16].hex(), raw[136:140].hex(),
                       raw[144:152].hex()]
    return res

def c_environ():
    if not LINUX:
        return None
    env = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
    out, i = [], 0
    while env[i] is not None:
        out.append(env[i].decode("utf-8", "replace"))
        i += 1
    return sorted(out)

def state():
    return {"round": libm.fegetround(), "control": control(), "subnormals": subnormals(),
            "numpy_err": np.geterr(),
            "signals": {int(s): repr(signal.getsignal(s)) for s in signal.valid_signals()},
            "c_signals": c_signals(), "environ": dict(os.environ), "c_environ": c_environ()}

if MODE == "user":
    # a state that is not the default: round upward, FTZ and DAZ on
    assert libm.fesetround(FE_UPWARD) == 0
    raw = bytearray(fenv())
    mx = int.from_bytes(raw[28:32], "little") | FTZ | DAZ
    raw[28:32] = mx.to_bytes(4, "little")
    assert libm.fesetenv(ctypes.create_string_buffer(bytes(raw), len(raw))) == 0
    assert control()["mxcsr"] & (FTZ | DAZ) == FTZ | DAZ
    assert not subnormals()["f32_ftz"] and not subnormals()["f32_daz"]

before = state()
if MODE == "default":
    assert before["round"] == FE_TONEAREST and all(before["subnormals"].values()), before
sc = importlib.import_module(MODULE)
after_import = state()

rng = np.random.default_rng(0)
for shape in [(3, 7), (64, 4096), (300, 300)]:     # serial and OpenMP paths
    for dtype in (np.float32, np.float64):
        x = rng.normal(0, 3, shape).astype(dtype)
        for nt in (1, 2, None):
            for axis in (-1, 0):
                y = sc.softmax(x, axis, num_threads=nt)
                lp = sc.log_softmax(x, axis, num_threads=nt)
                sc.logsumexp(x, axis, num_threads=nt)
                v = rng.normal(size=shape).astype(dtype)
                sc.softmax_jvp(y, v, axis, num_threads=nt)
                sc.softmax_vjp(y, v, axis, num_threads=nt)
                sc.log_softmax_jvp(lp, v, axis, num_threads=nt)
                sc.log_softmax_vjp(lp, v, axis, num_threads=nt)
            t = rng.integers(0, shape[1], shape[0])
            sc.cross_entropy(x, t, num_threads=nt)
            sc.cross_entropy_grad(x, t, label_smoothing=0.1, num_threads=nt)
            sc.cross_entropy_grad(x, sc.softmax(x), num_threads=nt)
        sc.softmax_jacobian(x[:4, :16])
for bad in (lambda: sc.softmax(x, axis=7), lambda: sc.cross_entropy(x, t + 10**6)):
    try:
        bad()
    except (ValueError, IndexError):
        pass
if hasattr(sc, "set_num_threads"):
    n = sc.get_num_threads()
    sc.set_num_threads(1)
    sc.softmax(x)
    sc.set_num_threads(n)
after_calls = state()
print(json.dumps({"before": before, "after_import": after_import, "after_calls": after_calls}))
"""


@pytest.mark.parametrize("mode", ["default", "user"])
def test_import_and_calls_leave_process_state_alone(mode):
    """mode "default": the interpreter's own state; "user": round upward
    with flush-to-zero and denormals-are-zero set before the import, which
    the library must not reset either."""
    if not LINUX:
        pytest.skip("reads the C-level state through glibc with ctypes")
    if mode == "user" and not X86_64_LINUX:
        pytest.skip("sets the x86 MXCSR through fesetenv")
    res = subprocess.run([sys.executable, "-c", STATE_SCRIPT, mode, MODULE_UNDER_TEST],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    states = json.loads(res.stdout)
    before = states["before"]
    for when in ("after_import", "after_calls"):
        for key, value in before.items():
            assert states[when][key] == value, f"{key} changed {when.replace('_', ' ')}"
