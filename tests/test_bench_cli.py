"""``python -m softmax_c bench`` and ``info``: the command line, run for real
in subprocesses on tiny work, and the benchmark's parts in-process.

The behaviour without peers is tested in a subprocess whose import system
refuses SciPy, PyTorch, JAX, onnxruntime and matplotlib (a meta path finder installed by
a ``-c`` wrapper before ``softmax_c`` runs), whatever is installed here.
softmax_c itself is never mocked.
"""
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from softmax_c import _bench_report as bench_report
from softmax_c import bench

SMALL = ["--shapes", "64x1000", "--threads", "1", "--dtype", "float32"]
PEER_NAMES = {"scipy": ["scipy"], "torch": ["torch", "torch(out=)"], "jax": ["jax"],
              "onnxruntime": ["onnxruntime"]}
RESULT_KEYS = {"op", "shape", "dtype", "threads", "impl", "median_s", "speedup_vs_numpy",
               "speedup_vs_peer", "gbps", "copy_fraction", "error"}
MACHINE_KEYS = {"cpu", "cores", "simd", "threads", "versions", "date"}

# Runs `python -m softmax_c ARGS` with the named top-level modules made
# unimportable; the names come in the BLOCKED environment variable.
BLOCKING_WRAPPER = """
import os, runpy, sys
blocked = set(os.environ["BLOCKED"].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["softmax_c"] + sys.argv[1:]
runpy.run_module("softmax_c", run_name="__main__", alter_sys=True)
"""


def importable(name):
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


HAVE_TORCH = importable("torch")
HAVE_ORT = importable("onnxruntime")


