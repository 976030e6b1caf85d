"""The gateway command line: run a home from a site file, simulate its devices and its utility,
run the conformance suites, mint a test PKI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="the embedded demo (make demo: an evening on loopback), or an older scenario"
    )
    demo.add_argument(
        "name",
        metavar="NAME",
        choices=["evening", "utility", "site"],
        nargs="?",
        default=None,
        help="none (make demo): the embedded demo, the whole installation on loopback "
        "(simulated home, 2030.5 utility, OpenADR 3 VTN, the gateway and its dashboard) "
        "playing an evening, with a "
        "live timeline and checks (docs/demo.md); evening: outage and island on the EV "
        "(simulated clock); utility: following a 2030.5 server; site: a site file, its "
        "simulated home and gateway run, on the wall clock",
    )
    demo.add_argument(
        "--speed",
        default=None,
        metavar="X",
        help="embedded demo: how much faster than the default the script and the home's "
        "clock run (a number above 0, at most 100; default 1), or max: as fast as the "
        "gateway's real timing allows",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="embedded demo: stop after S seconds of wall time even if the script has not "
        "ended (its checks then fail); default: no bound",
    )
    demo.add_argument(
        "--scenario",
        dest="scenario_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="embedded demo: play this TOML or JSON scenario instead of the built-in evening "
        "(its format: docs/demo.md)",
    )
    demo.add_argument(
        "--modbus",
        action="store_true",
        help="drive the simulated home over real Modbus sockets (profiles, drivers, read-back)",
    )
    demo.add_argument(
        "--charger",
        default=None,
        metavar="NAME_OR_FILE",
        help="with --modbus: the charger profile to simulate and drive (default wallbox-quasar)",
    )
    demo.add_argument("--rtu", action="store_true", help="with --modbus: RTU framing over TCP")
    docs = sub.add_parser("docs", help="regenerate the diagrams in docs/architecture.md")
    docs.add_argument("--check", action="store_true", help="only check that they are current")
    docs.add_argument(
        "--path",
        type=Path,
        default=Path("docs/architecture.md"),
        help="the document (default docs/architecture.md)",
    )
    profiles = sub.add_parser("profiles", help="list, show and validate device profiles")
    actions = profiles.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the profiles shipped with the gateway")
    show = actions.add_parser("show", help="points, roles, watchdog and init of a profile")
    show.add_argument("targets", nargs="+", metavar="NAME_OR_PATH", help="profiles to show")
    validate = actions.add_parser("validate", help="check profile files; exit 1 on any problem")
    validate.add_argument("targets", nargs="+", metavar="FILE", help="profile files to check")
    actions.add_parser("schema", help="print the JSON Schema of the profile format")
    lfdi = sub.add_parser("lfdi", help="the IEEE 2030.5 LFDI and SFDI of certificate files")
    from gateway.north.sep2.cli_lfdi import add_arguments as add_lfdi_arguments

    add_lfdi_arguments(lfdi)
    certs = sub.add_parser("certs", help="a 2030.5 test PKI (never for production keys)")
    from gateway.north.sep2.pki import add_arguments as add_certs_arguments

    add_certs_arguments(certs)
    check = sub.add_parser("check-config", help="check site files; exit 1 on any problem")
    check.add_argument(
        "paths", nargs="*", type=Path, metavar="SITE.toml", help="site files to check"
    )
    check.add_argument("--schema", action="store_true", help="print the site file's JSON Schema")
    run = sub.add_parser("run", help="drive the home a site file describes, and its utility links")
    run.add_argument("config", type=Path, help="the site file (TOML; see docs/site.md)")
    run.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="log everything ([log] level = debug)"
    )
    reset = sub.add_parser(
        "fault-reset", help="ask the running gateway to leave FAULT (refused while it persists)"
    )
    from gateway.runtime.cli_fault import add_arguments as add_fault_arguments

    add_fault_arguments(reset)
    conformance = sub.add_parser(
        "conformance", help="the conformance suites: judge a controller from the wire"
    )
    from gateway.conformance.cli import add_arguments as add_conformance_arguments

    add_conformance_arguments(conformance)
    simulate = sub.add_parser("simulate", help="run a simulator for vendors and test tools")
    what = simulate.add_subparsers(dest="what", required=True)
    home = what.add_parser(
        "home", help="the simulated home's Modbus devices (relay, charger, PV) on loopback"
    )
    from gateway.sim.cli_home import add_arguments

    add_arguments(home)
    utility = what.add_parser(
        "utility", help="a 2030.5 utility server (mutual TLS) for a gateway to talk to"
    )
    from gateway.sim.utility.cli_utility import add_arguments as add_utility_arguments

    add_utility_arguments(utility)
    vtn = what.add_parser(
        "vtn", help="an OpenADR VTN (2.0b through openleadr, or 3) for a gateway to talk to"
    )
    from gateway.sim.cli_vtn import add_arguments as add_vtn_arguments

    add_vtn_arguments(vtn)
    return parser


def _embedded_demo(args: argparse.Namespace) -> int:
    """``gateway demo`` with no scenario name: the embedded demo (ScenarioError: exit 2)."""
    import asyncio

    from gateway.demo import scenario
    from gateway.demo.embedded import run_embedded

    speed = scenario.speed_of(args.speed) if args.speed is not None else 1.0
    if args.duration is not None and not args.duration > 0:
        raise scenario.ScenarioError(f"--duration {args.duration:g}: must be above 0 seconds")
    steps = scenario.DEFAULT if args.scenario_file is None else scenario.load(args.scenario_file)
    return asyncio.run(run_embedded(sys.stdout, steps, speed=speed, duration_s=args.duration))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gateway")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
        return "(not installed)"


def _pointless(args: argparse.Namespace) -> str | None:
    """A flag given where it has no effect: an error, never silently ignored."""
    if args.command == "demo":
        modbus_only = [f for f, on in (("--rtu", args.rtu), ("--charger", args.charger)) if on]
        if not args.modbus and modbus_only:
            verb = "works" if len(modbus_only) == 1 else "work"
            return f"{' and '.join(modbus_only)} only {verb} with --modbus"
        if args.modbus and args.name not in (None, "evening"):
            return f"--modbus is for the evening scenario, not {args.name!r}"
        embedded = [
            f
            for f, on in (
                ("--speed", args.speed is not None),
                ("--duration", args.duration is not None),
                ("--scenario", args.scenario_file is not None),
            )
            if on
        ]
        if args.name is not None and embedded:
            return f"{embedded[0]} is for the embedded demo (gateway demo with no scenario name)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from gateway._warnings import quiet_third_party
    from gateway.core.errors import ConfigError

    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    if (why := _pointless(args)) is not None:
        parser.error(why)
    try:
        return _dispatch(args)
    except ConfigError as e:  # a bad profile, site file, TLS file or port: a message, no traceback
        print(f"gateway {args.command}: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        if args.name is None and not args.modbus:
            return _embedded_demo(args)
        if args.name == "site":
            import asyncio

            from gateway.demo.two_terminals import run_site_demo

            return asyncio.run(run_site_demo(sys.stdout))
        if args.name == "utility":
            import asyncio

            from gateway.demo.utility import run_utility_demo

            return asyncio.run(run_utility_demo(sys.stdout))
        if args.modbus:
            import asyncio

            from gateway.demo.modbus_evening import run_modbus_evening

            return asyncio.run(
                run_modbus_evening(
                    sys.stdout,
                    charger=args.charger or "wallbox-quasar",
                    framer="rtu" if args.rtu else "socket",
                )
            )
        from gateway.demo.evening import run_evening

        return run_evening(sys.stdout)
    if args.command == "conformance":
        from gateway.conformance.cli import main as conformance_main

        return conformance_main(args)
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
    if args.command == "lfdi":
        from gateway.north.sep2.cli_lfdi import run as run_lfdi

        return run_lfdi(args, sys.stdout, sys.stderr)
    if args.command == "certs":
        from gateway.north.sep2.pki import run as run_certs

        return run_certs(args, sys.stdout, sys.stderr)
    if args.command == "run":
        return _run(args)
    if args.command == "check-config":
        from gateway.runtime.cli_check import run as check_config

        if not args.paths and not args.schema:
            print("gateway check-config: name a site file (or --schema)", file=sys.stderr)
            return 2
        return check_config(args.paths, schema=args.schema, out=sys.stdout, err=sys.stderr)
    if args.command == "fault-reset":
        from gateway.runtime.cli_fault import run as run_fault_reset

        return run_fault_reset(args, sys.stdout, sys.stderr)
    if args.command == "simulate":
        import asyncio

        if args.what == "utility":
            from gateway.sim.utility.cli_utility import run as simulate_utility

            return asyncio.run(simulate_utility(args))
        if args.what == "vtn":
            from gateway.sim.cli_vtn import run as simulate_vtn

            return asyncio.run(simulate_vtn(args))
        if args.site is not None:
            from gateway.demo.site_home import simulate

            return asyncio.run(simulate(args))
        from gateway.sim.cli_home import run as simulate_home

        return asyncio.run(simulate_home(args))
    return 2  # pragma: no cover - argparse enforces the choices


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from gateway.core.errors import ConfigError
    from gateway.runtime.cli_run import run
    from gateway.runtime.logs import configure
    from gateway.runtime.run_config import RunConfigError, load

    logging.basicConfig(level=logging.WARNING)
    try:
        config = load(args.config)
    except RunConfigError as e:
        print(e, file=sys.stderr)
        print(f"(gateway check-config {args.config} lists the same)", file=sys.stderr)
        return 2
    configure(config.name, config.log.format, "debug" if args.verbose else config.log.level)
    try:
        return asyncio.run(run(config, sys.stdout, seconds=args.seconds))
    except ConfigError as e:  # a TLS file, a port: found only when the gateway starts
        print(f"gateway run: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
