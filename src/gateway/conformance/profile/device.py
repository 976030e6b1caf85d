"""The device under test: its address, the profile it claims to follow, and the wire between.

A target is named as a site file names a device's transport (``tcp://host:port``,
``rtu+tcp://host:port``, ``rtu:///dev/ttyUSB0?baudrate=9600``), or ``host:port`` for Modbus
TCP; ``/UNIT`` after a TCP address (or ``--unit``) gives the unit id, else the profile's.

Every request goes through :class:`RecordingLink`, the runtime's own ``Endpoint`` with a tape:
each Modbus request and its answer (registers, or the exception or timeout) is an evidence row
of the case that made it. The points are read and written by the runtime's ``Device`` (the
codec, the scale factors, the profile's ranges) and a SunSpec profile is bound by the DER
driver's own discovery, so the suite judges the same code the gateway runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.south.device import Device, WriteRecord
from gateway.south.drivers.base import DriverBase
from gateway.south.drivers.der import Der
from gateway.south.errors import DeviceError, DeviceRejected, DeviceStateError
from gateway.south.profile import Profile
from gateway.south.profiles import find
from gateway.south.registers import Pacing, Table
from gateway.south.transport import Endpoint, EndpointConfig, function_code


def parse_target(spec: str, unit: int | None) -> tuple[EndpointConfig, int | None]:
    """The endpoint and unit id a ``--target`` names; ValueError says what is wrong."""
    url = spec if "://" in spec else f"tcp://{spec}"
    parts = urlsplit(url)
    if parts.scheme in ("tcp", "rtu+tcp") and parts.path not in ("", "/"):
        text = parts.path.strip("/")
        if not text.isdigit():
            raise ValueError(f"--target {spec!r}: after the address, /UNIT is a unit id (1..247)")
        unit = int(text) if unit is None else unit
        url = f"{parts.scheme}://{parts.netloc}"
    return EndpointConfig.parse(url), unit


class RecordingLink:
    """``Endpoint`` with every request and answer written to the current case's evidence."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.rows: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        # While shut (PRF-04), a write is recorded and refused here, never sent: a value that
        # gets past the profile layer must not reach a device.
        self.shut = False

    def begin(self) -> list[dict[str, Any]]:
        """A fresh tape for the next case."""
        self.rows, self._t0 = [], time.monotonic()
        return self.rows

    @property
    def writes(self) -> int:
        return sum(1 for r in self.rows if r.get("op") == "write")

    def _row(self, **row: Any) -> dict[str, Any]:
        out = {"kind": "modbus", "t": round(time.monotonic() - self._t0, 3), **row}
        self.rows.append(out)
        return out

    async def read(
        self,
        device_id: int,
        table: Table,
        address: int,
        count: int,
        *,
        pacing: Pacing,
        device: str,
        point: str,
    ) -> list[int]:
        row = self._row(
            op="read", fc=function_code(table), unit=device_id, table=table.value,
            address=address, count=count, point=point,
        )  # fmt: skip
        try:
            regs = await self.endpoint.read(
                device_id, table, address, count, pacing=pacing, device=device, point=point
            )
        except DeviceError as exc:
            row["error"] = _why(exc)
            raise
        row["response"] = regs
        return regs

    async def write(
        self,
        device_id: int,
        table: Table,
        address: int,
        values: Sequence[int],
        *,
        pacing: Pacing,
        device: str,
        point: str,
        single: bool | None = None,
    ) -> None:
        fc = function_code(table, write=len(values), single=single)
        row = self._row(
            op="write", fc=fc, unit=device_id, table=table.value, address=address,
            values=list(values), point=point,
        )  # fmt: skip
        if self.shut:
            row["error"] = "not sent: the suite's link is shut for writes in this case"
            raise DeviceStateError(device, point, row["error"])
        try:
            await self.endpoint.write(
                device_id, table, address, values,
                pacing=pacing, device=device, point=point, single=single,
            )  # fmt: skip
        except DeviceError as exc:
            row["error"] = _why(exc)
            raise
        row["response"] = "ok"


def _why(exc: DeviceError) -> str:
    if isinstance(exc, DeviceRejected):
        return f"exception {exc.code}: {exc.why}"
    return exc.why


@dataclass
class Options:
    """What the vendor allows the suite to do to the device (all off: a bench's defaults)."""

    allow_relay: bool = False  # PRF-06 opens and recloses the islanding relay
    allow_charge_w: float = 0.0  # PRF-05 on a charger charges the EV at this power
    settle_s: float = 10.0  # how long a device may take to reach a commanded state


@dataclass
class DeviceTarget:
    """A device and its profile, for the cases; satisfies ``Target`` (nothing to start)."""

    profile: Profile
    endpoint: EndpointConfig
    unit_id: int | None = None
    options: Options = field(default_factory=Options)
    name: str = ""
    _link: RecordingLink | None = None
    _device: Device | None = None
    _bound: str = ""  # why binding failed (a SunSpec chain without a required model)
    audit: list[WriteRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        unit = self.profile.unit_id if self.unit_id is None else self.unit_id
        self.unit_id = unit
        self.name = self.name or f"{self.profile.name} at {self.endpoint.url} unit {unit}"

    async def start(self, site: Path, seconds: float) -> None:
        """A device is not started: it is there, or the first read says it is not."""

    async def stop(self) -> list[str]:
        await self.end()
        self._link, self._device = None, None
        return [f"{r.point} = {r.value!r}: {r.outcome}" for r in self.audit]

    def begin(self) -> list[dict[str, Any]]:
        """A new case: its own connection and evidence tape (the device, once bound, is kept:
        a SunSpec chain is walked once per run)."""
        self._link = RecordingLink(Endpoint(self.endpoint))
        if self._device is not None:
            self._device.link = self._link
        return self._link.begin()

    async def end(self) -> None:
        """The case is over: close its connection."""
        if self._link is not None:
            await self._link.endpoint.close()

    @property
    def link(self) -> RecordingLink:
        assert self._link is not None, "begin() first"
        return self._link

    async def device(self) -> Device:
        """The device seen through its profile; a SunSpec profile is bound to the device's
        model chain first (DeviceError when the chain lacks what the profile needs)."""
        if self._device is None:
            assert self.unit_id is not None
            device = Device(
                self.profile.name,
                self.profile,
                self.link,
                audit=self.audit.append,
                now=time.monotonic,
                unit_id=self.unit_id,
            )
            await Der(device, now=time.monotonic).discover()
            self._device = device
        return self._device

    def driver(self, device: Device) -> DriverBase:
        return DriverBase(device, now=time.monotonic)


def target_from(
    spec: str, profile_ref: str | None, unit: int | None, options: Options
) -> DeviceTarget:
    """The target of ``--suite profile``; ValueError (or ProfileError) says what is wrong."""
    if not profile_ref:
        raise ValueError("--suite profile needs --profile NAME_OR_FILE (the device's profile)")
    if spec == "in-process":
        raise ValueError("--suite profile needs --target HOST:PORT[/UNIT] or a transport URL")
    endpoint, unit = parse_target(spec, unit)
    if options.allow_charge_w < 0:
        raise ValueError(f"--allow-charge must be >= 0 W; got {options.allow_charge_w:g}")
    return DeviceTarget(find(profile_ref), endpoint, unit, options)
