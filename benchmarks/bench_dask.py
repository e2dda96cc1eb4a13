"""softmax_c.dask on a LocalCluster, against the dask composition and in
memory (not in the default run: a script, run by hand).

    python benchmarks/bench_dask.py                       # 1 GiB, 4096x65536
    python benchmarks/bench_dask.py --rows 16384          # the 4 GiB case

softmax of a float32 array (rows x cols, in chunks of 2048x16384: the
reduced axis split in 4), on a LocalCluster of 2 single-threaded worker
processes, three ways:

  softmax_c.dask    scd.softmax(x)
  composition       e = da.exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, keepdims=True)
  in memory         sc.softmax(x, num_threads=2) on one NumPy array (this process)

x is generated and persisted on the workers first; each timing is
``persist`` of the result and waiting for it (the result stays on the
workers, as the input), best of --repeat.  The goals: softmax_c.dask at
most 0.5x the composition's time and 2.0x the in-memory time.
"""
import argparse
import time

import numpy as np


def _same(block):
    return block


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=65536)
    ap.add_argument("--chunks", type=int, nargs=2, default=(2048, 16384))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true", help="no in-memory run")
    args = ap.parse_args(argv)

    import dask.array as da
    import distributed

    import softmax_c as sc
    import softmax_c.dask as scd

    shape, chunks = (args.rows, args.cols), tuple(args.chunks)
    gib = args.rows * args.cols * 4 / 2**30
    print(f"softmax float32 {shape[0]}x{shape[1]} ({gib:.2f} GiB) in chunks "
          f"{chunks[0]}x{chunks[1]}, LocalCluster {args.workers}x1 thread")
    res = {}
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None,
                                  memory_limit=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)
        x = client.persist(x * np.float32(3))
        distributed.wait(x)

        count = [0]

        def run(make):
            def go():
                # a fresh name over the persisted blocks (a no-copy task per
                # block), so that no run finds the keys of the one before
                count[0] += 1
                xi = x.map_blocks(_same, name=f"bench-x-{count[0]}", dtype=x.dtype)
                y = client.persist(make(xi))
                distributed.wait(y)
                del y
            go()  # warm-up: imports on the workers
            return _best(go, args.repeat)

        res["softmax_c.dask"] = run(lambda xi: scd.softmax(xi))

        def composition(xi):
            e = da.exp(xi - xi.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)
        res["composition"] = run(composition)
        del x
    if not args.skip_memory:
        xm = (np.random.default_rng(0).standard_normal(shape, dtype=np.float32) * 3)
        y = np.empty_like(xm)
        sc.softmax(xm, out=y, num_threads=2)
        res["in memory"] = _best(lambda: sc.softmax(xm, num_threads=2), args.repeat)
        del xm, y
    base = res["softmax_c.dask"]
    for name, t in res.items():
        print(f"  {name:15s} {t * 1e3:9.1f} ms   softmax_c.dask / this: {base / t:5.2f}x")


if __name__ == "__main__":
    main()
