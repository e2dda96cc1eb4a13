"""What softmax_c.sample and reference.sample share: argument checks, the
per-row parameters, the key from a seed and the counter-based uniform (the
kernel's, family/sample.h, in NumPy).  No filtering or drawing here."""
import math
import os

import numpy as np

from ._validate import _is_int, as_array, normalize_single_axis, result_dtypes

_G = np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(key, rows):
    """The uniform in [0, 1) of rows 0..rows-1 for `key`:
    h = m(m(key + G) + G (row + 1)), u = (h >> 11) 2^-53, m splitmix64's
    finalizer, G = 0x9E3779B97F4A7C15."""
    r = np.arange(1, rows + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        a = _mix(np.array([key], dtype=np.uint64) + _G)
        h = _mix(a + _G * r)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def key_from_seed(seed):
    """A 64-bit key: an int seed taken modulo 2**64; a numpy Generator
    gives ``int(seed.integers(0, 2**63))`` (one draw per call); None takes
    64 bits of fresh OS entropy."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if _is_int(seed):
        return int(seed) % 2**64
    raise TypeError(f"`seed` must be an int, a numpy.random.Generator or None, got {seed!r}")


def _per_row(value, name, batch):
    a = np.asarray(value)
    if a.ndim and a.shape != batch:
        try:
            a = np.broadcast_to(a, batch)
        except ValueError:
            raise ValueError(f"`{name}` of shape {a.shape} does not match the batch "
                             f"shape {batch}") from None
    return a


def _bad(name, a, ok):
    bad = np.asarray(a)[~np.asarray(ok, dtype=bool)]
    if bad.size:
        raise ValueError(f"`{name}` out of range: {bad.flat[0]!r}")


def prepare(logits, temperature, top_k, top_p, min_p, axis):
    """Check the arguments.  Returns (z, batch, prm): z the logits as a
    C-contiguous (rows, n) array of the compute dtype, batch the batch
    shape, prm a (rows, 4) float64 array of [T, top_k, top_p, min_p]
    with 0 / 0 / 1 / 0 for a filter switched off."""
    x = as_array(logits, "logits")
    cdt, _ = result_dtypes(x.dtype, "logits")
    if x.ndim == 0:
        raise ValueError("`logits` must have at least one dimension (the vocabulary)")
    ax = normalize_single_axis(axis, x.ndim)
    x = np.moveaxis(x, ax, -1)
    batch = x.shape[:-1]
    n = x.shape[-1]
    if n == 0:
        raise ValueError("`logits` has an empty vocabulary (axis of length 0)")
    rows = math.prod(batch)
    z = np.ascontiguousarray(x.reshape(rows, n), dtype=cdt)
    prm = np.empty((rows, 4))
    t = _per_row(1.0 if temperature is None else temperature, "temperature", batch)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"`temperature` must be a real number, got {temperature!r}")
    t = t.astype(np.float64)
    _bad("temperature", t, np.isfinite(t) & (t >= 0))
    prm[:, 0] = np.broadcast_to(t, batch).reshape(rows)
    if top_k is None:
        prm[:, 1] = 0
    else:
        k = _per_row(top_k, "top_k", batch)
        if k.dtype.kind not in "iu":
            raise ValueError(f"`top_k` must be an int >= 0, got {top_k!r}")
        _bad("top_k", k, k >= 0)
        prm[:, 1] = np.broadcast_to(k, batch).reshape(rows)
    for col, name, v, lo_open in ((2, "top_p", top_p, True), (3, "min_p", min_p, False)):
        if v is None:
            prm[:, col] = 1.0 if col == 2 else 0.0
            continue
        a = _per_row(v, name, batch)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a real number, got {v!r}")
        a = a.astype(np.float64)
        ok = ((a > 0) if lo_open else (a >= 0)) & (a <= 1)
        _bad(name, a, ok)
        prm[:, col] = np.broadcast_to(a, batch).reshape(rows)
    return z, batch, prm


def log_min_p(m):
    """The min-p cut log(m) as the kernel takes it: the C library's log
    (math.log), -inf for 0."""
    return math.log(m) if m > 0 else -math.inf
