"""`python -m minicaffe.prototxt`: check prototxt files, or write a net/solver in current form.

    python -m minicaffe.prototxt check FILE...      parse each file; print OK or the error
    python -m minicaffe.prototxt upgrade IN [OUT]   like Caffe's upgrade_net_proto_text /
                                                    upgrade_solver_proto_text (stdout without OUT)

A file whose name contains "solver" is read as a SolverParameter, anything else as a net.
Exit status 1 if any file fails.
"""
import argparse
import sys
import warnings

from minicaffe.errors import ParseError
from minicaffe.prototxt.reader import read_net, read_solver
from minicaffe.prototxt.writer import to_text


def _read(path):
    return read_solver(path) if "solver" in path.rsplit("/", 1)[-1] else read_net(path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m minicaffe.prototxt", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="parse files and report errors")
    check.add_argument("files", nargs="+")
    upgrade = sub.add_parser("upgrade", help="write a file in the current form")
    upgrade.add_argument("input")
    upgrade.add_argument("output", nargs="?")
    args = ap.parse_args(argv)

    if args.command == "check":
        failed = 0
        for path in args.files:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    _read(path)
                except ParseError as exc:
                    failed += 1
                    print(f"FAIL {exc}", file=sys.stderr)
                    continue
            print(f"OK   {path}" + (f" ({len(caught)} warning(s))" if caught else ""))
            for w in caught:
                print(f"     warning: {w.message}")
        return 1 if failed else 0

    try:
        text = to_text(_read(args.input))
    except ParseError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
