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
    profiles = sub.add_parser("profiles", help="list, show and validate device profiles")
    actions = profiles.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the profiles shipped with the gateway")
    show = actions.add_parser("show", help="points, roles, watchdog and init of a profile")
    show.add_argument("targets", nargs="+", metavar="NAME_OR_PATH")
    validate = actions.add_parser("validate", help="check profile files; exit 1 on any problem")
    validate.add_argument("targets", nargs="+", metavar="FILE")
    actions.add_parser("schema", help="print the JSON Schema of the profile format")
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
    if args.command == "profiles":
        from gateway.south.profiles.cli_text import run

        return run(args.action, getattr(args, "targets", []), sys.stdout, sys.stderr)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
