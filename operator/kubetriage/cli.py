"""The `kubetriage` command line.

Each sub-command is a thin shell over the package: parse arguments, call one function, print.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kubetriage import __version__

DESCRIPTION = """\
kubetriage diagnoses failing Kubernetes workloads (CrashLoopBackOff, OOMKilled, ImagePullBackOff,
Pending, stuck rollouts), writes the root cause and its evidence into DiagnosisReport resources,
and escalates every change that would touch production as a Linear issue instead of applying it.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="kubetriage",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubetriage {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
