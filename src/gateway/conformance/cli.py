"""``gateway conformance list`` and ``gateway conformance run``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from gateway.conformance import csip_aus, profile, report, sep2_server, suites
from gateway.conformance.cases import Outcome
from gateway.conformance.target import target_for
from gateway.core.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the suites and their cases, with what each needs")
    listing.add_argument("--suite", choices=sorted(suites.SUITES), help="only this suite")
    _csip_aus_options(listing)
    run = actions.add_parser("run", help="run a suite against a target; exit 1 on any FAIL")
    run.add_argument(
        "--suite", required=True, choices=sorted(suites.SUITES), help="the suite to run"
    )
    run.add_argument(
        "--target",
        default="in-process",
        metavar="in-process|CMD|HOST:PORT[/UNIT]|URL",
        help="in-process (this gateway, the default) or a controller's command line; {site} "
        "in it is replaced by the case's site file (also in $CONFORMANCE_SITE). --suite "
        "profile: the device, HOST:PORT[/UNIT] or a transport URL as a site file names it "
        "(tcp://, rtu+tcp://HOST:PORT[/UNIT], rtu:///dev/ttyUSB0?baudrate=9600). --suite "
        "sep2-server: the server's https://HOST:PORT/dcap. openadr3 also gives a command the VTN "
        "in $OPENADR3_VTN, _CA, _CLIENT_ID, _CLIENT_SECRET, _PROGRAM, ...",
    )
    run.add_argument("--case", action="append", default=[], metavar="ID", help="repeatable")
    run.add_argument(
        "--report",
        type=Path,
        default=Path("conformance-report"),
        metavar="DIR",
        help="where the reports go: summary.json, junit.xml, report.html, evidence.jsonl "
        "(default %(default)s)",
    )
    _csip_aus_options(run)
    _profile_options(run)
    sep2_server.add_options(run)
    run.set_defaults(own_defaults={dest: run.get_default(dest) for dest in OWNED})


#: The options that mean something to one suite only: given to another, they are an error
#: (a flag with no effect is never silently ignored).
OWNED: dict[str, str] = {
    "definitions": csip_aus.SUITE,
    "speed": csip_aus.SUITE,
    "profile": profile.SUITE,
    "unit": profile.SUITE,
    "allow_relay": profile.SUITE,
    "allow_charge": profile.SUITE,
    **dict.fromkeys(sep2_server.OPTIONS, sep2_server.SUITE),
}


def _pointless(args: argparse.Namespace) -> str | None:
    for dest, suite in OWNED.items():
        given = getattr(args, dest, None) != args.own_defaults.get(dest)
        if given and args.suite != suite:
            return f"--{dest.replace('_', '-')} is for --suite {suite}, not {args.suite}"
    return None


def _profile_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "--suite profile (it WRITES to the device: for a bench device, not a live home; it "
        "writes only safe values and restores what it changed)"
    )
    group.add_argument("--profile", metavar="NAME_OR_FILE", help="the device's profile")
    group.add_argument("--unit", type=int, metavar="N", help="unit id (default: the profile's)")
    group.add_argument(
        "--allow-relay", action="store_true", help="PRF-06 opens the relay and recloses it"
    )
    group.add_argument(
        "--allow-charge",
        type=float,
        default=0.0,
        metavar="W",
        help="PRF-05 on a charger charges the EV at W watts (never discharges) to see its "
        "watchdog stop it (default 0: not run)",
    )


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
    if args.action == "run" and (why := _pointless(args)) is not None:
        print(f"gateway conformance: {why}", file=sys.stderr)
        return 2
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
        target = (
            profile.target_from(
                args.target,
                args.profile,
                args.unit,
                profile.Options(args.allow_relay, args.allow_charge),
            )
            if args.suite == profile.SUITE
            else sep2_server.target_from(args)
            if args.suite == sep2_server.SUITE
            else target_for(args.target)
        )
    except (ValueError, ConfigError) as e:
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
