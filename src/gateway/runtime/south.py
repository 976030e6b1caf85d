"""The south side assembled from configuration: endpoints, devices, drivers, keep-alives.

``South`` is what the runner talks to: one ``observe()`` for a telemetry snapshot of the whole
site, one ``execute(command)`` per engine device command, and ``keepalive()`` to refresh every
device's watchdog while the engine is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gateway.core.messages import (
    ChargerCommand,
    DerLimit,
    DerTelemetry,
    DeviceCommand,
    Direction,
    Observed,
    RelayCommand,
    WriteConfirmed,
    WriteFailed,
)
from gateway.runtime.logs import about
from gateway.south.device import AuditSink, Device
from gateway.south.drivers.base import Confirmation, DriverBase
from gateway.south.drivers.charger import Charger
from gateway.south.drivers.der import Der
from gateway.south.drivers.follower import FollowerCharger
from gateway.south.drivers.meter import Meter
from gateway.south.drivers.meter_relay import MeterRelay
from gateway.south.errors import DeviceError
from gateway.south.profile import DeviceKind, Profile
from gateway.south.profiles import find
from gateway.south.transport import Endpoint, Transports, urgent

log = logging.getLogger(__name__)
T = TypeVar("T")
# The roles a profile binds a device's own ratings to, and which rating each is.
_RATING_ROLES: tuple[tuple[str, Direction], ...] = (
    ("rated_w", "discharge"),
    ("rated_charge_w", "charge"),
)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device in the site file: which profile, where, and (for DER) its id in the engine."""

    name: str
    profile: str  # a shipped profile name or a path to a TOML file
    url: str  # tcp://host:port | rtu+tcp://host:port | rtu:///dev/ttyUSB0?baudrate=9600
    unit_id: int | None = None
    der_id: str | None = None  # the engine's DER id (a DER's, the charger's); the device name
    # A charger: True for the one that forms the island (the engine's charger), False for one
    # that follows as a DER (south/drivers/follower.py).
    forms_island: bool = True


