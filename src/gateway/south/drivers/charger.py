"""A bidirectional (V2H) charger: charge, discharge, grid-forming backup, SoC floor.

Sign convention at this boundary: the engine's setpoint and telemetry are positive for
discharge into the home; each profile says what its device means by a positive number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.core.island import ChargerMode
from gateway.core.messages import ChargerCommand, ChargerTelemetry, WriteConfirmed, WriteFailed
from gateway.south.drivers.base import DriverBase
from gateway.south.errors import DeviceStateError
from gateway.south.profile import CONFIRM, sign

Goal = Callable[[ChargerCommand], Awaitable[None]]
STOPPED = frozenset({"stopped", "no_ev"})
RUNNING = frozenset({"charging", "discharging", "stopped"})
MODE_OF = {
    "forming": ChargerMode.GRID_FORMING,
    "charging": ChargerMode.GRID_FOLLOWING,
    "discharging": ChargerMode.GRID_FOLLOWING,
}


class Charger(DriverBase):
    #: |power| at or below this counts as stopped (the engine applies its own tolerance too).
    zero_w: float = 50.0
    # True once this driver has written grid-forming off and not asked for it on since: a stop
    # then needs no third write (the islanding path's charger step: 4 round trips to 3). False
    # after connect, so the first stop after a (re)start always writes it.
    _forming_off: bool = False

    async def connect(self) -> None:
        self._forming_off = False  # a device that was away may have rebooted with it on
        await super().connect()

    @property
    def can_form(self) -> bool:
        return self.has("grid_forming_on") and self.has("grid_forming_off")

    async def execute(self, cmd: ChargerCommand) -> WriteConfirmed | WriteFailed:
        async def step() -> None:
            match cmd.mode:
                case ChargerMode.STOPPED:
                    await self._stop(cmd)
                case ChargerMode.GRID_FOLLOWING:
                    await self._follow(cmd)
                case ChargerMode.GRID_FORMING:
                    await self._form(cmd)

        return await self.guarded(cmd.id, step)

    async def _stop(self, cmd: ChargerCommand) -> None:
        if self.can_form and not self._forming_off:
            # Grid-forming may be on: the profile's order for leaving it (a device that refuses
            # a stop while in backup mode switches it off first).
            await self._run(self.device.profile.sequences.leave_forming, cmd, self._stopped)
            self._forming_off = True
        else:
            await self._run(self.device.profile.sequences.stop, cmd, self._stopped)

    async def _run(
        self,
        steps: tuple[str, ...],
        cmd: ChargerCommand,
        goal: Callable[[ChargerCommand], Awaitable[None]],
    ) -> None:
        """A sequence of the profile: its command roles written in order, ``confirm`` waiting
        for the goal by read-back. The loader saw to it that every sequence confirms."""
        for step in steps:
            if step == CONFIRM:
                await goal(cmd)
            else:
                await self.command(step, reason=cmd.reason, correlation_id=cmd.id)

    async def _stopped(self, cmd: ChargerCommand) -> None:
        # devices.md §4.3 step 2: stopped means the state says so AND the power is zero.
        await self.await_category(
            "state", STOPPED, reason=cmd.reason, correlation_id=cmd.id, also=self._power_is_zero
        )

    async def _forming(self, cmd: ChargerCommand) -> None:
        await self.await_category("state", {"forming"}, reason=cmd.reason, correlation_id=cmd.id)

    async def _power_is_zero(self) -> str | None:
        power = await self.device.read_one(self.binding("power").point)
        if isinstance(power, int | float) and abs(power) > self.zero_w:
            return f"power still reads {power:g} W"
        return None

    async def _follow(self, cmd: ChargerCommand) -> None:
        sp = await self._write_setpoint(cmd)
        await self.command("start", reason=cmd.reason, correlation_id=cmd.id)
        category, _ = await self.category("state")
        if category == "no_ev":
            raise DeviceStateError(self.device.label, "state", "no EV is connected")
        # A non-zero setpoint must show up as the matching state; "stopped" would mean the
        # device ignored the start.
        wanted = (
            {"discharging"} if sp > self.zero_w else {"charging"} if sp < -self.zero_w else RUNNING
        )
        await self.await_category("state", wanted, reason=cmd.reason, correlation_id=cmd.id)

    async def _write_setpoint(self, cmd: ChargerCommand) -> float:
        """Write ``cmd``'s setpoint: the signed register, or the two unsigned limits; returns
        the setpoint in force (0 W for one below the active limit's minimum)."""
        sp = cmd.setpoint_w
        if self.has("power_setpoint"):
            b = self.binding("power_setpoint")
            await self.device.write(
                b.point, sp * sign(b.positive), reason=cmd.reason, correlation_id=cmd.id
            )
            return sp
        sp = self._effective(sp)
        for role, value in self._limits(sp):
            await self.device.write(
                self.binding(role).point, value, reason=cmd.reason, correlation_id=cmd.id
            )
        return sp

    def _effective(self, sp: float) -> float:
        """0 W for a non-zero |sp| below the active limit's minimum (see ``_limits``)."""
        active = "discharge_limit" if sp > 0 else "charge_limit" if sp < 0 else None
        if active is None:
            return sp
        floor = self.device.point(self.binding(active).point).minimum
        return 0.0 if floor is not None and abs(sp) < floor else sp

    def _limits(self, sp: float) -> list[tuple[str, float]]:
        """The two unsigned limits for setpoint ``sp``, in the order they are written.

        The limit in the wanted direction carries |sp|; the other (both, for sp = 0) is held at
        its floor, ``max(0, minimum)``: 0 where the profile gives no minimum, so the device cannot
        wander the other way, and the profile's minimum where the device refuses 0 (Sigenergy:
        "never write 0 to 41002; clamp to [500 W, rated]", devices.md §3.3), which lets it wander
        at most that far. The inactive limit is written first, so the old direction is floored
        before the new one is raised.

        A non-zero |sp| below the active limit's minimum is written as 0 W (both limits at their
        floor), never raised to the minimum: running at the minimum would move more power than
        commanded, past a backfeed or breaker cap the engine computed, while less power is the
        safe side and is what the floors already allow at 0 W. A |sp| above the maximum is
        refused (DeviceStateError) before anything is written.
        """
        active = "discharge_limit" if sp > 0 else "charge_limit" if sp < 0 else None
        writes: list[tuple[str, float]] = []
        for role in ("discharge_limit", "charge_limit"):
            if role != active:
                point = self.device.point(self.binding(role).point)
                writes.append((role, max(0.0, point.minimum or 0.0)))
        if active is not None:
            point = self.device.point(self.binding(active).point)
            if not point.admits(abs(sp)):
                why = (
                    f"setpoint {sp:g} W needs {active} = {abs(sp):g} W, outside the "
                    f"{point.range_text()} profile {self.device.profile.name!r} allows for it; "
                    "refused rather than clamped"
                )
                raise DeviceStateError(self.device.label, point.name, why)
            writes.append((active, abs(sp)))
        return writes

    async def _form(self, cmd: ChargerCommand) -> None:
        if not self.can_form:
            why = f"profile {self.device.profile.name!r} has no grid-forming (backup) mode"
            raise DeviceStateError(self.device.label, "grid_forming_on", why)
        self._forming_off = False  # from here on unknown, whatever the writes' outcome
        await self._run(self.device.profile.sequences.enter_forming, cmd, self._forming)

    async def set_soc_floor(self, soc_pct: float, reason: str) -> None:
        """Write the device-side SoC floor where the profile has one (a backstop: the engine
        enforces the reserve itself)."""
        if self.has("soc_floor"):
            await self.device.write(self.binding("soc_floor").point, soc_pct, reason=reason)

    async def observe(self) -> ChargerTelemetry:
        state, power, soc = (self.binding(r) for r in ("state", "power", "soc"))
        at = self.now()  # before the request: see MeterRelay.observe
        values = await self.device.read(*dict.fromkeys((*state.points, power.point, soc.point)))
        raw_power, raw_soc = values[power.point], values[soc.point]
        category = state.decide(values)
        watts = float(raw_power) if isinstance(raw_power, int | float) else 0.0
        return ChargerTelemetry(
            at,
            mode=MODE_OF.get(category or "", ChargerMode.STOPPED),
            power_w=watts * sign(power.positive),
            soc_pct=float(raw_soc) if isinstance(raw_soc, int | float) else None,
            ev_connected=category != "no_ev",
            fault=category == "fault",
        )
