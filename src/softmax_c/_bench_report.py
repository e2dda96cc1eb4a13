"""The report of ``python -m softmax_c bench``: the text table, the summary,
the header naming the machine, and the figures drawn with ``--plot``.

Everything here reads result dicts as :func:`softmax_c.bench.run` returns
them (or as ``--json`` saved them) and measures nothing.
"""
import json
import math

# the peers' display names, in the order the header lists them
PEER_NAMES = {"scipy": "SciPy", "torch": "PyTorch", "jax": "JAX", "onnxruntime": "onnxruntime"}


def load_json(path):
    """The document a ``--json`` run saved: a dict with "machine" (the
    machine's description), "settings" and "results" (a list of result
    dicts).  Raises OSError if it cannot be read, ValueError if it is not
    such a document."""
    with open(path) as f:
        try:
            doc = json.load(f)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"not JSON ({e})") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("machine"), dict)
            and isinstance(doc.get("results"), list)):
        raise ValueError("not the JSON of a bench run (no \"machine\" and \"results\")")
    return doc


def _fmt_time(t):
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _fmt_bytes(n):
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    if n < 1e9:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e9:.2f} GB"


def _fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}x"


COLUMNS = (f"  {'implementation':<18}{'median':>11}{'vs numpy':>10}{'vs peer':>9}"
           f"{'GB/s':>8}{'of copy':>9}")

LEGEND = """\
vs numpy: NumPy reference time / this time.  vs peer: fastest peer's time / this time
(peers: SciPy, PyTorch, JAX, onnxruntime; n/a: none ran).  GB/s: bytes that must move
(inputs read + output written) / time.  of copy: this GB/s / the GB/s of np.copyto (one
thread) moving the same bytes in the same run.  Times are medians over interleaved rounds.
softmax_c(y=block) / (y=copy): softmax_vjp(y, g, out=) with y = softmax_c.softmax(x), an
output of softmax_c / y copied into a NumPy array (g and out NumPy arrays)."""


def format_table(results):
    """The results as text: one block per case, one row per
    implementation."""
    lines = [LEGEND, "", COLUMNS]
    key = None
    for r in results:
        k = (r["op"], r["shape"], r["dtype"], r["threads"])
        if k != key:
            key = k
            thr = "1 thread" if r["threads"] == 1 else f"{r['threads']} threads"
            lines.append("")
            lines.append(f"{r['op']} {r['shape']} {r['dtype']}, {thr}: {_fmt_bytes(r['bytes'])} "
                         f"to move; copy {_fmt_time(r['copy_median_s'])} = "
                         f"{r['copy_gbps']:.1f} GB/s")
        if r["error"] is not None:
            lines.append(f"  {r['impl']:<18} not timed: {r['error']}"[:118])
            continue
        lines.append(f"  {r['impl']:<18}{_fmt_time(r['median_s']):>11}"
                     f"{_fmt_ratio(r['speedup_vs_numpy']):>10}"
                     f"{_fmt_ratio(r['speedup_vs_peer']):>9}"
                     f"{r['gbps']:>8.1f}{r['copy_fraction']:>9.0%}")
    summary = format_summary(results)
    if summary:
        lines += ["", summary]
    return "\n".join(lines)


def _gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def format_summary(results):
    """softmax_c's (fresh output) geometric-mean speed-ups per operation."""
    ops = list(dict.fromkeys(r["op"] for r in results))
    rows = []
    for op in ops:
        mine = [r for r in results if r["op"] == op and r["impl"] == "softmax_c"
                and r["speedup_vs_numpy"] is not None]
        if not mine:
            continue
        vs_np = _gmean([r["speedup_vs_numpy"] for r in mine])
        peers = [r["speedup_vs_peer"] for r in mine if r["speedup_vs_peer"] is not None]
        vs_peer = _gmean(peers)
        peer_txt = f"{vs_peer:.2f}x over {len(peers)}" if peers else "n/a"
        rows.append(f"  {op:<20}{len(mine):>6}{vs_np:>11.2f}x   {peer_txt}")
    if not rows:
        return ""
    return "\n".join(["softmax_c (fresh output), geometric mean over cases:",
                      f"  {'operation':<20}{'cases':>6}{'vs numpy':>12}   vs fastest peer"] + rows)


def format_header(info):
    v = info["versions"]
    names = PEER_NAMES
    peers = ", ".join(f"{names[p]} {v[p]}" for p in names if p in v) or "no peer installed"
    missing = ", ".join(names[p] for p in info["peers_missing"])
    load = info.get("load_average") or {}
    load_txt = ""
    if load.get("start") is not None:
        load_txt = f"; load average {load['start']:.2f} before the run, {load['end']:.2f} after"
    return (f"softmax_c {v['softmax_c']} ({info['simd']}) on {info['cpu']}, {info['cores']} cores"
            f"{load_txt}\n"
            f"Python {v['python']}, NumPy {v['numpy']}; peers: {peers}"
            + (f" (not installed: {missing})" if missing else ""))


