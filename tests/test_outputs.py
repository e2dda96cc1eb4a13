"""Large fresh outputs and the blocks they live in (src/softmax_c/_outbuf.h).

Outputs of 4 MiB or more come from mappings of softmax_c's own, at the
offset in a page where NumPy's own large buffers start, and a freed one is
kept (up to a byte limit) for the next output of about its size.  These
tests hold that machinery to what users see: the arrays are ordinary (they
own their data, any code may free them, resize them, pickle them, hand them
to PyTorch), every value is right whatever the reused block held before,
nothing grows without bound over many calls, threads and fork are safe, and
the limit (SOFTMAX_C_OUTPUT_CACHE_MB) is honoured.
"""
import ctypes
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import MODULE_UNDER_TEST

pytestmark = pytest.mark.skipif(MODULE_UNDER_TEST != "softmax_c",
                                reason="the output blocks belong to softmax_c's build")

import softmax_c as sc  # noqa: E402
from softmax_c import _kernels, reference as ref  # noqa: E402

BIG = (8, 131072)          # 4 MiB of float32, 8 MiB of float64: from the blocks
SMALL = (8, 1000)          # from NumPy's allocator
ENABLED = _kernels.output_cache_stats()["enabled"]
needs_blocks = pytest.mark.skipif(not ENABLED, reason="built without the output blocks "
                                  "(no mmap, or AddressSanitizer)")


def _handler_name(a):
    get = getattr(getattr(np, "_core", np.core).multiarray, "get_handler_name", None)
    return get(a) if get is not None else None


@pytest.fixture
def limit():
    """Set the limit for one test, starting with no block kept; the default
    comes back afterwards."""
    before = _kernels.output_cache_stats()["limit"]
    _kernels.set_output_cache_limit(0)
    yield _kernels.set_output_cache_limit
    _kernels.set_output_cache_limit(before)


def _calls(x):
    """Every public function that returns an output of x's size."""
    g = np.asarray(x, dtype=x.dtype)[::-1].copy()
    t = np.arange(x.shape[0]) % x.shape[-1]
    yield "softmax", lambda: sc.softmax(x)
    yield "softmax axis 0", lambda: sc.softmax(x, axis=0)
    yield "log_softmax", lambda: sc.log_softmax(x)
    yield "softmax_vjp", lambda: sc.softmax_vjp(sc.softmax(x), g)
    yield "log_softmax_jvp", lambda: sc.log_softmax_jvp(sc.log_softmax(x), g)
    yield "softmax_vjp axis 0", lambda: sc.softmax_vjp(sc.softmax(x, axis=0), g, axis=0)
    yield "cross_entropy_grad", lambda: sc.cross_entropy_grad(x, t)[1]


def _expected(name, x):
    g = x[::-1].astype(np.float64)
    x64 = x.astype(np.float64)
    t = np.arange(x.shape[0]) % x.shape[-1]
    return {
        "softmax": lambda: ref.softmax(x64),
        "softmax axis 0": lambda: ref.softmax(x64, axis=0),
        "log_softmax": lambda: ref.log_softmax(x64),
        "softmax_vjp": lambda: ref.softmax_vjp(ref.softmax(x64), g),
        "log_softmax_jvp": lambda: ref.log_softmax_jvp(ref.log_softmax(x64), g),
        "softmax_vjp axis 0": lambda: ref.softmax_vjp(ref.softmax(x64, axis=0), g, axis=0),
        "cross_entropy_grad": lambda: ref.cross_entropy_grad(x64, t)[1],
    }[name]()


