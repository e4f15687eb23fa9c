"""Command line: evaluate code once, print its output, exit with its return code.

``python -m snekbox CODE [nsjail options...] [--- python args...]``. Options between the code
and ``---`` go to NsJail verbatim and in order; everything after ``---`` goes to Python before
the code (``-c`` when there is no ``---``). ``--stats`` (ours) prints the run's status and
usage to stderr; it is taken out of the command line before parsing, so the parsed namespace
is exactly the original's ``code``, ``nsjail_args`` and ``py_args``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from snekbox.nsjail import NsJail

__all__ = ("main", "parse_args")

PY_ARGS_SEPARATOR = "---"
STATS_FLAG = "--stats"


def _split_argv() -> tuple[list[str], list[str] | None, bool]:
    """``sys.argv[1:]`` as (options and code, Python args or None without ``---``, stats)."""
    argv = sys.argv[1:]
    py_args: list[str] | None = None
    if PY_ARGS_SEPARATOR in argv:
        split = argv.index(PY_ARGS_SEPARATOR)
        argv, py_args = argv[:split], argv[split + 1 :]
    stats = STATS_FLAG in argv
    return [arg for arg in argv if arg != STATS_FLAG], py_args, stats


def parse_args() -> argparse.Namespace:
    """Parse ``sys.argv`` into ``code``, ``nsjail_args`` and ``py_args``.

    A missing code exits with status 2 and argparse's usage message, as any CLI would.
    """
    parser = argparse.ArgumentParser(
        prog="snekbox",
        description="Run Python code in the snekbox sandbox and print its output.",
        usage="%(prog)s [-h] [--stats] code [nsjail_args ...] [--- py_args ...]",
    )
    parser.add_argument("code", help="the Python code to evaluate")
    parser.add_argument(
        "nsjail_args",
        nargs="*",
        default=[],
        help="NsJail options that override the config (default: none)",
    )
    parser.add_argument(
        "py_args",
        nargs="*",
        default=["-c"],
        help="arguments for Python before the code (default: -c)",
    )
    parser.add_argument(
        STATS_FLAG, action="store_true", help="after the output, print the run's status to stderr"
    )
    argv, py_args, _ = _split_argv()
    if not argv or argv[0] in ("-h", "--help"):
        parser.parse_args(argv)  # prints the usage, and exits, for help or a missing code
    # NsJail options are passed through verbatim and in order; argparse would reorder them.
    return argparse.Namespace(
        code=argv[0], nsjail_args=argv[1:], py_args=["-c"] if py_args is None else py_args
    )


def main() -> None:
    """Evaluate the code from the command line; exit with the run's return code if not 0.

    A run that could not happen (no return code) exits with status 1, since its reason is
    already printed and 0 would claim success.
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args()
    result = NsJail().python3([*args.py_args, args.code], nsjail_args=args.nsjail_args)
    print(result.stdout)
    if _split_argv()[2]:
        sys.stderr.write(result.summary() + "\n")
    if result.returncode != 0:
        raise SystemExit(1 if result.returncode is None else result.returncode)


if __name__ == "__main__":
    main()
