"""``gateway simulate utility``: a 2030.5 utility server on loopback, until Ctrl-C.

``--certs DIR`` is a PKI from ``gateway certs init DIR`` (the server presents ``server.*``,
trusts ``serca.pem``). Without ``--scenario`` every device certificate in DIR is registered
(PIN 111115) with one program (primacy 1) whose DefaultDERControl allows 5 kW export and
10 kW import; with one, the TOML file says it all (:mod:`gateway.sim.utility.scenario`) and
its timed steps play in server time. ``--record FILE.jsonl`` writes every exchange as a line.
``--notify-without-certificate`` and ``--aggregator NAME`` play two habits of the reference
CSIP-AUS server (bsgip/envoy): notifications POSTed without a client certificate, and an
aggregator's own EndDevice ``/edev/0`` holding the only SubscriptionListLink.
``--port 0`` lets the OS choose a port: the ``2030.5 utility server at https://HOST:PORT/dcap``
line (flushed as soon as it listens) says which. SIGINT or SIGTERM stops it cleanly (exit 0).
``--admin-port N`` also serves the runtime admin interface (:mod:`gateway.sim.utility.admin`,
JSON over plain HTTP on 127.0.0.1 only), announced as ``admin interface at http://...``;
``--empty`` starts with no EndDevice and no program, for a harness that builds them through it.
``--admin-port N`` also serves the runtime admin interface (:mod:`gateway.sim.utility.admin`,
JSON over plain HTTP on 127.0.0.1 only), announced as ``admin interface at http://...``;
``--empty`` starts with no EndDevice and no program, for a harness that builds them through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gateway.north.sep2 import identity
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.sim.utility.admin import AdminServer
from gateway.sim.utility.recorder import Exchange, Recorder
from gateway.sim.utility.scenario import Scenario, ScenarioError
from gateway.sim.utility.server import UtilityServer
from gateway.sim.utility.state import UtilityState

_NOT_DEVICES = ("server", "rogue-", "comm-004", "serca", "mca", "mica")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--certs", type=Path, required=True, metavar="DIR", help="the test PKI")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8443, help="port (default %(default)s; 0: the OS chooses)"
    )
    parser.add_argument("--scenario", type=Path, metavar="FILE.toml", help="what to serve")
    parser.add_argument("--record", type=Path, metavar="FILE.jsonl", help="log every exchange")
    parser.add_argument(
        "--notify-without-certificate",
        action="store_true",
        help="POST notifications presenting no client certificate (the reference server's "
        "default); the gateway then needs [sep2.notify] require_certificate = false",
    )
    parser.add_argument(
        "--aggregator",
        metavar="NAME",
        help="the device certificate NAME in --certs is an aggregator with an EndDevice of its "
        "own (/edev/0, the only SubscriptionListLink), as the reference server serves one",
    )
    parser.add_argument(
        "--notify-retries",
        type=int,
        default=3,
        metavar="N",
        help="retry an unanswered or 5xx Notification N times (default 3), waiting "
        "--notify-backoff seconds, doubling each time (9 from 1 s: 511 s in all)",
    )
    parser.add_argument(
        "--notify-backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="the first wait before retrying a Notification (default 1)",
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        metavar="PORT",
        help="also serve the runtime admin interface (JSON over HTTP, 127.0.0.1 only, no "
        "authentication; docs/utility-admin.md) on PORT (0: the OS chooses)",
    )
    parser.add_argument(
        "--empty",
        action="store_true",
        help="register no EndDevice and no program at start (build them with the admin "
        "interface or in-band registration)",
    )


def _device_names(certs: Path) -> list[str]:
    return sorted(
        p.stem
        for p in certs.glob("*.pem")
        if not p.stem.endswith("-chain") and not p.stem.startswith(_NOT_DEVICES)
    )


def _cert_lfdi(certs: Path) -> Callable[[str], str]:
    def lookup(name: str) -> str:
        return identity.Identity.from_certificate((certs / f"{name}.pem").read_bytes()).lfdi

    return lookup


def setup(state: UtilityState, args: argparse.Namespace, out: TextIO) -> Scenario | None:
    lookup = _cert_lfdi(args.certs)
    if getattr(args, "aggregator", None):
        key = state.add_aggregator(lookup(args.aggregator), end_device=True)
        print(f"  aggregator {args.aggregator}: its EndDevice /edev/0  LFDI {key}", file=out)
    if getattr(args, "empty", False):
        return None
    if args.scenario is None:
        for name in _device_names(args.certs):
            if name == getattr(args, "aggregator", None):
                continue
            edev = state.add_end_device(lookup(name))
            print(f"  EndDevice /edev/{edev.number}  {name}  LFDI {edev.lfdi}", file=out)
        base = DERControlBase(
            opModExpLimW=ActivePower.from_watts(5000), opModImpLimW=ActivePower.from_watts(10000)
        )
        p = state.add_program("default", primacy=1, default=DefaultDERControl("0", base))
        print(f"  DERProgram /derp/{p.key}  primacy 1, default export 5 kW import 10 kW", file=out)
        return None
    scenario = Scenario.parse(tomllib.loads(args.scenario.read_text()))
    names = scenario.apply(state, lookup)
    for edev in state.end_devices:
        print(f"  EndDevice /edev/{edev.number}  LFDI {edev.lfdi}  PIN {edev.pin}", file=out)
    for name, mrid in names.items():
        print(f"  {name}: {mrid}", file=out)
    for step in scenario.steps:
        print(f"  at +{step.at:g} s: {step.action} {dict(step.args)}", file=out)
    return scenario


async def _play(state: UtilityState, scenario: Scenario, out: TextIO) -> None:
    for step in scenario.steps:
        delay = scenario.t0 + step.at - state.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            print(f"+{step.at:g} s: {scenario.run_step(state, step)}", file=out, flush=True)
        except (ScenarioError, KeyError, ValueError) as exc:
            print(f"+{step.at:g} s: step failed: {exc}", file=out, flush=True)


async def _admin(state: UtilityState, args: argparse.Namespace, out: TextIO) -> AdminServer | None:
    if getattr(args, "admin_port", None) is None:
        return None
    admin = AdminServer(state, "127.0.0.1", args.admin_port)
    await admin.start()
    print(f"admin interface at {admin.url()}  (loopback only)", file=out, flush=True)
    return admin


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    state = UtilityState()
    recorder = Recorder()
    try:
        scenario = setup(state, args, out)
        s = args.certs
        server = UtilityServer(
            state,
            cert=s / "server.pem",
            key=s / "server.key",
            chain=s / "server-chain.pem",
            serca=s / "serca.pem",
            host=args.host,
            port=args.port,
            recorder=recorder,
            notify_with_certificate=not args.notify_without_certificate,
            notify_retries=getattr(args, "notify_retries", 3),
            notify_backoff=getattr(args, "notify_backoff", 1.0),
        )
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"gateway simulate utility: {exc}", file=sys.stderr)
        return 2
    record = args.record.open("a", encoding="utf-8") if args.record else None

    def sink(x: Exchange) -> None:
        line = f"{x.method} {x.path}{'?' + x.query if x.query else ''} -> {x.status}"
        print(line, file=out, flush=True)
        if record is not None:
            record.write(json.dumps(x.to_json()) + "\n")
            record.flush()

    recorder.sink = sink
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            # With --port 0 this line is how a caller learns the port: flushed at once.
            print(f"2030.5 utility server at {server.url()}  (server LFDI {server.lfdi})", file=out)
            print(
                "serves /dcap /tm /edev /derp /rsps /mup over mutual TLS; Ctrl-C stops",
                file=out,
                flush=True,
            )
            admin = await _admin(state, args, out)
            player = asyncio.create_task(_play(state, scenario, out)) if scenario else None
            await stop.wait()
            if player is not None:
                player.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await player
            if admin is not None:
                await admin.stop()
    except OSError as exc:  # a port in use, an address that is not ours
        print(f"gateway simulate utility: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if record is not None:
            record.close()
    print(f"stopped; {len(recorder.exchanges)} exchanges recorded", file=out, flush=True)
    return 0
