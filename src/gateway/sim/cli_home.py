"""``gateway simulate home``: the simulated home's Modbus devices on loopback, until Ctrl-C.

Prints one line per device (name, profile, URL, unit id), then a status line every few
simulated minutes. Point a gateway (or ``modpoll``) at the URLs; ``--speed 60`` makes the 300 s
enter-service delay take 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.core.units import Timestamp
from gateway.sim.clock import DEFAULT_START
from gateway.sim.physics import GridStep, HomePhysics
from gateway.south.errors import ProfileError
from gateway.south.profile import DeviceKind, Profile
from gateway.south.profiles import find

if TYPE_CHECKING:
    from gateway.sim.modbus import SimulatedHome

_SLOT = {DeviceKind.METER_RELAY: "relay", DeviceKind.CHARGER: "charger", DeviceKind.DER: "der"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "site",
        nargs="?",
        metavar="SITE.toml",
        help="serve the home this site file describes, at the addresses it names "
        "(then: gateway run SITE.toml); without it, the default home on --port-base",
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME_OR_FILE",
        help="a shipped profile or a profile file; its kind picks the device it replaces "
        "(defaults: meter-collar-relay, wallbox-quasar, sunspec-der); repeatable",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=5020,
        help="relay on PORT, charger on PORT+1, DER on PORT+2 (default %(default)s; 0: the OS "
        "chooses)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="simulated seconds per real second (default 60; 1 with a site file: the gateway "
        "then runs on the same clock, and the devices' watchdogs count real seconds)",
    )
    parser.add_argument("--rtu", action="store_true", help="RTU framing over TCP")
    parser.add_argument(
        "--shared-port", action="store_true", help="all devices behind one port, by unit id"
    )
    parser.add_argument(
        "--single-client", action="store_true", help="each port accepts one client at a time"
    )
    parser.add_argument(
        "--outage-at",
        type=float,
        metavar="SECONDS",
        help="the grid fails this many simulated seconds after the start",
    )
    parser.add_argument(
        "--outage-for",
        type=float,
        metavar="SECONDS",
        help="and comes back after this long (default: it stays down)",
    )
    parser.add_argument(
        "--start",
        default=datetime.fromtimestamp(DEFAULT_START, UTC).isoformat(),
        help="simulated start instant, ISO 8601 with a UTC offset (default: %(default)s)",
    )
    parser.add_argument(
        "--status-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="simulated seconds between status lines (default %(default)s)",
    )


async def run(args: argparse.Namespace) -> int:
    # Imported here so that building the `gateway` parser does not load pymodbus.
    from gateway.sim.modbus import SimulatedHome

    try:
        start = _instant(args.start)
        slots = _profiles(args.profile)
        home = SimulatedHome(
            relay=slots.get("relay", "meter-collar-relay"),
            charger=slots.get("charger", "wallbox-quasar"),
            der=slots.get("der", "sunspec-der"),
            start=start,
            speed=60.0 if args.speed is None else args.speed,
            host=args.host,
            port_base=args.port_base or None,
            shared_port=args.shared_port,
            framer="rtu" if args.rtu else "socket",
            single_client=args.single_client,
        )
    except (ProfileError, ValueError) as exc:
        print(f"gateway simulate home: {exc}", file=sys.stderr)
        return 2
    return await serve(home, args, start)


def start_of(args: argparse.Namespace) -> Timestamp:
    return _instant(args.start)


async def serve(home: SimulatedHome, args: argparse.Namespace, start: Timestamp) -> int:
    """Serve ``home`` until SIGINT or SIGTERM, with the outage and status lines ``args`` ask."""
    if args.outage_at is not None:
        grid = home.physics.grid
        steps = [GridStep(start + args.outage_at, 0.0, 0.0)]
        if args.outage_for is not None:
            at = start + args.outage_at + args.outage_for
            steps.append(GridStep(at, grid.voltage_v, grid.frequency_hz))
        grid.play(steps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with home:
            for e in home.describe():
                print(f"{e.name:8} {e.profile:22} {e.url:28} unit {e.unit_id}", flush=True)
            real_period = args.status_every / home.clock.speed if home.clock.speed > 0 else 1.0
            while not stop.is_set():
                home.sync()
                print(status(home.physics), flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), real_period)
    except OSError as exc:  # a port in use, an address that is not ours
        print(f"gateway simulate home: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print(f"stopped; violations recorded: {len(home.violations)}", flush=True)
    for v in home.violations:
        print(f"  violation: {v}", flush=True)
    return 0


def status(p: HomePhysics) -> str:
    m, c = p.meter(), p.charger
    clock = datetime.fromtimestamp(p.now, UTC).strftime("%H:%M:%S")
    grid = f"{m.grid_voltage_v:.0f} V {m.grid_frequency_hz:.2f} Hz" if p.grid.up else "DOWN"
    charger = f"{p.charger_category()} {c.power_w:+.0f} W SoC {c.soc_pct:.1f} %"
    others = "".join(
        f"{name} {p.charger_category(f)} {f.power_w:+.0f} W | " for name, f in p.followers.items()
    )
    return (
        f"{clock}  grid {grid} | relay {p.relay_category()} | charger {charger} | {others}"
        f"pv {p.pv.power_w:.0f} W | load {p.served_load():.0f} W | net {m.net_w:+.0f} W | "
        f"violations {len(p.violations)}"
    )


def _instant(text: str) -> Timestamp:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        msg = f"--start {text!r} needs a UTC offset (e.g. 2026-11-25T16:30:00+00:00)"
        raise ValueError(msg)
    return at.timestamp()


def _profiles(refs: list[str]) -> dict[str, Profile]:
    slots: dict[str, Profile] = {}
    for ref in refs:
        profile = find(ref)
        slots[_SLOT[profile.kind]] = profile
    return slots
