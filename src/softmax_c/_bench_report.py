"""The report of ``python -m softmax_c bench``: the text table, the summary,
the header naming the machine, and the figures drawn with ``--plot``.

Everything here reads result dicts as :func:`softmax_c.bench.run` returns
them (or as ``--json`` saved them) and measures nothing.
"""
import math

# the peers' display names, in the order the header lists them
PEER_NAMES = {"scipy": "SciPy", "torch": "PyTorch", "jax": "JAX"}


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
(peers: SciPy, PyTorch, JAX; n/a: none ran).  GB/s: bytes that must move (inputs read +
output written) / time.  of copy: this GB/s / the GB/s of np.copyto (one thread) moving
the same bytes in the same run.  Times are medians over interleaved rounds."""


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


def plot(results, path):
    """A bar chart of the speed-ups over the NumPy reference (log scale):
    one panel per operation, one group of bars per case, one colour per
    implementation; the line at 1 is the reference."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    ops = list(dict.fromkeys(r["op"] for r in results))
    impls = list(dict.fromkeys(r["impl"] for r in results if r["impl"] != "numpy"))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(impls)}

    def case_of(r):
        return r["shape"], r["dtype"], r["threads"]
    ncase = max(len({case_of(r) for r in results if r["op"] == op}) for op in ops)
    width = min(max(8.0, 0.16 * ncase * len(impls) + 2.0), 60.0)
    height = 3.4 * len(ops) + 0.6
    fig, axes = plt.subplots(len(ops), 1, figsize=(width, height), squeeze=False)
    bw = 0.8 / max(len(impls), 1)
    for ax, op in zip(axes[:, 0], ops):
        rows = [r for r in results if r["op"] == op]
        cases = list(dict.fromkeys(case_of(r) for r in rows))
        where = {c: i for i, c in enumerate(cases)}
        ys_all = []
        for j, name in enumerate(impls):
            pts = [(where[case_of(r)] - 0.4 + bw * (j + 0.5), r["speedup_vs_numpy"])
                   for r in rows if r["impl"] == name and r["speedup_vs_numpy"]]
            if pts:
                xs, ys = zip(*pts)
                ax.bar(xs, ys, bw, color=colours[name], label=name)
                ys_all += ys
        ax.axhline(1.0, color="black", linewidth=0.9)
        ax.set_yscale("log")
        if ys_all:  # room above the tallest bar and below the shortest
            ax.set_ylim(min(min(ys_all), 1.0) / 1.5, max(max(ys_all), 1.0) * 1.5)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs="auto"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels([f"{sh}\n{dt}, {t}t" for sh, dt, t in cases], fontsize=8)
        ax.set_xlim(-0.6, len(cases) - 0.4)
        ax.set_ylabel("speed-up vs NumPy")
        ax.set_title(op, fontsize=11, loc="left")
        ax.grid(axis="y", which="major", alpha=0.4)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in impls]
    fig.legend(handles, impls, loc="upper center", ncol=len(impls), fontsize=9, frameon=False)
    fig.suptitle("higher is faster; the black line is the NumPy reference (t = threads)",
                 y=1 - 0.42 / height, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)
