"""The benchmark behind ``python -m softmax_c bench``.

For every case (operation x shape x dtype x thread count) each
implementation is called the way its users call it, its result is checked
against the NumPy reference first, then all implementations are timed in
interleaved rounds (A B C A B C ...) so that drift on a noisy machine hits
them alike.  A memory copy of the same bytes (``np.copyto``) is timed in the
same rounds: every figure can be read against this machine's copy speed.

Reported per case and implementation: the median time, the speed-up over
the NumPy reference, the achieved GB/s (bytes that must move: the input
read once and the output written once) and that rate as a fraction of the
copy's.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from . import _api, reference
from ._info import build_info

# name -> shape, axis; the users' workloads.
SHAPES = {
    "64x1000": ((64, 1000), -1),
    "256x32000": ((256, 32000), -1),
    "4096x4096": ((4096, 4096), -1),
    "16x262144": ((16, 262144), -1),
    "32768x128": ((32768, 128), -1),
    "1x32000": ((1, 32000), -1),
    "1x131072": ((1, 131072), -1),
    "8x32000": ((8, 32000), -1),
    "64x1000x32:1": ((64, 1000, 32), 1),
}
QUICK_SHAPES = ["64x1000", "256x32000", "1x32000", "64x1000x32:1"]
OPS = ["softmax", "log_softmax"]
DTYPES = ["float32", "float64"]


class Impl:
    """One way of computing an operation: `prepare(x, axis)` returns a
    zero-argument callable whose result is the output array."""

    def __init__(self, name, prepare):
        self.name = name
        self.prepare = prepare


def _impls(op, nthreads):
    fast = getattr(_api, op)
    ref = getattr(reference, op)

    def ours(x, axis):
        return lambda: fast(x, axis, num_threads=nthreads)

    def ours_out(x, axis):
        out = np.empty_like(x)
        return lambda: fast(x, axis, out=out, num_threads=nthreads)

    def numpy_ref(x, axis):
        return lambda: ref(x, axis)

    return [Impl("softmax_c", ours), Impl("softmax_c(out=)", ours_out),
            Impl("numpy", numpy_ref)]


def _check(name, got, want, dtype):
    tol = 1e-5 if dtype == np.float32 else 1e-12
    if got.shape != want.shape or not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
        raise RuntimeError(f"{name} disagrees with the NumPy reference")


def _time_rounds(fns, repeats, min_time):
    """Median seconds per call of each fn, timed in interleaved rounds; a
    round calls each fn enough times to last about min_time."""
    loops = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        dt = max(time.perf_counter() - t0, 1e-7)
        loops.append(max(1, int(min_time / dt)))
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(loops[i]):
                fn()
            samples[i].append((time.perf_counter() - t0) / loops[i])
    return [float(np.median(s)) for s in samples]


def run(ops=OPS, shapes=None, dtypes=DTYPES, threads=None, repeats=7, min_time=0.02,
        progress=True):
    """Run the comparison; returns a list of result dicts (one per case and
    implementation)."""
    shapes = list(SHAPES) if shapes is None else shapes
    threads = [1, os.cpu_count() or 1] if threads is None else threads
    threads = sorted(set(threads))
    cases = [(op, s, dt, t) for op in ops for s in shapes for dt in dtypes for t in threads]
    rng = np.random.default_rng(0)
    results = []
    for ci, (op, sname, dt, nt) in enumerate(cases):
        if progress:
            _progress(ci, len(cases), f"{op} {sname} {dt} threads={nt}")
        shape, axis = SHAPES[sname]
        x = (rng.standard_normal(shape) * 4).astype(dt)
        want = getattr(reference, op)(x, axis)
        impls = _impls(op, nt)
        fns = []
        for impl in impls:
            fn = impl.prepare(x, axis)
            _check(impl.name, fn(), want, np.dtype(dt))
            fns.append(fn)
        copy_dst = np.empty_like(x)
        fns.append(lambda: np.copyto(copy_dst, x))
        prev = _api.get_num_threads()
        times = _time_rounds(fns, repeats, min_time)
        nbytes = 2 * x.nbytes
        t_copy = times[-1]
        t_ref = times[[i.name for i in impls].index("numpy")]
        for impl, t in zip(impls, times):
            results.append({
                "op": op, "shape": sname, "dtype": dt, "threads": nt, "impl": impl.name,
                "median_s": t, "speedup_vs_numpy": t_ref / t, "gbps": nbytes / t / 1e9,
                "copy_fraction": t_copy / t, "copy_median_s": t_copy,
            })
        assert _api.get_num_threads() == prev
    if progress:
        _progress(len(cases), len(cases), "done")
        sys.stderr.write("\n")
    return results


def _progress(i, n, label):
    width = 30
    filled = int(width * i / max(n, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{n} {label:<50}")
    sys.stderr.flush()


def format_table(results):
    head = (f"{'op':<12} {'shape':<14} {'dtype':<8} {'thr':>3} {'impl':<16} "
            f"{'median':>10} {'vs numpy':>9} {'GB/s':>7} {'of copy':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['op']:<12} {r['shape']:<14} {r['dtype']:<8} {r['threads']:>3} {r['impl']:<16} "
            f"{_fmt_time(r['median_s']):>10} {r['speedup_vs_numpy']:>8.2f}x "
            f"{r['gbps']:>7.1f} {r['copy_fraction']:>7.0%}")
    return "\n".join(lines)


def _fmt_time(t):
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def machine_info():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = build_info()
    return {"cpu": cpu, "cores": os.cpu_count(), "simd": info["simd"],
            "numpy": np.__version__, "softmax_c": info["version"],
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m softmax_c bench",
                                     description="Time softmax_c against the NumPy reference.")
    parser.add_argument("--quick", action="store_true", help="a few shapes, fewer repeats")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma list of {OPS}")
    parser.add_argument("--dtype", default=",".join(DTYPES), help="float32, float64 or both")
    parser.add_argument("--threads", default=None, help="comma list, e.g. 1,2")
    parser.add_argument("--shapes", default=None, help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--json", default=None, metavar="FILE", help="write results as JSON")
    args = parser.parse_args(argv)

    def split(s, allowed, what):
        items = [v.strip() for v in s.split(",") if v.strip()]
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            parser.error(f"unknown {what} {bad or s!r}; choose from {', '.join(allowed)}")
        return items

    ops = split(args.ops, OPS, "operation")
    dtypes = split(args.dtype, DTYPES, "dtype")
    shapes = split(args.shapes, list(SHAPES), "shape") if args.shapes else (
        QUICK_SHAPES if args.quick else None)
    threads = None
    if args.threads:
        try:
            threads = [int(v) for v in args.threads.split(",")]
        except ValueError:
            parser.error(f"--threads must be a comma list of ints >= 1, got {args.threads!r}")
        if any(t < 1 for t in threads):
            parser.error(f"--threads must be a comma list of ints >= 1, got {args.threads!r}")
    results = run(ops, shapes, dtypes, threads, repeats=3 if args.quick else 7,
                  min_time=0.005 if args.quick else 0.02)
    info = machine_info()
    print(f"softmax_c {info['softmax_c']} on {info['cpu']} ({info['cores']} cores, "
          f"{info['simd']}), NumPy {info['numpy']}")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return 0
