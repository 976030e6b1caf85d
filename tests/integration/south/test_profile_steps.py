"""Devices as they really are, end to end over Modbus TCP: the gateway's own drivers against the
simulated home serving the profile.

* dc-v2h-backup shows grid-forming only in its backup-status register, while its charge-state
  register keeps saying DISCHARGING or CHARGING; the state role reads both.
* The order of a charger's steps is the profile's: the simulated charger can refuse a stop
  while backup mode is on, or refuse to leave backup mode while it runs, so a profile with the
  wrong order fails its step (and the relay never closes onto a forming charger).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import (
    ChargerCommand,
    DerLimit,
    RelayCommand,
    WriteConfirmed,
    WriteFailed,
)
from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.runtime.south import DeviceConfig, South
from gateway.sim.modbus import SimulatedHome
from gateway.sim.physics import Charger as ChargerPhysics
from gateway.south.drivers.base import Confirmation
from gateway.south.profiles import load_shipped, shipped
from gateway.store.sqlite import SqliteStore

BACKUP = "dc-v2h-backup"
ISLAND = [
    DerLimit("1", "der", 0.0, 0.0, "island: no export"),
    ChargerCommand("2", ChargerMode.STOPPED, 0.0, "island: stop"),
    RelayCommand("3", RelayPosition.OPEN, "island: open"),
    ChargerCommand("4", ChargerMode.GRID_FORMING, 0.0, "island: form"),
]
RECONNECT = [
    ChargerCommand("5", ChargerMode.STOPPED, 0.0, "reconnect: stop"),
    RelayCommand("6", RelayPosition.CLOSED, "reconnect: close"),
    ChargerCommand("7", ChargerMode.GRID_FOLLOWING, 1_500.0, "discharge"),
]
Outcomes = dict[str, WriteConfirmed | WriteFailed]


def drive(
    charger: str,
    steps: list[DerLimit | ChargerCommand | RelayCommand],
    device: Callable[[ChargerPhysics], None] = lambda _c: None,
    *,
    registers: dict[str, object] | None = None,
) -> tuple[Outcomes, SimulatedHome]:
    """Run ``steps`` through South against the simulated home with ``charger``; each step's
    outcome by id, up to the first that fails. ``registers`` gets the charger's
    state registers, read over Modbus right after it was asked to form."""

    async def body() -> tuple[Outcomes, SimulatedHome]:
        async with SimulatedHome(charger=charger) as home:
            device(home.physics.charger)
            configs = [
                DeviceConfig(name, str(home.device(name).profile.source), url)
                if name == "charger"
                else DeviceConfig(name, home.device(name).profile.name, url)
                for name, url in home.endpoints.items()
            ]
            south = South(
                configs,
                now=home.clock.now,
                audit=lambda _record: None,
                confirm=Confirmation(timeout_s=1.0, poll_s=0.02),
            )
            out: Outcomes = {}
            try:
                assert await south.connect() == []
                for cmd in steps:
                    out[cmd.id] = await south.execute(cmd)
                    if isinstance(out[cmd.id], WriteFailed):
                        break  # as the engine: nothing goes on past a failed step
                    if cmd.id == "4" and registers is not None:
                        assert south.charger is not None
                        points = south.charger.binding("state").points
                        registers.update(await south.charger.device.read(*points))
                        seen = await south.observe()
                        assert seen.charger is not None
                        registers["mode"] = seen.charger.mode
            finally:
                await south.close()
            return out, home

    return asyncio.run(body())


def confirmed(out: Outcomes) -> bool:
    return all(isinstance(r, WriteConfirmed) for r in out.values())


# -- a state in two registers -------------------------------------------------------------------


def test_a_charger_that_shows_forming_only_in_its_backup_register_is_seen_forming() -> None:
    seen: dict[str, object] = {}
    out, home = drive(BACKUP, ISLAND + RECONNECT, registers=seen)
    assert confirmed(out), out
    profile = load_shipped(BACKUP)
    main, backup = profile.points["charge_state"], profile.points["backup_status"]
    # What a real one does: the main register says the power flows; only backup says forming.
    assert seen["charge_state"] in (main.symbols["DISCHARGING"], main.symbols["CHARGING"])
    assert seen["backup_status"] == backup.symbols["GRID_FORMING"]
    assert seen["mode"] is ChargerMode.GRID_FORMING
    assert home.physics.charger.mode is ChargerMode.GRID_FOLLOWING
    assert home.violations == []


def reordered(tmp_path: Path, *, drop_backup: bool) -> str:
    """The example with the charge-state register read first (or alone): a profile whose
    precedence is wrong, as a vendor might write it."""
    text = shipped()[BACKUP].read_text(encoding="utf-8")
    backup = (
        '[[roles.state.points]]\npoint = "backup_status"\nstates.forming = ["GRID_FORMING"]\n'
        'states.fault = ["BACKUP_FAULT"]\n\n'
    )
    assert backup in text
    text = text.replace(backup, "")
    if drop_backup:
        text = text.replace("[[roles.state.points]]\n", "[roles.state]\n")
        text = text.replace('states.stopped = ["IDLE"]', 'states.stopped = ["IDLE"]\n# no forming')
    else:
        text = text.replace("\n[sequences]", "\n" + backup.replace("\n\n", "\n") + "\n[sequences]")
    path = tmp_path / ("main-only.toml" if drop_backup else "main-first.toml")
    path.write_text(text.replace(f'name = "{BACKUP}"', 'name = "reordered"'), encoding="utf-8")
    return str(path)


def test_reading_the_main_state_register_first_never_sees_forming(tmp_path: Path) -> None:
    """The simulator serves each register as the device would, not as the profile expects:
    with charge_state first, DISCHARGING decides and the forming confirmation times out."""
    out, home = drive(reordered(tmp_path, drop_backup=False), ISLAND)
    failed = out["4"]
    assert isinstance(failed, WriteFailed)
    assert "state still reads discharging after 1 s, expected forming" in failed.error
    assert home.violations == []


# -- the order of the steps ---------------------------------------------------------------------


def refuses_stop_in_backup(c: ChargerPhysics) -> None:
    c.refuses_stop_in_backup = True


def refuses_backup_off_running(c: ChargerPhysics) -> None:
    c.refuses_backup_off_running = True


@pytest.mark.parametrize(
    ("charger", "device", "works"),
    [
        pytest.param(BACKUP, refuses_stop_in_backup, True, id="backup-off-first-on-its-device"),
        pytest.param(
            "wallbox-quasar", refuses_stop_in_backup, False, id="stop-first-on-the-wrong-device"
        ),
        pytest.param(
            "wallbox-quasar", refuses_backup_off_running, True, id="stop-first-on-its-device"
        ),
        pytest.param(
            BACKUP, refuses_backup_off_running, False, id="backup-off-first-on-the-wrong-device"
        ),
    ],
)
def test_leaving_grid_forming_follows_the_profiles_order(
    charger: str, device: Callable[[ChargerPhysics], None], *, works: bool
) -> None:
    out, home = drive(charger, ISLAND + RECONNECT, device)
    assert all(isinstance(out[c.id], WriteConfirmed) for c in ISLAND), out
    stop = out["5"]
    if works:
        assert confirmed(out), out
    else:
        assert isinstance(stop, WriteFailed)
        assert "Modbus exception 3 (ILLEGAL DATA VALUE)" in stop.error
    assert home.violations == []


@pytest.mark.parametrize("charger", [BACKUP, "wallbox-quasar"])
def test_the_engine_reconnects_a_charger_that_refuses_a_stop_in_backup_mode_only_in_order(
    tmp_path: Path, charger: str
) -> None:
    """The whole gateway: outage, island, grid back, enter-service wait, reconnect. With the
    Quasar's order (stop first) the reconnect cannot finish, and the relay stays open."""

    async def body() -> tuple[Phase, list[str], ChargerMode, RelayPosition]:
        with SqliteStore(tmp_path / "gateway.db") as store:
            async with ModbusSite(store, demo_site(), start=START, charger=charger) as site:
                assert site.problems == []
                site.home.physics.charger.refuses_stop_in_backup = True

                async def run_for(seconds: float) -> None:
                    # With the keep-alives the runtime sends (run_for steps the clock alone).
                    for _ in range(int(seconds // 10)):
                        await site.run_for(10)
                        for driver in site.south.drivers:
                            await driver.refresh_watchdog()

                await run_for(30)
                site.home.physics.grid.fail()
                await run_for(60)
                assert site.engine.phase is Phase.ISLANDED
                assert site.home.physics.charger.mode is ChargerMode.GRID_FORMING
                site.home.physics.grid.restore()
                await run_for(400)
                p = site.home.physics
                return site.engine.phase, p.violations, p.charger.mode, p.relay.position

    phase, violations, mode, relay = asyncio.run(body())
    assert violations == []
    if charger == BACKUP:
        assert (phase, relay) == (Phase.GRID_CONNECTED, RelayPosition.CLOSED)
        assert mode is not ChargerMode.GRID_FORMING
    else:
        assert (phase, relay) == (Phase.FAULT, RelayPosition.OPEN), phase
