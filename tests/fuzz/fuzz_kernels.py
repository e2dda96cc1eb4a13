"""Coverage-guided fuzz target (atheris) for every public function of
softmax_c, checked against softmax_c.reference.

Not a pytest module (no test_ prefix): run it by hand or in a scheduled
job, with atheris installed (``pip install atheris``; wheels for CPython
3.8-3.11 on x86-64 Linux)::

    python tests/fuzz/fuzz_kernels.py -max_total_time=60 [CORPUS_DIR ...]

Every libFuzzer option works (-runs=N, -jobs=N, -dict=..., -seed=N).  A
failing input is saved as ./crash-<sha1>; replay it with
``python tests/fuzz/fuzz_kernels.py crash-<sha1>``.  Inputs that once
failed are kept in tests/fuzz/regressions/ (one file each, named for the
bug), which CI passes as a second corpus directory: every run replays
them first.

Each input is decoded with atheris.FuzzedDataProvider into a *recipe* for
one call -- the function, shapes (empty and 0-d included), dtypes, raw
value bit patterns (so NaN payloads, infinities, subnormals and extremes
come for free) plus generated value families, layouts (steps, negative
strides, transposes, unaligned, byte-swapped, read-only, lists), axes,
``where``, ``out``, threads and the cross-entropy's target and options --
the same recipes as tests/test_fuzz.py draws with hypothesis, and held to
the same property by its ``check``: the result matches the reference
within docs/api.md's error bound, or both raise the same documented exception
and nothing was written.  A mismatch raises AssertionError, which atheris
reports as a crash.

Coverage: the Python layers (softmax_c._api, _validate, reference) are
instrumented by ``atheris.instrument_imports()``; the compiled extension
is not (that would take a clang build with -fsanitize=fuzzer-no-link), so
the C kernels are reached but do not guide the search.  To also catch
memory errors there, run this against a SOFTMAX_C_SANITIZE=1 build with
the runtimes preloaded as in .ci/sanitize.
"""
import os
import sys
import warnings

import atheris
import numpy as np  # before the instrumented imports: NumPy is not ours to instrument

with atheris.instrument_imports():
    import softmax_c
    import softmax_c.reference

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import test_fuzz as tf  # noqa: E402  (tests/test_fuzz.py: recipes, builders, check)

SIDES = tf.SIDES
MODES = [m for m in tf.FLOAT_MODES if m != "bytes"]


# ---------------------------------------------------------------- decoding

def _weighted(fdp, *pairs):
    """One of `pairs` (weight, value or callable(fdp)) by its weight."""
    i = fdp.ConsumeIntInRange(0, sum(w for w, _ in pairs) - 1)
    for w, v in pairs:
        if i < w:
            return v(fdp) if callable(v) else v
        i -= w
    raise AssertionError("unreachable")


def _pick(fdp, options):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _shape(fdp, min_dims=0, max_size=1500):
    if max_size >= 1000 and fdp.ConsumeIntInRange(0, 39) == 0:
        return (_pick(fdp, [9, 40]), _pick(fdp, [1000, 4099]))
    dims = [_pick(fdp, SIDES) for _ in range(fdp.ConsumeIntInRange(min_dims, 4))]
    while np.prod(dims, dtype=np.int64) > max_size:
        i = dims.index(max(dims))
        dims[i] //= 2
    return tuple(dims)


