"""``python -m softmax_c bench [options]`` and ``python -m softmax_c info``."""
import sys

USAGE = """\
usage: python -m softmax_c {bench,info} [options]
  bench   time softmax_c against NumPy and the installed peers (bench --help for its options)
  info    the build's configuration (show_config())"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        from .bench import main as bench_main

        return bench_main(rest)
    if cmd == "info":
        if rest:
            print(f"python -m softmax_c info: error: takes no options, got {' '.join(rest)!r}",
                  file=sys.stderr)
            return 2
        from ._info import show_config

        show_config()
        return 0
    print(f"python -m softmax_c: error: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
