"""A fixed corpus of calls that reaches every kernel path, hashed.

Run as a script in a process whose SIMD level is set (SOFTMAX_C_SIMD), it
prints one JSON object: case name -> sha256 of the result bytes.  The
recorded hashes (tests/data/bitwise.json, made with --record) pin the
results bit for bit across refactors of the kernels: a move of code that
changes one rounding anywhere fails test_bitwise.py.

The corpus covers, per dtype: row lengths at and around every vector width
and unroll (tails), short rows in 16-row groups, the pipelined and streamed
forms of large outputs, rows split across threads (row pieces, the
cross-entropy's cached and sweep pieces), panels along a non-last axis,
the backward products with prefetch and reversed second passes, the
cross-entropy with every option, `where=` masks, outputs at every element
offset in a line, and special values.  Inputs come from the legacy
RandomState, whose streams NumPy keeps fixed across versions.
"""
import hashlib
import json
import os
import sys

import numpy as np

import softmax_c as sc

DTYPES = (np.float32, np.float64)
TAILS = list(range(1, 70)) + [95, 96, 97, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000,
                              1023, 1025, 4000, 4099]


def _h(*arrays):
    m = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        m.update(str(a.dtype).encode() + str(a.shape).encode())
        m.update(np.ascontiguousarray(a).tobytes())
    return m.hexdigest()[:24]


