"""docs/benchmarks.md from the JSON of a bench run.

    python -m softmax_c bench --json docs/bench-results.json --plot docs/bench-speedup.png
    python benchmarks/report.py docs/bench-results.json > docs/benchmarks.md

One table per operation, a row per (shape, dtype, threads): softmax_c with a
fresh output and with out=, the NumPy reference, PyTorch both ways, the
ratios, and softmax_c's rate as a fraction of np.copyto's in the same run.
Nothing here is measured: every figure is the JSON's.
"""
import json
import math
import sys

INTRO = """\
# Benchmark results

Produced on {date} by

```bash
python -m softmax_c bench --json docs/bench-results.json --plot docs/bench-speedup.png
python benchmarks/report.py docs/bench-results.json > docs/benchmarks.md
```

on a {cores}-core {cpu} machine ({simd} in use), {platform}, Python {python},
NumPy {numpy}, {peers}, softmax_c {softmax_c}; load average {load_start} before
the run, {load_end} after.  `bench-results.json` holds every figure with the
machine's description; the tables below are those figures, rearranged.
[performance.md](performance.md) summarizes them, with earlier runs and what
is not there yet; [api.md](api.md#the-command-line) lists the bench's options.

To run it yourself: `python -m softmax_c bench --quick` takes under a
minute; `--ops`, `--dtype`, `--threads` and `--shapes` choose the cases,
`--json FILE` saves them, `--plot FILE.png` draws softmax_c's speed-up over
the fastest peer per case (as `bench-speedup.png`), and
`--from-json FILE --plot FILE.png` draws it again from saved figures.
Groups outside the default run: `--ops sample,sample_t`, `--ops fused`,
`--dtype half` ([api.md](api.md#the-command-line)).  For
figures worth comparing, run on an otherwise idle machine: a thread count
above the free cores turns each OpenMP barrier into a wait for the
scheduler.

How to read them:

- each time is the median over interleaved rounds of one call, every
  implementation called the way its users call it: a fresh output
  (`softmax_c`, `PyTorch`) or a preallocated one (`out=`; for
  cross_entropy_grad, softmax_c writes the gradient over the logits, and
  PyTorch's figure is a training step, `F.cross_entropy(...)` then
  `.backward()`);
- *vs NumPy*: the NumPy reference's time / softmax_c's; *vs PyTorch*:
  PyTorch's time / softmax_c's, fresh outputs on both sides, and with `out=`
  on both sides (above 1: softmax_c is faster);
- *of copy*: softmax_c's rate (the bytes that must move: inputs read once,
  output written once) as a fraction of `np.copyto` moving the same bytes in
  the same run; small inputs sit in cache, where the copy is very fast.
- The machine is shared and noisy: medians move 10-20% between runs.  Some
  2-thread fresh-output cases of 32 MB and more are far off their `out=`
  figure: with PyTorch imported into the process, 2-thread calls that fault
  in new pages stall for tens of milliseconds now and then (the same calls
  without PyTorch imported do not); the `out=` columns do not have it.
"""

OPS = ["softmax", "log_softmax", "softmax_vjp", "cross_entropy_grad"]


def fmt_time(s):
    if s is None:
        return "–"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def ratio(a, b, digits=2, suffix="x"):
    if a is None or b is None:
        return "–"
    return f"{a / b:.{digits}f}{suffix}"


def main(path):
    data = json.load(open(path))
    m = data["machine"]
    v = m["versions"]
    peers = ", ".join(f"{k} {v[k]}" for k in ("scipy", "torch", "jax", "onnxruntime") if k in v)
    print(INTRO.format(date=m["date"][:10], cores=m["cores"], cpu=m["cpu"], simd=m["simd"],
                       platform=m["platform"], python=v["python"], numpy=v["numpy"],
                       peers=peers or "no peers", softmax_c=v["softmax_c"],
                       load_start=m["load_average"]["start"], load_end=m["load_average"]["end"]))
    cases = {}
    for r in data["results"]:
        if r.get("error"):
            continue
        key = (r["op"], r["shape"], r["dtype"], r["threads"])
        cases.setdefault(key, {})[r["impl"]] = r
    shapes = data["settings"]["shapes"]
    for op in OPS:
        rows = [k for k in cases if k[0] == op]
        if not rows:
            continue
        rows.sort(key=lambda k: (shapes.index(k[1]), k[2], k[3]))
        print(f"### {op}\n")
        print("| shape | dtype | threads | softmax_c | softmax_c out= | NumPy ref. | PyTorch "
              "| PyTorch out= | vs NumPy | vs PyTorch | vs PyTorch, out= | of copy |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        logs = []
        for k in rows:
            c = cases[k]
            t = {name: c[name]["median_s"] if name in c else None
                 for name in ("softmax_c", "softmax_c(out=)", "numpy", "torch", "torch(out=)")}
            sc = c["softmax_c"]
            of_copy = f"{sc['copy_fraction'] * 100:.0f}%" if sc.get("copy_fraction") else "–"
            print(f"| {k[1]} | {k[2]} | {k[3]} | {fmt_time(t['softmax_c'])} "
                  f"| {fmt_time(t['softmax_c(out=)'])} | {fmt_time(t['numpy'])} "
                  f"| {fmt_time(t['torch'])} | {fmt_time(t['torch(out=)'])} "
                  f"| {ratio(t['numpy'], t['softmax_c'], 1)} | {ratio(t['torch'], t['softmax_c'])} "
                  f"| {ratio(t['torch(out=)'], t['softmax_c(out=)'])} | {of_copy} |")
            if t["torch"] and t["softmax_c"]:
                logs.append(math.log(t["torch"] / t["softmax_c"]))
        if logs:
            print(f"\nGeometric mean over the {len(logs)} cases, PyTorch's time / softmax_c's, "
                  f"fresh outputs: {math.exp(sum(logs) / len(logs)):.2f}x\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/bench-results.json")