def cli(*args, block=(), timeout=60, cwd=None):
    """Run the command line; returns the CompletedProcess (text)."""
    env = dict(os.environ)
    if block:
        env["BLOCKED"] = ",".join(block)
        cmd = [sys.executable, "-c", BLOCKING_WRAPPER, *args]
    else:
        cmd = [sys.executable, "-m", "softmax_c", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def assert_clean_error(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0] or "needs" in lines[0]


def impls_in(doc):
    return {r["impl"] for r in doc["results"]}


# ---------------------------------------------------------------- the real command line

@pytest.fixture(scope="module")
def full_small_run(tmp_path_factory):
    """Every operation on one tiny case, with whatever peers are installed."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    proc = cli("bench", "--quick", *SMALL, "--json", str(path))
    return proc, json.loads(path.read_text()) if path.exists() else None


def test_table_is_printed(full_small_run):
    proc, _ = full_small_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "vs numpy" in out and "GB/s" in out and "of copy" in out
    for op in bench.available_ops():
        assert f"{op} 64x1000 float32, 1 thread" in out
    assert all(len(line) <= 120 for line in out.splitlines())
    assert "geometric mean" in out


def test_json_schema(full_small_run):
    _, doc = full_small_run
    assert doc is not None
    machine = doc["machine"]
    assert MACHINE_KEYS <= set(machine)
    assert machine["threads"] == [1]
    assert machine["simd"] == importlib.import_module("softmax_c").build_info()["simd"]
    assert {"python", "numpy", "softmax_c"} <= set(machine["versions"])
    assert doc["results"]
    for r in doc["results"]:
        assert RESULT_KEYS <= set(r), r
        assert (r["shape"], r["dtype"], r["threads"]) == ("64x1000", "float32", 1)
        if r["error"] is None:
            assert r["median_s"] > 0 and r["gbps"] > 0 and r["copy_fraction"] > 0
            assert r["speedup_vs_numpy"] > 0


def test_every_op_and_the_reference_are_there(full_small_run):
    _, doc = full_small_run
    ops = {r["op"] for r in doc["results"]}
    assert ops == set(bench.available_ops())
    for op in ops:
        rows = {r["impl"]: r for r in doc["results"] if r["op"] == op}
        assert {"softmax_c", "softmax_c(out=)", "numpy"} <= set(rows)
        assert rows["numpy"]["speedup_vs_numpy"] == pytest.approx(1.0)
        assert rows["softmax_c"]["error"] is None, rows["softmax_c"]["error"]


def test_torch_rows_iff_torch_importable(full_small_run):
    _, doc = full_small_run
    torch_rows = [r for r in doc["results"] if r["impl"].startswith("torch")]
    if HAVE_TORCH:
        assert {r["op"] for r in torch_rows} == {r["op"] for r in doc["results"]}
        assert "torch" in doc["machine"]["versions"]
        for r in doc["results"]:
            if r["error"] is None and r["impl"] == "softmax_c":
                assert r["speedup_vs_peer"] is not None and r["fastest_peer"]
    else:
        assert torch_rows == []


def test_without_peers(tmp_path):
    path = tmp_path / "out.json"
    proc = cli("bench", "--quick", *SMALL, "--ops", "softmax,softmax_vjp", "--json", str(path),
               block=("torch", "scipy", "jax", "onnxruntime"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(path.read_text())
    assert impls_in(doc) == {"softmax_c", "softmax_c(out=)", "numpy"}
    assert all(r["speedup_vs_peer"] is None and r["fastest_peer"] is None
               for r in doc["results"])
    assert not {"torch", "scipy", "jax", "onnxruntime"} & set(doc["machine"]["versions"])
    assert set(doc["machine"]["peers_missing"]) == {"scipy", "torch", "jax", "onnxruntime"}
    assert "not installed: SciPy, PyTorch, JAX, onnxruntime" in proc.stdout
    assert "n/a" in proc.stdout
    assert "no peer installed" in proc.stdout


def test_quick_finishes():
    proc = cli("bench", "--quick", "--ops", "softmax", "--dtype", "float32", "--threads", "1",
               timeout=120)
    assert proc.returncode == 0, proc.stderr
    for shape in bench.QUICK_SHAPES:
        assert f"softmax {shape} float32, 1 thread" in proc.stdout
    assert f"/{len(bench.QUICK_SHAPES)} " in proc.stderr  # the progress, one line per case


@pytest.mark.parametrize("args", [
    ["--ops", "softmax,nope"],
    ["--ops", ""],
    ["--shapes", "3x3"],
    ["--dtype", "float128"],
    ["--ops", "cross_entropy_grad", "--dtype", "float16"],  # no half-width cross-entropy
    ["--threads", "0"],
    ["--threads", "-1"],
    ["--threads", "a"],
    ["--threads", "1.5"],
    ["--threads", "1,,2"],
    ["--json", "/nonexistent-dir/sub/out.json"],
    ["--plot", "out.txt"],
    ["--bogus"],
    ["--quick", "extra"],
])
def test_bad_options(args, tmp_path):
    proc = cli("bench", *args, cwd=tmp_path)
    assert_clean_error(proc)
    assert proc.stdout == ""


def test_json_path_is_a_directory(tmp_path):
    assert_clean_error(cli("bench", *SMALL, "--json", str(tmp_path)))


def test_plot_without_matplotlib(tmp_path):
    proc = cli("bench", *SMALL, "--plot", str(tmp_path / "p.png"), block=("matplotlib",))
    assert_clean_error(proc)
    assert "--plot needs matplotlib: pip install matplotlib" in proc.stderr
    assert not (tmp_path / "p.png").exists()


def png_size(path):
    """(width, height) in pixels of a PNG file, from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


HAVE_MPL = importable("matplotlib")
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")


@needs_mpl
def test_plot(tmp_path):
    path = tmp_path / "p.png"
    proc = cli("bench", "--quick", *SMALL, "--ops", "softmax", "--plot", str(path))
    assert proc.returncode == 0, proc.stderr
    assert png_size(path)[0] == 900  # a README column's width


def test_from_json_prints_the_runs_table(full_small_run, tmp_path):
    proc, doc = full_small_run
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    again = cli("bench", "--from-json", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout  # header and table, from the saved figures
    assert again.stderr == ""  # no progress: nothing is timed


@needs_mpl
def test_from_json_plot(full_small_run, tmp_path):
    _, doc = full_small_run
    path, png = tmp_path / "run.json", tmp_path / "p.png"
    path.write_text(json.dumps(doc))
    proc = cli("bench", "--from-json", str(path), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png_size(png)[0] == 900


@pytest.mark.parametrize("extra", [["--quick"], ["--ops", "softmax"], ["--threads", "1"],
                                   ["--shapes", "64x1000"], ["--dtype", "float32"],
                                   ["--json", "again.json"]])
def test_from_json_refuses_run_options(extra, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine": {}, "results": []}))
    proc = cli("bench", "--from-json", str(path), *extra, cwd=tmp_path)
    assert_clean_error(proc)
    assert "--from-json" in proc.stderr and extra[0] in proc.stderr
    assert not (tmp_path / "again.json").exists()


@pytest.mark.parametrize("content", [None, "not json {", "[1, 2]", '{"results": []}'])
def test_from_json_bad_file(content, tmp_path):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    proc = cli("bench", "--from-json", str(path))
    assert_clean_error(proc)
    assert proc.stdout == ""


def test_info():
    proc = cli("info")
    assert proc.returncode == 0
    assert "simd" in proc.stdout


@pytest.mark.parametrize("args", [[], ["nope"], ["info", "--x"]])
def test_usage_errors(args):
    proc = cli(*args)
    assert proc.returncode == 2
    assert "usage" in proc.stderr or "error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help():
    proc = cli("bench", "--help")
    assert proc.returncode == 0
    assert "--quick" in proc.stdout and "--json" in proc.stdout


# ---------------------------------------------------------------- in-process

@pytest.fixture
def tiny_shapes(monkeypatch):
    """Small shapes of the layouts the built-in cases have: last axis of a
    2-D and of a 4-D array, and axis 1 of a 3-D one."""
    shapes = {"5x7": ((5, 7), -1), "2x3x4x6": ((2, 3, 4, 6), -1), "4x9x3:1": ((4, 9, 3), 1)}
    for name, spec in shapes.items():
        monkeypatch.setitem(bench.SHAPES, name, spec)
    return list(shapes)


@pytest.mark.parametrize("op", bench.ALL_OPS)
def test_implementations(op):
    if op not in bench.available_ops():
        pytest.skip(f"softmax_c has no {op} yet")
    names = [i.name for i in bench.implementations(op, "float32")]
    assert names[:3] == ["softmax_c", "softmax_c(out=)", "numpy"]
    assert ("torch" in names) == HAVE_TORCH
    assert ("scipy" in names) == (importable("scipy") and op in ("softmax", "log_softmax"))
    assert ("torch(out=)" in names) == (HAVE_TORCH and op != "cross_entropy_grad")
    assert ("onnxruntime" in names) == (HAVE_ORT and op in ("softmax", "log_softmax"))
    with pytest.raises(ValueError):
        bench.implementations("nope")


@pytest.mark.parametrize("dtype", bench.DTYPES)
@pytest.mark.parametrize("op", bench.ALL_OPS)
def test_every_implementation_agrees_on_every_layout(op, dtype, tiny_shapes):
    if op not in bench.available_ops():
        pytest.skip(f"softmax_c has no {op} yet")
    rng = np.random.default_rng(1)
    for shape in tiny_shapes:
        case = bench.Case(op, shape, dtype, rng)
        for impl in bench.implementations(op, dtype):
            fn, result, reset = impl.prepare(case)
            for _ in range(2):  # again after a timed call may have overwritten inputs
                if reset is not None:
                    reset()
                assert bench._check(result(fn()), case.want, dtype) is None, (impl, shape)


@pytest.mark.parametrize("op", list(bench.SAMPLE_PARAMS))
def test_sampling_group(op, monkeypatch):
    """The sampling rows draw valid tokens on a small vocabulary (the peers
    too), and the check refuses a token outside the kept set."""
    monkeypatch.setitem(bench.SHAPES, "3x300", ((3, 300), -1))
    case = bench.Case(op, "3x300", "float32", np.random.default_rng(2))
    names = [i.name for i in bench.implementations(op, "float32")]
    assert names[:3] == ["softmax_c", "softmax(out=)", "numpy"]
    assert ("torch" in names) == HAVE_TORCH
    for impl in bench.implementations(op, "float32"):
        fn, result, _ = impl.prepare(case)
        assert bench._check(result(fn()), case.want, "float32") is None, impl
    if op == "sample":  # top_k=50 of 300: most tokens are outside the kept set
        outside = np.argmin(case.inputs["x"], axis=-1)
        assert "outside the kept set" in bench._check(outside, case.want, "float32")
    rows = bench.run([op], ["3x300"], threads=[1], repeats=1, min_time=1e-4, progress=False)
    assert {r["impl"] for r in rows} == set(names)
    assert all(r["error"] is None for r in rows), rows


def test_onnx_model_encoding():
    """The model is written without the onnx package: a few fields checked
    by hand, and by onnx itself where it is installed."""
    m = bench.onnx_model("Softmax", (2, 3), np.float64, -1)
    assert m[:2] == b"\x08\x08"  # ir_version 8
    assert b"Softmax" in m and b"axis" in m
    assert b"\x18" + b"\xff" * 9 + b"\x01" in m  # axis -1: a ten-byte varint
    assert bench._pb_varint(300) == b"\xac\x02"
    try:
        import onnx
    except ImportError:
        return
    model = onnx.load_from_string(m)
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 13
    assert model.graph.node[0].op_type == "Softmax"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime is not installed")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", bench.DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_onnxruntime_agrees_with_softmax_c(op, dtype, threads, tiny_shapes):
    """onnxruntime's results against softmax_c's, within the bench's bounds,
    at the thread counts the sessions are made for."""
    sc = importlib.import_module("softmax_c")
    rng = np.random.default_rng(3)
    before = sc.get_num_threads()
    try:
        sc.set_num_threads(threads)
        for shape in tiny_shapes + ["64x1000"]:
            case = bench.Case(op, shape, dtype, rng)
            impl, = [i for i in bench.implementations(op, dtype) if i.name == "onnxruntime"]
            fn, result, reset = impl.prepare(case)
            assert reset is None
            got = result(fn())
            ours = getattr(sc, op)(case.inputs["x"], case.axis)
            assert bench._check(got, ours, dtype) is None, shape
            assert bench._check(got, case.want, dtype) is None, shape
    finally:
        sc.set_num_threads(before)


def test_mixed_provenance_rows(monkeypatch, tiny_shapes):
    """softmax_vjp on MIXED_SHAPES only has y from softmax_c's softmax and
    its NumPy copy; both agree and are timed."""
    assert "16x262144" in bench.MIXED_SHAPES and len(bench.MIXED_SHAPES) >= 2
    rng = np.random.default_rng(4)
    assert bench.mixed_implementations(bench.Case("softmax_vjp", "5x7", "float64", rng)) == []
    monkeypatch.setattr(bench, "MIXED_SHAPES", ["5x7"])
    assert bench.mixed_implementations(bench.Case("softmax", "5x7", "float64", rng)) == []
    results = bench.run(["softmax_vjp"], ["5x7", "2x3x4x6"], ["float64"], [1], repeats=1,
                        min_time=1e-4, progress=False)
    mixed = {(r["shape"], r["impl"]): r for r in results if "(y=" in r["impl"]}
    assert set(mixed) == {("5x7", "softmax_c(y=block)"), ("5x7", "softmax_c(y=copy)")}
    for r in mixed.values():
        assert r["kind"] == "softmax_c" and r["error"] is None and r["median_s"] > 0
    assert "softmax_c(y=block)" in bench.format_table(results)


def test_check_is_relative_to_the_scale():
    want = np.array([1e-6, 2e-6, 3e-6], np.float32)
    assert bench._check(want * (1 + 1e-6), want, "float32") is None
    assert "differs" in bench._check(want * 1.01, want, "float32")
    big = np.array([-40.0, -1.0, 0.0])
    assert bench._check(big + 1e-13, big, "float64") is None
    assert "differs" in bench._check(big + 1e-6, big, "float64")
    assert "shape" in bench._check(want[:2], want, "float32")
    assert "float64" in bench._check(want.astype(np.float64), want, "float32")
    assert "loss" in bench._check((1.5, want), (1.0, want), "float32")


def test_time_rounds():
    calls = []
    times = bench._time_rounds([lambda: calls.append("a"), lambda: calls.append("b")], 3, 1e-3)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert {"a", "b"} == set(calls)


def test_run_reports_a_disagreeing_peer_without_timing_it(monkeypatch, tiny_shapes):
    real = bench.implementations

    def wrong(case):
        x, axis = case.inputs["x"], case.axis
        return (lambda: np.zeros_like(x)), (lambda r: r), None

    def broken(case):
        def call():
            raise RuntimeError("no such call\nsecond line")
        return call, (lambda r: r), None

    def with_bad_peers(op, dtype="float32"):
        return real(op, dtype) + [bench.Impl("wrong", "peer", wrong),
                                  bench.Impl("broken", "peer", broken)]
    monkeypatch.setattr(bench, "implementations", with_bad_peers)
    sc = importlib.import_module("softmax_c")
    before = sc.get_num_threads()
    results = bench.run(["softmax"], ["5x7"], ["float32"], [1, 2], repeats=2, min_time=1e-4,
                        progress=False)
    assert sc.get_num_threads() == before
    assert [r["threads"] for r in results if r["impl"] == "numpy"] == [1, 2]
    rows = {r["impl"]: r for r in results if r["threads"] == 1}
    assert rows["wrong"]["median_s"] is None and "differs" in rows["wrong"]["error"]
    assert rows["broken"]["median_s"] is None
    assert rows["broken"]["error"] == "raised RuntimeError: no such call"
    assert rows["softmax_c"]["error"] is None and rows["softmax_c"]["median_s"] > 0
    assert rows["softmax_c"]["fastest_peer"] not in ("wrong", "broken")
    table = bench.format_table(results)
    assert "wrong              not timed: result differs" in table
    assert "broken             not timed: raised RuntimeError" in table


def test_run_restores_torch_threads(tiny_shapes):
    if not HAVE_TORCH:
        pytest.skip("torch is not installed")
    import torch
    before = torch.get_num_threads()
    bench.run(["softmax"], ["5x7"], ["float64"], [1], repeats=1, min_time=1e-4, progress=False)
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- the plot, in-process

def result_row(op, shape, dtype, threads, vs_peer, vs_numpy=5.0, impl="softmax_c"):
    return {"op": op, "shape": shape, "dtype": dtype, "threads": threads, "impl": impl,
            "kind": "softmax_c", "speedup_vs_numpy": vs_numpy, "speedup_vs_peer": vs_peer,
            "fastest_peer": None if vs_peer is None else "torch(out=)", "error": None}


def test_speedup_cases_are_sorted_and_fall_back_to_numpy():
    results = [result_row("softmax", "5x7", "float32", 1, 2.0),
               result_row("softmax", "5x7", "float64", 2, 0.5),
               result_row("softmax", "5x7", "float32", 2, 1.5, impl="softmax_c(out=)"),
               result_row("log_softmax", "5x7", "float32", 1, 3.0)]
    assert bench_report.baseline_of(results) == "peer"
    assert bench_report.speedup_cases(results, "softmax") == [("5x7  f64  2t", 0.5),
                                                               ("5x7  f32  1t", 2.0)]
    alone = [result_row("softmax", "5x7", "float32", t, None, vs_numpy=v)
             for t, v in ((1, 7.0), (2, 4.0))]
    assert bench_report.baseline_of(alone) == "numpy"
    assert [v for _, v in bench_report.speedup_cases(alone, "softmax")] == [4.0, 7.0]


@needs_mpl
@pytest.mark.parametrize("with_peer", [True, False])
def test_plot_in_process(tmp_path, with_peer):
    results = [result_row(op, shape, dt, t, (0.8 + i / 10) if with_peer else None)
               for op in ("softmax", "softmax_vjp", "cross_entropy_grad")
               for i, (shape, dt, t) in enumerate(
                   (s, d, t) for s in ("1x32000", "8x12x512x512:1") for d in bench.DTYPES
                   for t in (1, 2))]
    path = tmp_path / "p.png"
    bench_report.plot(results, path)
    width, height = png_size(path)
    assert width == 900 and 300 < height < 2000  # two rows of two panels, one of them empty
    with pytest.raises(ValueError):
        bench_report.plot([r for r in results if r["op"] == "nope"], tmp_path / "q.png")


def test_load_json(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine": {"cpu": "x"}, "settings": {}, "results": []}))
    assert bench_report.load_json(path)["machine"] == {"cpu": "x"}
    path.write_text("[]")
    with pytest.raises(ValueError):
        bench_report.load_json(path)