def _layout(fdp, ndim, allow_list=False):
    if fdp.ConsumeIntInRange(0, 9) < 6:
        return tf.PLAIN
    perm = list(range(ndim))
    for i in range(ndim - 1, 0, -1):   # Fisher-Yates from the input's bytes
        j = fdp.ConsumeIntInRange(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    steps = tuple(_pick(fdp, [1, 1, 2, -1, -2, 3]) for _ in range(ndim))
    pads = tuple(fdp.ConsumeIntInRange(0, 1) for _ in range(ndim))
    flags = [fdp.ConsumeIntInRange(0, 9) == 0 for _ in range(3)]
    as_list = allow_list and fdp.ConsumeIntInRange(0, 14) == 0
    return tf.Layout(tuple(perm), steps, pads, *flags, as_list)


def _any_dtype(fdp):
    return _weighted(fdp, (14, lambda f: _pick(f, [tf.F64, tf.F64, tf.F32, tf.F32, tf.F16])),
                     (4, lambda f: _pick(f, tf.ACCEPTED[5:])),
                     (2, lambda f: _pick(f, tf.REJECTED)))


def _float_dtype(fdp):
    return _pick(fdp, [tf.F64, tf.F64, tf.F32, tf.F32, tf.F16])


def _spec(fdp, dtype=_any_dtype, shape=None, modes=None, allow_list=False):
    dt = dtype(fdp)
    shp = _shape(fdp) if shape is None else tuple(shape)
    # raw bit patterns most often: the fuzzer mutates them directly
    mode = "bytes" if fdp.ConsumeBool() else _pick(fdp, modes or MODES)
    specials = tuple((fdp.ConsumeIntInRange(0, 999) / 1000, fdp.ConsumeIntInRange(0, 12))
                     for _ in range(fdp.ConsumeIntInRange(0, 3)))
    lay = _layout(fdp, len(shp), allow_list)
    seed = fdp.ConsumeIntInRange(0, 2**32 - 1)
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 256)) if mode == "bytes" else b""
    if mode == "bytes" and not raw:
        mode = "normal"
    return tf.Spec(dt, shp, seed, mode, specials, lay, raw)


def _axis(fdp, ndim, tuples=True):
    valid = (lambda f: f.ConsumeIntInRange(-ndim, ndim - 1)) if ndim else -1
    pairs = [(4, -1), (8, valid),
             (1, lambda f: np.int64(valid(f) if ndim else -1)),
             (1, lambda f: f.ConsumeIntInRange(-ndim - 2, ndim + 1)),
             (1, lambda f: _pick(f, [1.0, "0", [0], True, np.float64(0.0), (0.5,)]))]
    if tuples:
        pairs += [(1, None),
                  (1, lambda f: tuple(f.ConsumeIntInRange(-ndim - 1, ndim)
                                      for _ in range(f.ConsumeIntInRange(0, ndim + 1))))]
    return _weighted(fdp, *pairs)


def _threads(fdp):
    return _weighted(fdp, (16, None), (3, lambda f: _pick(f, [1, 2, 3, np.int64(2)])),
                     (1, lambda f: _pick(f, [0, -1, 2.0, True, "1"])))


def _out(fdp, ndim):
    mode = _weighted(fdp, (8, "none"), (4, "fresh"), (2, "strided"), (3, "alias"),
                     (1, "overlap"), (1, "other"),
                     (5, lambda f: _pick(f, ["wrong_shape", "wrong_dtype", "readonly", "list",
                                             "swapped"])))
    return mode, _layout(fdp, ndim), fdp.ConsumeIntInRange(0, 2**32 - 1)


def _where(fdp, shape):
    mode = _weighted(fdp, (10, "none"), (4, "full"), (3, "broadcast"), (1, "strided"),
                     (1, "list"), (1, "int"), (1, "wrong_shape"))
    return (mode, _pick(fdp, [0.0, 0.3, 0.7, 1.0]), fdp.ConsumeIntInRange(0, 2**32 - 1),
            _layout(fdp, len(shape)))


