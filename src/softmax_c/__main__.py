"""``python -m softmax_c bench [options]`` and ``python -m softmax_c info``."""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m softmax_c {bench,info} [options]  (bench --help for its options)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        from .bench import main as bench_main

        return bench_main(rest)
    if cmd == "info":
        from ._info import show_config

        show_config()
        return 0
    print(f"unknown command {cmd!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
