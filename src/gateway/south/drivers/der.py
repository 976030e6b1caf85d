"""A PV or battery inverter, usually SunSpec: generation limits and telemetry.

A SunSpec device's register addresses are not in its profile: ``connect`` walks the model chain
(``sunspec.walk``) and binds the role points by name (``704.WMaxLimPct``), with their scale
factors, so a device with an extra model in its chain still works.
"""

from __future__ import annotations

from gateway.core.messages import DerLimit, DerTelemetry, WriteConfirmed, WriteFailed
from gateway.south import sunspec
from gateway.south.drivers.base import DriverBase
from gateway.south.errors import DeviceRejected, DeviceStateError
from gateway.south.profile import sign
from gateway.south.registers import Table
from gateway.south.sunspec_profile import bind_profile


class Der(DriverBase):
    der_id: str = ""

    async def connect(self) -> None:
        await self.discover()
        await super().connect()

    async def discover(self) -> None:
        """Walk a SunSpec device's model chain and bind the profile's points to it (nothing to
        do for a profile with fixed addresses). The profile conformance suite uses it too."""
        discovery = self.device.profile.sunspec
        if discovery is None:
            return
        walker = sunspec.walk(discovery.bases)
        try:
            request = next(walker)
            while True:
                regs: list[int] | None
                try:
                    regs = await self.device.read_raw(
                        Table.HOLDING, request.address, request.count, "SunSpec model chain"
                    )
                except DeviceRejected:
                    regs = None  # an exception reply at a candidate base means "not here"
                request = walker.send(regs)
        except StopIteration as done:
            chain: sunspec.Chain = done.value
        try:
            profile, points = bind_profile(self.device.profile, chain)
        except sunspec.SunSpecError as exc:
            raise DeviceStateError(self.device.label, "SunSpec model chain", str(exc)) from exc
        self.device.profile = profile
        self.device.rebind(points)

    async def execute(self, cmd: DerLimit) -> WriteConfirmed | WriteFailed:
        async def step() -> None:
            if self.has("limit_pct"):
                await self._limit_pct(cmd)
            elif self.has("power_setpoint"):
                b = self.binding("power_setpoint")
                await self.device.write(
                    b.point,
                    cmd.max_discharge_w * sign(b.positive),
                    reason=cmd.reason,
                    correlation_id=cmd.id,
                )
                if self.has("setpoint_enable"):
                    await self._enable("setpoint_enable", cmd)
            else:
                why = "the profile binds neither limit_pct nor power_setpoint"
                raise DeviceStateError(self.device.label, "limit_pct", why)

        return await self.guarded(cmd.id, step)

    async def _limit_pct(self, cmd: DerLimit) -> None:
        # 0 W is 0 % of any rating: the islanding path (export to 0 W) skips reading WMax and
        # its scale factor, two round trips before the relay may open.
        pct = 0.0 if cmd.max_discharge_w <= 0 else await self._pct_of_w_max(cmd.max_discharge_w)
        writes: list[tuple[str, float | int]] = [(self.binding("limit_pct").point, pct)]
        if self.has("limit_enable"):
            # An enable register is a setting, not a pulse: it reads back what was written.
            # SunSpec 704 keeps it next to the percentage, so both go in one request and one
            # read-back (``Device.write_many``); elsewhere the limit is written first.
            writes.append((self.binding("limit_enable").point, self.value_of("limit_enable")))
        await self.device.write_many(writes, reason=cmd.reason, correlation_id=cmd.id)

    async def _pct_of_w_max(self, watts: float) -> float:
        w_max = (
            await self.device.read_one(self.binding("w_max").point) if self.has("w_max") else None
        )
        if not isinstance(w_max, int | float) or w_max <= 0:
            why = f"w_max reads {w_max!r}, so a limit in W cannot be turned into a percentage"
            raise DeviceStateError(self.device.label, "w_max", why)
        return max(0.0, min(100.0, watts / w_max * 100.0))

    async def _enable(self, role: str, cmd: DerLimit) -> None:
        # An enable register is a setting, not a pulse: it reads back what was written.
        b = self.binding(role)
        await self.device.write(
            b.point, self.value_of(role), reason=cmd.reason, correlation_id=cmd.id
        )

    async def observe(self) -> DerTelemetry:
        b = self.binding("power")
        q = self.binding("reactive_power") if self.has("reactive_power") else None
        c = self.binding("connected") if self.has("connected") else None
        extra = [*([q.point] if q is not None else []), *(c.points if c is not None else ())]
        at = self.now()  # before the request: see MeterRelay.observe
        values = await self.device.read(b.point, *extra)
        power = values[b.point]
        watts = float(power) if isinstance(power, int | float) else 0.0
        var = None
        if q is not None and isinstance(raw := values[q.point], int | float):
            var = float(raw) * sign(q.positive)
        connected = None
        if c is not None:
            category = c.decide(values)
            connected = None if category is None else category == "connected"
        name = self.der_id or self.device.name
        return DerTelemetry(
            at, name, watts * sign(b.positive), reactive_var=var, connected=connected
        )