def recipe(fdp, name):
    """The recipe of one call of `name`, as tests/test_fuzz.py's builders
    take it."""
    if name in tf.FORWARD:
        x = _spec(fdp, allow_list=True)
        r = {"x": x, "axis": _axis(fdp, len(x.shape)), "threads": _threads(fdp)}
        if name == "logsumexp":
            r["keepdims"] = _pick(fdp, [False, True, 1])
        else:
            r["where"] = _where(fdp, x.shape)
            r["out"] = _out(fdp, len(x.shape))
        return r
    if name in tf.BACKWARD:
        a = _spec(fdp, dtype=lambda f: _float_dtype(f) if f.ConsumeBool() else _any_dtype(f),
                  allow_list=True,
                  modes=["unit", "unit", "logp", "normal", "wide", "tiny", "neginf"])
        shape = a.shape if fdp.ConsumeIntInRange(0, 9) else _shape(fdp)
        same = fdp.ConsumeIntInRange(0, 2) > 0
        b = _spec(fdp, dtype=(lambda f: a.dtype) if same else _any_dtype, shape=shape,
                  allow_list=True, modes=["normal", "normal", "unit", "wide", "ties", "tiny"])
        return {"a": a, "b": b, "axis": _axis(fdp, len(a.shape), tuples=False),
                "threads": _threads(fdp), "out": _out(fdp, len(a.shape))}
    if name == "softmax_jacobian":
        y = _spec(fdp, shape=_shape(fdp, max_size=200), allow_list=True,
                  modes=["unit", "normal", "wide", "tiny"])
        return {"y": y, "axis": _axis(fdp, len(y.shape), tuples=False)}
    # cross_entropy, cross_entropy_grad
    shape = _shape(fdp, min_dims=1, max_size=1200)
    z = _spec(fdp, dtype=lambda f: _float_dtype(f) if f.ConsumeIntInRange(0, 2) else _any_dtype(f),
              shape=shape, modes=["normal", "normal", "wide", "offset", "ties", "neginf", "tiny"])
    kind = _weighted(fdp, (10, "index"), (6, "prob"), (2, "list"),
                     (2, lambda f: _pick(f, ["bool", "complex", "object", "wrong_shape"])))
    r = {"z": z, "axis": _axis(fdp, len(shape), tuples=False), "kind": kind,
         "tdtype": (_pick(fdp, tf.INDEX_DTYPES) if kind in ("index", "list", "wrong_shape")
                    else _float_dtype(fdp)),
         "tseed": fdp.ConsumeIntInRange(0, 2**32 - 1),
         "tspecials": tuple((fdp.ConsumeIntInRange(0, 999) / 1000, fdp.ConsumeIntInRange(0, 9))
                            for _ in range(fdp.ConsumeIntInRange(0, 2))),
         "tmode": _pick(fdp, ["dist", "dist", "any", "onehot"]),
         "tlayout": _layout(fdp, len(shape)),
         "ignore": _weighted(fdp, (16, -100),
                             (3, lambda f: _pick(f, [0, 1, 2, -1, 3, np.int32(1)])),
                             (1, lambda f: _pick(f, [2**63, -2**63 - 1, 2**64 - 1,
                                                     np.uint64(2**64 - 1)])),
                             (1, lambda f: _pick(f, [1.5, True, "1", None]))),
         "weight": _weighted(fdp, (8, "none"), (3, "f64"), (2, "f32"), (1, "int"), (1, "zeros"),
                             (1, "f16"), (1, "list"),
                             (1, lambda f: _pick(f, ["wrong_len", "2d", "complex"]))),
         "wseed": fdp.ConsumeIntInRange(0, 2**32 - 1),
         "reduction": _weighted(fdp, (6, "mean"), (3, "sum"), (4, "none"),
                                (1, lambda f: _pick(f, ["MEAN", "avg", None]))),
         "smoothing": _weighted(fdp, (10, 0.0),
                                (6, lambda f: _pick(f, [0.1, 0.5, 1.0, 1, np.float32(0.25)])),
                                (1, lambda f: _pick(f, [-0.1, 1.01, np.nan, np.inf, True, "0.1",
                                                        None]))),
         "threads": _threads(fdp)}
    if name == "cross_entropy_grad":
        r["out"] = _out(fdp, len(shape))
    return r


# ---------------------------------------------------------------- the target

def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    name = _pick(fdp, tf.NAMES)
    r = recipe(fdp, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # overflow in casts: expected
        tf.check(name, r, softmax_c, softmax_c.reference)


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
