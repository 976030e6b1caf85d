"""What every driver shares: init writes on connect, confirmation by an independent read-back,
the watchdog keep-alive, and the rule that device errors become ``WriteFailed``, never raise
into the engine's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import NoReturn

from gateway.core.messages import WriteConfirmed, WriteFailed
from gateway.south.codec import Value
from gateway.south.device import Device
from gateway.south.errors import DeviceError, DeviceStateError, DeviceTimeout, DeviceUnreachable
from gateway.south.profile import Binding, WatchdogValue

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """How long a driver waits for a device to show that a command took effect."""

    timeout_s: float = 5.0  # a relay's travel time, a charger's contactor and ramp start
    # The first re-read comes after ``poll_s`` (fast: the islanding path waits on it), each
    # later one after twice the last pause, up to ``poll_max_s``: a relay's travel or a slow
    # contactor then costs a few reads a second, not one every ``poll_s`` (a fixed 20 ms poll
    # read the relay 2,323 times in one outage).
    poll_s: float = 0.05
    poll_max_s: float = 0.25

    def pauses(self) -> Iterator[float]:
        """The pauses between the reads of one wait: poll_s, doubling, capped at poll_max_s."""
        pause = self.poll_s
        while True:
            yield min(pause, max(self.poll_s, self.poll_max_s))
            pause *= 2

    # The home side of an open relay counts as dead below this (SiteConfig.dead_bus_v).
    dead_bus_v: float = 50.0


class DriverBase:
    def __init__(
        self,
        device: Device,
        *,
        now: Callable[[], float],
        confirm: Confirmation | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.device = device
        self.now = now
        self.confirm = confirm or Confirmation()
        self.sleep = sleep
        self._heartbeat = 0

    @property
    def name(self) -> str:
        return self.device.name

    def binding(self, role: str) -> Binding:
        b = self.device.profile.role(role)
        if b is None:
            why = f"profile {self.device.profile.name!r} does not bind the {role!r} role"
            raise DeviceStateError(self.device.label, role, why)
        return b

    def has(self, role: str) -> bool:
        return self.device.profile.role(role) is not None

    async def rating(self, role: str = "rated_w") -> float | None:
        """The device's own rating (W) where the profile binds ``role`` (``rated_w``:
        discharge/generation; ``rated_charge_w``: charge); None where it binds none or the
        register holds no number ("not implemented")."""
        if not self.has(role):
            return None
        raw = await self.device.read_one(self.binding(role).point)
        return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None

    async def connect(self) -> None:
        """Put the device under remote control (the profile's init writes, in order)."""
        for w in self.device.profile.init:
            await self.device.write(w.point, w.value, reason="init: take remote control")
        if self.device.profile.watchdog is not None:
            await self.refresh_watchdog()

    async def command(self, role: str, *, reason: str, correlation_id: str) -> None:
        """Write a command role's value. Command registers are often write-only or self-clearing,
        so they are confirmed through a state role by the caller, not by reading them back."""
        b = self.binding(role)
        await self.device.write(
            b.point, self.value_of(role), reason=reason, correlation_id=correlation_id, verify=False
        )

    def value_of(self, role: str) -> int:
        """The raw value a command role writes. SunSpec profiles name a symbol (``ENABLED``)
        that only the discovered point knows, so it is resolved here, after discovery."""
        b = self.binding(role)
        if b.value is not None:
            return b.value
        symbols = self.device.point(b.point).symbols
        if b.symbol is not None and b.symbol in symbols:
            return symbols[b.symbol]
        known = ", ".join(symbols) or "none"
        why = f"the {role!r} role names symbol {b.symbol!r}, which the device's point lacks"
        raise DeviceStateError(self.device.label, role, f"{why} (it has: {known})")

    async def read_state(
        self, role: str, *extra: str
    ) -> tuple[str | None, Mapping[str, Value | None]]:
        """The category a STATE role reads from all its registers (``Binding.decide``), and the
        values read: the role's points and ``extra`` ones, in as few requests as the layout
        allows (the reference relay's state and fault bits are neighbours: one read)."""
        b = self.binding(role)
        values = await self.device.read(*dict.fromkeys((*b.points, *extra)))
        return b.decide(values), values

    async def category(self, role: str) -> tuple[str | None, Value | None]:
        """The state category the device reports for a STATE role, and the raw reading of the
        role's own (first) point."""
        category, values = await self.read_state(role)
        return category, values[self.binding(role).point]

    async def await_category(
        self,
        role: str,
        wanted: Collection[str],
        *,
        reason: str,
        correlation_id: str,
        also: Callable[[], Awaitable[str | None]] | None = None,
        extra: tuple[str, ...] = (),
        failed: Callable[[str | None, Mapping[str, Value | None]], str | None] | None = None,
    ) -> None:
        """Poll a STATE role until it reports one of ``wanted`` (and ``also`` has no objection),
        or raise DeviceStateError saying what it reported instead. ``failed`` looks at each
        reading (the role's points and ``extra``) and ends the wait at once with its reason: a
        device that reports a fault will not get better by waiting. The outcome is audited."""
        b = self.binding(role)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm.timeout_s
        category: str | None = None
        raw: Value | None = None
        objection: str | None = None
        pauses = self.confirm.pauses()
        while True:
            category, values = await self.read_state(role, *extra)
            raw = values[b.point]
            shown = _shown(b, values)
            if category in wanted:
                objection = await also() if also is not None else None
                if objection is None:
                    self.device.note(
                        b.point,
                        shown,
                        reason=reason,
                        outcome=f"confirmed: {role} reads {category}",
                        correlation_id=correlation_id,
                    )
                    return
            elif failed is not None and (broken := failed(category, values)) is not None:
                self._fail(b.point, shown, reason, correlation_id, role, broken)
            if loop.time() >= deadline:
                break
            await self.sleep(min(next(pauses), max(0.0, deadline - loop.time())))
        what = category or f"raw {raw!r} (no category)"
        if category in wanted and objection is not None:
            why = f"{role} reads {what}, but after {self.confirm.timeout_s:g} s {objection}"
        else:
            why = (
                f"{role} still reads {what} after {self.confirm.timeout_s:g} s, "
                f"expected {' or '.join(sorted(wanted))}"
            )
        self._fail(b.point, shown, reason, correlation_id, role, why)

    def _fail(
        self, point: str, shown: Value, reason: str, correlation_id: str, role: str, why: str
    ) -> NoReturn:
        self.device.note(
            point, shown, reason=reason, outcome="failed: " + why, correlation_id=correlation_id
        )
        raise DeviceStateError(self.device.label, role, why)

    async def refresh_watchdog(self) -> None:
        """Keep the device's revert timer alive. Called every ``watchdog.refresh_s`` by the
        runtime only while the engine loop is healthy, so a hung gateway lets it expire."""
        wd = self.device.profile.watchdog
        if wd is None:
            return
        value: int | float
        if wd.value is WatchdogValue.TIMEOUT:
            value = wd.timeout_s
        elif wd.value is WatchdogValue.COUNTER:
            self._heartbeat = (self._heartbeat + 1) % 0x10000
            value = self._heartbeat
        else:
            value = wd.constant
        await self.device.write(wd.point, value, reason="watchdog keep-alive", audit=False)

    async def guarded(
        self, correlation_id: str, step: Callable[[], Awaitable[None]]
    ) -> WriteConfirmed | WriteFailed:
        """Run one command's steps; a device error becomes WriteFailed with its message."""
        try:
            await step()
        except (DeviceUnreachable, DeviceTimeout) as exc:
            return WriteFailed(self.now(), correlation_id, str(exc), transient=True)
        except DeviceError as exc:
            return WriteFailed(self.now(), correlation_id, str(exc))
        return WriteConfirmed(self.now(), correlation_id)


def _shown(binding: Binding, values: Mapping[str, Value | None]) -> Value:
    """What an audit record shows of a state reading: the raw value of a one-register role,
    ``point=raw`` for each register of a role read from several."""
    if not binding.more:
        raw = values.get(binding.point)
        return raw if raw is not None else ""
    return ", ".join(f"{p}={values.get(p)!r}" for p in binding.points)
