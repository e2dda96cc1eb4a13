"""sample: one token per slice of logits, by the sampling kernels
(csrc/family/sample.h, _sample.pxi); its checks and generator are in
_sample_params.py, shared with the reference."""
import numpy as np

from . import _kernels
from . import _sample_params as sp
from ._api import _fast_threads, _threads


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, seed=None,
           axis=-1, return_logprobs=False, num_threads=None):
    """Draw one token id per slice of `logits` along `axis` (the vocabulary).

    The logits are scaled by ``1 / temperature`` (rounded to the compute
    dtype); then top-k keeps the `top_k`
    largest (equal values by lower index), top-p the smallest set of the
    most probable of those whose renormalised mass reaches `top_p`, min-p
    drops tokens whose probability is below ``min_p`` times the largest;
    a token is drawn from what is left.  ``temperature=0`` is greedy (the
    lowest index of the maximum).  Each parameter is a scalar or an array
    of the batch shape; None (or top_k=0, top_p=1, min_p=0) switches a
    filter off.  `seed`: an int (the same tokens for every thread count and
    SIMD level), a numpy.random.Generator (one 64-bit key drawn per call) or
    None (OS entropy).  Returns int64 tokens of the batch shape, and with
    `return_logprobs` their float64 log-probabilities under
    ``log_softmax(logits * (1 / temperature))`` before any filter.  See
    docs/api.md, "sample", for the generator, errors and complexity.
    """
    res = _kernels.sample_fast(logits, temperature, top_k, top_p, min_p, seed, axis,
                               bool(return_logprobs), _fast_threads(num_threads))
    if res is not None:  # the hot path's rules: _kernels (_sample.pxi)
        return res
    z, batch, prm = sp.prepare(logits, temperature, top_k, top_p, min_p, axis)
    key = sp.key_from_seed(seed)
    nt = _threads(num_threads)
    rows = z.shape[0]
    if rows == 0:
        tok = np.empty(batch, dtype=np.int64)
        return (tok, np.empty(batch)) if return_logprobs else tok
    tok, lp, bad = _kernels.sample_rows(z, prm, key, bool(return_logprobs), nt)
    if bad >= 0:
        where = np.unravel_index(bad, batch) if batch else ()
        raise ValueError(f"`logits` row {tuple(int(i) for i in where)} holds a NaN or +inf, "
                         f"only -inf, or a maximum that overflows at its temperature")
    tok = tok.reshape(batch)
    if return_logprobs:
        return tok, lp.reshape(batch)
    return tok