def speedup_cases(results, op):
    """softmax_c's speed-ups (fresh output) on the cases of `op`, fastest
    last: a list of ``(label, speed-up)``, the speed-up over the fastest
    peer; over the NumPy reference instead when no peer ran any case of the
    results (then the second value of the return is "numpy", else "peer").
    """
    base = baseline_of(results)
    key = "speedup_vs_peer" if base == "peer" else "speedup_vs_numpy"
    rows = [(_case_label(r), r[key]) for r in results
            if r["op"] == op and r["impl"] == "softmax_c" and r.get(key)]
    return sorted(rows, key=lambda c: c[1])


def baseline_of(results):
    """"peer" if softmax_c was timed against a peer anywhere in `results`,
    else "numpy"."""
    return "peer" if any(r["impl"] == "softmax_c" and r.get("speedup_vs_peer")
                         for r in results) else "numpy"


def _case_label(r):
    dt = {"float32": "f32", "float64": "f64"}.get(r["dtype"], r["dtype"])
    return f"{r['shape']}  {dt}  {r['threads']}t"


def _peer_names(results):
    """The implementations that were softmax_c's fastest peer somewhere, by
    display name."""
    names = [r["fastest_peer"] for r in results
             if r["impl"] == "softmax_c" and r.get("fastest_peer")]
    shown = []
    for name in dict.fromkeys(names):
        base, out = name.split("(")[0], name.endswith("(out=)")
        shown.append(PEER_NAMES.get(base, base) + (" out=" if out else ""))
    return shown


def plot(results, path, title=None):
    """softmax_c's speed-up over the fastest peer, one panel per operation
    (two panels a row), one horizontal bar per case (shape, dtype, threads;
    softmax_c with a fresh output), sorted, on a log scale with a line at
    1x: right of it softmax_c is faster.  Without any peer in `results` the
    speed-ups are over the NumPy reference.  Drawn 900 pixels wide, for a
    README column."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ops = [op for op in dict.fromkeys(r["op"] for r in results) if speedup_cases(results, op)]
    base = baseline_of(results)
    if not ops:
        raise ValueError("no softmax_c result with a speed-up to plot")
    ncols = 1 if len(ops) == 1 else 2
    nrows = -(-len(ops) // ncols)
    nmax = max(len(speedup_cases(results, op)) for op in ops)
    bar_in = 0.15  # inches per bar: 15 px at 100 dpi, for 8-point labels
    panel_h = max(1.6, nmax * bar_in + 0.75)
    fig_h = nrows * panel_h + 0.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.0, fig_h), squeeze=False)
    allv = [v for op in ops for _, v in speedup_cases(results, op)]
    lo, hi = min(min(allv), 1.0) / 1.25, max(max(allv), 1.0) * 1.5
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500) if lo <= t <= hi]
    for ax, op in zip(axes.flat, ops):
        cases = speedup_cases(results, op)
        labels, vals = zip(*cases)
        ypos = range(len(cases))
        colours = ["#2b7bba" if v >= 1 else "#d95f02" for v in vals]
        # bars start at the axis' left end (a log scale has no 0)
        ax.barh(ypos, [v - lo for v in vals], height=0.72, color=colours, left=lo)
        for y, v in zip(ypos, vals):
            ax.text(v * 1.04, y, f"{v:.2f}x", va="center", ha="left", fontsize=7)
        ax.axvline(1.0, color="black", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.7, nmax - 0.3)
        ax.set_yticks(list(ypos))
        ax.set_yticklabels(labels, fontsize=7.5, family="monospace")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=8)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", which="major", alpha=0.35)
        ax.set_axisbelow(True)
        gm = math.exp(sum(math.log(v) for v in vals) / len(vals))
        ax.set_title(f"{op}: geometric mean {gm:.2f}x", fontsize=10, loc="left")
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    if base == "peer":
        names = ", ".join(sorted(_peer_names(results)))
        what = f"softmax_c's speed-up over the fastest peer ({names}), fresh output"
        ratio = "the peer's time / softmax_c's"
    else:
        what = "softmax_c's speed-up over the NumPy reference (no peer ran), fresh output"
        ratio = "NumPy's time / softmax_c's"
    # the peers' names on the title line, the ratio on the line below: both fit 900 px
    fig.suptitle(title or what, fontsize=9.5, x=0.01, ha="left", y=1 - 0.08 / fig_h)
    fig.text(0.01, 1 - 0.33 / fig_h,
             f"{ratio}; right of the black line softmax_c is faster; sorted per operation; "
             "t = threads, f32/f64 = float32/float64", fontsize=8, ha="left", color="#444")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.42 / fig_h), h_pad=1.2, w_pad=1.5)
    fig.savefig(path, dpi=100)
    plt.close(fig)