def _assert_close(y, name, x):
    e = _expected(name, x)
    f32 = x.dtype == np.float32
    np.testing.assert_allclose(y, e, rtol=2e-5 if f32 else 1e-12,
                               atol=(1e-6 if f32 else 1e-14) * max(1.0, float(np.abs(e).max())),
                               err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_outputs_are_ordinary_aligned_arrays(dtype):
    x = np.random.default_rng(1).standard_normal(BIG).astype(dtype)
    for name, call in _calls(x):
        y = call()
        assert y.shape == x.shape and y.dtype == x.dtype, name
        assert y.flags.owndata and y.base is None and y.flags.writeable, name
        assert y.flags.c_contiguous, name
        if ENABLED:
            assert _handler_name(y) in (None, "softmax_c_outputs"), name
            assert y.ctypes.data % 16 == 0, name
        _assert_close(y, name, x)


def test_large_outputs_start_where_numpys_own_do_in_their_page():
    """A large malloc block's offset in its page is where NumPy's own large
    buffers start (16 with glibc): a loop that reads one array while
    writing another a little lower in its page stalls on false store
    matches (4K aliasing), so blocks start there too, every one of them.
    In a fresh process: the offset is learnt at import, and what other
    libraries loaded into a long test process do to malloc's thresholds
    later is theirs."""
    if not ENABLED:
        pytest.skip("no output blocks in this build")
    code = """if 1:
        import ctypes, json, sys
        sys.path.insert(0, sys.argv[1])
        import numpy as np
        import test_outputs as t
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        p = libc.malloc(64 << 20)
        libc.free(p)
        x = np.random.default_rng(2).standard_normal(t.BIG).astype(np.float32)
        offsets = sorted({call().ctypes.data % 4096 for _, call in t._calls(x)})
        print(json.dumps([p % 4096, offsets]))
    """
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe, offsets = json.loads(proc.stdout.strip().splitlines()[-1])
    assert offsets == [probe]


def test_small_outputs_come_from_numpy():
    x = np.zeros(SMALL, np.float32)
    y = sc.softmax(x)
    assert _handler_name(y) in (None, "default_allocator")


@needs_blocks
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_reused_block_holds_nothing_of_its_past(dtype, limit):
    """Each output is checked after a block that held other values (NaN,
    garbage) was reused for it."""
    limit(64 << 20)
    rng = np.random.default_rng(2)
    stats0 = _kernels.output_cache_stats()
    x = rng.standard_normal(BIG).astype(dtype)
    for name, call in _calls(x):
        for fill in (np.nan, None):
            junk = [sc.softmax(np.zeros(BIG, dtype)) for _ in range(3)]
            for j in junk:
                j[...] = fill if fill is not None else np.frombuffer(
                    rng.bytes(j.nbytes), dtype).reshape(BIG)
            del junk, j
            _assert_close(call(), name, x)
    assert _kernels.output_cache_stats()["reused"] > stats0["reused"]


@needs_blocks
def test_repeated_calls_reuse_one_block(limit):
    limit(64 << 20)
    x = np.random.default_rng(3).standard_normal(BIG).astype(np.float32)
    y = sc.softmax(x)
    del y
    s0 = _kernels.output_cache_stats()
    expected = sc.softmax(x.copy())
    for _ in range(200):
        y = sc.softmax(x)
        assert np.array_equal(y, expected)
        del y
    s1 = _kernels.output_cache_stats()
    # `expected` holds one block; every other call reused the one freed
    assert s1["mapped"] - s0["mapped"] <= 1
    assert s1["reused"] - s0["reused"] >= 199
    assert s1["kept_blocks"] <= 2 and s1["kept_bytes"] <= 64 << 20


@needs_blocks
def test_limit_zero_keeps_nothing_and_lower_limits_drop_blocks(limit):
    limit(64 << 20)
    ys = [sc.softmax(np.zeros(BIG, np.float32)) for _ in range(3)]
    del ys
    assert _kernels.output_cache_stats()["kept_blocks"] == 3
    limit(5 << 20)
    s = _kernels.output_cache_stats()
    assert s["kept_blocks"] <= 1 and s["kept_bytes"] <= 5 << 20
    limit(0)
    assert _kernels.output_cache_stats()["kept_bytes"] == 0
    y = sc.softmax(np.zeros(BIG, np.float32))
    del y
    assert _kernels.output_cache_stats()["kept_bytes"] == 0


@needs_blocks
def test_blocks_kept_are_bounded_in_number_and_bytes(limit):
    limit(40 << 20)
    shapes = [(8, 131072 + 4096 * i) for i in range(12)]
    ys = [sc.softmax(np.zeros(s, np.float32)) for s in shapes]
    del ys
    s = _kernels.output_cache_stats()
    assert 1 <= s["kept_blocks"] <= 8 and s["kept_bytes"] <= 40 << 20


@needs_blocks
def test_a_reused_block_writes_its_head_again(limit):
    """A kept block's pages are dropped (MADV_DONTNEED: they read back as
    zeros, head included).  The next output reuses the block, must be
    right, and when freed the block must come back whole (its length is
    read from the head)."""
    limit(64 << 20)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    x = np.random.default_rng(4).standard_normal(BIG).astype(np.float32)
    expected = sc.softmax(x)
    y = sc.softmax(x)
    head = y.ctypes.data % (2 << 20)  # the data's offset in its 2 MiB aligned block
    start = y.ctypes.data - head
    length = (y.nbytes + head + (2 << 20) - 1) // (2 << 20) * (2 << 20)
    del y
    assert libc.madvise(start, length, 4) == 0  # MADV_DONTNEED: pages now zero-fill
    reused = _kernels.output_cache_stats()["reused"]
    y = sc.softmax(x)
    assert _kernels.output_cache_stats()["reused"] == reused + 1
    assert y.ctypes.data - head == start
    assert np.array_equal(y, expected)
    del y
    s = _kernels.output_cache_stats()
    assert s["kept_blocks"] == 1 and s["kept_bytes"] == length


def test_resize_pickle_and_torch_keep_working():
    x = np.random.default_rng(5).standard_normal(BIG).astype(np.float32)
    y = sc.softmax(x)
    expected = y.copy()
    back = pickle.loads(pickle.dumps(y))
    assert np.array_equal(back, expected)
    y.resize((2 * BIG[0], BIG[1]), refcheck=False)    # grows: realloc
    assert np.array_equal(y[:BIG[0]], expected) and not y[BIG[0]:].any()
    y.resize((BIG[0] // 2, BIG[1]), refcheck=False)   # shrinks in place
    assert np.array_equal(y, expected[:BIG[0] // 2])
    torch = pytest.importorskip("torch")
    z = sc.softmax(x)
    tz = torch.from_numpy(z)
    del z  # the tensor keeps the block alive
    for _ in range(3):
        w = sc.softmax(x)  # must not get tz's block
        del w
    assert np.array_equal(tz.numpy(), expected)
    del tz


def test_python_threads_allocating_and_freeing_at_once(limit):
    limit(48 << 20)
    x = np.random.default_rng(6).standard_normal(BIG).astype(np.float32)
    expected = {n: sc.softmax(x * (1 + n)) for n in range(8)}
    barrier = threading.Barrier(8)
    bad = []

    def work(n):
        barrier.wait()
        xn = x * (1 + n)
        for i in range(30):
            y = sc.softmax(xn, num_threads=1 + i % 2)
            if not np.array_equal(y, expected[n]):
                bad.append(n)
            del y

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    s = _kernels.output_cache_stats()
    assert s["kept_blocks"] <= 8 and s["kept_bytes"] <= 48 << 20


def _child(q):
    x = np.linspace(-3, 3, BIG[0] * BIG[1], dtype=np.float32).reshape(BIG)
    out = []
    for _ in range(3):
        y = sc.softmax(x)
        out.append(float(y.sum()))
        del y
    q.put(out)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork start method on this platform")
def test_a_forked_child_allocates_and_frees(limit):
    limit(64 << 20)
    keep = [sc.softmax(np.zeros(BIG, np.float32)) for _ in range(2)]
    del keep[0]   # the child inherits a kept block and a live one
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got = q.get(timeout=120)
    p.join(120)
    assert p.exitcode == 0
    np.testing.assert_allclose(got, [BIG[0]] * 3, rtol=1e-4)


@pytest.mark.parametrize("value, limit_bytes, warns", [
    ("0", 0, False), ("12", 12 << 20, False), ("lots", None, True), ("-1", None, True)])
def test_the_environment_variable_sets_the_limit(value, limit_bytes, warns):
    code = ("import warnings, json\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import softmax_c\n"
            "from softmax_c import _kernels\n"
            "assert softmax_c.build_info()['output_cache'] == _kernels.output_cache_stats()['limit']\n"
            "print(json.dumps([_kernels.output_cache_stats(), [str(x.message) for x in w]]))\n")
    env = dict(os.environ, SOFTMAX_C_OUTPUT_CACHE_MB=value)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import json
    stats, messages = json.loads(res.stdout.strip().splitlines()[-1])
    if not stats["enabled"]:
        return
    if limit_bytes is not None:
        assert stats["limit"] == limit_bytes
    else:
        assert 0 < stats["limit"] <= 256 << 20
    assert any("SOFTMAX_C_OUTPUT_CACHE_MB" in m and value in m for m in messages) == warns