def _data(rs, shape, dt, spread=4.0, special=True):
    x = (rs.standard_normal(shape) * spread).astype(dt)
    if special and x.ndim == 2 and x.shape[0] >= 6 and x.shape[1] >= 2:
        n = x.shape[1]
        x[1, n // 3] = np.nan
        x[2, :] = -np.inf
        x[3, n // 2] = np.inf
        x[4, :] += np.asarray(3e4 if dt == np.float64 else 80.0, dt)  # huge magnitudes
        x[5, ::2] = -np.inf
    return x


def _unaligned(shape, dt, off):
    """An output array `off` elements past a 64-byte line."""
    n = int(np.prod(shape))
    isz = np.dtype(dt).itemsize
    buf = np.empty(n + 64 // isz + off + 16, dt)
    start = (-buf.ctypes.data % 64) // isz + off
    return buf[start:start + n].reshape(shape)


def corpus():
    out = {}
    rs = np.random.RandomState(20261206)

    def put(name, *arrays):
        assert name not in out, name
        out[name] = _h(*arrays)

    for dt in DTYPES:
        d = np.dtype(dt).name
        # Row tails, 7 rows (special values in rows 1-5), both threads counts.
        for n in TAILS:
            x = _data(rs, (7, n), dt)
            for op in ("softmax", "log_softmax", "logsumexp"):
                put(f"{op}/{d}/7x{n}", getattr(sc, op)(x, -1, num_threads=1))
        # Short rows in 16-row groups, and group tails.
        for rows in (15, 16, 17, 33, 100):
            for n in (1, 2, 7, 8, 9, 16, 17, 24, 32, 33, 40, 41, 48, 64, 65, 100, 128):
                x = _data(rs, (rows, n), dt, special=False)
                for op in ("softmax", "log_softmax", "logsumexp"):
                    for t in (1, 2):
                        put(f"{op}/{d}/{rows}x{n}/t{t}", getattr(sc, op)(x, -1, num_threads=t))
        # Large outputs: pipelined, flat-pipelined and streamed forms.
        for shape in ((256, 4096), (1024, 1024), (4096, 256), (16, 70000), (2, 300000),
                      (8192, 128)):
            x = _data(rs, shape, dt, spread=3.0)
            for op in ("softmax", "log_softmax", "logsumexp"):
                for t in (1, 2):
                    put(f"{op}/{d}/{shape}/t{t}", getattr(sc, op)(x, -1, num_threads=t))
            for t in (1, 2):
                y = _unaligned(shape, dt, 3)
                sc.softmax(x, -1, out=y, num_threads=t)
                put(f"softmax-out3/{d}/{shape}/t{t}", y)
        # One row split across threads (row pieces); also with special values.
        for n in (50000, 131072, 262147):
            x = _data(rs, (1, n), dt, spread=2.0)
            for op in ("softmax", "log_softmax", "logsumexp"):
                for t in (1, 2):
                    put(f"{op}/{d}/1x{n}/t{t}", getattr(sc, op)(x, -1, num_threads=t))
        # Panels (a non-last axis), with tails in both dims.
        for shape, axis in (((7, 33), 0), ((100, 7, 130), 1), ((5, 64, 67), 1), ((300, 257), 0),
                            ((3, 50, 1000), 1), ((2, 2000, 16), 1)):
            x = _data(rs, shape, dt, special=False)
            x.reshape(-1)[5] = np.nan
            x.reshape(-1)[-3] = np.inf
            for op in ("softmax", "log_softmax", "logsumexp"):
                for t in (1, 2):
                    put(f"{op}/{d}/{shape}/ax{axis}/t{t}", getattr(sc, op)(x, axis, num_threads=t))
        # Gathered rows (no contiguous dim) and where= masks.
        x = _data(rs, (40, 30), dt, special=False)[:, ::3]
        put(f"softmax/{d}/strided", sc.softmax(x, -1), sc.softmax(x, 0))
        x = _data(rs, (9, 77), dt, special=False)
        w = rs.rand(9, 77) > 0.4
        w[3] = False
        put(f"where/{d}", sc.softmax(x, where=w), sc.log_softmax(x, where=w),
            sc.softmax(x, 0, where=w))
        # Outputs at every element offset in a line.
        x = _data(rs, (6, 1000), dt)
        for off in range(64 // np.dtype(dt).itemsize):
            for op in ("softmax", "log_softmax"):
                y = _unaligned(x.shape, dt, off)
                getattr(sc, op)(x, -1, out=y, num_threads=1)
                put(f"{op}-out{off}/{d}", y)

        # Backward products: tails, panels, long rows, split rows.
        for shape in [(5, n) for n in TAILS[::3]] + [(64, 16384), (300, 4096), (2, 300000),
                                                     (1, 70000), (1, 200000), (32768, 128)]:
            y = sc.softmax(_data(rs, shape, dt, special=False), -1)
            lp = np.log(y)
            v = rs.standard_normal(shape).astype(dt)
            for name, a in (("softmax_vjp", y), ("log_softmax_jvp", lp), ("log_softmax_vjp", lp)):
                for t in (1, 2):
                    put(f"{name}/{d}/{shape}/t{t}", getattr(sc, name)(a, v, -1, num_threads=t))
                o = _unaligned(shape, dt, 5)
                getattr(sc, name)(a, v, -1, out=o, num_threads=1)
                put(f"{name}-out5/{d}/{shape}", o)
        for shape in ((7, 33), (300, 257), (3, 50, 1000)):
            y = sc.softmax(_data(rs, shape, dt, special=False), 0)
            v = rs.standard_normal(shape).astype(dt)
            for name, a in (("softmax_vjp", y), ("log_softmax_jvp", np.log(y)),
                            ("log_softmax_vjp", np.log(y))):
                for t in (1, 2):
                    put(f"{name}/{d}/{shape}/ax0/t{t}", getattr(sc, name)(a, v, 0, num_threads=t))

        # Cross-entropy: index and probability targets, every option.
        for shape in [(9, n) for n in (1, 2, 5, 16, 17, 33, 100, 1000, 4099)] + [
                (256, 4096), (64, 32000), (1, 100000), (1, 300000), (2, 70000), (4096, 128)]:
            z = _data(rs, shape, dt, spread=3.0, special=False)
            b, n = shape
            t = rs.randint(0, n, b)
            t[0] = -100
            q = rs.rand(b, n).astype(dt)
            q /= q.sum(-1, keepdims=True)
            wt = (rs.rand(n) + 0.5).astype(dt)
            for kw in ({}, {"weight": wt}, {"label_smoothing": 0.1},
                       {"weight": wt, "label_smoothing": 0.25, "reduction": "sum"},
                       {"reduction": "none"}):
                key = ",".join(f"{k}" for k in sorted(kw))
                for th in (1, 2):
                    loss, g = sc.cross_entropy_grad(z, t, num_threads=th, **kw)
                    put(f"xent/{d}/{shape}/{key}/t{th}", loss, g)
                    loss, g = sc.cross_entropy_grad(z, q, num_threads=th, **kw)
                    put(f"xent-prob/{d}/{shape}/{key}/t{th}", loss, g)
            put(f"xent-loss/{d}/{shape}", sc.cross_entropy(z, t), sc.cross_entropy(z, q))
            zz = z.copy()
            loss, g = sc.cross_entropy_grad(zz, t, out=zz)
            put(f"xent-inplace/{d}/{shape}", loss, g)
            g = _unaligned(shape, dt, 1)
            loss, g = sc.cross_entropy_grad(z, t, out=g)
            put(f"xent-out1/{d}/{shape}", loss, g)
        # Cross-entropy panels (PyTorch's (N, C, d) layout) and special logits.
        for shape in ((4, 7, 33), (2, 100, 130), (3, 1000, 16)):
            z = _data(rs, shape, dt, special=False)
            t = rs.randint(0, shape[1], (shape[0], shape[2]))
            t[0, 0] = -100
            q = rs.rand(*shape).astype(dt)
            q /= q.sum(1, keepdims=True)
            for th in (1, 2):
                put(f"xent-cols/{d}/{shape}/t{th}", *sc.cross_entropy_grad(z, t, axis=1,
                                                                          num_threads=th))
                put(f"xent-cols-prob/{d}/{shape}/t{th}",
                    *sc.cross_entropy_grad(z, q, axis=1, label_smoothing=0.1, num_threads=th))
        z = _data(rs, (7, 50), dt)
        put(f"xent-special/{d}", *sc.cross_entropy_grad(z, np.arange(7), reduction="none"))
    return out


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "bitwise.json")
    got = corpus()
    level = sc.build_info()["simd"]
    if "--record" in sys.argv:
        try:
            with open(here) as f:
                table = json.load(f)
        except FileNotFoundError:
            table = {}
        table[level] = got
        os.makedirs(os.path.dirname(here), exist_ok=True)
        with open(here, "w") as f:
            json.dump(table, f, indent=0, sort_keys=True)
            f.write("\n")
        print(f"recorded {len(got)} cases for {level}")
    else:
        json.dump({"level": level, "hashes": got}, sys.stdout)


if __name__ == "__main__":
    main()
