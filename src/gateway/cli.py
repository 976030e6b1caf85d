"""The ``gateway`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a scripted scenario on a simulated clock")
    demo.add_argument("scenario", choices=["evening"], nargs="?", default="evening")
    docs = sub.add_parser("docs", help="regenerate the diagrams in docs/architecture.md")
    docs.add_argument("--check", action="store_true", help="only check that they are current")
    docs.add_argument("--path", type=Path, default=Path("docs/architecture.md"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from gateway.runtime.demo import run_evening

        return run_evening(sys.stdout)
    if args.command == "docs":
        from gateway.runtime.docgen import update

        current = update(args.path, check=args.check)
        if args.check and not current:
            print(f"{args.path}: diagrams are out of date; run 'gateway docs'", file=sys.stderr)
            return 1
        return 0
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
