"""Results bit for bit as recorded: tests/bitwise_corpus.py's fixed corpus,
hashed at every SIMD level this machine runs, against tests/data/bitwise.json.

The hashes were recorded before the kernels were reorganised; a move of code
that changes one rounding on any kernel path fails here.  A change that is
meant to change results records them again (`SOFTMAX_C_SIMD=<level> python
tests/bitwise_corpus.py --record` for each level) and says why in its commit.
"""
import json
import os
import subprocess
import sys

import pytest

import softmax_c as sc

HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = ("scalar", "avx2", "avx512f")
ORDER = {name: i for i, name in enumerate(LEVELS)}

with open(os.path.join(HERE, "data", "bitwise.json")) as f:
    RECORDED = json.load(f)


# Slow: a subprocess per level over the whole corpus.  The bits are those of
# the source, so the main CI run checks them; the sanitizer and installed-wheel
# runs leave them out.
@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
def test_results_bitwise_as_recorded(level):
    if ORDER[level] > ORDER[sc.build_info()["simd_supported"]]:
        pytest.skip(f"this CPU does not run {level}")
    env = dict(os.environ, SOFTMAX_C_SIMD=level)
    res = subprocess.run([sys.executable, os.path.join(HERE, "bitwise_corpus.py")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout)
    assert got["level"] == level
    want = RECORDED[level]
    assert got["hashes"].keys() == want.keys()
    changed = sorted(k for k in want if got["hashes"][k] != want[k])
    assert not changed, f"{len(changed)} of {len(want)} results changed, e.g. {changed[:10]}"


def test_thread_counts_give_the_same_bits():
    for level, hashes in RECORDED.items():
        for k, h in hashes.items():
            if k.endswith("/t2"):
                assert hashes[k[:-1] + "1"] == h, (level, k)
