"""A simulated home that matches a site file, on the addresses that file names.

``gateway simulate home SITE.toml`` serves it; ``gateway run SITE.toml`` in another terminal
then drives it exactly as it would a real installation. The home's physics takes the file's
supply (voltage, frequency, legs) and ratings (the charger's and the EV's, the PV's peak); a
home with no PV has none. What the simulator cannot be, it says: a serial port (rtu://),
more than one DER inverter.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from gateway.core import errors
from gateway.core.units import Timestamp
from gateway.runtime.run_config import DeviceEntry, RunConfig, RunConfigError, load
from gateway.sim.cli_home import serve, start_of
from gateway.sim.modbus import Address, SimulatedHome
from gateway.sim.physics import Charger, Grid, HomeBattery, HomePhysics, Load, Pv

#: A device's role -> the simulator's slot for it.
SLOT = {
    "meter_relay": "relay",
    "meter": "meter",
    "charger": "charger",
    "pv_inverter": "der",
    "battery_inverter": "der",
}


class CannotSimulateError(errors.ConfigError, ValueError):
    """The site file names something the simulated home cannot serve; the message says what."""


def _address(d: DeviceEntry) -> Address:
    parts = urlsplit(d.url)
    if parts.scheme not in ("tcp", "rtu+tcp") or parts.hostname is None or parts.port is None:
        msg = (
            f"device {d.name!r}: {d.url} is a serial port; the simulated home listens on TCP "
            "only (use rtu+tcp://127.0.0.1:PORT for RTU frames)"
        )
        raise CannotSimulateError(msg)
    unit = d.unit_id if d.unit_id is not None else d.profile.unit_id
    return Address(
        "rtu+tcp" if parts.scheme == "rtu+tcp" else "tcp", parts.hostname, parts.port, unit
    )


def home_for(config: RunConfig, *, start: Timestamp, speed: float) -> SimulatedHome:
    """The simulated home for ``config``'s devices, not started."""
    slots: dict[str, DeviceEntry] = {}
    followers: dict[str, DeviceEntry] = {}
    for d in config.devices:
        if d.role == "charger" and not d.forms_island:
            followers[d.name] = d  # one more EV, served under its own name
            continue
        slot = SLOT.get(d.role)
        if slot is None:
            msg = f"device {d.name!r}: the simulated home has no {d.role} apart from the relay"
            raise CannotSimulateError(msg)
        if slot in slots:
            msg = (
                f"devices {slots[slot].name!r} and {d.name!r}: the simulated home has one "
                f"{'DER inverter' if slot == 'der' else slot}"
            )
            raise CannotSimulateError(msg)
        slots[slot] = d
    rated = {r.der_id: r for r in config.site.ders}
    es, panel = config.site.enter_service, config.site.panel
    volts, hz = es.nominal_v, 60.0 if es.f_max_hz > 55 else 50.0
    physics = HomePhysics(
        now=start,
        load=Load(),
        grid=Grid(volts, hz),
        charger=Charger(island_voltage_v=volts, island_frequency_hz=hz, ramp_w_per_s=2_000.0),
        watts_per_amp=panel.nominal_voltage_v,  # what one leg-amp of DER carries
    )
    if (ev := slots.get("charger")) is not None:
        r = rated[ev.name]
        physics.charger.max_discharge_w, physics.charger.max_charge_w = (
            r.max_discharge_w,
            r.max_charge_w,
        )
        if r.capacity_wh is not None:
            physics.charger.capacity_wh = r.capacity_wh
    der = slots.get("der")
    if der is None or der.role != "pv_inverter":
        physics.pv = Pv(peak_w=0.0, limit_w=0.0)  # no PV at this home
    else:
        peak = rated[der.name].max_discharge_w
        physics.pv = Pv(peak_w=peak, limit_w=peak)
    if der is not None and der.role == "battery_inverter":
        r = rated[der.name]
        physics.battery = HomeBattery(
            capacity_wh=r.capacity_wh or 10_000.0,
            max_discharge_w=r.max_discharge_w,
            max_charge_w=r.max_charge_w,
        )
    for name in followers:
        r = rated[name]
        second = Charger(max_charge_w=r.max_charge_w, ramp_w_per_s=2_000.0)
        if r.capacity_wh is not None:
            second.capacity_wh = r.capacity_wh
        physics.followers[name] = second
    profiles = {slot: d.profile for slot, d in slots.items()}
    return SimulatedHome(
        relay=profiles.get("relay"),
        meter=profiles.get("meter"),
        charger=profiles.get("charger"),
        der=profiles.get("der"),
        physics=physics,
        start=start,
        speed=speed,
        layout={slot: _address(d) for slot, d in (slots | followers).items()},
        followers={name: d.profile for name, d in followers.items()},
    )


async def simulate(args: argparse.Namespace) -> int:
    """``gateway simulate home SITE.toml``: serve the file's home until SIGINT or SIGTERM."""
    try:
        config = load(Path(args.site))
        start = start_of(args)
        home = home_for(config, start=start, speed=1.0 if args.speed is None else args.speed)
    except RunConfigError as e:
        print(f"gateway simulate home: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # CannotSimulateError, a bad --start, two devices on one unit id
        print(f"gateway simulate home: {args.site}: {e}", file=sys.stderr)
        return 2
    print(f"simulated home of site {config.name}; now run: gateway run {args.site}", flush=True)
    return await serve(home, args, start)


#: The demo home's supply and panel (``demo.evening.demo_site``), as a site file's [site].
DEMO_SITE = """[site]
name = "{name}"
nominal_voltage_v = 240
frequency_hz = 60
phases = "split"
main_breaker_a = 200
busbar_a = 200
backfeed = {{ rule = "705.13" }}
period_s = {period_s}
backup_reserve_pct = 20

[site.enter_service]
delay_s = {delay_s}
"""
#: The demo home's ratings by simulator slot (as ``demo_site``'s DERs).
_RATINGS = {
    "charger": "max_discharge_w = 9600\nmax_charge_w = 9600\ncapacity_wh = 60000\n",
    "der": "max_discharge_w = 7000\n",
}
_ROLE = {"relay": "meter_relay", "charger": "charger", "der": "pv_inverter"}
_NAME = {"relay": "relay", "charger": "ev", "der": "pv"}


def site_file(
    home: SimulatedHome,
    *,
    name: str = "demo-home",
    period_s: float = 1.0,
    delay_s: float = 300.0,
    store: str = "gateway.db",
) -> str:
    """A site file for the demo home that ``home`` serves (started: its ports are known), with
    no utility link; append one ([sep2], [openadr2], [openadr3]) to follow a utility."""
    parts = [DEMO_SITE.format(name=name, period_s=period_s, delay_s=delay_s)]
    parts.extend(
        f'[[device]]\nname = "{_NAME[d.name]}"\nrole = "{_ROLE[d.name]}"\n'
        f'profile = "{d.profile}"\ntransport = "{d.url}"\nunit_id = {d.unit_id}\n'
        + _RATINGS.get(d.name, "")
        for d in home.describe()
    )
    parts.append(f'[store]\npath = "{store}"\n')
    return "\n".join(parts)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, for a site file to name. Held open together while
    they are chosen: a port closed and asked for again can come straight back (two devices
    on one port, one in a few hundred runs)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
