"""``gateway conformance list`` and ``gateway conformance run``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from gateway.conformance import csip_aus, report, suites
from gateway.conformance.cases import Outcome
from gateway.conformance.target import target_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the suites and their cases, with what each needs")
    listing.add_argument("--suite", choices=sorted(suites.SUITES), help="only this suite")
    _csip_aus_options(listing)
    run = actions.add_parser("run", help="run a suite against a target; exit 1 on any FAIL")
    run.add_argument("--suite", required=True, choices=sorted(suites.SUITES))
    run.add_argument(
        "--target",
        default="in-process",
        metavar="in-process|CMD",
        help="in-process (this gateway, the default) or a controller's command line; {site} "
        "in it is replaced by the case's site file (also in $CONFORMANCE_SITE); openadr3 also "
        "gives it the VTN in $OPENADR3_VTN, _CA, _CLIENT_ID, _CLIENT_SECRET, _PROGRAM, ...",
    )
    run.add_argument("--case", action="append", default=[], metavar="ID", help="repeatable")
    run.add_argument(
        "--report",
        type=Path,
        default=Path("conformance-report"),
        metavar="DIR",
        help="where the reports go: summary.json, junit.xml, report.html, evidence.jsonl",
    )
    _csip_aus_options(run)


def _csip_aus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--definitions",
        type=Path,
        metavar="PATH",
        help="csip-aus: the cactus-test-definitions wheel, or a directory of its client "
        "procedures' YAML (default: $CACTUS_TEST_DEFINITIONS, else the wheel in .peers/)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help=f"csip-aus: every duration of a procedure divided by X (default "
        f"{csip_aus.DEFAULT_SPEED:g}: a 60 s poll rate is 2 s)",
    )


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        csip_aus.configure(getattr(args, "definitions", None), getattr(args, "speed", None))
    except ValueError as e:
        print(f"gateway conformance: {e}", file=sys.stderr)
        return 2
    if args.action == "list":
        for name, cases in suites.SUITES.items():
            if args.suite and name != args.suite:
                continue
            out.write(f"suite {name}: {len(cases)} cases\n")
            for c in cases:
                state = f"NOT RUNNABLE: {c.not_run}" if c.run is None else f"~{c.expected_s:.0f} s"
                out.write(f"  {c.case_id:8} {c.title}\n           needs {c.needs}; {state}\n")
        return 0
    try:
        cases = suites.select(args.suite, args.case)
        target = target_for(args.target)
    except ValueError as e:
        print(f"gateway conformance: {e}", file=sys.stderr)
        return 2
    results = asyncio.run(
        suites.run(
            cases, target, args.report / "work", lambda line: print(line, file=out, flush=True)
        )
    )
    paths = report.write(args.report, args.suite, target.name, results)
    counted = ", ".join(f"{k} {v}" for k, v in report.counts(results).items())
    out.write(f"{args.suite} against {target.name}: {counted}\n")
    for p in paths:
        out.write(f"  {p}\n")
    return 1 if any(r.outcome in (Outcome.FAIL, Outcome.PARTIAL) for r in results) else 0
