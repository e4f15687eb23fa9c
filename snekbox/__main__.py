"""Command line: evaluate code once, print its output, exit with its return code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from snekbox.nsjail import NsJail

__all__ = ("main", "parse_args")

PY_ARGS_SEPARATOR = "---"
STATS_FLAG = "--stats"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Split ``CODE [nsjail options...] [--- python args...]``.

    Unknown options are NsJail's; everything after ``---`` goes to Python, and the code is
    appended last so ``--- -m timeit`` times the code.
    """
    parser = argparse.ArgumentParser(
        prog="snekbox",
        description="Run Python code in the snekbox sandbox and print its output.",
        usage="%(prog)s [-h] [--stats] code [nsjail_args ...] [--- py_args ...]",
    )
    parser.add_argument("code", help="the Python code to evaluate")
    parser.add_argument(
        STATS_FLAG,
        action="store_true",
        help="after the output, print the run's status and usage to stderr",
    )
    parser.add_argument(
        "nsjail_args", nargs="*", help="NsJail options that override the config (default: none)"
    )
    parser.add_argument(
        "py_args", nargs="*", help="arguments for Python before the code (default: -c)"
    )
    argv = list(argv)
    py_args = ["-c"]
    if PY_ARGS_SEPARATOR in argv:
        split = argv.index(PY_ARGS_SEPARATOR)
        argv, py_args = argv[:split], argv[split + 1 :]
    stats = STATS_FLAG in argv
    argv = [arg for arg in argv if arg != STATS_FLAG]
    if not argv or argv[0] in ("-h", "--help"):
        parser.parse_args(argv)  # prints usage (and exits) for help or a missing code
    # NsJail options are passed through verbatim and in order; argparse would reorder them.
    return argparse.Namespace(code=argv[0], nsjail_args=argv[1:], py_args=py_args, stats=stats)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate the code from the command line and return the process's exit status."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = NsJail().python3([*args.py_args, args.code], nsjail_args=args.nsjail_args)
    sys.stdout.write(result.stdout)
    if result.stdout and not result.stdout.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if args.stats:
        sys.stderr.write(result.summary() + "\n")
    if result.returncode is None:
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
