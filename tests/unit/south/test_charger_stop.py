"""The charger's stop step on the islanding path: what goes on the wire, and when grid-forming
is switched off (wallbox-quasar, whose backup mode is a register of its own).

The stop is "write stop, read the state until it says stopped, read the power": three round
trips. Switching grid-forming off is a fourth, needed only when it may be on: after connect,
and after the driver asked for it to be on. The link is a dictionary that logs every request.
"""

from __future__ import annotations

import asyncio

from fake_link import RegisterLink, no_sleep

from gateway.core.island import ChargerMode
from gateway.core.messages import ChargerCommand, WriteConfirmed
from gateway.south.device import Device, WriteRecord
from gateway.south.drivers.base import Confirmation
from gateway.south.drivers.charger import Charger
from gateway.south.profiles import load_shipped
from gateway.south.registers import Table

QUASAR = load_shipped("wallbox-quasar")
STATE = QUASAR.point_for("state")
BACKUP = QUASAR.point_for("grid_forming_on").address


def quasar() -> tuple[Charger, RegisterLink]:
    link, records = RegisterLink(), list[WriteRecord]()
    device = Device("ev", QUASAR, link, audit=records.append, now=lambda: 1.0)
    charger = Charger(device, now=lambda: 1.0, confirm=Confirmation(0.0, 0.0), sleep=no_sleep)
    return charger, link


def run(
    charger: Charger, link: RegisterLink, mode: ChargerMode, shows: str
) -> list[tuple[str, int]]:
    """One command, with the device showing state ``shows``; the requests it took."""
    link.show(STATE, shows)
    link.clear()
    result = asyncio.run(charger.execute(ChargerCommand("c", mode, 0.0, "test")))
    assert isinstance(result, WriteConfirmed), result
    return link.round_trips


def test_grid_forming_is_switched_off_at_the_first_stop_and_not_again_while_it_stays_off() -> None:
    charger, link = quasar()
    first = run(charger, link, ChargerMode.STOPPED, "PAUSED")
    assert first[-1] == ("write", BACKUP)
    assert (link.regs[(Table.HOLDING, BACKUP)], len(first)) == (0, 4)
    # The islanding path's stop: write stop, state read, power read; nothing else.
    again = run(charger, link, ChargerMode.STOPPED, "PAUSED")
    assert ("write", BACKUP) not in again
    assert len(again) == 3


def test_after_forming_or_a_reconnect_the_next_stop_switches_grid_forming_off_again() -> None:
    charger, link = quasar()
    run(charger, link, ChargerMode.STOPPED, "PAUSED")
    run(charger, link, ChargerMode.GRID_FORMING, "BACKUP")
    assert link.regs[(Table.HOLDING, BACKUP)] == 1
    assert run(charger, link, ChargerMode.STOPPED, "PAUSED")[-1] == ("write", BACKUP)
    assert link.regs[(Table.HOLDING, BACKUP)] == 0
    asyncio.run(charger.connect())  # the device may have rebooted with it on
    assert run(charger, link, ChargerMode.STOPPED, "PAUSED")[-1] == ("write", BACKUP)


class SlowLink(RegisterLink):
    """Every read takes one second of the drivers' clock to come back."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock

    async def read(
        self, device_id: int, table: Table, address: int, count: int, **_: object
    ) -> list[int]:
        self.clock[0] += 1.0
        return await super().read(device_id, table, address, count)


def test_telemetry_is_stamped_when_its_request_left_not_when_the_reply_was_handled() -> None:
    """A reading is no newer than its request. A telemetry read queued behind a relay "open"
    write used to be stamped after the open's confirmation, so its stale CLOSED looked newer
    and tripped the forming interlock (found by bench/sep2_notify.py)."""
    from gateway.south.drivers.meter_relay import MeterRelay

    clock = [100.0]
    for name, kind in (("wallbox-quasar", Charger), ("meter-collar-relay", MeterRelay)):
        link, records = SlowLink(clock), list[WriteRecord]()
        device = Device(name, load_shipped(name), link, audit=records.append, now=lambda: 0.0)
        driver = kind(device, now=lambda: clock[0])
        before = clock[0]
        got = asyncio.run(driver.observe())
        readings = got if isinstance(got, tuple) else (got,)
        assert clock[0] > before  # the reads took time ...
        assert [r.at for r in readings if r is not None] == [before] * len(readings)  # ... not in