class South:
    def __init__(
        self,
        devices: Sequence[DeviceConfig],
        *,
        now: Callable[[], float],
        audit: AuditSink,
        confirm: Confirmation | None = None,
        profiles: dict[str, Profile] | None = None,
    ) -> None:
        self.transports = Transports()
        self.now = now
        self.relay: MeterRelay | None = None
        self.meter: Meter | None = None  # a site meter apart from the relay: its net power wins
        self.charger: Charger | None = None
        self.charger_id: str | None = None  # the engine's id of the charger (its DeviceConfig)
        self.ders: dict[str, Der | FollowerCharger] = {}
        self.drivers: list[DriverBase] = []
        for cfg in devices:
            profile = (profiles or {}).get(cfg.profile) or find(cfg.profile)
            device = Device(
                cfg.name,
                profile,
                self.transports.endpoint(cfg.url),
                audit=audit,
                now=now,
                unit_id=cfg.unit_id,
            )
            match profile.kind:
                case DeviceKind.METER_RELAY:
                    self.relay = MeterRelay(device, now=now, confirm=confirm)
                    self.drivers.append(self.relay)
                case DeviceKind.METER:
                    self.meter = Meter(device, now=now, confirm=confirm)
                    self.drivers.append(self.meter)
                case DeviceKind.CHARGER if not cfg.forms_island:
                    follower = FollowerCharger(device, now=now, confirm=confirm)
                    follower.der_id = cfg.der_id or cfg.name
                    self.ders[follower.der_id] = follower
                    self.drivers.append(follower)
                case DeviceKind.CHARGER:
                    self.charger = Charger(device, now=now, confirm=confirm)
                    self.charger_id = cfg.der_id or cfg.name
                    self.drivers.append(self.charger)
                case DeviceKind.DER:
                    der = Der(device, now=now, confirm=confirm)
                    der.der_id = cfg.der_id or cfg.name
                    self.ders[der.der_id] = der
                    self.drivers.append(der)
        self.failures: dict[str, str] = {}  # device name -> last error, for status and alarms

    def setpoint_intervals(self) -> dict[str, float]:
        """Each DER's (and the charger's) ``[pacing] setpoint_interval_ms`` in seconds, by the
        engine's DER id: how often a ramp may write it (``Engine.pace``)."""
        out = {
            der_id: d.device.profile.pacing.setpoint_interval_s for der_id, d in self.ders.items()
        }
        if self.charger is not None and self.charger_id is not None:
            out[self.charger_id] = self.charger.device.profile.pacing.setpoint_interval_s
        return out

    async def connect(self, soc_floor_pct: float | None = None) -> list[str]:
        """Connect every device; returns the problems (a device that is down now may come back,
        so this never raises: the engine sees it as missing telemetry and stays safe).
        ``soc_floor_pct`` (the site's backup reserve) is written to a charger whose profile has
        a ``soc_floor`` role, as a device-side backstop to the engine's own reserve."""
        problems: list[str] = []
        for d in self.drivers:
            try:
                await d.connect()
                if d is self.charger and soc_floor_pct is not None:
                    await self.charger.set_soc_floor(soc_floor_pct, "site backup reserve")
            except DeviceError as exc:
                problems.append(str(exc))
                self.failures[d.name] = str(exc)
        return problems

    async def observe(self) -> Observed:
        """One snapshot. A device that fails to answer is left out, so its telemetry goes stale
        and the engine applies the safe interpretation (relay unknown = closed, static caps)."""
        meter = relay = charger = None
        if self.relay is not None and (got := await self._try(self.relay, self.relay.observe)):
            meter, relay = got
            grid = self.relay.grid_side
            if self.meter is not None and grid is not None:
                # Net power and currents from the meter, the grid side from the relay. With
                # the relay unread there is no grid reading, so no meter reading either: the
                # engine's stale-data rules then apply, as when one device reads both.
                meter = await self._try(self.meter, functools.partial(self.meter.observe, grid))
        if self.charger is not None:
            charger = await self._try(self.charger, self.charger.observe)
        ders = [await self._try(der, _observer(der)) for der in self.ders.values()]
        found = tuple(t for t in ders if t is not None)
        # The snapshot is stamped when it is complete: every part was read at or before it, so
        # no reading looks like it comes from the future (which the engine treats as stale).
        return Observed(self.now(), meter=meter, relay=relay, charger=charger, ders=found)

    async def read_ratings(self) -> dict[tuple[str, Direction], float]:
        """Each DER's own ratings (W) by the engine's DER id and direction, from the devices
        whose profile binds ``rated_w`` (discharge) or ``rated_charge_w`` (charge). Not part of
        ``observe``: read at start and then rarely (a rating does not change each cycle, and
        Modbus time on the control path matters). A device that does not answer, or holds no
        number there, is left out."""
        out: dict[tuple[str, Direction], float] = {}
        rated: list[tuple[str, DriverBase]] = list(self.ders.items())
        if self.charger is not None and self.charger_id is not None:
            rated.insert(0, (self.charger_id, self.charger))
        for der_id, driver in rated:
            # By point: a register that holds both ratings (the Quasar's max_power) is read once.
            read: dict[str, float | None] = {}
            for role, direction in _RATING_ROLES:
                if not driver.has(role):
                    continue
                point = driver.binding(role).point
                if point not in read:
                    read[point] = await self._try(driver, functools.partial(driver.rating, role))
                if (w := read[point]) is not None:
                    out[(der_id, direction)] = w
        return out

    async def _try(self, driver: DriverBase, read: Callable[[], Awaitable[T]]) -> T | None:
        try:
            value = await read()
        except DeviceError as exc:
            if self.failures.get(driver.name) != str(exc):
                # once per distinct failure, not once per cycle
                log.warning("%s", exc, extra={"device": driver.name})
            self.failures[driver.name] = str(exc)
            return None
        if self.failures.pop(driver.name, None) is not None:
            log.info("%s answers again", driver.device.label, extra={"device": driver.name})
        return value

    async def execute(self, cmd: DeviceCommand) -> WriteConfirmed | WriteFailed:
        run: Awaitable[WriteConfirmed | WriteFailed]
        match cmd:
            case RelayCommand() if self.relay is not None:
                driver: DriverBase = self.relay
                run = self.relay.execute(cmd)
            case ChargerCommand() if self.charger is not None:
                driver, run = self.charger, self.charger.execute(cmd)
            case DerLimit() if cmd.der_id in self.ders:
                der = self.ders[cmd.der_id]
                driver = der
                run = der.limit(cmd) if isinstance(der, FollowerCharger) else der.execute(cmd)
            case _:
                return WriteFailed(self.now(), cmd.id, f"no device is configured for {cmd!r}")
        # A command's requests go ahead of the control loop's telemetry reads, and no read
        # slips in between its steps on the same endpoint.
        link = driver.device.link
        held = link.reserved() if isinstance(link, Endpoint) else contextlib.nullcontext()
        with urgent(), held, about(device=driver.name):
            return await run

    async def keepalive(self, healthy: Callable[[], bool], stop: asyncio.Event) -> None:
        """Refresh each device's watchdog at its own period while ``healthy()`` holds."""
        await asyncio.gather(*(self._keep(d, healthy, stop) for d in self.drivers))

    async def _keep(self, d: DriverBase, healthy: Callable[[], bool], stop: asyncio.Event) -> None:
        wd = d.device.profile.watchdog
        if wd is None:
            return
        while not stop.is_set():
            if healthy():
                try:
                    await d.refresh_watchdog()
                except DeviceError as exc:
                    log.warning("watchdog refresh failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wd.refresh_s)

    async def close(self) -> None:
        await self.transports.close()


def _observer(der: Der | FollowerCharger) -> Callable[[], Awaitable[DerTelemetry]]:
    return der.observe_der if isinstance(der, FollowerCharger) else der.observe
