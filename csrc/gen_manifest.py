"""Write the Cython declarations of softmax_c's C entry points from the one
list of them, csrc/sc_kernels.def (Cython has no preprocessor to read it).

    python csrc/gen_manifest.py           # rewrite the generated files
    python csrc/gen_manifest.py --check   # exit 1 if one is stale

Writes src/softmax_c/kernels.pxd (the public C-level API: the sc_api table,
an inline function per entry and dtype, and one fused over float/double
for each entry that has both) and src/softmax_c/_kernels.pxd (the names
_kernels.pyx uses), each from its template (*.pxd.in) and the rows.
tests/test_manifest.py fails when either file is stale.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEF = os.path.join(HERE, "sc_kernels.def")
PKG = os.path.join(ROOT, "src", "softmax_c")
MARK = "@GENERATED@"
# C parameter names that are Python builtins read badly in Cython.
RENAME = {"len": "length"}


def _split_top(s):
    """Split s at the commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur.strip())
    return parts


def read_manifest(path=DEF):
    text = open(path).read().replace("\\\n", " ")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    types = {}
    for kind, dt, ty in re.findall(r"#define SC_(ST|CT)_(\w+) (.+)", text):
        types.setdefault(dt, {})[kind] = ty.strip()
    sigs = {}
    for name, body in re.findall(r"#define SC_SIG_(\w+)\(S, C\)(.*)", text):
        ret, params, args, rk = _split_top(body.strip())
        sigs[name] = (ret, params.strip()[1:-1].strip(), args.strip()[1:-1].strip(), rk == "return")
    block = re.search(r"#define SC_MANIFEST\(K, P, P0\)(.*?)(?:\n\s*\n|#)", text, re.S).group(1)
    rows = []
    for kind, args in re.findall(r"\b(K|P0|P)\(([^)]*)\)", block):
        a = [x.strip() for x in args.split(",")]
        if kind == "K":
            rows.append(dict(kind=kind, family=a[0], name=a[1], dt=a[2], sig=a[3]))
        elif kind == "P":
            rows.append(dict(kind=kind, family=None, name=a[0], dt=a[1], sig=a[2]))
        else:
            rows.append(dict(kind=kind, family=None, name=a[0], dt=None, sig=a[1]))
    return types, sigs, rows


def _subst(s, S, C):
    return re.sub(r"\bS\b", S, re.sub(r"\bC\b", C, s))


def _params(params, S, C):
    if params == "void":
        return ""
    out = []
    for p in _split_top(_subst(params, S, C)):
        m = re.match(r"(.*?)(\w+)$", p)
        ty, nm = m.group(1), m.group(2)
        out.append(ty + RENAME.get(nm, nm))
    return ", ".join(out)


def _args(args):
    return ", ".join(RENAME.get(a.strip(), a.strip()) for a in args.split(",") if a.strip())


def _fname(row):
    return row["name"] if row["dt"] is None else f'{row["name"]}_{row["dt"]}'


def _types(types, row):
    if row["dt"] is None:
        return "void", "void"
    return types[row["dt"]]["ST"], types[row["dt"]]["CT"]


def kernels_pxd(types, sigs, rows):
    members, inline, fused = [], [], []
    for row in rows:
        ret, params, args, rk = sigs[row["sig"]]
        S, C = _types(types, row)
        fn = _fname(row)
        r = _subst(ret, S, C)
        p = _params(params, S, C)
        members.append(f"        {r} (*{fn})({p}) noexcept nogil")
        inline.append(f"cdef inline {r} {fn}({p}) noexcept nogil:\n"
                      f"    {'return ' if rk else ''}get_api().{fn}({_args(args)})")
    # One function fused over float and double per entry that has both (its
    # half-width rows, f16 and bf16, stay per dtype: Cython's floating has
    # no 16-bit member).
    by_name = {}
    for row in rows:
        if row["dt"] is not None:
            by_name.setdefault(row["name"], []).append(row)
    for name, rs in by_name.items():
        rs = [r for r in rs if r["dt"] in ("f32", "f64")]
        if sorted(r["dt"] for r in rs) != ["f32", "f64"]:
            continue
        ret, params, args, rk = sigs[rs[0]["sig"]]
        r = _subst(ret, "floating", "floating")
        p = _params(params, "floating", "floating")
        if "floating" not in p:
            p = ", ".join(x for x in (p, "floating dtype_only") if x)
        call = f"{'return ' if rk else ''}get_api().{name}_%s({_args(args)})"
        fused.append(f"cdef inline {r} {name}({p}) noexcept nogil:\n"
                     f"    if floating is float:\n        {call % 'f32'}\n"
                     f"    else:\n        {call % 'f64'}")
    return ("    ctypedef struct sc_api:\n        unsigned int version\n        unsigned int size\n"
            + "\n".join(members) + "\n\n"
            "# The function table (softmax_c.h's struct sc_api), from softmax_c.kernels.\n"
            "cdef const sc_api *get_api() noexcept nogil\n\n"
            "# ---- each entry per dtype: softmax_c.h's functions without the sc_ prefix ----\n\n"
            + "\n".join(inline) + "\n\n"
            "# ---- each entry fused over float and double -----------------------------------\n\n"
            + "\n".join(fused) + "\n")


def private_pxd(types, sigs, rows):
    names = ",\n".join(f"    {_fname(r)} as sc_{_fname(r)}" for r in rows)
    return f"from softmax_c.kernels cimport (\n    sc_xent_params,\n    sc_fused_params,\n    sc_xent_opts,\n{names},\n)\n"


def render():
    types, sigs, rows = read_manifest()
    out = {}
    for fname, body in (("kernels.pxd", kernels_pxd(types, sigs, rows)),
                        ("_kernels.pxd", private_pxd(types, sigs, rows))):
        tmpl = open(os.path.join(PKG, fname + ".in")).read()
        assert tmpl.count(MARK) == 1, fname
        head = (f"# GENERATED by csrc/gen_manifest.py from csrc/sc_kernels.def and "
                f"{fname}.in: do not edit.\n")
        out[os.path.join(PKG, fname)] = head + tmpl.replace(MARK + "\n", body)
    return out


def main(argv):
    stale = []
    for path, text in render().items():
        try:
            old = open(path).read()
        except FileNotFoundError:
            old = None
        if old != text:
            stale.append(path)
            if "--check" not in argv:
                with open(path, "w") as f:
                    f.write(text)
    if "--check" in argv and stale:
        print("stale: " + ", ".join(stale) + " (run python csrc/gen_manifest.py)")
        return 1
    for path in stale:
        print("wrote " + path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
